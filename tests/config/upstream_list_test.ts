/**
 * The upstream failover list in the configuration: repeatable --upstream, CARRIER_UPSTREAM
 * with commas, a TOML list, password files by position, and the password of each upstream
 * (CARRIER_UPSTREAM_PASSWORD_N) as the delivery settings read it.
 */

import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { buildConfig } from "../../src/config/build.ts";
import { ConfigError } from "../../src/config/error.ts";
import { deliverySettings } from "../../src/relay/worker_setup.ts";
import { positionalPasswordVariable } from "../../src/config/upstreams.ts";
import { envOf, flags, host, noEnv, withFile } from "./_helpers.ts";

const A = "starttls://a@smtp.example.com:587";
const B = "smtps://b@backup.example.net";
const C = "smtp://127.0.0.1:2600";

/** Rejects with a ConfigError whose message is exactly `text`. */
function exactly(text: string) {
  return (e: unknown) => {
    strictEqual(e instanceof ConfigError, true, `expected ConfigError, got ${e}`);
    strictEqual((e as Error).message, text);
    return true;
  };
}

Deno.test("--upstream is repeatable and keeps its order; one value may also list several", async () => {
  deepStrictEqual((await buildConfig(flags("--upstream", A), noEnv, host)).upstream, [A]);
  deepStrictEqual(
    (await buildConfig(flags("--upstream", A, "--upstream", B, "--upstream", C), noEnv, host))
      .upstream,
    [A, B, C],
  );
  deepStrictEqual(
    (await buildConfig(flags("--upstream", B, "--upstream", A), noEnv, host)).upstream,
    [B, A],
  );
  deepStrictEqual((await buildConfig(flags("--upstream", `${A},${B}`), noEnv, host)).upstream, [
    A,
    B,
  ]);
});

Deno.test("CARRIER_UPSTREAM=a,b is a list; --upstream replaces it as a whole", async () => {
  const env = envOf({ CARRIER_UPSTREAM: `${A}, ${B}` });
  deepStrictEqual((await buildConfig(flags(), env, host)).upstream, [A, B]);
  deepStrictEqual((await buildConfig(flags("--upstream", C), env, host)).upstream, [C]);
  await rejects(
    buildConfig(flags(), envOf({ CARRIER_UPSTREAM: `${A},ftp://x.example.com` }), host),
    (e: unknown) => e instanceof ConfigError && e.message.startsWith("CARRIER_UPSTREAM: "),
  );
});

Deno.test("the config file takes upstream as a string or a list, password files by position", async () => {
  const toml = `[upstream]\nupstream = ["${A}", "${B}"]\n` +
    `upstream_password_file = ["/run/secrets/a", "/run/secrets/b"]\n`;
  await withFile(toml, async (path) => {
    const c = await buildConfig(flags("--config", path), noEnv, host);
    deepStrictEqual(c.upstream, [A, B]);
    deepStrictEqual(c.upstreamPasswordFile, ["/run/secrets/a", "/run/secrets/b"]);
  }, "carrier.toml");
  await withFile(`[upstream]\nupstream = "${A}"\n`, async (path) => {
    deepStrictEqual((await buildConfig(flags("--config", path), noEnv, host)).upstream, [A]);
  }, "carrier.toml");
});

Deno.test("password files: one for all or one each; another count is refused with the exact text", async () => {
  const two = flags("--upstream", A, "--upstream", B, "--upstream-password-file", "/p");
  deepStrictEqual((await buildConfig(two, noEnv, host)).upstreamPasswordFile, ["/p"]);
  const each = flags(
    "--upstream",
    A,
    "--upstream",
    B,
    "--upstream-password-file",
    "/p1",
    "--upstream-password-file",
    "/p2",
  );
  deepStrictEqual((await buildConfig(each, noEnv, host)).upstreamPasswordFile, ["/p1", "/p2"]);

  const files = ["--upstream-password-file", "/p1", "--upstream-password-file", "/p2"];
  await rejects(
    buildConfig(flags("--upstream", A, "--upstream", B, "--upstream", C, ...files), noEnv, host),
    exactly(
      "--upstream-password-file: 2 files for 3 --upstream entries; give one for all, or one each in the same order",
    ),
  );
  await rejects(
    buildConfig(flags(...files), envOf({ CARRIER_UPSTREAM: `${A},${B},${C}` }), host),
    exactly(
      "--upstream-password-file: 2 files for 3 CARRIER_UPSTREAM entries; give one for all, or one each in the same order",
    ),
  );
  const toml = `[upstream]\nupstream = ["${A}"]\nupstream_password_file = ["/a", "/b"]\n`;
  await withFile(toml, async (path) => {
    await rejects(
      buildConfig(flags("--config", path), noEnv, host),
      exactly(
        "upstream-password-file: 2 files for 1 upstream entry; give one for all, or one each in the same order",
      ),
    );
  }, "carrier.toml");
});

Deno.test("the password of each upstream: CARRIER_UPSTREAM_PASSWORD, then _2, _3 ...", async () => {
  strictEqual(positionalPasswordVariable(0), "CARRIER_UPSTREAM_PASSWORD");
  strictEqual(positionalPasswordVariable(1), "CARRIER_UPSTREAM_PASSWORD_2");
  strictEqual(positionalPasswordVariable(2), "CARRIER_UPSTREAM_PASSWORD_3");
  const config = await buildConfig(flags("--upstream", A, "--upstream", B), noEnv, host);
  // The first's variable is shared by the others that have none of their own.
  const shared = await deliverySettings(config, envOf({ CARRIER_UPSTREAM_PASSWORD: "pw" }));
  deepStrictEqual(shared.upstreams.map((u) => u.name), [A, B]);
  const own = await deliverySettings(
    config,
    envOf({ CARRIER_UPSTREAM_PASSWORD: "pw", CARRIER_UPSTREAM_PASSWORD_2: "pw2" }),
  );
  deepStrictEqual(own.upstreams.map((u) => [u.name, u.maxRecipients]), [[A, 100], [B, 100]]);
  await rejects(
    deliverySettings(config, envOf({ CARRIER_UPSTREAM_PASSWORD_2: "pw2" })),
    exactly(
      "upstream: user a needs a password: set CARRIER_UPSTREAM_PASSWORD or --upstream-password-file",
    ),
  );
  const backupOnly = await buildConfig(flags("--upstream", C, "--upstream", B), noEnv, host);
  await rejects(
    deliverySettings(backupOnly, noEnv),
    exactly(
      "upstream: user b needs a password: set CARRIER_UPSTREAM_PASSWORD_2 or --upstream-password-file",
    ),
  );
  // The URL without a user (a loopback relay) needs none, so a password for it is refused.
  await rejects(
    deliverySettings(backupOnly, envOf({ CARRIER_UPSTREAM_PASSWORD: "pw" })),
    exactly("upstream: a password is set but the upstream URL has no user (user@host)"),
  );
});

Deno.test("every upstream's password file is read at start: a missing second one is named", async () => {
  const dir = await Deno.makeTempDir({ prefix: "carrier-upstream-list-" });
  try {
    await Deno.writeTextFile(join(dir, "a"), "pw-a\n");
    const missing = join(dir, "b-missing");
    const config = await buildConfig(
      flags("--upstream", A, "--upstream", B, ...["--upstream-password-file", join(dir, "a")], ...[
        "--upstream-password-file",
        missing,
      ]),
      noEnv,
      host,
    );
    await rejects(deliverySettings(config, noEnv), (e: unknown) => {
      strictEqual(e instanceof ConfigError, true);
      strictEqual(
        (e as Error).message.startsWith(`upstream-password-file: cannot read ${missing}:`),
        true,
      );
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

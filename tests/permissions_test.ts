import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { resolve } from "node:path";
import { buildConfig, ENV_VARS } from "../src/config/build.ts";
import { configFlags, parseFlags } from "../src/config/flags.ts";
import type { Config } from "../src/config/schema.ts";
import {
  binaryFlags,
  OAUTH2_TOKEN_HOST,
  permissionFlags,
  releaseFlags,
  runArguments,
  RUNTIME_FLAGS,
} from "../src/permissions.ts";

const noEnv = () => undefined;
const ALLOWED_FLAGS = [
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
  "--allow-sys",
];

async function configOf(...args: string[]): Promise<Config> {
  return await buildConfig(configFlags(parseFlags(args, {}).values), noEnv, () => "localhost");
}

/** `--allow-x=a,b` flags as a map from flag name to its sorted values. */
function parse(flags: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const flag of flags) {
    ok(flag.startsWith("--allow-"), flag);
    const eq = flag.indexOf("=");
    ok(eq > 0, `every permission is scoped: ${flag}`);
    const name = flag.slice(0, eq);
    ok(!out.has(name), `${name} given once`);
    out.set(name, flag.slice(eq + 1).split(",").sort());
  }
  for (const name of out.keys()) ok(ALLOWED_FLAGS.includes(name), `unexpected ${name}`);
  return out;
}

const sorted = (values: string[]) => [...values].sort();

async function fullConfig(): Promise<Config> {
  return await configOf(
    "--listen",
    "127.0.0.1:2525,[::1]:2525",
    "--listen-tls",
    "127.0.0.1:2465",
    "--metrics-listen",
    "127.0.0.1:9025",
    "--spool",
    "var/spool",
    "--tls-cert",
    "certs/cert.pem",
    "--tls-key",
    "/etc/carrier/key.pem",
    "--users",
    "users.json",
    "--upstream",
    "starttls://me@smtp.example.com:587",
    "--upstream-password-file",
    "/run/secrets/pw",
    "--upstream-ca",
    "ca.pem",
  );
}

Deno.test("serve: exactly the listeners, the upstream, the spool and the files it reads", async () => {
  const flags = parse(permissionFlags(await fullConfig(), "serve"));
  deepStrictEqual(
    flags.get("--allow-net"),
    sorted([
      "127.0.0.1:2525",
      "[::1]:2525",
      "127.0.0.1:2465",
      "127.0.0.1:9025",
      "smtp.example.com:587",
    ]),
  );
  deepStrictEqual(flags.get("--allow-write"), [resolve("var/spool")]);
  deepStrictEqual(
    flags.get("--allow-read"),
    sorted([
      resolve("var/spool"),
      resolve("certs/cert.pem"),
      "/etc/carrier/key.pem",
      resolve("users.json"),
      "/run/secrets/pw",
      resolve("ca.pem"),
    ]),
  );
  for (const path of [...flags.get("--allow-read")!, ...flags.get("--allow-write")!]) {
    ok(path.startsWith("/"), `absolute: ${path}`);
  }
  deepStrictEqual(flags.get("--allow-env"), sorted([...ENV_VARS]));
  deepStrictEqual(flags.get("--allow-sys"), ["hostname"]);
  deepStrictEqual([...flags.keys()].sort(), sorted(ALLOWED_FLAGS));
});

Deno.test("serve with the defaults: one listener, the spool, no upstream", async () => {
  const flags = parse(permissionFlags(await configOf(), "serve"));
  deepStrictEqual(flags.get("--allow-net"), ["127.0.0.1:2525"]);
  deepStrictEqual(flags.get("--allow-read"), [resolve("./spool")]);
  deepStrictEqual(flags.get("--allow-write"), [resolve("./spool")]);
});

Deno.test("serve: the config file is readable, never writable", async () => {
  const dir = await Deno.makeTempDir({ prefix: "carrier-permissions-test-" });
  try {
    const path = `${dir}/carrier.json`;
    await Deno.writeTextFile(path, JSON.stringify({ spool: `${dir}/spool` }));
    const flags = parse(permissionFlags(await configOf("--config", path), "serve"));
    deepStrictEqual(flags.get("--allow-read"), sorted([path, `${dir}/spool`]));
    deepStrictEqual(flags.get("--allow-write"), [`${dir}/spool`]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: IPv6 and implicit-TLS upstreams in --allow-net form", async () => {
  const v6 = parse(permissionFlags(await configOf("--upstream", "smtps://[2001:db8::1]"), "serve"));
  ok(v6.get("--allow-net")!.includes("[2001:db8::1]:465"), v6.get("--allow-net")!.join(" "));
  const plain = parse(
    permissionFlags(await configOf("--upstream", "smtp://127.0.0.1:2600"), "serve"),
  );
  ok(plain.get("--allow-net")!.includes("127.0.0.1:2600"));
});

Deno.test("serve with a failover list: every upstream's host, password file and variable", async () => {
  const two = parse(permissionFlags(
    await configOf(
      "--upstream",
      "starttls://me@smtp.example.com:587",
      "--upstream",
      "smtps://backup@[2001:db8::2]",
      "--upstream-password-file",
      "/run/secrets/one",
      "--upstream-password-file",
      "/run/secrets/two",
    ),
    "serve",
  ));
  ok(two.get("--allow-net")!.includes("smtp.example.com:587"));
  ok(two.get("--allow-net")!.includes("[2001:db8::2]:465"));
  for (const file of ["/run/secrets/one", "/run/secrets/two"]) {
    ok(two.get("--allow-read")!.includes(file), file);
  }
  deepStrictEqual(two.get("--allow-env"), sorted([...ENV_VARS, "CARRIER_UPSTREAM_PASSWORD_2"]));
  const three = parse(permissionFlags(
    await configOf(
      "--upstream",
      "smtps://a.example.com,smtps://b.example.com,smtps://c.example.com",
    ),
    "serve",
  ));
  deepStrictEqual(
    three.get("--allow-env"),
    sorted([...ENV_VARS, "CARRIER_UPSTREAM_PASSWORD_2", "CARRIER_UPSTREAM_PASSWORD_3"]),
  );
  // One upstream: only the variables every configuration may read.
  const one = parse(
    permissionFlags(await configOf("--upstream", "smtps://a.example.com"), "serve"),
  );
  deepStrictEqual(one.get("--allow-env"), sorted([...ENV_VARS]));
  // The binary built for a failover list can read the second password too.
  const binary = parse(
    binaryFlags(await configOf("--upstream", "smtps://a.example.com,smtps://b.example.com"), noEnv),
  );
  ok(binary.get("--allow-env")!.includes("CARRIER_UPSTREAM_PASSWORD_2"));
});

Deno.test("the OAuth2 token host only when a refresh token is set", async () => {
  const config = await fullConfig();
  const without = parse(permissionFlags(config, "serve", noEnv));
  ok(!without.get("--allow-net")!.includes(OAUTH2_TOKEN_HOST));
  const withToken = parse(
    permissionFlags(
      config,
      "serve",
      (n) => n === "CARRIER_OAUTH2_REFRESH_TOKEN" ? "tok" : undefined,
    ),
  );
  ok(withToken.get("--allow-net")!.includes(OAUTH2_TOKEN_HOST));
  strictEqual(OAUTH2_TOKEN_HOST, "accounts.google.com:443");
  // No upstream, no token host, whatever the environment says.
  const noUpstream = parse(permissionFlags(await configOf(), "serve", () => "tok"));
  ok(!noUpstream.get("--allow-net")!.includes(OAUTH2_TOKEN_HOST));
});

Deno.test("queue: only the spool, no network", async () => {
  const flags = parse(permissionFlags(await fullConfig(), "queue"));
  deepStrictEqual(flags.get("--allow-read"), [resolve("var/spool")]);
  deepStrictEqual(flags.get("--allow-write"), [resolve("var/spool")]);
  strictEqual(flags.get("--allow-net"), undefined);
});

Deno.test("users: the users file's directory; check-config: read-only, no spool, no net", async () => {
  const config = await fullConfig();
  const users = parse(permissionFlags(config, "users"));
  deepStrictEqual(users.get("--allow-read"), [resolve(".")]);
  deepStrictEqual(users.get("--allow-write"), [resolve(".")]);
  strictEqual(users.get("--allow-net"), undefined);
  const check = parse(permissionFlags(config, "check-config"));
  strictEqual(check.get("--allow-write"), undefined);
  strictEqual(check.get("--allow-net"), undefined);
  ok(!check.get("--allow-read")!.includes(resolve("var/spool")));
  ok(check.get("--allow-read")!.includes("/run/secrets/pw"));
});

Deno.test("runArguments: --version, --help and unknown commands get no permissions", async () => {
  const main = new URL("../src/main.ts", import.meta.url).pathname;
  for (const args of [["--version"], ["--help"], [], ["bogus"], ["serve", "--bogus"]]) {
    const run = await runArguments(args, noEnv);
    deepStrictEqual(run, ["--no-prompt", main, ...args], args.join(" "));
    ok(!run.some((a) => a.startsWith("--allow") || a === "-A"), args.join(" "));
  }
});

Deno.test("runArguments: a bad configuration may only read its config file and env", async () => {
  const main = new URL("../src/main.ts", import.meta.url).pathname;
  const args = ["serve", "--listen", "nonsense", "--config", "carrier.json"];
  const run = await runArguments(args, noEnv);
  deepStrictEqual(run, [
    "--no-prompt",
    `--allow-read=${resolve("carrier.json")}`,
    `--allow-env=${ENV_VARS.join(",")}`,
    main,
    ...args,
  ]);
  const noFile = await runArguments(["queue", "--max-recipients", "x"], noEnv);
  deepStrictEqual(noFile.filter((a) => a.startsWith("--allow")), [
    `--allow-env=${ENV_VARS.join(",")}`,
  ]);
});

Deno.test("runArguments: a command gets the flags for its configuration before main.ts", async () => {
  const main = new URL("../src/main.ts", import.meta.url).pathname;
  const args = ["serve", "--listen", "127.0.0.1:2600", "--spool", "/tmp/carrier-x"];
  const run = await runArguments(args, noEnv);
  strictEqual(run[0], "--no-prompt");
  const at = run.indexOf(main);
  ok(at > 0);
  deepStrictEqual(run.slice(at + 1), args);
  // The runtime flags (V8 settings), then the permission flags.
  deepStrictEqual(run.slice(1, 1 + RUNTIME_FLAGS.length), RUNTIME_FLAGS);
  const flags = parse(run.slice(1 + RUNTIME_FLAGS.length, at));
  deepStrictEqual(flags.get("--allow-net"), ["127.0.0.1:2600"]);
  deepStrictEqual(flags.get("--allow-write"), ["/tmp/carrier-x"]);
  const queue = parse((await runArguments(["queue", "list", "--json", "--spool", "/s"], noEnv))
    .filter((a) => a.startsWith("--allow")));
  deepStrictEqual(queue.get("--allow-write"), ["/s"]);
  strictEqual(queue.get("--allow-net"), undefined);
});

Deno.test("releaseFlags: common smarthosts, the default listener, fixed paths", () => {
  const flags = parse(releaseFlags());
  const net = flags.get("--allow-net")!;
  for (const target of ["*.gmail.com:587", "*.gmail.com:465", "127.0.0.1:2525", "[::1]:2525"]) {
    ok(net.includes(target), target);
  }
  ok(net.includes(OAUTH2_TOKEN_HOST));
  strictEqual(new Set(net).size, net.length, "no duplicates");
  deepStrictEqual(flags.get("--allow-write"), sorted(["/var/spool/carrier", "/etc/carrier"]));
  const fallbacks = [2, 3, 4, 5, 6, 7, 8, 9].map((n) => `CARRIER_UPSTREAM_PASSWORD_${n}`);
  deepStrictEqual(flags.get("--allow-env"), sorted([...ENV_VARS, ...fallbacks]));
});

Deno.test("binaryFlags: the union over every command, each flag once, no duplicate values", async () => {
  const config = await fullConfig();
  const env = (n: string) => n === "CARRIER_OAUTH2_REFRESH_TOKEN" ? "tok" : undefined;
  const merged = parse(binaryFlags(config, env));
  for (const command of ["serve", "queue", "users", "check-config"] as const) {
    for (const [name, values] of parse(permissionFlags(config, command, env))) {
      for (const v of values) ok(merged.get(name)!.includes(v), `${command}: ${name} ${v}`);
    }
  }
  for (const [name, values] of merged) {
    strictEqual(new Set(values).size, values.length, `${name}: ${values.join(",")}`);
  }
  deepStrictEqual(
    merged.get("--allow-write"),
    sorted([resolve("var/spool"), resolve(".")]),
    "the spool and the users file's directory, nothing else",
  );
  ok(merged.get("--allow-net")!.includes(OAUTH2_TOKEN_HOST));
});

/**
 * A binary with a fixed permission set (the release build) may not read every upstream's
 * password variable: one outside its --allow-env reads as unset, never as a crash.
 */

import { ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { buildConfig, ENV_VARS } from "../../src/config/build.ts";
import { configFlags, parseFlags } from "../../src/config/flags.ts";
import { permissionFlags, RUNTIME_FLAGS } from "../../src/permissions.ts";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;

/** Runs `carrier ARGS` with the permissions `serve` needs, but only Carrier's base variables. */
async function runWithBaseEnv(args: string[], env: Record<string, string>) {
  const config = await buildConfig(
    configFlags(parseFlags(args.slice(1), {}).values),
    (n) => env[n],
    () => "carrier.test",
  );
  const flags = permissionFlags(config, "serve").map((f) =>
    f.startsWith("--allow-env=") ? `--allow-env=${ENV_VARS.join(",")}` : f
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...RUNTIME_FLAGS, ...flags, MAIN, ...args],
    env: { ...env, NO_COLOR: "1" },
    clearEnv: true,
    signal: AbortSignal.timeout(30_000),
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("an upstream's password variable outside --allow-env reads as unset: a clear error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "carrier-env-" });
  try {
    const args = [
      "serve",
      "--spool",
      join(dir, "spool"),
      "--listen",
      "127.0.0.1:0",
      "--upstream",
      "smtp://127.0.0.1:2600",
      "--upstream",
      "smtp://second@127.0.0.1:2601",
    ];
    const r = await runWithBaseEnv(args, { CARRIER_UPSTREAM_PASSWORD_2: "not-readable-here" });
    strictEqual(r.code, 2, r.stderr);
    strictEqual(
      r.stderr.trim(),
      "carrier: upstream: user second needs a password: give --upstream-password-file " +
        "(this process may not read CARRIER_UPSTREAM_PASSWORD_2)",
    );
    ok(!r.stderr.includes("NotCapable"), r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

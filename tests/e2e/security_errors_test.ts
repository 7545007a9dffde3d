/**
 * End-to-end tests of permission and configuration errors: Carrier run from source
 * with given flags prints one line naming the flag or key, and no stack trace.
 */

import { ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { runArguments } from "../../src/permissions.ts";
import { runCarrier } from "../support/carrier.ts";

/** Runs `deno run ARGS` (Carrier from source with exactly the given flags); bounded. */
async function denoRun(args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...args],
    env: { NO_COLOR: "1" },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Asserts one line of stderr (no stack trace) starting with `prefix`; returns it. */
function oneLine(stderr: string, prefix: string): string {
  const lines = stderr.trimEnd().split("\n");
  strictEqual(lines.length, 1, stderr);
  ok(lines[0].startsWith(prefix), stderr);
  ok(!/\n\s+at /.test(stderr), stderr);
  return lines[0];
}

Deno.test("permission and configuration errors: one line, the flag or key named, no stack trace", async () => {
  const spool = await Deno.makeTempDir({ prefix: "carrier-perm-" });
  const serve = ["serve", "--spool", spool, "--listen", "127.0.0.1:0"];
  const full = await runArguments(serve, () => undefined);
  ok(
    full.some((a) => a.startsWith("--allow-write=")) &&
      full.some((a) => a.startsWith("--allow-net=")),
  );

  const noWrite = await denoRun(full.filter((a) => !a.startsWith("--allow-write")));
  ok(noWrite.code !== 0);
  ok(oneLine(noWrite.stderr, "carrier: permission missing:").includes("--allow-write"));

  const noNet = await denoRun(full.filter((a) => !a.startsWith("--allow-net")));
  ok(noNet.code !== 0);
  ok(oneLine(noNet.stderr, "carrier: permission missing:").includes("--allow-net"));

  const bogus = await runCarrier([...serve, "--bogus"]);
  strictEqual(bogus.code, 2);
  ok(oneLine(bogus.stderr, "carrier: ").includes("--bogus"));

  const notNumber = await runCarrier([...serve, "--max-recipients", "abc"]);
  strictEqual(notNumber.code, 2);
  ok(oneLine(notNumber.stderr, "carrier: ").includes("--max-recipients"));

  // A config file read with the permission to read it (as `check-config` prints).
  const dir = await Deno.makeTempDir({ prefix: "carrier-config-" });
  const main = full[full.length - serve.length - 1];
  ok(main.endsWith("/src/main.ts"), main);
  for (
    const [name, json, key] of [
      ["unknown.json", { listen: "127.0.0.1:0", bogusKey: 1 }, "bogusKey"],
      ["type.json", { listen: "127.0.0.1:0", maxRecipients: "ten" }, "maxRecipients"],
    ] as const
  ) {
    const file = join(dir, name);
    await Deno.writeTextFile(file, JSON.stringify(json));
    const result = await denoRun([
      "--no-prompt",
      `--allow-read=${file}`,
      "--allow-env",
      "--allow-sys=hostname",
      main,
      "serve",
      "--config",
      file,
    ]);
    strictEqual(result.code, 2, result.stderr);
    ok(oneLine(result.stderr, "carrier: ").includes(`"${key}"`), result.stderr);
  }
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(spool, { recursive: true });
});

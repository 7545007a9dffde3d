/**
 * scripts/run.sh (behind `deno task dev` / `deno task cli`) passes every argument on to
 * src/main.ts unchanged: run through it, a command has the same outcome as run directly.
 */
import { deepStrictEqual } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface Outcome {
  code: number;
  firstStderrLine: string;
  stdout: string;
}

/** PATH and HOME only (for sh and Deno's cache): no CARRIER_* variable from outside. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["PATH", "HOME", "DENO_DIR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

async function outcome(command: string, args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(command, {
    args,
    cwd: ROOT,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    firstStderrLine: dec.decode(out.stderr).split("\n")[0],
    stdout: dec.decode(out.stdout),
  } satisfies Outcome;
}

/** `sh scripts/run.sh ARGS`, as `deno task cli ARGS` runs it. */
function viaLauncher(args: string[]): Promise<Outcome> {
  return outcome("sh", ["scripts/run.sh", ...args], { ...baseEnv(), DENO: Deno.execPath() });
}

/** `deno run src/main.ts ARGS`. */
function direct(args: string[]): Promise<Outcome> {
  return outcome(Deno.execPath(), ["run", "--quiet", "--allow-all", "src/main.ts", ...args], {
    ...baseEnv(),
  });
}

Deno.test("scripts/run.sh: an empty argument reaches main.ts as an empty argument", async () => {
  const dir = await Deno.makeTempDir({ prefix: "carrier-run-sh-test-" });
  try {
    const spool = join(dir, "spool");
    const cases: string[][] = [
      // Valid either way: the output shows the hostname main.ts was given.
      ["check-config", "--json", "--hostname", "", "--spool", spool],
      // The empty value last: dropped, the flag would have no value at all.
      ["check-config", "--spool", spool, "--hostname", ""],
      // An error that quotes the empty value.
      ["check-config", "--max-errors", "", "--spool", spool],
      // An empty positional argument.
      ["check-config", "", "--spool", spool],
    ];
    for (const args of cases) {
      const [launched, run] = await Promise.all([viaLauncher(args), direct(args)]);
      deepStrictEqual(launched, run, JSON.stringify(args));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

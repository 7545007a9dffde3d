/** Shared helpers for the tests of src/config: flags as the CLI parses them, temp config files. */

import { ok } from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "../../src/config/error.ts";
import { configFlags, parseFlags } from "../../src/config/flags.ts";

/** No environment variables set. */
export const noEnv = () => undefined;
/** The system host name the tests pretend to have. */
export const host = () => "relay.example.com";

/** An environment with exactly these variables. */
export function envOf(vars: Record<string, string>): (name: string) => string | undefined {
  return (name) => vars[name];
}

/** Flags as `carrier serve ARGS` would parse them. */
export function flags(...args: string[]) {
  return configFlags(parseFlags(args, {}).values);
}

/** Runs `fn` with the path of a temporary config file holding `text`. */
export async function withFile(
  text: string,
  fn: (path: string) => Promise<void>,
  name = "carrier.json",
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "carrier-config-test-" });
  try {
    const path = join(dir, name);
    await Deno.writeTextFile(path, text);
    await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Asserts a ConfigError whose message contains every one of `parts`, on one line. */
export function configError(...parts: string[]) {
  return (e: unknown) => {
    ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
    for (const part of parts) ok(e.message.includes(part), `"${part}" not in: ${e.message}`);
    ok(!e.message.includes("\n"), `one line: ${e.message}`);
    return true;
  };
}

/**
 * `carrier users add NAME --users FILE`: adds or replaces an inbound AUTH user,
 * reading the password from standard input so it never appears in a process list.
 */

import { ConfigError } from "../config/error.ts";
import type { Config } from "../config/schema.ts";
import { addUser } from "./users.ts";

/** Runs a `users` subcommand; returns the exit code. */
export async function runUsersCommand(config: Config, args: string[]): Promise<number> {
  const [sub, name, ...extra] = args;
  if (sub !== "add") {
    throw new ConfigError(
      `users: unknown subcommand "${sub ?? ""}" (use: users add NAME --users FILE)`,
    );
  }
  if (!name || extra.length > 0) throw new ConfigError("users add: give exactly one user name");
  if (!config.users) throw new ConfigError("users add: --users FILE is required");
  if (Deno.stdin.isTerminal()) {
    console.error(`password for ${name} (input is not hidden; end with Enter):`);
  }
  const password = await readPassword();
  try {
    const result = await addUser(config.users, name, password);
    console.log(`${result} user ${name} in ${config.users}`);
  } catch (e) {
    throw new ConfigError(`users add: ${e instanceof Error ? e.message : e}`);
  }
  return 0;
}

/** Reads the first line of standard input (at most 4 KiB), without its line end. */
async function readPassword(): Promise<string> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of Deno.stdin.readable) {
    chunks.push(chunk);
    total += chunk.length;
    if (chunk.includes(0x0a) || total > 4096) break;
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    bytes.set(c, offset);
    offset += c.length;
  }
  const text = new TextDecoder().decode(bytes);
  const line = text.split(/\r?\n/)[0];
  if (line.length === 0) throw new ConfigError("users add: empty password on standard input");
  return line;
}

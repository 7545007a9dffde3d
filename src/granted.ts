/**
 * What the running process may use under its Deno permission flags (fixed at start): the
 * checks a reload makes before taking a new upstream, and reading the environment so that a
 * variable outside `--allow-env` reads as unset instead of throwing (the release binary with
 * its fixed set still starts when it has no use for, say, a second upstream's variable).
 */

/** The value of `name`, or undefined when it is unset or outside the granted variables. */
export function readEnv(name: string): string | undefined {
  if (!envGranted(name)) return undefined;
  return Deno.env.get(name);
}

/** Whether the process may read the variable `name`. */
export function envGranted(name: string): boolean {
  return Deno.permissions.querySync({ name: "env", variable: name }).state === "granted";
}

/** Whether the process may connect to `hostPort` (its `--allow-net`). */
export function netGranted(hostPort: string): boolean {
  return Deno.permissions.querySync({ name: "net", host: hostPort }).state === "granted";
}

/** Whether the process may read `path` (its `--allow-read`). */
export function readGranted(path: string): boolean {
  return Deno.permissions.querySync({ name: "read", path }).state === "granted";
}

/** The checks a reload makes; each absent one allows everything (pure tests). */
export interface Grants {
  net?: (hostPort: string) => boolean;
  read?: (path: string) => boolean;
  env?: (name: string) => boolean;
}

/** The process's own permissions. */
export const PROCESS_GRANTS: Grants = { net: netGranted, read: readGranted, env: envGranted };

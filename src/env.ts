/**
 * Reading the environment under Deno's `--allow-env` list: a variable the process may not read
 * reads as unset instead of throwing, so a binary with a fixed permission set (the release
 * build) still starts when it has no use for, say, a second upstream's password variable.
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

/**
 * `deno task dev` / `deno task cli`: runs Carrier from source with the narrow
 * permissions its configuration needs (src/permissions.ts), never --allow-all.
 */

import { runArguments } from "../src/permissions.ts";

const args = await runArguments(Deno.args, (name) => Deno.env.get(name));
if (Deno.env.get("CARRIER_SHOW_PERMISSIONS")) {
  console.error(`deno run ${args.join(" ")}`);
}
const child = new Deno.Command(Deno.execPath(), {
  args: ["run", ...args],
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).spawn();
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  Deno.addSignalListener(signal, () => {
    try {
      child.kill(signal);
    } catch { /* already gone */ }
  });
}
const status = await child.status;
Deno.exit(status.code);

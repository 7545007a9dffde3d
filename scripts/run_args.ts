/**
 * The first half of `deno task dev` / `deno task cli` (see scripts/run.sh):
 * prints, one per line, the Deno executable and the `run` arguments with the
 * narrow permissions this configuration needs (src/permissions.ts), never
 * --allow-all. The shell then execs them: no launcher of ours stays beside the
 * server (`deno task` itself remains its parent).
 */

import { runArguments } from "../src/permissions.ts";

const args = [Deno.execPath(), "run", ...await runArguments(Deno.args, (n) => Deno.env.get(n))];
const bad = args.find((a) => a.includes("\n"));
if (bad !== undefined) {
  console.error(`carrier: an argument contains a line break, which the launcher cannot pass on`);
  Deno.exit(2);
}
if (Deno.env.get("CARRIER_SHOW_PERMISSIONS")) console.error(`deno ${args.slice(1).join(" ")}`);
// Each line starts with "-" so that an empty argument is a line too ("-").
console.log(args.map((a) => `-${a}`).join("\n"));

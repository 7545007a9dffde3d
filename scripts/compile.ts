/**
 * `deno task compile`: builds the single `carrier` executable with its permissions
 * baked in. Without arguments it uses the release set (src/permissions.ts:
 * default listeners, common smarthosts, /var/spool/carrier, /etc/carrier). With
 * a carrier configuration after `--`, the flags are derived from it instead:
 *   deno task compile -- serve --upstream starttls://me@mail.example.net:587 --spool /srv/carrier
 * `--dry-run` prints the deno compile command without running it.
 */

import { buildConfig } from "../src/config/build.ts";
import { configFlags, parseFlags } from "../src/config/flags.ts";
import { binaryFlags, releaseFlags, RUNTIME_FLAGS } from "../src/permissions.ts";

const args = [...Deno.args];
const dryRun = args.includes("--dry-run");
const rest = args.filter((a) => a !== "--dry-run" && a !== "--");
const output = Deno.env.get("CARRIER_OUTPUT") ?? "dist/carrier";
let flags: string[];
if (rest.length === 0) {
  flags = releaseFlags();
} else {
  const [command, ...options] = rest;
  if (command !== "serve") {
    console.error(
      'compile: give a serve configuration, e.g. "-- serve --upstream URL --spool DIR"',
    );
    Deno.exit(2);
  }
  const { values } = parseFlags(options, {});
  const env = (name: string) => Deno.env.get(name);
  flags = binaryFlags(await buildConfig(configFlags(values), env, () => "localhost"), env);
}
const main = new URL("../src/main.ts", import.meta.url).pathname;
const compileArgs = [
  "compile",
  "--no-prompt",
  ...RUNTIME_FLAGS,
  ...flags,
  "--output",
  output,
  main,
];
console.error(`deno ${compileArgs.join(" ")}`);
if (dryRun) Deno.exit(0);
const status = await new Deno.Command(Deno.execPath(), { args: compileArgs }).spawn().status;
if (!status.success) {
  console.error(
    "compile failed. deno compile needs its runtime base (denort) for this platform: it downloads it, " +
      "or uses the file named by the DENORT_BIN environment variable on machines without that download.",
  );
}
Deno.exit(status.code);

/** Option errors through the real CLI: Carrier's own wording, a pointer to --help, exit code 2. */
import { strictEqual } from "node:assert/strict";
import { runCarrier } from "../support/carrier.ts";

Deno.test("option errors: unknown option, a value starting with '-', a missing value", async () => {
  const cases: [string[], string][] = [
    [["serve", "--bogus"], "carrier: unknown option --bogus (see carrier serve --help)"],
    [
      ["check-config", "--nope"],
      "carrier: unknown option --nope (see carrier check-config --help)",
    ],
    [
      ["serve", "--max-message-size", "-5"],
      'carrier: --max-message-size: "-5" is not a size (e.g. 26214400 or 25M)',
    ],
    [["serve", "--spool"], "carrier: --spool: needs a value (see carrier serve --help)"],
  ];
  for (const [args, line] of cases) {
    const r = await runCarrier(args);
    strictEqual(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    strictEqual(r.stderr.trim(), line);
  }
});

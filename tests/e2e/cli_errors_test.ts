/** Option errors through the real CLI: Carrier's own wording, a pointer to --help, exit code 2. */
import { strictEqual } from "node:assert/strict";
import { runCarrier } from "../support/carrier.ts";

/** Asserts that `carrier ARGS` exits 2 with exactly `line` on stderr, for each case. */
async function refused(cases: [string[], string][]): Promise<void> {
  for (const [args, line] of cases) {
    const r = await runCarrier(args);
    strictEqual(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    strictEqual(r.stderr.trim(), line);
    strictEqual(r.stdout, "");
  }
}

Deno.test("option errors: unknown option, a value starting with '-', a missing value", async () => {
  await refused([
    [["serve", "--bogus"], "carrier: unknown option --bogus (see carrier serve --help)"],
    [
      ["check-config", "--nope"],
      "carrier: unknown option --nope (see carrier check-config --help)",
    ],
    [["serve", "--json"], "carrier: unknown option --json (see carrier serve --help)"],
    [
      ["serve", "--max-message-size", "-5"],
      'carrier: --max-message-size: "-5" is not a size (e.g. 26214400 or 25M)',
    ],
    [["serve", "--spool"], "carrier: --spool: needs a value (see carrier serve --help)"],
    [["bogus"], 'carrier: unknown command "bogus" (try carrier --help)'],
  ]);
});

Deno.test("value errors name the flag as --flag-name:", async () => {
  await refused([
    [
      ["check-config", "--max-recipients", "x"],
      'carrier: --max-recipients: "x" is not a whole number >= 1',
    ],
    [
      ["check-config", "--retry-min", "soon"],
      'carrier: --retry-min: "soon" is not a duration (e.g. 30s, 5m, 2h, 5d)',
    ],
    [
      ["check-config", "--listen", "nowhere"],
      'carrier: --listen: "nowhere" is not HOST:PORT (IPv6 as [::1]:2525)',
    ],
    [["check-config", "--log-format", "xml"], 'carrier: --log-format: "xml" must be text or json'],
    [
      ["check-config", "--tls-cert", "/c.pem"],
      "carrier: --tls-cert and --tls-key: give both or neither",
    ],
  ]);
});

Deno.test("an empty value and a stray argument are refused", async () => {
  await refused([
    [["serve", "--spool", ""], "carrier: --spool: needs a value (see carrier serve --help)"],
    [
      ["check-config", "--upstream="],
      "carrier: --upstream: needs a value (see carrier check-config --help)",
    ],
    [
      ["queue", "list", "--listen", "127.0.0.1:2526", "--listen", ""],
      "carrier: --listen: needs a value (see carrier queue --help)",
    ],
    [
      ["check-config", "extra"],
      'carrier: check-config: unexpected argument "extra" (see carrier check-config --help)',
    ],
    [
      ["serve", "--spool", "/nonexistent/spool", "now"],
      'carrier: serve: unexpected argument "now" (see carrier serve --help)',
    ],
  ]);
});

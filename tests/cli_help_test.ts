/** The help texts: every configuration flag documented once, with its default, in short lines. */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { commandHelp, FLAG_GROUPS, overviewHelp } from "../src/cli_help.ts";
import { buildConfig } from "../src/config/build.ts";
import { CONFIG_OPTIONS } from "../src/config/flags.ts";
import { parseDuration, parseSize } from "../src/config/units.ts";
import { runCarrier } from "./support/carrier.ts";

/** The flags a help text lists at the start of a line (`  --name`), in order. */
function listedFlags(text: string): string[] {
  return [...text.matchAll(/^ {2}--([a-z-]+)/gm)].map((m) => m[1]);
}

Deno.test("serve --help lists every flag of CONFIG_OPTIONS, once, with a default", () => {
  const text = commandHelp("serve");
  const listed = listedFlags(text);
  for (const flag of Object.keys(CONFIG_OPTIONS)) {
    strictEqual(
      listed.filter((f) => f === flag).length,
      1,
      `--${flag} listed once in serve --help`,
    );
    const line = text.split("\n").find((l) => l.startsWith(`  --${flag} `))!;
    ok(
      flag === "config" || /\(default [^)]+\)$/.test(line),
      `--${flag} shows its default: ${line}`,
    );
  }
  deepStrictEqual(new Set(listed), new Set(Object.keys(CONFIG_OPTIONS)), "no other flags");
});

Deno.test("serve and check-config --help group the flags under the same headings", () => {
  const headings = [
    "Listen",
    "Limits",
    "TLS and AUTH",
    "Policy",
    "Upstream",
    "Delivery",
    "Logs and metrics",
  ];
  deepStrictEqual(FLAG_GROUPS.map((g) => g.heading), headings);
  for (const command of ["serve", "check-config"] as const) {
    const text = commandHelp(command);
    for (const heading of headings) ok(text.includes(`\n${heading}:\n`), `${command}: ${heading}`);
  }
  const check = listedFlags(commandHelp("check-config"));
  deepStrictEqual(new Set(check), new Set([...Object.keys(CONFIG_OPTIONS), "json"]));
});

Deno.test("the defaults shown are the defaults buildConfig applies", async () => {
  const config = await buildConfig({}, () => undefined, () => "h") as unknown as Record<
    string,
    unknown
  >;
  const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  for (const [flag, value, shown] of FLAG_GROUPS.flatMap((g) => g.flags)) {
    const actual = config[camel(flag)];
    if (value === "DURATION") strictEqual(parseDuration(shown, flag), actual, flag);
    else if (value === "BYTES") strictEqual(parseSize(shown, flag), actual, flag);
    else if (value === "N") strictEqual(Number(shown.replace(" = off", "")), actual, flag);
  }
  strictEqual(FLAG_GROUPS[0].flags[0][2], "127.0.0.1:2525");
  strictEqual(config.spool, "./spool");
});

Deno.test("queue --help lists its subcommands; every help line fits in 100 columns", () => {
  const queue = commandHelp("queue");
  for (
    const sub of [
      "list [--json]",
      "show ID [--json]",
      "summary [--json]",
      "flush",
      "requeue ID...",
      "hold ID...|--all",
      "release ID...|--all",
      "delete ID...",
    ]
  ) {
    ok(new RegExp(`^ {2}${sub.replace(/[[\]|.]/g, "\\$&")} `, "m").test(queue), sub);
  }
  ok(commandHelp("users").includes("carrier users add NAME --users FILE"));
  for (
    const text of [
      overviewHelp(),
      ...(["serve", "check-config", "queue", "users"] as const).map(commandHelp),
    ]
  ) {
    for (const line of text.split("\n")) ok(line.length <= 100, `too long: ${line}`);
  }
});

Deno.test("carrier --help is the overview; carrier COMMAND --help that command's help", async () => {
  const overview = await runCarrier(["--help"]);
  strictEqual(overview.code, 0);
  strictEqual(overview.stdout.trim(), overviewHelp().trim());
  ok(!overview.stdout.includes("--max-recipients"), "the overview lists no flags");
  for (const command of ["serve", "check-config", "queue", "users"] as const) {
    const r = await runCarrier([command, "--help"]);
    strictEqual(r.code, 0, r.stderr);
    strictEqual(r.stdout.trim(), commandHelp(command).trim());
  }
  const topic = await runCarrier(["help", "queue"]);
  strictEqual(topic.stdout.trim(), commandHelp("queue").trim());
});

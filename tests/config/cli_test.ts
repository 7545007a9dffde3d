/**
 * The config file through the real CLI (`carrier check-config` as a subprocess): what an operator
 * sees for a good file, for each kind of mistake (one line, exit code 2, no stack trace), and
 * which source wins.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { runCarrier } from "../support/carrier.ts";

/** Runs `fn` with a temporary directory, removed afterwards. */
async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "carrier-config-cli-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `carrier check-config --config FILE` on `text`; asserts exit 2 and one line; returns it. */
async function rejected(dir: string, text: string, name = "bad.toml"): Promise<string> {
  const path = join(dir, name);
  await Deno.writeTextFile(path, text);
  const r = await runCarrier(["check-config", "--config", path]);
  strictEqual(r.code, 2, r.stderr);
  strictEqual(r.stdout, "");
  const lines = r.stderr.trimEnd().split("\n");
  strictEqual(lines.length, 1, r.stderr);
  ok(!/\bat .*\.ts:\d+|Error:/.test(r.stderr), `no stack trace: ${r.stderr}`);
  ok(lines[0].startsWith(`carrier: ${path}`), lines[0]);
  return lines[0];
}

/** The configuration `check-config --json` reports. */
async function checked(args: string[], env: Record<string, string> = {}) {
  const r = await runCarrier(["check-config", "--json", ...args], { env });
  strictEqual(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).config;
}

Deno.test("check-config: a bad value names the key as written in the file, the value and what is allowed", async () => {
  await inTempDir(async (dir) => {
    const size = await rejected(dir, '[limits]\nmax_message_size = "25X"\n');
    ok(size.includes(`key "limits.max_message_size" = "25X": must be bytes`), size);
    ok(size.includes("K, M or G"), size);
    const int = await rejected(dir, "[limits]\nmax_recipients = 0\n");
    ok(int.endsWith(`key "limits.max_recipients" = 0: must be a whole number >= 1`), int);
    const time = await rejected(dir, '[delivery]\nretry_min = "soon"\n');
    ok(time.includes(`key "delivery.retry_min" = "soon": must be seconds or`), time);
    const addr = await rejected(dir, '[listen]\nlisten = ["127.0.0.1"]\n');
    ok(addr.includes(`key "listen.listen" = ["127.0.0.1"]`) && addr.includes("HOST:PORT"), addr);
    const net = await rejected(dir, '[policy]\nrelay_networks = ["10.0.0.0/33"]\n');
    ok(net.includes(`key "policy.relay_networks"`) && net.includes("10.0.0.0/33"), net);
    const url = await rejected(dir, '[upstream]\nupstream = "ftp://smtp.example.com"\n');
    ok(url.includes(`key "upstream.upstream" = "ftp://smtp.example.com"`), url);
    ok(url.includes("starttls://, smtps:// or smtp://"), url);
    const format = await rejected(dir, '[log]\nlog_format = "xml"\n');
    ok(format.endsWith(`key "log.log_format" = "xml": must be "text" or "json"`), format);
    const flat = await rejected(dir, "max_errors = -1\n");
    ok(flat.endsWith(`key "max_errors" = -1: must be a whole number >= 1`), flat);
  });
});

Deno.test("check-config: unknown keys, misplaced keys, a key given twice and inline secrets exit 2", async () => {
  await inTempDir(async (dir) => {
    const typo = await rejected(dir, "[limits]\nmax_mesage_size = 5\n");
    ok(typo.includes(`unknown key "limits.max_mesage_size"`), typo);
    ok(typo.includes("allowed in [limits]: max_message_size,"), typo);
    const section = await rejected(dir, "[tls]\nmax_recipients = 5\n");
    ok(section.includes(`unknown key "tls.max_recipients" (it belongs in [limits])`), section);
    const kebab = await rejected(dir, "max-recipients = 5\n");
    ok(kebab.includes(`unknown key "max-recipients"`), kebab);
    const twice = await rejected(dir, "max_recipients = 5\n[limits]\nmax_recipients = 6\n");
    ok(twice.includes(`"limits.max_recipients": already given as "max_recipients"`), twice);
    const secret = await rejected(dir, '[upstream]\nupstream_password = "hunter2"\n');
    ok(secret.includes("secrets are not read from the config file"), secret);
    ok(secret.includes("upstream_password_file"), secret);
    ok(!secret.includes("hunter2"), "the secret is not echoed");
    const inUrl = await rejected(dir, 'upstream = "smtps://me@x.org:hunter2@smtp.example.com"\n');
    ok(inUrl.includes(`= "smtps://me@x.org:***@smtp.example.com"`), inUrl);
    ok(
      inUrl.includes("password must not be given in the URL") && !inUrl.includes("hunter2"),
      inUrl,
    );
    const oauth = await rejected(dir, 'oauth2_refresh_token = "1//abc"\n');
    ok(oauth.includes("CARRIER_OAUTH2_REFRESH_TOKEN") && !oauth.includes("1//abc"), oauth);
    const syntax = await rejected(dir, '[limits]\nmax_errors = "3\n');
    ok(/bad\.toml:2:\d+: TOML syntax error/.test(syntax), syntax);
    const json = await rejected(dir, '{"maxRecipients": "many"}', "bad.json");
    ok(json.includes(`key "maxRecipients" = "many": must be a whole number >= 1`), json);
    const ext = await rejected(dir, "spool = 'x'\n", "carrier.conf");
    ok(ext.includes("must end in .toml or .json"), ext);
  });
});

Deno.test("check-config: CARRIER_CONFIG names the file; flags beat the environment, which beats the file", async () => {
  await inTempDir(async (dir) => {
    const path = join(dir, "carrier.toml");
    await Deno.writeTextFile(
      path,
      `spool = "${dir}/spool"
[limits]
max_recipients = 5
[upstream]
upstream = "smtps://file@smtp.example.com:465"
`,
    );
    const fromEnv = await checked([], { CARRIER_CONFIG: path });
    strictEqual(fromEnv.configFile, path);
    strictEqual(fromEnv.maxRecipients, 5);
    strictEqual(fromEnv.spool, `${dir}/spool`);
    deepStrictEqual(fromEnv.upstream, ["smtps://file@smtp.example.com:465"]);
    const envWins = await checked(["--config", path], {
      CARRIER_UPSTREAM: "smtps://env@smtp.example.com:465",
    });
    deepStrictEqual(envWins.upstream, ["smtps://env@smtp.example.com:465"]);
    const flagWins = await checked(
      ["--config", path, "--max-recipients", "7", "--upstream", "smtps://flag@smtp.example.com"],
      { CARRIER_UPSTREAM: "smtps://env@smtp.example.com:465" },
    );
    strictEqual(flagWins.maxRecipients, 7);
    deepStrictEqual(flagWins.upstream, ["smtps://flag@smtp.example.com"]);
    // A JSON file (camelCase keys) says the same.
    const json = join(dir, "carrier.json");
    await Deno.writeTextFile(json, JSON.stringify({ maxRecipients: 5, logFormat: "json" }));
    const fromJson = await checked(["--config", json]);
    deepStrictEqual([fromJson.maxRecipients, fromJson.logFormat], [5, "json"]);
  });
});

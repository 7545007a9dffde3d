import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { buildConfig } from "../../src/config/build.ts";
import { resolveUpstreams } from "../../src/config/upstreams.ts";
import { permissionFlags } from "../../src/permissions.ts";
import { configError, envOf, flags, host, noEnv, withFile } from "./_helpers.ts";

const TOML = `
[upstream]
upstream = ["gmail", "backup"]

[upstreams.gmail]
url = "starttls://me@smtp.gmail.com:587"
password_file = "/run/secrets/gmail"
daily_messages = 500
max_connections = 2

[upstreams.backup]
url = "starttls://apikey@smtp.sendgrid.net:587"
messages_per_minute = 30
timeout = "45s"

[upstreams.ses-eu]
url = "smtps://AKIA@email-smtp.eu-west-1.amazonaws.com"
max_recipients = 50

[[routes]]
from = ["*@ops.example.org", "<>"]
via = ["ses-eu", "backup"]

[[routes]]
to = "customer.example"
via = "ses-eu"
`;

/** The config of a TOML file's text. */
async function fromToml(text: string, env = noEnv) {
  let config;
  await withFile(text, async (path) => {
    config = await buildConfig(flags("--config", path), env, host);
  }, "carrier.toml");
  return config!;
}

Deno.test("named upstreams: the default list first, route-only ones after, settings filled in", async () => {
  const config = await fromToml(TOML);
  const r = resolveUpstreams(config);
  deepStrictEqual(r.upstreams.map((u) => u.name), ["gmail", "backup", "ses-eu"]);
  deepStrictEqual(r.defaultVia, [0, 1]);
  const [gmail, backup, ses] = r.upstreams;
  strictEqual(gmail!.passwordFile, "/run/secrets/gmail");
  strictEqual(gmail!.passwordVariable, "CARRIER_UPSTREAM_PASSWORD_GMAIL");
  strictEqual(gmail!.dailyMessages, 500);
  strictEqual(gmail!.maxConnections, 2);
  strictEqual(gmail!.timeout, 60); // the shared upstream_timeout default
  strictEqual(backup!.timeout, 45);
  strictEqual(backup!.messagesPerMinute, 30);
  strictEqual(ses!.passwordVariable, "CARRIER_UPSTREAM_PASSWORD_SES_EU");
  strictEqual(ses!.maxRecipients, 50);
  strictEqual(ses!.messagesPerConnection, 50); // messages_per_connection's default
  deepStrictEqual(r.routes, [
    { from: ["*@ops.example.org", "<>"], to: [], via: [2, 1] },
    { from: [], to: ["customer.example"], via: [2] },
  ]);
});

Deno.test("plain --upstream URLs keep their positional passwords; no list means every named one", async () => {
  const c = await buildConfig(
    flags("--upstream", "smtp://127.0.0.1:2600", "--upstream", "smtp://127.0.0.1:2601"),
    noEnv,
    host,
  );
  const r = resolveUpstreams(c);
  deepStrictEqual(r.upstreams.map((u) => [u.name, u.passwordVariable]), [
    ["smtp://127.0.0.1:2600", "CARRIER_UPSTREAM_PASSWORD"],
    ["smtp://127.0.0.1:2601", "CARRIER_UPSTREAM_PASSWORD_2"],
  ]);
  const named = await fromToml(`
[upstreams.a]
url = "smtp://127.0.0.1:2600"
[upstreams.b]
url = "smtp://127.0.0.1:2601"
`);
  deepStrictEqual(resolveUpstreams(named).defaultVia, [0, 1]);
});

Deno.test("a named upstream's variables are allowed for serve, and its password file readable", async () => {
  const config = await fromToml(TOML);
  const flagsOf = permissionFlags(config, "serve");
  const env = flagsOf.find((f) => f.startsWith("--allow-env="))!;
  for (const name of ["GMAIL", "BACKUP", "SES_EU"]) {
    strictEqual(env.includes(`CARRIER_UPSTREAM_PASSWORD_${name}`), true, name);
  }
  const net = flagsOf.find((f) => f.startsWith("--allow-net="))!;
  strictEqual(net.includes("email-smtp.eu-west-1.amazonaws.com:465"), true);
  strictEqual(
    flagsOf.find((f) => f.startsWith("--allow-read="))!.includes("/run/secrets/gmail"),
    true,
  );
});

Deno.test("oauth2 = true reads the upstream's own OAuth2 variables", async () => {
  const config = await fromToml(`
[upstreams.work]
url = "starttls://me@smtp.gmail.com:587"
oauth2 = true
`);
  const spec = resolveUpstreams(config).upstreams[0]!;
  deepStrictEqual(spec.oauth2, {
    clientId: "CARRIER_OAUTH2_CLIENT_ID_WORK",
    clientSecret: "CARRIER_OAUTH2_CLIENT_SECRET_WORK",
    refreshToken: "CARRIER_OAUTH2_REFRESH_TOKEN_WORK",
  });
  const flagsOf = permissionFlags(
    config,
    "serve",
    envOf({ CARRIER_OAUTH2_REFRESH_TOKEN_WORK: "t" }),
  );
  strictEqual(flagsOf.some((f) => f.includes("accounts.google.com:443")), true);
});

Deno.test("bad named upstreams and routes: one line naming the key", async () => {
  const cases: [string, string[]][] = [
    [`upstream = ["nope"]\n[upstreams.a]\nurl = "smtp://127.0.0.1:1"`, [
      'carrier.toml: key "upstream": "nope" is neither a URL nor a name in [upstreams] (named: a)',
    ]],
    [`[upstreams.a]\nurl = "http://x"`, ['key "upstreams.a.url"', "must be an upstream URL"]],
    [`[upstreams.a]\nurl = "smtp://127.0.0.1:1"\nmax_recipients = 0`, [
      'key "upstreams.a.max_recipients" = 0',
      "whole number >= 1",
    ]],
    [`[upstreams.a]\nurl = "smtp://127.0.0.1:1"\ndaily_quota = 5`, [
      'key "upstreams.a": unknown key "daily_quota"',
    ]],
    [`[upstreams."1bad"]\nurl = "smtp://127.0.0.1:1"`, [
      "upstreams",
      "an upstream name is a letter",
    ]],
    [`[upstreams.a]\nurl = "smtp://127.0.0.1:1"\n[[routes]]\nvia = "a"`, [
      'key "routes[0]"',
      "a route needs from (senders) or to (recipient domains)",
    ]],
    [`[upstreams.a]\nurl = "smtp://127.0.0.1:1"\n[[routes]]\nto = "x.example"\nvia = "b"`, [
      'carrier.toml: key "routes[0].via": "b" is not a name in [upstreams] (named: a)',
    ]],
    [`[upstreams.a]\nurl = "smtp://127.0.0.1:1"\n[[routes]]\nfrom = "ops.example"\nvia = "a"`, [
      'key "routes[0].from": "ops.example" must be an address, *@domain or <>',
    ]],
  ];
  for (const [text, parts] of cases) {
    await withFile(text, async (path) => {
      await rejects(buildConfig(flags("--config", path), noEnv, host), configError(...parts));
    }, "carrier.toml");
  }
});

Deno.test("upstream names: as written in errors, never two that read the same variable", async () => {
  await withFile(`[upstreams.sesEU]\nurl = "smtp://127.0.0.1:1"\ntimeout = "abc"`, async (path) => {
    await rejects(
      buildConfig(flags("--config", path), noEnv, host),
      configError('key "upstreams.sesEU.timeout" = "abc"'),
    );
  }, "carrier.toml");
  await withFile(
    `[upstreams.ses-eu]\nurl = "smtp://127.0.0.1:1"\n[upstreams.ses_eu]\nurl = "smtp://127.0.0.1:2"`,
    async (path) => {
      await rejects(
        buildConfig(flags("--config", path), noEnv, host),
        configError(
          '"ses-eu" and "ses_eu" would read the same variables (CARRIER_UPSTREAM_PASSWORD_SES_EU)',
        ),
      );
    },
    "carrier.toml",
  );
  await rejects(
    buildConfig(flags("--upstream", "nope"), noEnv, host),
    configError('--upstream: "nope" is neither a URL nor a name in [upstreams] (none is named)'),
  );
});

Deno.test("a password in a named upstream's URL is not echoed", async () => {
  await withFile(
    `[upstreams.gmail]\nurl = "starttls://me@gmail.com:hunter2@smtp.gmail.com:587"`,
    async (path) => {
      await rejects(buildConfig(flags("--config", path), noEnv, host), (e: Error) => {
        ok(!e.message.includes("hunter2"), e.message);
        ok(e.message.includes('key "upstreams.gmail.url"'), e.message);
        return true;
      });
    },
    "carrier.toml",
  );
});

Deno.test("a password pasted into an upstream table is refused without echoing it", async () => {
  await withFile(
    `[upstreams.a]\nurl = "smtp://127.0.0.1:1"\npassword = "hunter2-secret"`,
    async (path) => {
      await rejects(buildConfig(flags("--config", path), noEnv, host), (e: Error) => {
        strictEqual(e.message.includes("hunter2-secret"), false, e.message);
        strictEqual(e.message.includes('unknown key "password"'), true, e.message);
        strictEqual(e.message.includes("secrets are not read from the config file"), true);
        return true;
      });
    },
    "carrier.toml",
  );
});

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { buildConfig, readConfigFile } from "../../src/config/build.ts";
import { FileSchema } from "../../src/config/schema.ts";
import { snakeKey, TABLE_KEYS, TOML_SECTIONS, tomlName } from "../../src/config/toml.ts";
import { configError, withFile } from "./_helpers.ts";

const EXAMPLE = new URL("../../carrier.example.toml", import.meta.url).pathname;
const host = () => "relay.example.com";
const noEnv = () => undefined;
const withToml = (text: string, fn: (path: string) => Promise<void>) =>
  withFile(text, fn, "carrier.toml");

Deno.test("every file key has one TOML section, and only file keys are in sections", () => {
  const placed = Object.values(TOML_SECTIONS).flat();
  deepStrictEqual([...placed, ...TABLE_KEYS].sort(), Object.keys(FileSchema.shape).sort());
  strictEqual(new Set(placed).size, placed.length, "no key in two sections");
});

Deno.test("README's configuration reference lists every TOML key in its section", async () => {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  for (const [section, keys] of Object.entries(TOML_SECTIONS)) {
    const row = readme.split("\n").find((l) =>
      l.startsWith(`| ${section ? `\`[${section}]\`` : "(top)"} `)
    );
    ok(row, `README has a row for [${section}]`);
    for (const key of keys) ok(row.includes(`\`${snakeKey(key)}\``), `${tomlName(key)} in README`);
  }
});

Deno.test("carrier.example.toml names every setting in its section and holds the real defaults", async () => {
  const text = await Deno.readTextFile(EXAMPLE);
  for (const [section, keys] of Object.entries(TOML_SECTIONS)) {
    const start = section ? text.indexOf(`\n[${section}]\n`) : 0;
    ok(start >= 0, `[${section}] is in the example`);
    const rest = text.slice(start + 1);
    const next = section ? rest.indexOf("\n[") : rest.indexOf("\n[");
    const block = next >= 0 ? rest.slice(0, next) : rest;
    for (const key of keys) {
      ok(
        new RegExp(`^(# )?${snakeKey(key)} = `, "m").test(block),
        `${tomlName(key)} is in the example`,
      );
    }
  }
  // The uncommented values are the defaults: the example changes nothing.
  const fromExample = await buildConfig({ config: EXAMPLE }, noEnv, host);
  const defaults = await buildConfig({}, noEnv, host);
  deepStrictEqual({ ...fromExample, configFile: undefined }, defaults);
});

Deno.test("carrier.example.toml: the commented-out examples are valid settings too", async () => {
  const text = await Deno.readTextFile(EXAMPLE);
  const keys = new Set(Object.keys(FileSchema.shape).map(snakeKey));
  const uncommented = text.replace(
    /^# ([a-z_]+) = /gm,
    (line, key: string) => keys.has(key) ? `${key} = ` : line,
  );
  await withToml(uncommented, async (path) => {
    const file = await readConfigFile(path);
    for (const key of ["tlsCert", "users", "senders", "userSenders", "upstream", "metricsListen"]) {
      ok(key in file, `${key} example is uncommented and valid`);
    }
  });
});

Deno.test("TOML sections map onto the settings; user_senders keeps its user names", async () => {
  await withToml(
    `spool = "/var/spool/carrier"
[limits]
max_message_size = "10M"
max_recipients = 5
[policy]
relay_networks = ["10.0.0.0/8"]
user_senders = { app_1 = ["app@example.com"] }
[log]
log_format = "json"
`,
    async (path) => {
      const c = await buildConfig({ config: path }, noEnv, host);
      strictEqual(c.spool, "/var/spool/carrier");
      strictEqual(c.maxMessageSize, 10 * 1024 * 1024);
      strictEqual(c.maxRecipients, 5);
      strictEqual(c.relayNetworks, "10.0.0.0/8");
      deepStrictEqual(c.userSenders, { app_1: ["app@example.com"] });
      strictEqual(c.logFormat, "json");
      // Flags still win over the file.
      const f = await buildConfig({ config: path, "max-recipients": "7" }, noEnv, host);
      strictEqual(f.maxRecipients, 7);
    },
  );
});

Deno.test("a flat TOML file: every setting may also sit at the top, under the same name", async () => {
  await withToml(
    'max_message_size = "10M"\nlisten = ["127.0.0.1:2000"]\nlog_format = "json"\n',
    async (path) => {
      const c = await buildConfig({ config: path }, noEnv, host);
      strictEqual(c.maxMessageSize, 10 * 1024 * 1024);
      deepStrictEqual(c.listen, [{ hostname: "127.0.0.1", port: 2000 }]);
      strictEqual(c.logFormat, "json");
    },
  );
});

Deno.test("TOML errors name the file, the key as written and the value; syntax errors line and column", async () => {
  await withToml("[limits]\nmax_recipients = 5\nmax_errors = = 3\n", async (path) => {
    await rejects(readConfigFile(path), configError(`${path}:3:`, "TOML syntax error"));
  });
  await withToml("[limits]\nmax_recipents = 5\n", async (path) => {
    await rejects(readConfigFile(path), configError(path, `unknown key "limits.max_recipents"`));
  });
  await withToml("[tls]\nmax_recipients = 5\n", async (path) => {
    await rejects(readConfigFile(path), configError(`"tls.max_recipients"`, "in [limits]"));
  });
  await withToml("[limits]\nmax_recipients = -5\n", async (path) => {
    await rejects(readConfigFile(path), configError(`key "limits.max_recipients" = -5`));
  });
  await withToml('[log]\nlog_format = "xml"\n', async (path) => {
    await rejects(readConfigFile(path), configError(`key "log.log_format" = "xml"`));
  });
  await withToml('[upstream]\nupstream_password = "hunter2"\n', async (path) => {
    await rejects(
      readConfigFile(path),
      (e: unknown) =>
        configError("secrets are not read from the config file", "upstream_password_file")(e) &&
        !(e as Error).message.includes("hunter2"),
    );
  });
  await withFile("{}", async (path) => {
    await rejects(readConfigFile(path), configError("must end in .toml or .json"));
  }, "carrier.conf");
});

import { deepStrictEqual, rejects, strictEqual, throws } from "node:assert/strict";
import { buildConfig } from "../../src/config/build.ts";
import { ConfigError } from "../../src/config/error.ts";
import { configFlags, parseFlags } from "../../src/config/flags.ts";
import { configError, flags, host, noEnv } from "./_helpers.ts";

Deno.test("integer flags: a bad value is a ConfigError naming the flag", async () => {
  await rejects(
    buildConfig(flags("--max-recipients", "abc"), noEnv, host),
    configError("--max-recipients", "abc"),
  );
  for (
    const [flag, value] of [
      ["--max-recipients", "0"],
      ["--max-recipients", "-1"],
      ["--max-recipients", "1.5"],
      ["--delivery-concurrency", "0x10"],
      ["--rate-messages-per-minute", "-1"],
    ]
  ) {
    await rejects(
      buildConfig(flags(`${flag}=${value}`), noEnv, host),
      configError(flag),
      `${flag} ${value}`,
    );
  }
  strictEqual(
    (await buildConfig(flags("--rate-recipients-per-hour", "0"), noEnv, host))
      .rateRecipientsPerHour,
    0,
  );
});

Deno.test("parseFlags: unknown option or missing value is a one-line ConfigError", () => {
  throws(() => parseFlags(["--bogus"], {}), configError("--bogus"));
  throws(() => parseFlags(["serve", "--max-recipients"], {}), configError("--max-recipients"));
  throws(() => parseFlags(["--auth-on-plaintext-loopback=yes"], {}), ConfigError);
});

Deno.test("parseFlags: an empty value is refused like a missing one", () => {
  const cases: [string[], string][] = [
    [["--spool", ""], "--spool"],
    [["--max-connections="], "--max-connections"],
    [["--listen", "127.0.0.1:1", "--listen", " "], "--listen"],
  ];
  for (const [args, flag] of cases) {
    throws(
      () => parseFlags(args, {}, "carrier serve"),
      configError(`${flag}: needs a value (see carrier serve --help)`),
      args.join(" "),
    );
  }
  strictEqual(
    parseFlags(["--auth-on-plaintext-loopback"], {}).values["auth-on-plaintext-loopback"],
    true,
  );
});

Deno.test("parseFlags: extra options and positionals; configFlags keeps only config flags", () => {
  const { values, positionals } = parseFlags(
    ["list", "--json", "--spool", "/s", "--listen", "127.0.0.1:1", "--listen", "127.0.0.1:2"],
    { json: { type: "boolean" } },
  );
  deepStrictEqual(positionals, ["list"]);
  strictEqual(values.json, true);
  deepStrictEqual(configFlags(values), {
    spool: "/s",
    listen: ["127.0.0.1:1", "127.0.0.1:2"],
  });
});

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { buildConfig, ENV_VARS, readConfigFile } from "../../src/config/build.ts";
import { ConfigError } from "../../src/config/error.ts";
import type { Config } from "../../src/config/schema.ts";
import { formatAddress } from "../../src/config/units.ts";
import { configError, envOf, flags, host, noEnv, withFile } from "./_helpers.ts";

Deno.test("defaults", async () => {
  const c = await buildConfig({}, noEnv, host);
  const expected: Config = {
    configFile: undefined,
    listen: [{ hostname: "127.0.0.1", port: 2525 }],
    listenTls: [],
    hostname: "relay.example.com",
    spool: "./spool",
    maxMessageSize: 25 * 1024 * 1024,
    maxRecipients: 100,
    maxConnections: 200,
    maxConnectionsPerClient: 50,
    maxErrors: 20,
    commandTimeout: 300,
    dataTimeout: 180,
    dataTotalTimeout: 1800,
    shutdownTimeout: 30,
    relayNetworks: "127.0.0.0/8,::1/128",
    proxyProtocolFrom: "",
    readyUpstreamOutage: 600,
    tlsCert: undefined,
    tlsKey: undefined,
    users: undefined,
    authOnPlaintextLoopback: false,
    senders: undefined,
    recipientDomains: undefined,
    userSenders: undefined,
    rateMessagesPerMinute: 0,
    rateRecipientsPerHour: 0,
    upstream: [],
    upstreams: undefined,
    routes: [],
    upstreamPasswordFile: [],
    upstreamCa: undefined,
    upstreamServername: undefined,
    deliveryConcurrency: 16,
    messagesPerConnection: 50,
    retryMin: 60,
    retryMax: 3600,
    maxQueueLifetime: 5 * 86400,
    delayWarning: 4 * 3600,
    upstreamTimeout: 60,
    logFormat: "text",
    logLevel: "info",
    metricsListen: undefined,
  };
  deepStrictEqual(c, expected);
});

Deno.test("flags set every kind of value", async () => {
  const c = await buildConfig(
    flags(
      "--listen",
      "127.0.0.1:2626",
      "--listen",
      "[::1]:2626,0.0.0.0:25",
      "--hostname",
      "mx.example.com",
      "--spool",
      "/var/spool/carrier",
      "--max-message-size",
      "10M",
      "--max-recipients",
      "7",
      "--rate-messages-per-minute",
      "0",
      "--retry-min",
      "30s",
      "--retry-max",
      "2h",
      "--max-queue-lifetime",
      "1d",
      "--relay-networks",
      "10.0.0.0/8, 192.168.0.0/16",
      "--auth-on-plaintext-loopback",
      "--log-format",
      "json",
      "--metrics-listen",
      "127.0.0.1:9025",
    ),
    noEnv,
    host,
  );
  deepStrictEqual(c.listen, [
    { hostname: "127.0.0.1", port: 2626 },
    { hostname: "::1", port: 2626 },
    { hostname: "0.0.0.0", port: 25 },
  ]);
  strictEqual(c.hostname, "mx.example.com");
  strictEqual(c.spool, "/var/spool/carrier");
  strictEqual(c.maxMessageSize, 10 * 1024 * 1024);
  strictEqual(c.maxRecipients, 7);
  strictEqual(c.rateMessagesPerMinute, 0);
  strictEqual(c.retryMin, 30);
  strictEqual(c.retryMax, 7200);
  strictEqual(c.maxQueueLifetime, 86400);
  strictEqual(c.relayNetworks, "10.0.0.0/8,192.168.0.0/16");
  strictEqual(c.authOnPlaintextLoopback, true);
  strictEqual(c.logFormat, "json");
  deepStrictEqual(c.metricsListen, { hostname: "127.0.0.1", port: 9025 });
});

Deno.test("flags override the environment, which overrides the file", async () => {
  await withFile(
    JSON.stringify({
      upstream: "starttls://file@smtp.example.com",
      maxRecipients: 5,
      listen: ["127.0.0.1:3000"],
      spool: "/from/file",
    }),
    async (path) => {
      const fileOnly = await buildConfig(flags("--config", path), noEnv, host);
      strictEqual(fileOnly.configFile, path);
      deepStrictEqual(fileOnly.upstream, ["starttls://file@smtp.example.com"]);
      strictEqual(fileOnly.maxRecipients, 5);
      strictEqual(fileOnly.spool, "/from/file");
      deepStrictEqual(fileOnly.listen, [{ hostname: "127.0.0.1", port: 3000 }]);

      const env = envOf({ CARRIER_UPSTREAM: "smtps://env@smtp.example.com" });
      const withEnv = await buildConfig(flags("--config", path), env, host);
      deepStrictEqual(withEnv.upstream, ["smtps://env@smtp.example.com"]);
      strictEqual(withEnv.maxRecipients, 5, "other file keys stay");

      const withFlag = await buildConfig(
        flags(
          "--config",
          path,
          "--upstream",
          "smtps://flag@smtp.example.com",
          "--max-recipients",
          "9",
          "--spool",
          "/from/flag",
        ),
        env,
        host,
      );
      deepStrictEqual(withFlag.upstream, ["smtps://flag@smtp.example.com"]);
      strictEqual(withFlag.maxRecipients, 9);
      strictEqual(withFlag.spool, "/from/flag");

      // The file can also come from CARRIER_CONFIG; --config wins over it.
      const viaEnv = await buildConfig({}, envOf({ CARRIER_CONFIG: path }), host);
      strictEqual(viaEnv.configFile, path);
      strictEqual(viaEnv.maxRecipients, 5);
      await rejects(
        buildConfig(flags("--config", path + ".missing"), envOf({ CARRIER_CONFIG: path }), host),
        configError(path + ".missing"),
      );
    },
  );
});

Deno.test("an empty CARRIER_UPSTREAM does not clear the file's upstream", async () => {
  await withFile(JSON.stringify({ upstream: "smtps://smtp.example.com" }), async (path) => {
    const c = await buildConfig(flags("--config", path), envOf({ CARRIER_UPSTREAM: "" }), host);
    deepStrictEqual(c.upstream, ["smtps://smtp.example.com"]);
  });
});

Deno.test("a config file sets values in camelCase with sizes and durations as text", async () => {
  await withFile(
    JSON.stringify({
      listen: "127.0.0.1:2000,[::1]:2000",
      maxMessageSize: "1GiB",
      commandTimeout: "5m",
      dataTimeout: 90,
      relayNetworks: ["10.0.0.0/8", "::1/128"],
      senders: ["@example.com"],
      userSenders: { app: ["app@example.com"] },
      rateRecipientsPerHour: 100,
    }),
    async (path) => {
      const c = await buildConfig(flags("--config", path), noEnv, host);
      deepStrictEqual(c.listen.map(formatAddress), ["127.0.0.1:2000", "[::1]:2000"]);
      strictEqual(c.maxMessageSize, 1024 ** 3);
      strictEqual(c.commandTimeout, 300);
      strictEqual(c.dataTimeout, 90);
      strictEqual(c.relayNetworks, "10.0.0.0/8,::1/128");
      deepStrictEqual(c.senders, ["@example.com"]);
      deepStrictEqual(c.userSenders, { app: ["app@example.com"] });
      strictEqual(c.rateRecipientsPerHour, 100);
    },
  );
});

Deno.test("config file: unknown key, wrong type, invalid JSON name the file and the key", async () => {
  await withFile(JSON.stringify({ maxRecipient: 5 }), async (path) => {
    await rejects(readConfigFile(path), configError(path, "maxRecipient"));
    await rejects(buildConfig(flags("--config", path), noEnv, host), configError(path));
  });
  await withFile(JSON.stringify({ maxRecipients: "many" }), async (path) => {
    await rejects(readConfigFile(path), configError(path, "maxRecipients"));
  });
  await withFile(JSON.stringify({ maxRecipients: 0 }), async (path) => {
    await rejects(readConfigFile(path), configError(path, "maxRecipients"));
  });
  await withFile(JSON.stringify({ listen: 2525 }), async (path) => {
    await rejects(readConfigFile(path), configError(path, "listen"));
  });
  await withFile(JSON.stringify({ logFormat: "xml" }), async (path) => {
    await rejects(readConfigFile(path), configError(path, "logFormat"));
  });
  await withFile(JSON.stringify({ userSenders: { app: [5] } }), async (path) => {
    await rejects(readConfigFile(path), configError(path, "userSenders.app[0]"));
  });
  await withFile('{"listen": "127.0.0.1:2525",}', async (path) => {
    await rejects(readConfigFile(path), configError(path, "JSON"));
  });
  await withFile("[]", async (path) => {
    await rejects(readConfigFile(path), configError(path));
  });
  await withFile("{}", async (path) => {
    deepStrictEqual(await readConfigFile(path), {});
  });
  await rejects(
    readConfigFile("/nonexistent/carrier.json"),
    configError("/nonexistent/carrier.json"),
  );
});

Deno.test("bad values in a JSON file name the file, the key as written and the value", async () => {
  await withFile(JSON.stringify({ listen: ["127.0.0.1"] }), async (path) => {
    await rejects(
      buildConfig(flags("--config", path), noEnv, host),
      configError(path, `key "listen"`, "is not HOST:PORT"),
    );
  });
  await withFile(JSON.stringify({ maxMessageSize: "lots" }), async (path) => {
    await rejects(
      buildConfig(flags("--config", path), noEnv, host),
      configError(path, `key "maxMessageSize" = "lots"`, "K, M or G"),
    );
  });
  await withFile(JSON.stringify({ retryMin: "soon" }), async (path) => {
    await rejects(
      buildConfig(flags("--config", path), noEnv, host),
      configError(`key "retryMin" = "soon"`, "s, m, h or d"),
    );
  });
});

Deno.test("TLS: tls-cert without tls-key (and the reverse) is an error", async () => {
  await rejects(
    buildConfig(flags("--tls-cert", "/c.pem"), noEnv, host),
    configError("--tls-cert and --tls-key: give both or neither"),
  );
  await rejects(
    buildConfig(flags("--tls-key", "/k.pem"), noEnv, host),
    configError("--tls-cert and --tls-key: give both or neither"),
  );
  const both = await buildConfig(
    flags("--tls-cert", "/c.pem", "--tls-key", "/k.pem", "--listen-tls", "127.0.0.1:2465"),
    noEnv,
    host,
  );
  strictEqual(both.tlsCert, "/c.pem");
  strictEqual(both.tlsKey, "/k.pem");
  deepStrictEqual(both.listenTls, [{ hostname: "127.0.0.1", port: 2465 }]);
});

Deno.test("listen-tls without a certificate is an error", async () => {
  await rejects(
    buildConfig(flags("--listen-tls", "127.0.0.1:2465"), noEnv, host),
    configError("--listen-tls: needs --tls-cert and --tls-key"),
  );
  await rejects(
    buildConfig(flags("--listen-tls", "127.0.0.1"), noEnv, host),
    configError('--listen-tls: "127.0.0.1" is not HOST:PORT'),
  );
});

Deno.test("cross-field checks: listeners, retries, timeouts, password twice, log format", async () => {
  await withFile(JSON.stringify({ listen: [] }), async (path) => {
    await rejects(buildConfig(flags("--config", path), noEnv, host), configError("listen"));
  });
  await rejects(
    buildConfig(flags("--retry-min", "2h", "--retry-max", "1h"), noEnv, host),
    configError("--retry-min/--retry-max: need 0 < --retry-min <= --retry-max"),
  );
  await rejects(buildConfig(flags("--retry-min", "0"), noEnv, host), configError("--retry-min/"));
  await rejects(
    buildConfig(flags("--data-timeout", "0"), noEnv, host),
    configError("--data-timeout: must be greater than zero"),
  );
  await rejects(
    buildConfig(flags("--log-format", "xml"), noEnv, host),
    configError('--log-format: "xml" must be text or json'),
  );
  await rejects(
    buildConfig(flags("--log-level", "loud"), noEnv, host),
    configError('--log-level: "loud" must be debug, info, warn or error'),
  );
  await rejects(
    buildConfig(
      flags("--upstream-password-file", "/p"),
      envOf({ CARRIER_UPSTREAM_PASSWORD: "secret" }),
      host,
    ),
    (e: unknown) => {
      configError("--upstream-password-file: CARRIER_UPSTREAM_PASSWORD is also set")(e);
      ok(!(e as Error).message.includes("secret"), "the password is never echoed");
      return true;
    },
  );
  await rejects(
    buildConfig(flags("--metrics-listen", "9025"), noEnv, host),
    configError('--metrics-listen: "9025" is not HOST:PORT'),
  );
});

Deno.test("errors name a flag --flag-name, an environment variable by its name, a file's key as before", async () => {
  for (
    const [args, line] of [
      [
        ["--max-message-size", "-5"],
        '--max-message-size: "-5" is not a size (e.g. 26214400 or 25M)',
      ],
      [["--retry-max", "soon"], '--retry-max: "soon" is not a duration (e.g. 30s, 5m, 2h, 5d)'],
      [["--listen", "nowhere"], '--listen: "nowhere" is not HOST:PORT (IPv6 as [::1]:2525)'],
      [["--max-recipients", "x"], '--max-recipients: "x" is not a whole number >= 1'],
      [["--relay-networks", "10.0.0.0/33"], "--relay-networks: "],
      [["--upstream", "ftp://smtp.example.com"], "--upstream: "],
    ] as [string[], string][]
  ) {
    await rejects(buildConfig(flags(...args), noEnv, host), (e: unknown) => {
      ok(e instanceof ConfigError && e.message.startsWith(line), `${args.join(" ")}: ${e}`);
      return true;
    });
  }
  await rejects(
    buildConfig(flags(), envOf({ CARRIER_UPSTREAM: "ftp://smtp.example.com" }), host),
    configError("CARRIER_UPSTREAM: "),
  );
  await rejects(
    buildConfig(flags(), envOf({ CARRIER_PROXY_PROTOCOL_FROM: "10.0.0.0/33" }), host),
    configError("CARRIER_PROXY_PROTOCOL_FROM: ", "10.0.0.0/33"),
  );
  // A check across keys set in the file names them as before, without "--".
  await withFile(JSON.stringify({ tlsCert: "/c.pem" }), async (path) => {
    await rejects(buildConfig(flags("--config", path), noEnv, host), (e: unknown) => {
      strictEqual((e as Error).message, "tls-cert and tls-key: give both or neither");
      return true;
    });
  });
  await withFile(JSON.stringify({ retryMin: "2h" }), async (path) => {
    await rejects(buildConfig(flags("--config", path), noEnv, host), (e: unknown) => {
      strictEqual((e as Error).message, "retry-min/retry-max: need 0 < retry-min <= retry-max");
      return true;
    });
  });
});

Deno.test("ENV_VARS lists the variables Carrier reads", () => {
  for (const name of ["CARRIER_CONFIG", "CARRIER_UPSTREAM", "CARRIER_UPSTREAM_PASSWORD"]) {
    ok((ENV_VARS as readonly string[]).includes(name), name);
  }
  strictEqual(new Set(ENV_VARS).size, ENV_VARS.length);
});

Deno.test("proxy-protocol-from: flag over CARRIER_PROXY_PROTOCOL_FROM over the file key", async () => {
  await withFile(
    JSON.stringify({ proxyProtocolFrom: ["10.0.0.5/32", "10.0.0.6"] }),
    async (path) => {
      const file = await buildConfig(flags("--config", path), noEnv, host);
      strictEqual(file.proxyProtocolFrom, "10.0.0.5/32,10.0.0.6");
      const env = envOf({ CARRIER_PROXY_PROTOCOL_FROM: "192.0.2.0/24" });
      strictEqual(
        (await buildConfig(flags("--config", path), env, host)).proxyProtocolFrom,
        "192.0.2.0/24",
      );
      const flag = flags("--config", path, "--proxy-protocol-from", "127.0.0.1/32, ::1/128");
      strictEqual((await buildConfig(flag, env, host)).proxyProtocolFrom, "127.0.0.1/32,::1/128");
    },
  );
});

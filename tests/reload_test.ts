/** What a reload may take live and what needs a restart (compareConfigs), and keeping the rest. */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { buildConfig } from "../src/config/build.ts";
import type { Config } from "../src/config/schema.ts";
import { Logger } from "../src/ops/log.ts";
import { Metrics } from "../src/ops/metrics.ts";
import { NetworkList } from "../src/policy/networks.ts";
import { RateLimiter } from "../src/policy/rate_limit.ts";
import { RelayPolicy } from "../src/policy/relay_policy.ts";
import { compareConfigs, keepRunning } from "../src/reload.ts";

const base: Config = await buildConfig({}, () => undefined, () => "relay.test");
const withChanges = (changes: Partial<Config>): Config => ({ ...base, ...changes });

Deno.test("compareConfigs: the same configuration changes nothing", () => {
  deepStrictEqual(compareConfigs(base, { ...base }), { live: [], restart: [] });
});

Deno.test("compareConfigs: limits, policy, log format and level, delivery settings are live", () => {
  const next = withChanges({
    maxMessageSize: 4096,
    maxConnectionsPerClient: 3,
    commandTimeout: 10,
    relayNetworks: "10.0.0.0/8",
    senders: ["*@example.org"],
    userSenders: { alice: ["alice@example.org"] },
    rateMessagesPerMinute: 5,
    logFormat: "json",
    logLevel: "warn",
    deliveryConcurrency: 2,
    retryMax: 7200,
    shutdownTimeout: 5,
  });
  deepStrictEqual(compareConfigs(base, next), {
    live: [
      "max_message_size",
      "max_connections_per_client",
      "command_timeout",
      "shutdown_timeout",
      "relay_networks",
      "senders",
      "user_senders",
      "rate_messages_per_minute",
      "delivery_concurrency",
      "retry_max",
      "log_format",
      "log_level",
    ],
    restart: [],
  });
});

Deno.test("compareConfigs: listeners, spool, hostname and metrics-listen need a restart", () => {
  const next = withChanges({
    listen: [{ hostname: "127.0.0.1", port: 2600 }],
    spool: "/var/spool/other",
    hostname: "other.test",
    metricsListen: { hostname: "127.0.0.1", port: 9100 },
    maxRecipients: 5,
  });
  deepStrictEqual(compareConfigs(base, next), {
    live: ["max_recipients"],
    restart: ["listen", "hostname", "spool", "metrics_listen"],
  });
});

Deno.test("compareConfigs: hold mode to an upstream and back needs a restart", () => {
  const upstream = withChanges({
    upstream: ["starttls://mx.example.org:587"],
    upstreamCa: "/ca.pem",
  });
  deepStrictEqual(compareConfigs(base, upstream), {
    live: [],
    restart: ["upstream", "upstream_ca"],
  });
  deepStrictEqual(compareConfigs(upstream, base), {
    live: [],
    restart: ["upstream", "upstream_ca"],
  });
});

Deno.test("compareConfigs: a new upstream is live only where the net permission reaches", () => {
  const running = withChanges({ upstream: ["starttls://mx.example.org:587"] });
  const next = withChanges({
    upstream: ["starttls://user@mx2.example.org:2587"],
    upstreamTimeout: 5,
  });
  const asked: string[] = [];
  const granted = (hostPort: string) => (asked.push(hostPort), hostPort === "mx2.example.org:2587");
  deepStrictEqual(compareConfigs(running, next, { net: granted }), {
    live: ["upstream", "upstream_timeout"],
    restart: [],
  });
  deepStrictEqual(asked, ["mx2.example.org:2587"]);
  deepStrictEqual(compareConfigs(running, next, { net: () => false }), {
    live: ["upstream_timeout"],
    restart: ["upstream"],
  });
});

Deno.test("compareConfigs: an upstream's password file or variable the process may not use needs a restart", () => {
  const running = withChanges({ upstream: ["smtp://127.0.0.1:2600"] });
  const next = withChanges({
    upstream: ["smtp://127.0.0.1:2600", "smtp://second@127.0.0.1:2601"],
    upstreamPasswordFile: ["/run/secrets/a", "/run/secrets/b"],
  });
  const readable = (path: string) => path === "/run/secrets/a";
  deepStrictEqual(compareConfigs(running, next, { read: readable }).restart, [
    "upstream",
    "upstream_password_file",
  ]);
  deepStrictEqual(compareConfigs(running, next, { read: () => true }).restart, []);
  // No file: its variable must be one the process may read.
  const byVariable = withChanges({ upstream: next.upstream });
  const env = (name: string) => name === "CARRIER_UPSTREAM_PASSWORD_2";
  deepStrictEqual(compareConfigs(running, byVariable, { env }).restart, []);
  deepStrictEqual(compareConfigs(running, byVariable, { env: () => false }).restart, [
    "upstream",
  ]);
});

Deno.test("compareConfigs: proxy-protocol-from is live unless implicit-TLS listeners would change kind", () => {
  const proxied = withChanges({ proxyProtocolFrom: "10.0.0.1/32" });
  deepStrictEqual(compareConfigs(base, proxied).live, ["proxy_protocol_from"]);
  const tls = withChanges({
    listenTls: [{ hostname: "127.0.0.1", port: 4650 }],
    tlsCert: "/c.pem",
    tlsKey: "/k.pem",
  });
  deepStrictEqual(compareConfigs(tls, { ...tls, proxyProtocolFrom: "10.0.0.1/32" }), {
    live: [],
    restart: ["proxy_protocol_from"],
  });
  // A new certificate is live; dropping it under implicit-TLS listeners is not.
  deepStrictEqual(compareConfigs(tls, { ...tls, tlsCert: "/c2.pem" }).live, ["tls_cert"]);
  deepStrictEqual(
    compareConfigs(tls, { ...tls, listenTls: [], tlsCert: undefined, tlsKey: undefined }).restart,
    ["listen_tls", "tls_cert", "tls_key"],
  );
});

Deno.test("keepRunning: the keys that need a restart keep their running values", () => {
  const running = withChanges({ metricsListen: { hostname: "127.0.0.1", port: 9100 } });
  const next = withChanges({
    listen: [{ hostname: "127.0.0.1", port: 2600 }],
    maxMessageSize: 4096,
    upstream: ["starttls://mx.example.org"],
  });
  const changes = compareConfigs(running, next);
  deepStrictEqual(changes.restart, ["listen", "upstream", "metrics_listen"]);
  const kept = keepRunning(running, next, changes.restart);
  deepStrictEqual(kept.listen, running.listen);
  deepStrictEqual(kept.metricsListen, running.metricsListen);
  deepStrictEqual(kept.upstream, []);
  strictEqual(kept.maxMessageSize, 4096);
  deepStrictEqual(compareConfigs(running, kept), { live: ["max_message_size"], restart: [] });
});

Deno.test("RateLimiter: a new limit keeps the counts so far", () => {
  let now = 0;
  const limiter = new RateLimiter({ limit: 2, windowMs: 60_000, now: () => now });
  strictEqual(limiter.take("a"), true);
  strictEqual(limiter.take("a"), true);
  strictEqual(limiter.take("a"), false);
  limiter.limit = 3;
  strictEqual(limiter.take("a"), true, "one more under the higher limit");
  strictEqual(limiter.take("a"), false, "the earlier two still count");
  limiter.limit = 0;
  strictEqual(limiter.take("a"), true, "0 is unlimited");
  now += 1;
});

Deno.test("RelayPolicy.reconfigure: new networks and rules for the next command", () => {
  const lines: string[] = [];
  const policy = new RelayPolicy({
    networks: NetworkList.parse("127.0.0.0/8"),
    rules: {},
    authAvailable: false,
    messagesPerMinute: 1,
    recipientsPerHour: 0,
    log: new Logger("text", (l) => lines.push(l)),
    metrics: new Metrics("test"),
  });
  const ctx = { client: { address: "10.1.2.3", port: 1, tls: false } };
  strictEqual(policy.mail(ctx, "a@example.org"), undefined);
  strictEqual(policy.rcpt(ctx, "b@example.com", "a@example.org")?.code, 554);
  policy.reconfigure({
    ...policy.options,
    networks: NetworkList.parse("10.0.0.0/8"),
    messagesPerMinute: 2,
  });
  strictEqual(policy.rcpt(ctx, "b@example.com", "a@example.org"), undefined);
  strictEqual(policy.mail(ctx, "a@example.org"), undefined, "second message under the new limit");
  strictEqual(policy.mail(ctx, "a@example.org")?.code, 450, "the first still counts");
});

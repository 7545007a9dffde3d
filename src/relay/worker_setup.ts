/**
 * Builds the delivery worker from the configuration: the upstreams (URLs and named ones),
 * their credentials (password from the environment or a file, or OAuth2 for Google
 * accounts), connection limits and quotas, the routes and the retry policy. No upstream
 * configured means hold mode.
 */

import { ConfigError } from "../config/error.ts";
import type { Config } from "../config/schema.ts";
import { errorMessage, type Logger } from "../ops/log.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { Spool } from "../queue/spool.ts";
import { UpstreamSession } from "./upstream.ts";
import type { UpstreamAuth, UpstreamOptions, UpstreamTarget } from "./upstream_types.ts";
import { parseUpstreamUrl, type UpstreamConfig } from "../upstream_url.ts";
import { resolveUpstreams, type UpstreamSpec } from "../config/upstreams.ts";
import { envGranted, readEnv } from "../granted.ts";
import { Router } from "./routes.ts";
import { DeliveryWorker, type WorkerOptions } from "./worker.ts";

/** Returns the worker for the configured upstream (in hold mode: one that only keeps the queue). */
export async function createDeliveryWorker(
  config: Config,
  spool: Spool,
  log: Logger,
  metrics: Metrics,
  env: (name: string) => string | undefined = readEnv,
): Promise<DeliveryWorker> {
  return new DeliveryWorker({ spool, log, metrics, ...await deliverySettings(config, env) });
}

/** What the worker takes from the configuration (and a reload may change). */
export type DeliverySettings = Omit<WorkerOptions, "spool" | "log" | "metrics" | "pollMs">;

/**
 * The delivery settings of `config`: the upstream's connection (credentials read now),
 * the retry policy and the limits. Throws ConfigError naming the key for anything wrong.
 */
export async function deliverySettings(
  config: Config,
  env: (name: string) => string | undefined = readEnv,
): Promise<DeliverySettings> {
  const common = {
    hostname: config.hostname,
    concurrency: config.deliveryConcurrency,
    messagesPerConnection: config.messagesPerConnection,
    retry: {
      minMs: config.retryMin * 1000,
      maxMs: config.retryMax * 1000,
      lifetimeMs: config.maxQueueLifetime * 1000,
      delayWarningMs: config.delayWarning * 1000,
    },
  };
  const resolved = resolveUpstreams(config);
  const upstreams: UpstreamTarget[] = [];
  for (const spec of resolved.upstreams) upstreams.push(await upstreamTarget(config, spec, env));
  return { ...common, upstreams, router: new Router(resolved) };
}

/** One upstream: its URL, credentials, CA, timeouts, connection limit and quotas. */
async function upstreamTarget(
  config: Config,
  spec: UpstreamSpec,
  env: (name: string) => string | undefined,
): Promise<UpstreamTarget> {
  const where = spec.name.includes("://") ? "upstream" : `upstreams.${spec.name}`;
  let upstream: UpstreamConfig;
  try {
    upstream = parseUpstreamUrl(spec.url);
  } catch (e) {
    throw new ConfigError(`${where}: ${errorMessage(e)}`);
  }
  if (spec.servername) upstream = { ...upstream, servername: spec.servername };
  const auth = await upstreamAuth(spec, upstream, env);
  let ca: string | undefined;
  if (spec.ca) {
    try {
      ca = await Deno.readTextFile(spec.ca);
    } catch (e) {
      const key = spec.ca === config.upstreamCa ? "upstream-ca" : `upstreams.${spec.name}.ca`;
      throw new ConfigError(`${key}: cannot read ${spec.ca}: ${errorMessage(e)}`);
    }
  }
  const options: UpstreamOptions = {
    config: upstream,
    auth,
    ca,
    clientHostname: config.hostname,
    connectTimeoutMs: spec.timeout * 1000,
    socketTimeoutMs: spec.timeout * 1000,
    // RFC 5321 §4.5.3.2: up to 10 minutes for a reply (the one after DATA's final dot).
    transactionTimeoutMs: Math.max(spec.timeout, 600) * 1000,
  };
  return {
    // As the operator wrote it (a URL never holds the password), in logs, metrics and bounces.
    name: spec.name,
    connect: () => UpstreamSession.open(options),
    maxConnections: spec.maxConnections,
    maxRecipients: spec.maxRecipients,
    messagesPerConnection: spec.messagesPerConnection,
    quota: {
      messagesPerMinute: spec.messagesPerMinute,
      dailyMessages: spec.dailyMessages,
      dailyRecipients: spec.dailyRecipients,
    },
  };
}

/**
 * The credentials of an upstream: OAuth2 when its refresh token variable is set, else a
 * password (its file, or its variable, or the shared one), else none.
 */
async function upstreamAuth(
  spec: UpstreamSpec,
  upstream: UpstreamConfig,
  env: (name: string) => string | undefined,
): Promise<UpstreamAuth | undefined> {
  const where = spec.name.includes("://") ? "upstream" : `upstreams.${spec.name}`;
  const refreshToken = spec.oauth2 ? env(spec.oauth2.refreshToken) : undefined;
  if (spec.oauth2 && refreshToken) {
    const clientId = env(spec.oauth2.clientId);
    const clientSecret = env(spec.oauth2.clientSecret);
    if (!clientId || !clientSecret || !upstream.user) {
      throw new ConfigError(
        `${where}: XOAUTH2 needs ${spec.oauth2.clientId}, ${spec.oauth2.clientSecret} and a user in the upstream URL`,
      );
    }
    return { kind: "xoauth2", user: upstream.user, clientId, clientSecret, refreshToken };
  }
  if (spec.oauth2 && where !== "upstream") {
    const why = envGranted(spec.oauth2.refreshToken)
      ? "set"
      : "readable (this process may not read it: compile with this configuration)";
    throw new ConfigError(`${where}: oauth2 = true needs ${spec.oauth2.refreshToken} ${why}`);
  }
  let password = env(spec.passwordVariable) ??
    (where === "upstream" ? env("CARRIER_UPSTREAM_PASSWORD") : undefined);
  const file = spec.passwordFile;
  if (file) {
    try {
      password = (await Deno.readTextFile(file)).replace(/\r?\n$/, "");
    } catch (e) {
      const key = where === "upstream" ? "upstream-password-file" : `${where}.password_file`;
      throw new ConfigError(`${key}: cannot read ${file}: ${errorMessage(e)}`);
    }
  }
  if (upstream.user === undefined) {
    if (password) {
      throw new ConfigError(
        `${where}: a password is set but the upstream URL has no user (user@host)`,
      );
    }
    return undefined;
  }
  if (!password) {
    const how = where === "upstream" ? "--upstream-password-file" : `${where}.password_file`;
    // A binary with a fixed permission set may not read every upstream's variable.
    const set = envGranted(spec.passwordVariable)
      ? `set ${spec.passwordVariable} or ${how}`
      : `give ${how} (this process may not read ${spec.passwordVariable})`;
    throw new ConfigError(`${where}: user ${upstream.user} needs a password: ${set}`);
  }
  return { kind: "password", user: upstream.user, password };
}

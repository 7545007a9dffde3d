/**
 * Builds the delivery worker from the configuration: the upstream URL, its
 * credentials (password from the environment or a file, or OAuth2 for Google
 * accounts) and the retry policy. No upstream configured means hold mode.
 */

import { ConfigError } from "../config/error.ts";
import type { Config } from "../config/schema.ts";
import { errorMessage, type Logger } from "../ops/log.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { Spool } from "../queue/spool.ts";
import { UpstreamSession } from "./upstream.ts";
import type { UpstreamAuth, UpstreamOptions } from "./upstream_types.ts";
import { parseUpstreamUrl, type UpstreamConfig } from "../upstream_url.ts";
import { DeliveryWorker, type WorkerOptions } from "./worker.ts";

/** Returns the worker for the configured upstream (in hold mode: one that only keeps the queue). */
export async function createDeliveryWorker(
  config: Config,
  spool: Spool,
  log: Logger,
  metrics: Metrics,
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
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
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
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
  if (!config.upstream) return { ...common, upstreamName: "none (hold mode)" };
  let upstream: UpstreamConfig;
  try {
    upstream = parseUpstreamUrl(config.upstream);
  } catch (e) {
    throw new ConfigError(`upstream: ${errorMessage(e)}`);
  }
  if (config.upstreamServername) upstream = { ...upstream, servername: config.upstreamServername };
  const auth = await upstreamAuth(config, upstream, env);
  let ca: string | undefined;
  if (config.upstreamCa) {
    try {
      ca = await Deno.readTextFile(config.upstreamCa);
    } catch (e) {
      throw new ConfigError(`upstream-ca: cannot read ${config.upstreamCa}: ${errorMessage(e)}`);
    }
  }
  const options: UpstreamOptions = {
    config: upstream,
    auth,
    ca,
    clientHostname: config.hostname,
    connectTimeoutMs: config.upstreamTimeout * 1000,
    socketTimeoutMs: config.upstreamTimeout * 1000,
    // RFC 5321 §4.5.3.2: up to 10 minutes for a reply (the one after DATA's final dot).
    transactionTimeoutMs: Math.max(config.upstreamTimeout, 600) * 1000,
  };
  return {
    ...common,
    connect: () => UpstreamSession.open(options),
    // As the operator wrote it (a URL never holds the password), in logs, metrics and bounces.
    upstreamName: config.upstream,
  };
}

/** The upstream credentials: OAuth2 when its variables are set, else a password, else none. */
async function upstreamAuth(
  config: Config,
  upstream: UpstreamConfig,
  env: (name: string) => string | undefined,
): Promise<UpstreamAuth | undefined> {
  const refreshToken = env("CARRIER_OAUTH2_REFRESH_TOKEN");
  if (refreshToken) {
    const clientId = env("CARRIER_OAUTH2_CLIENT_ID");
    const clientSecret = env("CARRIER_OAUTH2_CLIENT_SECRET");
    if (!clientId || !clientSecret || !upstream.user) {
      throw new ConfigError(
        "upstream: XOAUTH2 needs CARRIER_OAUTH2_CLIENT_ID, CARRIER_OAUTH2_CLIENT_SECRET and a user in the upstream URL",
      );
    }
    return { kind: "xoauth2", user: upstream.user, clientId, clientSecret, refreshToken };
  }
  let password = env("CARRIER_UPSTREAM_PASSWORD");
  if (config.upstreamPasswordFile) {
    try {
      password = (await Deno.readTextFile(config.upstreamPasswordFile)).replace(/\r?\n$/, "");
    } catch (e) {
      throw new ConfigError(
        `upstream-password-file: cannot read ${config.upstreamPasswordFile}: ${errorMessage(e)}`,
      );
    }
  }
  if (upstream.user === undefined) {
    if (password) {
      throw new ConfigError(
        "upstream: a password is set but the upstream URL has no user (user@host)",
      );
    }
    return undefined;
  }
  if (!password) {
    throw new ConfigError(
      `upstream: user ${upstream.user} needs a password: set CARRIER_UPSTREAM_PASSWORD or --upstream-password-file`,
    );
  }
  return { kind: "password", user: upstream.user, password };
}

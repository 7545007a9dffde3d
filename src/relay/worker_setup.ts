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
import type { UpstreamAuth, UpstreamOptions, UpstreamTarget } from "./upstream_types.ts";
import { parseUpstreamUrl, type UpstreamConfig } from "../upstream_url.ts";
import { DeliveryWorker, type WorkerOptions } from "./worker.ts";

/** Recipients in one upstream transaction unless the upstream's LIMITS says fewer (Gmail's cap). */
const MAX_RECIPIENTS_PER_TRANSACTION = 100;

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
  const upstreams: UpstreamTarget[] = [];
  for (let i = 0; i < config.upstream.length; i++) {
    upstreams.push(await upstreamTarget(config, i, env));
  }
  return { ...common, upstreams };
}

/** Upstream `i` of the failover list: its URL, credentials, CA and timeouts. */
async function upstreamTarget(
  config: Config,
  i: number,
  env: (name: string) => string | undefined,
): Promise<UpstreamTarget> {
  const url = config.upstream[i]!;
  let upstream: UpstreamConfig;
  try {
    upstream = parseUpstreamUrl(url);
  } catch (e) {
    throw new ConfigError(`upstream: ${errorMessage(e)}`);
  }
  if (config.upstreamServername) upstream = { ...upstream, servername: config.upstreamServername };
  const auth = await upstreamAuth(config, upstream, i, env);
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
    // As the operator wrote it (a URL never holds the password), in logs, metrics and bounces.
    name: url,
    connect: () => UpstreamSession.open(options),
    maxRecipients: MAX_RECIPIENTS_PER_TRANSACTION,
  };
}

/** The environment variable with the password of upstream `i` (0-based) of the list. */
export function upstreamPasswordVariable(i: number): string {
  return i === 0 ? "CARRIER_UPSTREAM_PASSWORD" : `CARRIER_UPSTREAM_PASSWORD_${i + 1}`;
}

/**
 * The credentials of upstream `i`: OAuth2 (the first upstream only) when its variables are
 * set, else a password (its own file or variable, or the shared one), else none.
 */
async function upstreamAuth(
  config: Config,
  upstream: UpstreamConfig,
  i: number,
  env: (name: string) => string | undefined,
): Promise<UpstreamAuth | undefined> {
  const refreshToken = i === 0 ? env("CARRIER_OAUTH2_REFRESH_TOKEN") : undefined;
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
  const variable = upstreamPasswordVariable(i);
  let password = env(variable) ?? env("CARRIER_UPSTREAM_PASSWORD");
  const files = config.upstreamPasswordFile;
  const file = files.length === 1 ? files[0] : files[i];
  if (file) {
    try {
      password = (await Deno.readTextFile(file)).replace(/\r?\n$/, "");
    } catch (e) {
      throw new ConfigError(`upstream-password-file: cannot read ${file}: ${errorMessage(e)}`);
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
      `upstream: user ${upstream.user} needs a password: set ${variable} or --upstream-password-file`,
    );
  }
  return { kind: "password", user: upstream.user, password };
}

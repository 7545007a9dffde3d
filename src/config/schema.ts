/**
 * What a configuration is: the Config every command reads, and the zod schema of the
 * config file (TOML or JSON), whose keys are the long flag names. Which keys take
 * whole numbers is read off this schema, so flags and the file cannot disagree.
 */

import { z } from "zod";
import { LOG_LEVELS, type LogLevel } from "../ops/log.ts";
import { NetworkList } from "../policy/networks.ts";
import { parseUpstreamUrl } from "../upstream_url.ts";
import {
  type NamedUpstream,
  type RouteRule,
  RouteSchema,
  UPSTREAM_NAME_RE,
  UpstreamsSchema,
} from "./upstreams.ts";
import { type ListenAddress, parseDuration, parseListenAddress, parseSize } from "./units.ts";

/** Everything Carrier's commands read from configuration. */
export interface Config {
  configFile?: string;
  listen: ListenAddress[];
  listenTls: ListenAddress[];
  hostname: string;
  spool: string;
  maxMessageSize: number;
  maxRecipients: number;
  maxConnections: number;
  maxConnectionsPerClient: number;
  maxErrors: number;
  /** Seconds to receive a complete command line. */
  commandTimeout: number;
  /** Seconds without any byte during DATA. */
  dataTimeout: number;
  /** Seconds for a whole DATA phase, however the bytes trickle in. */
  dataTotalTimeout: number;
  /** Seconds a draining shutdown waits for sessions and deliveries. */
  shutdownTimeout: number;
  /** /readyz fails once the upstream has been failing this long (seconds). */
  readyUpstreamOutage: number;
  relayNetworks: string;
  /** Peers (comma-separated CIDRs) that must send a PROXY protocol header first; empty = none. */
  proxyProtocolFrom: string;
  tlsCert?: string;
  tlsKey?: string;
  users?: string;
  authOnPlaintextLoopback: boolean;
  senders?: string[];
  recipientDomains?: string[];
  userSenders?: Record<string, string[]>;
  /** Messages per minute per client address and per user (0 = unlimited). */
  rateMessagesPerMinute: number;
  /** Recipients per hour per client address and per user (0 = unlimited). */
  rateRecipientsPerHour: number;
  /** The default failover list: URLs, or names of `upstreams` (empty: hold mode, or all named). */
  upstream: string[];
  /** Named upstreams from the config file, with their own credentials, limits and quotas. */
  upstreams?: Record<string, NamedUpstream>;
  /** Rules that send some mail through other upstreams than the default list. */
  routes: RouteRule[];
  /** Password files: one for every upstream, or one per upstream in the same order. */
  upstreamPasswordFile: string[];
  upstreamCa?: string;
  /** SNI/verification name when the upstream is given as an IP literal. */
  upstreamServername?: string;
  deliveryConcurrency: number;
  messagesPerConnection: number;
  /** Seconds before the first retry; doubles up to retryMax. */
  retryMin: number;
  retryMax: number;
  /** Seconds a message may stay queued before it bounces (Postfix: 5 days). */
  maxQueueLifetime: number;
  /** Seconds undelivered before the sender gets one delay warning (0: never; Postfix: off). */
  delayWarning: number;
  /** Seconds the upstream client waits to connect and for each reply. */
  upstreamTimeout: number;
  logFormat: "text" | "json";
  /** The least severity logged. */
  logLevel: LogLevel;
  /** Address of the HTTP endpoint for /healthz and /metrics, if any. */
  metricsListen?: ListenAddress;
}

const positiveInt = z.number({ error: "must be a whole number >= 1" }).int().positive();
const nonNegativeInt = z.number({ error: "must be a whole number >= 0" }).int().nonnegative();
const text = z.string({ error: "must be a non-empty string" }).min(1);
const stringList = z.union([z.string(), z.array(z.string())], {
  error: "must be a string or a list of strings",
});

/** The entries of a list value: array items and comma-separated parts, trimmed. */
export function listEntries(v: string | string[]): string[] {
  return (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(",")).map((s) => s.trim())
    .filter((s) => s !== "");
}

/** The message of what `parse` throws for `value`, or undefined when it accepts it. */
function rejection(parse: (value: never) => unknown, value: unknown): string | undefined {
  try {
    parse(value as never);
    return undefined;
  } catch (e) {
    return (e as Error).message.replace(/^value: /, "");
  }
}

/** A value the given unit parser must accept; `allowed` says what it takes. */
function parsed<T extends z.ZodType>(type: T, parse: (value: never) => unknown, allowed: string) {
  return type.refine((v) => rejection(parse, v) === undefined, { error: allowed });
}

/** A list whose every entry `check` accepts (it returns the problem, or undefined). */
function listOf(check: (entry: string) => string | undefined) {
  return stringList.superRefine((v, ctx) => {
    for (const entry of listEntries(v)) {
      const problem = check(entry);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    }
  });
}

const duration = parsed(
  z.union([z.number(), z.string()], { error: "must be a duration" }),
  (v) => parseDuration(v, "value"),
  'must be seconds or a number with s, m, h or d (e.g. 30, "30s", "5m", "5d")',
);
const size = parsed(
  z.union([z.number(), z.string()], { error: "must be a size" }),
  (v) => parseSize(v, "value"),
  'must be bytes >= 1 or a whole number with K, M or G (e.g. 26214400, "25M")',
);
const listenList = listOf((a) => rejection(() => parseListenAddress(a, "value"), a));
const networkList = listOf((n) => rejection(() => NetworkList.parse(n), n));
const listenAddress = text.refine(
  (a) => rejection(() => parseListenAddress(a, "value"), a) === undefined,
  { error: "must be HOST:PORT (IPv6 as [::1]:9025)" },
);
/** URLs, or names of `[upstreams.NAME]` tables (resolved, and checked to exist, later). */
const upstreamList = listOf((entry) =>
  entry.includes("://") || !UPSTREAM_NAME_RE.test(entry)
    ? rejection(() => parseUpstreamUrl(entry), entry)
    : undefined
);

/**
 * The keys a config file may have: the long flag names in camelCase (a TOML file writes
 * them in snake_case). Each value is checked here, with a message saying what is allowed.
 */
export const FileSchema = z.strictObject({
  listen: listenList.optional(),
  listenTls: listenList.optional(),
  hostname: text.optional(),
  spool: text.optional(),
  maxMessageSize: size.optional(),
  maxRecipients: positiveInt.optional(),
  maxConnections: positiveInt.optional(),
  maxConnectionsPerClient: positiveInt.optional(),
  maxErrors: positiveInt.optional(),
  commandTimeout: duration.optional(),
  dataTimeout: duration.optional(),
  dataTotalTimeout: duration.optional(),
  shutdownTimeout: duration.optional(),
  readyUpstreamOutage: duration.optional(),
  relayNetworks: networkList.optional(),
  proxyProtocolFrom: networkList.optional(),
  tlsCert: text.optional(),
  tlsKey: text.optional(),
  users: text.optional(),
  authOnPlaintextLoopback: z.boolean({ error: "must be true or false" }).optional(),
  senders: z.array(text, { error: "must be a list of strings" }).optional(),
  recipientDomains: z.array(text, { error: "must be a list of strings" }).optional(),
  userSenders: z.record(z.string(), z.array(text, { error: "must be a list of strings" }), {
    error: "must be a table of user name = list of senders",
  }).optional(),
  rateMessagesPerMinute: nonNegativeInt.optional(),
  rateRecipientsPerHour: nonNegativeInt.optional(),
  upstream: upstreamList.optional(),
  upstreamPasswordFile: z.union([text, z.array(text)], {
    error: "must be a file name or a list of them",
  }).optional(),
  upstreams: UpstreamsSchema.optional(),
  routes: z.array(RouteSchema, { error: "must be a list of route tables [[routes]]" }).optional(),
  upstreamCa: text.optional(),
  upstreamServername: text.optional(),
  deliveryConcurrency: positiveInt.optional(),
  messagesPerConnection: positiveInt.optional(),
  retryMin: duration.optional(),
  retryMax: duration.optional(),
  maxQueueLifetime: duration.optional(),
  delayWarning: duration.optional(),
  upstreamTimeout: duration.optional(),
  logFormat: z.enum(["text", "json"], { error: 'must be "text" or "json"' }).optional(),
  logLevel: z.enum(LOG_LEVELS, { error: 'must be "debug", "info", "warn" or "error"' }).optional(),
  metricsListen: listenAddress.optional(),
});

/** A validated config file: every key optional. */
export type FileConfig = z.infer<typeof FileSchema>;

/**
 * The keys whose values are whole numbers, with the least value each allows (1 for
 * positiveInt, 0 for nonNegativeInt): the flags for these keys are parsed as integers.
 */
export const INTEGER_KEYS: ReadonlyMap<string, number> = new Map(
  Object.entries(FileSchema.shape).flatMap(([key, type]): [string, number][] => {
    const inner: unknown = type.unwrap();
    if (inner === positiveInt) return [[key, 1]];
    if (inner === nonNegativeInt) return [[key, 0]];
    return [];
  }),
);

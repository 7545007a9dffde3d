/**
 * What a configuration is: the Config every command reads, and the zod schema of the
 * JSON config file, whose keys are the long flag names in camelCase. Which keys take
 * whole numbers is read off this schema, so flags and the file cannot disagree.
 */

import { z } from "zod";
import type { ListenAddress } from "./units.ts";

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
  upstream?: string;
  upstreamPasswordFile?: string;
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
  /** Seconds the upstream client waits to connect and for each reply. */
  upstreamTimeout: number;
  logFormat: "text" | "json";
  /** Address of the HTTP endpoint for /healthz and /metrics, if any. */
  metricsListen?: ListenAddress;
}

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const duration = z.union([z.number().nonnegative(), z.string()]);
const stringList = z.union([z.string(), z.array(z.string())]);

/** The keys a config file may have: the long flag names in camelCase. */
export const FileSchema = z.strictObject({
  listen: stringList.optional(),
  listenTls: stringList.optional(),
  hostname: z.string().min(1).optional(),
  spool: z.string().min(1).optional(),
  maxMessageSize: z.union([positiveInt, z.string()]).optional(),
  maxRecipients: positiveInt.optional(),
  maxConnections: positiveInt.optional(),
  maxConnectionsPerClient: positiveInt.optional(),
  maxErrors: positiveInt.optional(),
  commandTimeout: duration.optional(),
  dataTimeout: duration.optional(),
  dataTotalTimeout: duration.optional(),
  shutdownTimeout: duration.optional(),
  readyUpstreamOutage: duration.optional(),
  relayNetworks: stringList.optional(),
  proxyProtocolFrom: stringList.optional(),
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  users: z.string().min(1).optional(),
  authOnPlaintextLoopback: z.boolean().optional(),
  senders: z.array(z.string().min(1)).optional(),
  recipientDomains: z.array(z.string().min(1)).optional(),
  userSenders: z.record(z.string(), z.array(z.string().min(1))).optional(),
  rateMessagesPerMinute: nonNegativeInt.optional(),
  rateRecipientsPerHour: nonNegativeInt.optional(),
  upstream: z.string().min(1).optional(),
  upstreamPasswordFile: z.string().min(1).optional(),
  upstreamCa: z.string().min(1).optional(),
  upstreamServername: z.string().min(1).optional(),
  deliveryConcurrency: positiveInt.optional(),
  messagesPerConnection: positiveInt.optional(),
  retryMin: duration.optional(),
  retryMax: duration.optional(),
  maxQueueLifetime: duration.optional(),
  upstreamTimeout: duration.optional(),
  logFormat: z.enum(["text", "json"]).optional(),
  metricsListen: z.string().optional(),
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

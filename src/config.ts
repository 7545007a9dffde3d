/**
 * One validated Config from a JSON file, the environment and command-line flags
 * (flags win over environment, environment over the file). Every problem is a
 * ConfigError that names the key and what is wrong, never a stack trace.
 */

import { parseArgs } from "node:util";
import { z } from "zod";
import { parseUpstreamUrl } from "./upstream_url.ts";

/** A configuration problem; main prints its message and exits with code 2. */
export class ConfigError extends Error {}

/** A listen address. */
export interface ListenAddress {
  hostname: string;
  port: number;
}

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
  relayNetworks: string;
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

/** Environment variables Carrier reads (and so the only ones it is allowed to). */
export const ENV_VARS = [
  "CARRIER_CONFIG",
  "CARRIER_UPSTREAM",
  "CARRIER_UPSTREAM_PASSWORD",
  "CARRIER_OAUTH2_CLIENT_ID",
  "CARRIER_OAUTH2_CLIENT_SECRET",
  "CARRIER_OAUTH2_REFRESH_TOKEN",
] as const;

const MiB = 1024 * 1024;

/** Parses `HOST:PORT`, `[IPv6]:PORT`; `what` names the key in errors. */
export function parseListenAddress(text: string, what: string): ListenAddress {
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:\[\]\s]+):(\d{1,5})$/.exec(text);
  if (!m) {
    throw new ConfigError(`${what}: "${text}" is not HOST:PORT (IPv6 as [::1]:2525)`);
  }
  const port = Number(m[2]);
  if (port < 0 || port > 65535) throw new ConfigError(`${what}: port ${port} is out of range`);
  return { hostname: m[1], port };
}

/** `HOST:PORT` text of a listen address, bracketing IPv6. */
export function formatAddress(a: ListenAddress): string {
  return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
}

/** Parses a duration: seconds as a number, or `30s`, `5m`, `2h`, `5d`. */
export function parseDuration(value: unknown, what: string): number {
  if (typeof value === "number" && Number.isFinite(value) && value >= 0) return value;
  if (typeof value === "string") {
    const m = /^(\d+(?:\.\d+)?)(s|m|h|d)?$/.exec(value.trim());
    if (m) {
      const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? "s") as "s" | "m" | "h" | "d"];
      return Number(m[1]) * unit;
    }
  }
  throw new ConfigError(
    `${what}: ${JSON.stringify(value)} is not a duration (e.g. 30s, 5m, 2h, 5d)`,
  );
}

/** Parses a byte size: a number, or with a K/M/G suffix (binary units). */
export function parseSize(value: unknown, what: string): number {
  if (typeof value === "number" && Number.isInteger(value) && value > 0) return value;
  if (typeof value === "string") {
    const m = /^(\d+)\s*([KMG]i?B?)?$/i.exec(value.trim());
    if (m) {
      const unit = (m[2] ?? "").toUpperCase()[0];
      const factor = unit === "K" ? 1024 : unit === "M" ? MiB : unit === "G" ? 1024 * MiB : 1;
      const n = Number(m[1]) * factor;
      if (n > 0) return n;
    }
  }
  throw new ConfigError(`${what}: ${JSON.stringify(value)} is not a size (e.g. 26214400 or 25M)`);
}

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const duration = z.union([z.number().nonnegative(), z.string()]);
const stringList = z.union([z.string(), z.array(z.string())]);

/** The keys a config file may have: the long flag names in camelCase. */
const FileSchema = z.strictObject({
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
  relayNetworks: stringList.optional(),
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

type FileConfig = z.infer<typeof FileSchema>;

/** Command-line options shared by all commands that read configuration. */
export const CONFIG_OPTIONS = {
  config: { type: "string" },
  listen: { type: "string", multiple: true },
  "listen-tls": { type: "string", multiple: true },
  hostname: { type: "string" },
  spool: { type: "string" },
  "max-message-size": { type: "string" },
  "max-recipients": { type: "string" },
  "max-connections": { type: "string" },
  "max-connections-per-client": { type: "string" },
  "max-errors": { type: "string" },
  "command-timeout": { type: "string" },
  "data-timeout": { type: "string" },
  "data-total-timeout": { type: "string" },
  "shutdown-timeout": { type: "string" },
  "relay-networks": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  users: { type: "string" },
  "auth-on-plaintext-loopback": { type: "boolean" },
  "rate-messages-per-minute": { type: "string" },
  "rate-recipients-per-hour": { type: "string" },
  upstream: { type: "string" },
  "upstream-password-file": { type: "string" },
  "upstream-ca": { type: "string" },
  "upstream-servername": { type: "string" },
  "delivery-concurrency": { type: "string" },
  "messages-per-connection": { type: "string" },
  "retry-min": { type: "string" },
  "retry-max": { type: "string" },
  "max-queue-lifetime": { type: "string" },
  "upstream-timeout": { type: "string" },
  "log-format": { type: "string" },
  "metrics-listen": { type: "string" },
} as const;

type FlagValues = Partial<Record<keyof typeof CONFIG_OPTIONS, string | string[] | boolean>>;

const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

function intFlag(value: string, flag: string, min: number): number {
  if (!/^\d+$/.test(value) || Number(value) < min) {
    throw new ConfigError(`--${flag}: "${value}" is not a whole number >= ${min}`);
  }
  return Number(value);
}

/** Reads and validates a JSON config file. */
export async function readConfigFile(path: string): Promise<FileConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ConfigError(`config file ${path}: ${e instanceof Error ? e.message : e}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${path}: not valid JSON: ${(e as Error).message}`);
  }
  const parsed = FileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = issue.path.join(".") ||
      ("keys" in issue ? (issue.keys as string[]).join(", ") : "(root)");
    throw new ConfigError(`config file ${path}: key "${key}": ${issue.message}`);
  }
  return parsed.data;
}

/** Builds the Config from parsed flags, the environment and the config file. */
export async function buildConfig(
  flags: FlagValues,
  env: (name: string) => string | undefined,
  defaultHostname: () => string,
): Promise<Config> {
  const configFile = (flags.config as string | undefined) ?? env("CARRIER_CONFIG");
  const file: FileConfig = configFile ? await readConfigFile(configFile) : {};
  const merged: Record<string, unknown> = { ...file };
  const envUpstream = env("CARRIER_UPSTREAM");
  if (envUpstream) merged.upstream = envUpstream;
  for (const [flag, value] of Object.entries(flags)) {
    if (flag === "config" || value === undefined) continue;
    const key = camel(flag);
    const spec = CONFIG_OPTIONS[flag as keyof typeof CONFIG_OPTIONS];
    if (spec.type === "boolean") {
      merged[key] = value;
    } else if (
      [
        "maxRecipients",
        "maxConnections",
        "maxConnectionsPerClient",
        "maxErrors",
        "deliveryConcurrency",
        "messagesPerConnection",
      ].includes(key)
    ) {
      merged[key] = intFlag(value as string, flag, 1);
    } else if (["rateMessagesPerMinute", "rateRecipientsPerHour"].includes(key)) {
      merged[key] = intFlag(value as string, flag, 0);
    } else {
      merged[key] = value;
    }
  }
  const list = (v: unknown): string[] =>
    v === undefined
      ? []
      : (Array.isArray(v) ? v : [v]).flatMap((s: string) => s.split(",")).map((s) => s.trim())
        .filter((s) => s !== "");
  const str = (v: unknown) => v as string | undefined;
  const listen = list(merged.listen ?? "127.0.0.1:2525").map((a) =>
    parseListenAddress(a, "listen")
  );
  const listenTls = list(merged.listenTls).map((a) => parseListenAddress(a, "listen-tls"));
  const config: Config = {
    configFile,
    listen,
    listenTls,
    hostname: str(merged.hostname) ?? defaultHostname(),
    spool: str(merged.spool) ?? "./spool",
    maxMessageSize: parseSize(merged.maxMessageSize ?? 25 * MiB, "max-message-size"),
    maxRecipients: (merged.maxRecipients as number | undefined) ?? 100,
    maxConnections: (merged.maxConnections as number | undefined) ?? 200,
    maxConnectionsPerClient: (merged.maxConnectionsPerClient as number | undefined) ?? 50,
    maxErrors: (merged.maxErrors as number | undefined) ?? 20,
    commandTimeout: parseDuration(merged.commandTimeout ?? 300, "command-timeout"),
    dataTimeout: parseDuration(merged.dataTimeout ?? 180, "data-timeout"),
    dataTotalTimeout: parseDuration(merged.dataTotalTimeout ?? 1800, "data-total-timeout"),
    shutdownTimeout: parseDuration(merged.shutdownTimeout ?? 30, "shutdown-timeout"),
    relayNetworks: list(merged.relayNetworks ?? "127.0.0.0/8,::1/128").join(","),
    tlsCert: str(merged.tlsCert),
    tlsKey: str(merged.tlsKey),
    users: str(merged.users),
    authOnPlaintextLoopback: (merged.authOnPlaintextLoopback as boolean | undefined) ?? false,
    senders: merged.senders as string[] | undefined,
    recipientDomains: merged.recipientDomains as string[] | undefined,
    userSenders: merged.userSenders as Record<string, string[]> | undefined,
    rateMessagesPerMinute: (merged.rateMessagesPerMinute as number | undefined) ?? 0,
    rateRecipientsPerHour: (merged.rateRecipientsPerHour as number | undefined) ?? 0,
    upstream: str(merged.upstream),
    upstreamPasswordFile: str(merged.upstreamPasswordFile),
    upstreamCa: str(merged.upstreamCa),
    upstreamServername: str(merged.upstreamServername),
    deliveryConcurrency: (merged.deliveryConcurrency as number | undefined) ?? 4,
    messagesPerConnection: (merged.messagesPerConnection as number | undefined) ?? 50,
    retryMin: parseDuration(merged.retryMin ?? 60, "retry-min"),
    retryMax: parseDuration(merged.retryMax ?? 3600, "retry-max"),
    maxQueueLifetime: parseDuration(merged.maxQueueLifetime ?? "5d", "max-queue-lifetime"),
    upstreamTimeout: parseDuration(merged.upstreamTimeout ?? 60, "upstream-timeout"),
    logFormat: (merged.logFormat as "text" | "json" | undefined) ?? "text",
    metricsListen: merged.metricsListen
      ? parseListenAddress(merged.metricsListen as string, "metrics-listen")
      : undefined,
  };
  if (!["text", "json"].includes(config.logFormat)) {
    throw new ConfigError(`log-format: "${config.logFormat}" must be text or json`);
  }
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    throw new ConfigError("tls-cert and tls-key: give both or neither");
  }
  if (config.listenTls.length > 0 && config.tlsCert === undefined) {
    throw new ConfigError("listen-tls: needs tls-cert and tls-key");
  }
  if (config.listen.length + config.listenTls.length === 0) {
    throw new ConfigError("listen: at least one listen address is needed");
  }
  if (config.retryMin <= 0 || config.retryMax < config.retryMin) {
    throw new ConfigError("retry-min/retry-max: need 0 < retry-min <= retry-max");
  }
  for (const key of ["commandTimeout", "dataTimeout", "dataTotalTimeout"] as const) {
    if (config[key] <= 0) throw new ConfigError(`${key}: must be greater than zero`);
  }
  if (config.upstream !== undefined) {
    try {
      parseUpstreamUrl(config.upstream);
    } catch (e) {
      throw new ConfigError(`upstream: ${(e as Error).message}`);
    }
  }
  if (config.upstreamPasswordFile && env("CARRIER_UPSTREAM_PASSWORD")) {
    throw new ConfigError(
      "upstream-password-file: CARRIER_UPSTREAM_PASSWORD is also set; give the password one way",
    );
  }
  return config;
}

/** Parses a command's arguments with the shared config options plus its own. */
export function parseFlags<T extends Record<string, { type: "string" | "boolean" }>>(
  args: string[],
  extra: T,
): { values: Record<string, string | string[] | boolean | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { ...CONFIG_OPTIONS, ...extra },
      allowPositionals: true,
      strict: true,
    });
    return {
      values: values as Record<string, string | string[] | boolean | undefined>,
      positionals,
    };
  } catch (e) {
    throw new ConfigError((e as Error).message.split("\n")[0]);
  }
}

/** Picks the config flags out of a command's parsed values. */
export function configFlags(values: Record<string, unknown>): FlagValues {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(CONFIG_OPTIONS)) {
    if (values[key] !== undefined) out[key] = values[key];
  }
  return out as FlagValues;
}

/**
 * One validated Config from a config file (TOML or JSON), the environment and command-line flags
 * (flags win over environment, environment over the file), with the defaults and
 * the checks across keys. Every problem is a ConfigError that names the key: the file's key as
 * written for a problem in the file, `--flag-name` for a value given by a flag, the variable's
 * name for one from the environment.
 */

import { LOG_LEVELS, type LogLevel } from "../ops/log.ts";
import { NetworkList } from "../policy/networks.ts";
import { parseUpstreamUrl } from "../upstream_url.ts";
import { ConfigError } from "./error.ts";
import { flagSettings, type FlagValues } from "./flags.ts";
import type { z } from "zod";
import { type Config, type FileConfig, FileSchema, listEntries } from "./schema.ts";
import { snakeKey, tomlName, tomlToFileKeys } from "./toml.ts";
import {
  resolveUpstreams,
  UPSTREAM_NAME_RE,
  UPSTREAM_NAME_RULE,
  UpstreamsError,
} from "./upstreams.ts";
import { MiB, parseDuration, parseListenAddress, parseSize } from "./units.ts";

/** Environment variables Carrier reads (and so the only ones it is allowed to). */
export const ENV_VARS = [
  "CARRIER_CONFIG",
  "CARRIER_UPSTREAM",
  "CARRIER_UPSTREAM_PASSWORD",
  "CARRIER_OAUTH2_CLIENT_ID",
  "CARRIER_OAUTH2_CLIENT_SECRET",
  "CARRIER_OAUTH2_REFRESH_TOKEN",
  "CARRIER_PROXY_PROTOCOL_FROM",
] as const;

/** Reads and validates a config file: TOML (`.toml`) or JSON (`.json`, camelCase keys). */
export async function readConfigFile(path: string): Promise<FileConfig> {
  const toml = path.endsWith(".toml");
  if (!toml && !path.endsWith(".json")) {
    throw new ConfigError(`${path}: a config file's name must end in .toml or .json`);
  }
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ConfigError(
      `${path}: cannot read config file: ${e instanceof Error ? e.message : e}`,
    );
  }
  let doc: unknown;
  let written = (key: string) => key;
  if (toml) {
    const settings = tomlToFileKeys(text, path);
    doc = settings.values;
    written = (key) => settings.written.get(key) ?? tomlName(key);
  } else {
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new ConfigError(`${path}: not valid JSON: ${(e as Error).message}`);
    }
  }
  const parsed = FileSchema.safeParse(doc);
  if (!parsed.success) throw new ConfigError(describeIssue(path, doc, parsed.error, written));
  return parsed.data;
}

/** One line for a file's first schema problem: the key as written, its value, what is allowed. */
function describeIssue(
  path: string,
  doc: unknown,
  error: z.ZodError,
  written: (key: string) => string,
): string {
  const issue = error.issues[0];
  const [first, ...rest] = issue.path;
  if (typeof first !== "string") {
    if ("keys" in issue) {
      const keys = (issue.keys as string[]).map((k) => `"${k}"`).join(", ");
      return `${path}: unknown key ${keys} (allowed: ${Object.keys(FileSchema.shape).join(", ")})`;
    }
    return `${path}: ${issue.message}`;
  }
  const toml = path.endsWith(".toml");
  // An upstream's name is written as it is; other keys in TOML in snake_case.
  const key = [written(first), ...rest].map((step, n) =>
    typeof step === "number"
      ? `[${step}]`
      : `.${toml && !(first === "upstreams" && n === 1) ? snakeKey(String(step)) : String(step)}`
  ).join("").slice(1).replace(/^\[/, "");
  if (issue.code === "unrecognized_keys") {
    // Never echo the table: the unknown key may be a pasted password.
    const keys = issue.keys.map((k) => `"${toml ? snakeKey(k) : k}"`).join(", ");
    const secret = issue.keys.some((k) => /password|secret|token/i.test(k) && k !== "passwordFile");
    return `${path}: key "${key}": unknown key ${keys}${
      secret
        ? "; secrets are not read from the config file: use password_file or the environment"
        : ""
    }`;
  }
  // An upstream table is never echoed whole: a pasted secret could be in it.
  if (first === "upstreams" && rest.length < 2) {
    const problem = issue.code === "invalid_key" ? UPSTREAM_NAME_RULE : issue.message;
    return `${path}: key "${key}": ${problem}`;
  }
  let value: unknown = doc;
  for (const step of issue.path) value = (value as Record<PropertyKey, unknown>)?.[step];
  const urlKey = first === "upstream" || (first === "upstreams" && rest.at(-1) === "url");
  const shown = urlKey && typeof value === "string"
    ? hidePassword(value)
    : urlKey && Array.isArray(value)
    ? value.map((v) => typeof v === "string" ? hidePassword(v) : v)
    : value;
  return `${path}: key "${key}" = ${JSON.stringify(shown)}: ${issue.message}`;
}

/** `maxMessageSize` as `max-message-size`: a config key as its flag is named. */
function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** An upstream URL with any password in it (refused anyway) replaced by `***`, for errors. */
function hidePassword(url: string): string {
  const m = /^([a-z]+:\/\/)(.*)@([^@]*)$/i.exec(url);
  if (!m || !m[2].includes(":")) return url;
  return `${m[1]}${m[2].slice(0, m[2].indexOf(":"))}:***@${m[3]}`;
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
  const envProxyFrom = env("CARRIER_PROXY_PROTOCOL_FROM");
  if (envProxyFrom) merged.proxyProtocolFrom = envProxyFrom;
  const fromFlags = flagSettings(flags);
  Object.assign(merged, fromFlags);
  /** The names of `keys` in an error: `--flag-name` if a flag gave any of them, else the keys. */
  const names = (...keys: string[]): string[] => {
    const flagged = keys.some((key) => key in fromFlags);
    return keys.map((key) => {
      if (key in fromFlags) return `--${kebab(key)}`;
      if (key === "upstream" && envUpstream) return "CARRIER_UPSTREAM";
      if (key === "proxyProtocolFrom" && envProxyFrom) return "CARRIER_PROXY_PROTOCOL_FROM";
      return flagged ? `--${kebab(key)}` : kebab(key);
    });
  };
  const name = (key: string) => names(key)[0];
  const list = (v: unknown): string[] => v === undefined ? [] : listEntries(v as string | string[]);
  const str = (v: unknown) => v as string | undefined;
  const int = (key: string, fallback: number) => (merged[key] as number | undefined) ?? fallback;
  const duration = (key: string, fallback: number | string) =>
    parseDuration(merged[key] ?? fallback, name(key));
  const listen = list(merged.listen ?? "127.0.0.1:2525").map((a) =>
    parseListenAddress(a, name("listen"))
  );
  const listenTls = list(merged.listenTls).map((a) => parseListenAddress(a, name("listenTls")));
  const config: Config = {
    configFile,
    listen,
    listenTls,
    hostname: str(merged.hostname) ?? defaultHostname(),
    spool: str(merged.spool) ?? "./spool",
    maxMessageSize: parseSize(merged.maxMessageSize ?? 25 * MiB, name("maxMessageSize")),
    maxRecipients: int("maxRecipients", 100),
    maxConnections: int("maxConnections", 200),
    maxConnectionsPerClient: int("maxConnectionsPerClient", 50),
    maxErrors: int("maxErrors", 20),
    commandTimeout: duration("commandTimeout", 300),
    dataTimeout: duration("dataTimeout", 180),
    dataTotalTimeout: duration("dataTotalTimeout", 1800),
    shutdownTimeout: duration("shutdownTimeout", 30),
    readyUpstreamOutage: duration("readyUpstreamOutage", 600),
    relayNetworks: list(merged.relayNetworks ?? "127.0.0.0/8,::1/128").join(","),
    proxyProtocolFrom: list(merged.proxyProtocolFrom).join(","),
    tlsCert: str(merged.tlsCert),
    tlsKey: str(merged.tlsKey),
    users: str(merged.users),
    authOnPlaintextLoopback: (merged.authOnPlaintextLoopback as boolean | undefined) ?? false,
    senders: merged.senders as string[] | undefined,
    recipientDomains: merged.recipientDomains as string[] | undefined,
    userSenders: merged.userSenders as Record<string, string[]> | undefined,
    rateMessagesPerMinute: int("rateMessagesPerMinute", 0),
    rateRecipientsPerHour: int("rateRecipientsPerHour", 0),
    upstream: list(merged.upstream),
    upstreams: merged.upstreams as Config["upstreams"],
    routes: (merged.routes as Config["routes"] | undefined) ?? [],
    upstreamPasswordFile: merged.upstreamPasswordFile === undefined
      ? []
      : [merged.upstreamPasswordFile as string | string[]].flat(),
    upstreamCa: str(merged.upstreamCa),
    upstreamServername: str(merged.upstreamServername),
    deliveryConcurrency: int("deliveryConcurrency", 16),
    messagesPerConnection: int("messagesPerConnection", 50),
    retryMin: duration("retryMin", 60),
    retryMax: duration("retryMax", 3600),
    maxQueueLifetime: duration("maxQueueLifetime", "5d"),
    delayWarning: duration("delayWarning", "4h"),
    upstreamTimeout: duration("upstreamTimeout", 60),
    logFormat: (merged.logFormat as "text" | "json" | undefined) ?? "text",
    logLevel: (merged.logLevel as LogLevel | undefined) ?? "info",
    metricsListen: merged.metricsListen
      ? parseListenAddress(merged.metricsListen as string, name("metricsListen"))
      : undefined,
  };
  if (!LOG_LEVELS.includes(config.logLevel)) {
    throw new ConfigError(
      `${name("logLevel")}: "${config.logLevel}" must be debug, info, warn or error`,
    );
  }
  if (!["text", "json"].includes(config.logFormat)) {
    throw new ConfigError(`${name("logFormat")}: "${config.logFormat}" must be text or json`);
  }
  for (const key of ["relayNetworks", "proxyProtocolFrom"] as const) {
    try {
      NetworkList.parse(config[key]);
    } catch (e) {
      throw new ConfigError(`${name(key)}: ${(e as Error).message}`);
    }
  }
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    const [cert, key] = names("tlsCert", "tlsKey");
    throw new ConfigError(`${cert} and ${key}: give both or neither`);
  }
  if (config.listenTls.length > 0 && config.tlsCert === undefined) {
    const [listenTls, cert, key] = names("listenTls", "tlsCert", "tlsKey");
    throw new ConfigError(`${listenTls}: needs ${cert} and ${key}`);
  }
  if (config.listen.length + config.listenTls.length === 0) {
    throw new ConfigError(`${name("listen")}: at least one listen address is needed`);
  }
  if (config.retryMin <= 0 || config.retryMax < config.retryMin) {
    const [min, max] = names("retryMin", "retryMax");
    throw new ConfigError(`${min}/${max}: need 0 < ${min} <= ${max}`);
  }
  for (const key of ["commandTimeout", "dataTimeout", "dataTotalTimeout"] as const) {
    if (config[key] <= 0) throw new ConfigError(`${name(key)}: must be greater than zero`);
  }
  for (const url of config.upstream) {
    if (!url.includes("://") && UPSTREAM_NAME_RE.test(url)) continue; // a name: resolved below
    try {
      parseUpstreamUrl(url);
    } catch (e) {
      throw new ConfigError(`${name("upstream")}: ${(e as Error).message}`);
    }
  }
  const files = config.upstreamPasswordFile.length;
  if (files > 1 && files !== config.upstream.length) {
    const [file, upstream] = names("upstreamPasswordFile", "upstream");
    throw new ConfigError(
      `${file}: ${files} files for ${config.upstream.length} ${upstream} ${
        config.upstream.length === 1 ? "entry" : "entries"
      }; give one for all, or one each in the same order`,
    );
  }
  try {
    resolveUpstreams(config); // unknown upstream names in the list or the routes
  } catch (e) {
    if (!(e instanceof UpstreamsError)) throw e;
    // Named where it was given: the flag, the variable, or the file's key.
    const { key, problem } = e;
    const fromFile = key !== "upstream" || !(name("upstream").startsWith("--") ||
      name("upstream") === "CARRIER_UPSTREAM");
    throw new ConfigError(
      fromFile && configFile
        ? `${configFile}: key "${key}": ${problem}`
        : `${key === "upstream" ? name("upstream") : key}: ${problem}`,
    );
  }
  if (files > 0 && env("CARRIER_UPSTREAM_PASSWORD")) {
    const file = name("upstreamPasswordFile");
    throw new ConfigError(
      `${file}: CARRIER_UPSTREAM_PASSWORD is also set; give the password one way`,
    );
  }
  return config;
}

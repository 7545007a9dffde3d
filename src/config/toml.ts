/**
 * The TOML config file: snake_case keys in sections (`[limits] max_message_size`) or at
 * the top, mapped onto the keys the flags and JSON files use, so one schema checks all.
 * Errors name the file and the key as written there; syntax errors the line and column.
 */

import { parse, TomlError } from "smol-toml";
import { ConfigError } from "./error.ts";

/** Which file keys (camelCase, as in FileSchema) live in which TOML section; "" is the top. */
export const TOML_SECTIONS: Readonly<Record<string, readonly string[]>> = {
  "": ["spool", "hostname"],
  listen: ["listen", "listenTls", "proxyProtocolFrom"],
  limits: [
    "maxMessageSize",
    "maxRecipients",
    "maxConnections",
    "maxConnectionsPerClient",
    "maxErrors",
    "commandTimeout",
    "dataTimeout",
    "dataTotalTimeout",
    "shutdownTimeout",
  ],
  tls: ["tlsCert", "tlsKey"],
  policy: [
    "relayNetworks",
    "users",
    "authOnPlaintextLoopback",
    "senders",
    "recipientDomains",
    "userSenders",
    "rateMessagesPerMinute",
    "rateRecipientsPerHour",
  ],
  upstream: ["upstream", "upstreamPasswordFile", "upstreamCa", "upstreamServername"],
  delivery: [
    "deliveryConcurrency",
    "messagesPerConnection",
    "retryMin",
    "retryMax",
    "maxQueueLifetime",
    "delayWarning",
    "upstreamTimeout",
  ],
  log: ["logFormat", "logLevel"],
  metrics: ["metricsListen", "readyUpstreamOutage"],
};

/** Keys that are tables of their own, not settings in a section: `[upstreams.NAME]`, `[[routes]]`. */
export const TABLE_KEYS: readonly string[] = ["upstreams", "routes"];

/** The file's settings under their schema keys, and how each key was written in the file. */
export interface TomlSettings {
  values: Record<string, unknown>;
  /** Schema key → the name as written (`limits.max_message_size`, or `max_message_size`). */
  written: Map<string, string>;
}

/** Secrets that must never sit in a file, with where they go instead. */
const SECRETS: Record<string, string> = {
  upstream_password: "upstream.upstream_password_file or CARRIER_UPSTREAM_PASSWORD",
  password: "upstream.upstream_password_file or CARRIER_UPSTREAM_PASSWORD",
  oauth2_client_secret: "the environment (CARRIER_OAUTH2_CLIENT_SECRET)",
  oauth2_refresh_token: "the environment (CARRIER_OAUTH2_REFRESH_TOKEN)",
};

/** `max_message_size` → `maxMessageSize`. */
export function camelKey(snake: string): string {
  return snake.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** `maxMessageSize` → `max_message_size`. */
export function snakeKey(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** Where a file key is written in TOML: `limits.max_message_size`, or `spool` at the top. */
export function tomlName(camel: string): string {
  for (const [section, keys] of Object.entries(TOML_SECTIONS)) {
    if (keys.includes(camel)) return section ? `${section}.${snakeKey(camel)}` : snakeKey(camel);
  }
  return snakeKey(camel);
}

/**
 * Parses TOML text into the flat, camelCase shape that FileSchema validates. A setting goes
 * in its section or, as in a flat file, at the top; never both.
 */
export function tomlToFileKeys(text: string, path: string): TomlSettings {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof TomlError) {
      const what = e.message.split("\n")[0].replace(/^Invalid TOML document: /, "");
      throw new ConfigError(`${path}:${e.line}:${e.column}: TOML syntax error: ${what}`);
    }
    throw e;
  }
  const out: TomlSettings = { values: {}, written: new Map() };
  for (const [name, value] of Object.entries(doc)) {
    if (TABLE_KEYS.includes(name)) {
      // Tables of their own ([upstreams.NAME], [[routes]]): their keys in camelCase too.
      out.values[name] = camelKeys(value, name === "upstreams" ? 2 : 1);
      out.written.set(name, name);
      continue;
    }
    const section = TOML_SECTIONS[name];
    if (section && name !== "" && isTable(value)) {
      for (const [key, inner] of Object.entries(value)) {
        take(out, path, name, key, inner);
      }
    } else {
      take(out, path, "", name, value);
    }
  }
  return out;
}

function take(
  out: TomlSettings,
  path: string,
  section: string,
  key: string,
  value: unknown,
): void {
  const written = section ? `${section}.${key}` : key;
  if (key in SECRETS) {
    throw new ConfigError(
      `${path}: key "${written}": secrets are not read from the config file; use ${SECRETS[key]}`,
    );
  }
  const camel = camelKey(key);
  const home = snakeKey(camel) === key
    ? Object.entries(TOML_SECTIONS).find(([, keys]) => keys.includes(camel))
    : undefined;
  // A known setting is taken in its own section, or at the top of a flat file.
  if (!home || (section !== "" && home[0] !== section)) {
    const allowed = TOML_SECTIONS[section] ?? [];
    const hint = home
      ? `it belongs ${home[0] ? `in [${home[0]}]` : "at the top of the file"}`
      : `allowed${section ? ` in [${section}]` : " at the top"}: ${
        (section ? allowed : Object.values(TOML_SECTIONS).flat()).map(snakeKey).join(", ")
      }; sections: ${Object.keys(TOML_SECTIONS).filter((s) => s).join(", ")}`;
    throw new ConfigError(`${path}: unknown key "${written}" (${hint})`);
  }
  const before = out.written.get(camel);
  if (before !== undefined) {
    throw new ConfigError(`${path}: key "${written}": already given as "${before}"; give it once`);
  }
  out.values[camel] = value;
  out.written.set(camel, written);
}

/** `value` with the keys of its tables `depth` levels down turned into camelCase. */
function camelKeys(value: unknown, depth: number): unknown {
  if (depth === 0) return value;
  if (Array.isArray(value)) return value.map((v) => camelKeys(v, depth));
  if (!isTable(value)) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [depth === 1 ? camelKey(k) : k, camelKeys(v, depth - 1)]),
  );
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

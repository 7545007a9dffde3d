/**
 * The value syntaxes shared by flags and the config file: listen addresses
 * (`HOST:PORT`, `[IPv6]:PORT`), durations (`30s`, `5m`) and byte sizes (`25M`).
 * Each parser names the key in its ConfigError.
 */

import { ConfigError } from "./error.ts";

/** A listen address. */
export interface ListenAddress {
  hostname: string;
  port: number;
}

/** One mebibyte, the unit of the default message size. */
export const MiB = 1024 * 1024;

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

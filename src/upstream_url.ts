/**
 * Parsing of the smarthost URL (`starttls://user@host:587`, `smtps://…`, `smtp://…` on
 * loopback only). Passwords never live in the URL: they come from the environment or a file.
 */

import { isIPv4, isIPv6, isLoopbackAddress } from "./ip.ts";

/** Where and how to reach the smarthost, parsed from its URL. */
export interface UpstreamConfig {
  security: "starttls" | "tls" | "plain";
  host: string;
  port: number;
  user?: string;
  /** TLS server name (SNI and certificate check) when it differs from `host`, e.g. for an IP. */
  servername?: string;
}

const DEFAULT_PORTS: Record<UpstreamConfig["security"], number> = {
  starttls: 587,
  tls: 465,
  plain: 25,
};

const SCHEMES: Record<string, UpstreamConfig["security"]> = {
  starttls: "starttls",
  smtps: "tls",
  smtp: "plain",
};

const HOSTNAME_RE =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/;

function fail(problem: string): never {
  throw new Error(`invalid upstream URL: ${problem}`);
}

/** Loopback literal or `localhost`: the only hosts where plain SMTP (no TLS) is acceptable. */
function isLoopback(host: string): boolean {
  return host === "localhost" || ((isIPv4(host) || isIPv6(host)) && isLoopbackAddress(host));
}

function parsePort(s: string): number {
  if (!/^\d{1,5}$/.test(s)) fail(`port ${JSON.stringify(s)} is not a number`);
  const port = Number(s);
  if (port < 1 || port > 65535) fail(`port ${port} is out of range 1-65535`);
  return port;
}

/**
 * Parses a smarthost URL into an {@link UpstreamConfig}. Errors are one-line `Error`s and
 * never repeat the URL itself, so a password pasted into it cannot leak into logs.
 */
export function parseUpstreamUrl(url: string): UpstreamConfig {
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/is.exec(url.trim());
  if (!m) fail("expected scheme://[user@]host[:port], e.g. starttls://me@smtp.example.com:587");
  const scheme = m[1].toLowerCase();
  const security = SCHEMES[scheme];
  if (!security) {
    fail(`unsupported scheme ${JSON.stringify(scheme)}; use starttls://, smtps:// or smtp://`);
  }
  let rest = m[2];

  // The user may itself contain "@": everything up to the LAST "@" is the user part.
  let user: string | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    if (userinfo.includes(":")) {
      fail(
        "a password must not be given in the URL; " +
          "put it in CARRIER_UPSTREAM_PASSWORD or a password file",
      );
    }
    if (userinfo === "") fail("empty user name before '@'");
    if (/[\s/?#]/.test(userinfo)) fail("the user name contains a space, '/', '?' or '#'");
    try {
      user = decodeURIComponent(userinfo);
    } catch {
      fail("the user name has an invalid percent-encoding");
    }
    if (/\p{Cc}/u.test(user)) fail("the user name contains control characters");
    rest = rest.slice(at + 1);
  }

  // Optional query: only ?servername=NAME is understood.
  let servername: string | undefined;
  const q = rest.indexOf("?");
  if (q >= 0) {
    const query = rest.slice(q + 1);
    rest = rest.slice(0, q);
    for (const pair of query.split("&")) {
      if (pair === "") continue;
      const eq = pair.indexOf("=");
      const key = eq < 0 ? pair : pair.slice(0, eq);
      const value = eq < 0 ? "" : pair.slice(eq + 1);
      if (key !== "servername") {
        fail(`unknown parameter ${JSON.stringify(key)}; only servername= is supported`);
      }
      const name = value.toLowerCase();
      if (!HOSTNAME_RE.test(name)) fail(`servername ${JSON.stringify(value)} is not a host name`);
      servername = name.replace(/\.$/, "");
    }
  }
  if (rest.endsWith("/")) rest = rest.slice(0, -1);
  if (/[/#]/.test(rest)) fail("a path or fragment is not allowed after the host");

  let host: string;
  let portText: string | undefined;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) fail("missing ']' after the IPv6 address");
    host = rest.slice(1, close).toLowerCase();
    if (!isIPv6(host)) fail(`${JSON.stringify(host)} is not a valid IPv6 address`);
    const after = rest.slice(close + 1);
    if (after !== "") {
      if (!after.startsWith(":")) fail("expected ':port' after ']'");
      portText = after.slice(1);
    }
  } else {
    const colons = rest.split(":").length - 1;
    if (colons > 1) fail("an IPv6 address must be written in brackets, e.g. smtps://[::1]:465");
    const c = rest.indexOf(":");
    host = (c < 0 ? rest : rest.slice(0, c)).toLowerCase();
    if (c >= 0) portText = rest.slice(c + 1);
    if (host === "") fail("missing host name");
    if (!isIPv4(host) && (!HOSTNAME_RE.test(host) || /^[\d.]+$/.test(host))) {
      fail(`${JSON.stringify(host)} is not a valid host name or IPv4 address`);
    }
    host = host.replace(/\.$/, "");
  }
  const port = portText === undefined ? DEFAULT_PORTS[security] : parsePort(portText);

  if (security === "plain" && !isLoopback(host)) {
    fail(
      `smtp:// (no TLS) is only allowed to a loopback address, not ${JSON.stringify(host)}: ` +
        "plain SMTP would send the password in clear; use starttls:// or smtps://",
    );
  }

  const config: UpstreamConfig = { security, host, port };
  if (user !== undefined) config.user = user;
  if (servername !== undefined) config.servername = servername;
  return config;
}

/** `host:port` (IPv6 in brackets) of the smarthost, as Deno's `--allow-net` wants it. */
export function upstreamNetTarget(c: UpstreamConfig): string {
  return c.host.includes(":") ? `[${c.host}]:${c.port}` : `${c.host}:${c.port}`;
}

/**
 * The PROXY protocol header (HAProxy's spec, v1 text and v2 binary) that a load
 * balancer sends before any SMTP byte: a pure parser over the bytes read so far.
 * It does no I/O and keeps no state; the caller reads until it is not "incomplete".
 */

import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from "../ip.ts";

/** v1 headers are at most 107 bytes with the CRLF (spec §2.1). */
export const V1_MAX_LENGTH = 107;
/** v2 headers longer than this are refused: addresses plus any TLVs a balancer sends in practice. */
export const V2_MAX_LENGTH = 16 + 2048;

/** The 12-byte v2 signature (spec §2.2). */
export const V2_SIGNATURE = new Uint8Array([
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
]);
const V1_PREFIX = new TextEncoder().encode("PROXY ");

/** One end of the proxied connection. */
export interface ProxyEndpoint {
  address: string;
  port: number;
}

/**
 * What a complete header says. `source` is absent for v2 LOCAL (health checks), v1
 * UNKNOWN and v2 families the server does not use (UNSPEC, UNIX, DGRAM): the real
 * peer address then stays the client address, as the spec asks.
 */
export interface ProxyHeader {
  version: 1 | 2;
  command: "proxy" | "local";
  source?: ProxyEndpoint;
  destination?: ProxyEndpoint;
}

/** The parser's answer for the bytes so far. */
export type ProxyParse =
  | { kind: "incomplete" }
  | { kind: "error"; reason: string }
  | { kind: "done"; header: ProxyHeader; length: number };

const INCOMPLETE: ProxyParse = { kind: "incomplete" };
const fail = (reason: string): ProxyParse => ({ kind: "error", reason });

/** True while `bytes` could still become `prefix` (or already starts with it). */
function matchesPrefix(bytes: Uint8Array, prefix: Uint8Array): boolean {
  const n = Math.min(bytes.length, prefix.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

/** Parses a PROXY header at the start of `bytes`; bytes after `length` belong to the stream. */
export function parseProxyHeader(bytes: Uint8Array): ProxyParse {
  if (bytes.length === 0) return INCOMPLETE;
  if (matchesPrefix(bytes, V2_SIGNATURE)) {
    return bytes.length < V2_SIGNATURE.length ? INCOMPLETE : parseV2(bytes);
  }
  if (matchesPrefix(bytes, V1_PREFIX)) {
    return bytes.length < V1_PREFIX.length ? INCOMPLETE : parseV1(bytes);
  }
  return fail("no PROXY protocol signature");
}

function parseV1(bytes: Uint8Array): ProxyParse {
  // The CR can be at index 105 at the latest: CRLF included, 107 bytes.
  const limit = Math.min(bytes.length, V1_MAX_LENGTH - 1);
  let end = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    if (bytes[i] === 0x0d) {
      if (i + 1 >= bytes.length) return INCOMPLETE;
      if (bytes[i + 1] !== 0x0a) return fail("v1 header: CR without LF");
      end = i;
      break;
    }
    if (bytes[i] === 0x0a) return fail("v1 header: LF without CR");
    if (bytes[i]! < 0x20 || bytes[i]! > 0x7e) return fail("v1 header: not printable ASCII");
  }
  if (end < 0) {
    return bytes.length >= V1_MAX_LENGTH - 1
      ? fail("v1 header: longer than 107 bytes")
      : INCOMPLETE;
  }
  const length = end + 2;
  const text = new TextDecoder().decode(bytes.subarray(V1_PREFIX.length, end));
  if (text === "UNKNOWN" || text.startsWith("UNKNOWN ")) {
    // §2.1: the rest of an UNKNOWN line is ignored; the real peer stays the client.
    return { kind: "done", length, header: { version: 1, command: "proxy" } };
  }
  const parts = text.split(" ");
  if (parts.length !== 5) return fail("v1 header: expected protocol, two addresses, two ports");
  const [protocol, src, dst, sport, dport] = parts as [string, string, string, string, string];
  if (protocol !== "TCP4" && protocol !== "TCP6") {
    return fail(`v1 header: unknown protocol "${protocol}"`);
  }
  const parseAddress = protocol === "TCP4" ? canonicalIPv4 : canonicalIPv6;
  const source = parseAddress(src);
  const destination = parseAddress(dst);
  if (source === undefined || destination === undefined) {
    return fail(`v1 header: bad ${protocol} address`);
  }
  const sourcePort = parsePort(sport);
  const destinationPort = parsePort(dport);
  if (sourcePort === undefined || destinationPort === undefined) {
    return fail("v1 header: bad port");
  }
  return {
    kind: "done",
    length,
    header: {
      version: 1,
      command: "proxy",
      source: { address: source, port: sourcePort },
      destination: { address: destination, port: destinationPort },
    },
  };
}

function parseV2(bytes: Uint8Array): ProxyParse {
  if (bytes.length < 16) return INCOMPLETE;
  const versionCommand = bytes[12]!;
  if (versionCommand >> 4 !== 2) return fail(`v2 header: bad version ${versionCommand >> 4}`);
  const command = versionCommand & 0x0f;
  if (command > 1) return fail(`v2 header: bad command ${command}`);
  const family = bytes[13]! >> 4;
  const transport = bytes[13]! & 0x0f;
  if (family > 3) return fail(`v2 header: bad address family ${family}`);
  if (transport > 2) return fail(`v2 header: bad transport ${transport}`);
  const payload = (bytes[14]! << 8) | bytes[15]!;
  const length = 16 + payload;
  if (length > V2_MAX_LENGTH) return fail(`v2 header: ${length} bytes is too long`);
  const needed = command === 1 && transport === 1 ? (family === 1 ? 12 : family === 2 ? 36 : 0) : 0;
  if (payload < needed) return fail(`v2 header: ${payload} bytes cannot hold the addresses`);
  if (bytes.length < length) return INCOMPLETE;
  // LOCAL (health checks) and families a TCP server does not use keep the real peer (§2.2).
  if (command === 0) return { kind: "done", length, header: { version: 2, command: "local" } };
  if (needed === 0) return { kind: "done", length, header: { version: 2, command: "proxy" } };
  const view = new DataView(bytes.buffer, bytes.byteOffset + 16, payload);
  let source: string;
  let destination: string;
  let ports: number;
  if (family === 1) {
    source = formatIPv4(view.getUint32(0));
    destination = formatIPv4(view.getUint32(4));
    ports = 8;
  } else {
    source = formatIPv6(readUint128(view, 0));
    destination = formatIPv6(readUint128(view, 16));
    ports = 32;
  }
  // Any TLVs after the addresses are skipped: nothing in them changes who the client is.
  return {
    kind: "done",
    length,
    header: {
      version: 2,
      command: "proxy",
      source: { address: source, port: view.getUint16(ports) },
      destination: { address: destination, port: view.getUint16(ports + 2) },
    },
  };
}

function readUint128(view: DataView, offset: number): bigint {
  return (view.getBigUint64(offset) << 64n) | view.getBigUint64(offset + 8);
}

function parsePort(text: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

function canonicalIPv4(text: string): string | undefined {
  const value = parseIPv4(text);
  return typeof value === "number" ? formatIPv4(value) : undefined;
}

function canonicalIPv6(text: string): string | undefined {
  if (!text.includes(":")) return undefined;
  const value = parseIPv6(text);
  return typeof value === "bigint" ? formatIPv6(value) : undefined;
}

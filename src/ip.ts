/**
 * IPv4 and IPv6 address text (RFC 4291 §2.2, dotted quads without leading zeros):
 * parsing to numbers and the canonical text form (RFC 5952). Shared by the relay
 * networks, the upstream URL, the server and SMTP address literals.
 */

/** `::ffff:0:0/96`: where IPv4 addresses live in the 128-bit space. */
const V4_MAPPED_PREFIX = 0xffffn << 32n;

/** An IPv4 or IPv6 address as a 128-bit number (IPv4 in the IPv4-mapped range). */
export interface ParsedAddress {
  value: bigint;
  v4: boolean;
}

/** Parses dotted-quad IPv4; returns a reason string on error. */
export function parseIPv4(text: string): number | string {
  const parts = text.split(".");
  if (parts.length !== 4) return "an IPv4 address has four dot-separated parts";
  let value = 0;
  for (const part of parts) {
    if (!/^[0-9]{1,3}$/.test(part)) return `"${part}" is not a decimal number 0-255`;
    if (part.length > 1 && part.startsWith("0")) {
      return `"${part}" has a leading zero (ambiguous: octal or decimal)`;
    }
    const n = Number(part);
    if (n > 255) return `"${part}" is greater than 255`;
    value = value * 256 + n;
  }
  return value;
}

/** Parses an IPv6 address (zone id already removed); returns a reason string on error. */
export function parseIPv6(text: string): bigint | string {
  const halves = text.split("::");
  if (halves.length > 2) return `"::" may appear only once`;
  const head = parseGroups(halves[0], halves.length === 1);
  if (typeof head === "string") return head;
  const tail = halves.length === 2 ? parseGroups(halves[1], true) : [];
  if (typeof tail === "string") return tail;
  let words: number[];
  if (halves.length === 2) {
    const used = head.length + tail.length;
    if (used > 7) return `"::" must stand for at least one zero group`;
    words = [...head, ...new Array<number>(8 - used).fill(0), ...tail];
  } else if (head.length !== 8) {
    return "an IPv6 address has eight 16-bit groups (or uses ::)";
  } else {
    words = head;
  }
  let value = 0n;
  for (const word of words) value = (value << 16n) | BigInt(word);
  return value;
}

/**
 * Parses colon-separated hex groups into 16-bit words; an embedded IPv4 address is
 * allowed as the last group only when `final` (it ends the whole address).
 */
function parseGroups(text: string, final: boolean): number[] | string {
  if (text === "") return [];
  const groups = text.split(":");
  const words: number[] = [];
  for (let i = 0; i < groups.length; i++) {
    const group = groups[i];
    if (final && i === groups.length - 1 && group.includes(".")) {
      const v4 = parseIPv4(group);
      if (typeof v4 === "string") return `embedded IPv4 address: ${v4}`;
      words.push(v4 >>> 16, v4 & 0xffff);
    } else if (/^[0-9A-Fa-f]{1,4}$/.test(group)) {
      words.push(parseInt(group, 16));
    } else {
      return group === "" ? "empty group (stray ':')" : `"${group}" is not a 1-4 digit hex group`;
    }
  }
  return words;
}

/** Formats a 32-bit IPv4 address as a dotted quad. */
export function formatIPv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join(".");
}

/** Formats an IPv6 address in the RFC 5952 canonical form. */
export function formatIPv6(value: bigint): string {
  if (value >> 32n === 0xffffn) return `::ffff:${formatIPv4(Number(value & 0xffffffffn))}`;
  const words: number[] = [];
  for (let i = 7; i >= 0; i--) words.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(":");
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLength))}`;
}

/** True for an IPv4 dotted quad. */
export function isIPv4(text: string): boolean {
  return typeof parseIPv4(text) === "number";
}

/** True for an IPv6 address (no brackets, no zone id). */
export function isIPv6(text: string): boolean {
  return text.includes(":") && typeof parseIPv6(text) === "bigint";
}

/**
 * Parses an IPv4 or IPv6 address into the 128-bit space, tolerating `[...]` brackets and a
 * `%zone` suffix, so `::ffff:127.0.0.1` and `127.0.0.1` compare equal. A reason string on error.
 */
export function parseIpAddress(input: string): ParsedAddress | string {
  let text = input.trim();
  if (text.startsWith("[") && text.endsWith("]")) text = text.slice(1, -1);
  if (text === "") return "empty address";
  if (text.includes(":")) {
    const zone = text.indexOf("%");
    if (zone >= 0) text = text.slice(0, zone);
    const value = parseIPv6(text);
    return typeof value === "string" ? value : { value, v4: false };
  }
  if (text.includes("%")) return "a zone id is allowed only on IPv6 addresses";
  const v4 = parseIPv4(text);
  return typeof v4 === "string" ? v4 : { value: V4_MAPPED_PREFIX | BigInt(v4), v4: true };
}

/** `::ffff:127.0.0.0` shifted right by 24: the IPv4-mapped `127.0.0.0/8` prefix. */
const V4_LOOPBACK_PREFIX = (V4_MAPPED_PREFIX | (127n << 24n)) >> 24n;

/** True for loopback clients (`127.0.0.0/8`, `::1`, `::ffff:127.x.x.x`): the safe default for relaying. */
export function isLoopbackAddress(address: string): boolean {
  const parsed = parseIpAddress(address);
  if (typeof parsed === "string") return false;
  return parsed.value === 1n || parsed.value >> 24n === V4_LOOPBACK_PREFIX;
}

/**
 * IPv4/IPv6 networks in CIDR notation: which client addresses may relay without AUTH.
 *
 * Every address is held as a 128-bit bigint. IPv4 addresses live in the IPv4-mapped
 * range `::ffff:0:0/96`, so `::ffff:127.0.0.1` (what a dual-stack socket reports)
 * matches `127.0.0.0/8` with no special case.
 */

import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from "../ip.ts";

/** The networks of the loopback interface: the default relay network. */
export const LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128";

const V4_MAPPED_PREFIX = 0xffffn << 32n;
const ALL_ONES = (1n << 128n) - 1n;

interface ParsedAddress {
  value: bigint;
  v4: boolean;
}

interface Network {
  /** Network address (host bits cleared) in the 128-bit space. */
  base: bigint;
  mask: bigint;
  /** Prefix length in the entry's own family (0-32 for IPv4, 0-128 for IPv6). */
  prefix: number;
  v4: boolean;
}

/** Parses an IPv4 or IPv6 address, tolerating `[...]` brackets and a `%zone` suffix. */
function parseAddress(input: string): ParsedAddress | string {
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

function maskFor(prefix128: number): bigint {
  return prefix128 === 0 ? 0n : (ALL_ONES << BigInt(128 - prefix128)) & ALL_ONES;
}

function parseNetwork(entry: string): Network {
  const fail = (why: string): never => {
    throw new Error(`invalid network "${entry}": ${why}`);
  };
  const slash = entry.indexOf("/");
  const addressText = slash >= 0 ? entry.slice(0, slash) : entry;
  const address = parseAddress(addressText);
  if (typeof address === "string") return fail(address);
  const max = address.v4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const prefixText = entry.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(prefixText) || Number(prefixText) > max) {
      return fail(`prefix length must be 0-${max}`);
    }
    prefix = Number(prefixText);
  }
  const mask = maskFor(address.v4 ? 96 + prefix : prefix);
  return { base: address.value & mask, mask, prefix, v4: address.v4 };
}

function formatNetwork(network: Network): string {
  const address = network.v4
    ? formatIPv4(Number(network.base & 0xffffffffn))
    : formatIPv6(network.base);
  return `${address}/${network.prefix}`;
}

/**
 * A list of networks that client addresses are matched against (relay permission).
 * Host bits in an entry are ignored: `10.1.2.3/8` is the network `10.0.0.0/8`.
 */
export class NetworkList {
  readonly #networks: readonly Network[];

  private constructor(networks: Network[]) {
    this.#networks = networks;
  }

  /**
   * Parses a comma-separated list (or an array of such lists) of CIDR networks or bare
   * addresses (`/32`, `/128`); empty entries are skipped. Throws naming the bad entry.
   */
  static parse(spec: string | string[]): NetworkList {
    const items = (Array.isArray(spec) ? spec : [spec]).flatMap((s) => s.split(","));
    const networks: Network[] = [];
    for (const item of items) {
      const entry = item.trim();
      if (entry !== "") networks.push(parseNetwork(entry));
    }
    return new NetworkList(networks);
  }

  /** True when `address` (IPv4, IPv6, IPv4-mapped, `%zone` allowed) is in a listed network; false for unparseable input. */
  contains(address: string): boolean {
    const parsed = parseAddress(address);
    if (typeof parsed === "string") return false;
    return this.#networks.some((n) => (parsed.value & n.mask) === n.base);
  }

  /** The canonical comma-separated form, for logs and `check-config`. */
  toString(): string {
    return this.#networks.map(formatNetwork).join(",");
  }
}

const LOOPBACK = NetworkList.parse(LOOPBACK_NETWORKS);

/** True for loopback clients (`127.0.0.0/8`, `::1`, `::ffff:127.x.x.x`): the safe default for relaying. */
export function isLoopbackAddress(address: string): boolean {
  return LOOPBACK.contains(address);
}

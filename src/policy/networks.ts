/**
 * IPv4/IPv6 networks in CIDR notation: which client addresses may relay without AUTH.
 *
 * Every address is held as a 128-bit bigint. IPv4 addresses live in the IPv4-mapped
 * range `::ffff:0:0/96`, so `::ffff:127.0.0.1` (what a dual-stack socket reports)
 * matches `127.0.0.0/8` with no special case.
 */

import { formatIPv4, formatIPv6, parseIpAddress } from "../ip.ts";

/** The networks of the loopback interface: the default relay network. */
export const LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128";

const ALL_ONES = (1n << 128n) - 1n;

interface Network {
  /** Network address (host bits cleared) in the 128-bit space. */
  base: bigint;
  mask: bigint;
  /** Prefix length in the entry's own family (0-32 for IPv4, 0-128 for IPv6). */
  prefix: number;
  v4: boolean;
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
  const address = parseIpAddress(addressText);
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
    if (this.#networks.length === 0) return false; // no address to parse for an empty list
    const parsed = parseIpAddress(address);
    if (typeof parsed === "string") return false;
    return this.#networks.some((n) => (parsed.value & n.mask) === n.base);
  }

  /** True when the list names no network. */
  get empty(): boolean {
    return this.#networks.length === 0;
  }

  /** The canonical comma-separated form, for logs and `check-config`. */
  toString(): string {
    return this.#networks.map(formatNetwork).join(",");
  }
}

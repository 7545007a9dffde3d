/**
 * Builds PROXY protocol headers (v1 text, v2 binary) the way a load balancer sends
 * them, for the parser's round-trip properties and for raw clients in end-to-end tests.
 */

import { parseIPv4, parseIPv6 } from "../../src/ip.ts";
import { V2_SIGNATURE } from "../../src/server/proxy_protocol.ts";

/** A v1 line: `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n`, or `PROXY UNKNOWN\r\n`. */
export function proxyV1(
  src?: { address: string; port: number },
  dst: { address: string; port: number } = { address: "127.0.0.1", port: 25 },
): Uint8Array {
  if (!src) return new TextEncoder().encode("PROXY UNKNOWN\r\n");
  const protocol = src.address.includes(":") ? "TCP6" : "TCP4";
  return new TextEncoder().encode(
    `PROXY ${protocol} ${src.address} ${dst.address} ${src.port} ${dst.port}\r\n`,
  );
}

/** Options of one v2 header. */
export interface V2Options {
  command?: "proxy" | "local";
  /** Absent: family UNSPEC. */
  src?: { address: string; port: number };
  dst?: { address: string; port: number };
  /** Raw TLV bytes appended after the addresses. */
  tlvs?: Uint8Array;
}

/** A v2 binary header over TCP (STREAM), IPv4 or IPv6 by the source address. */
export function proxyV2(opts: V2Options = {}): Uint8Array {
  const command = opts.command === "local" ? 0 : 1;
  const tlvs = opts.tlvs ?? new Uint8Array();
  let family = 0;
  let addresses = new Uint8Array();
  if (opts.src) {
    const v6 = opts.src.address.includes(":");
    const dst = opts.dst ?? { address: v6 ? "::1" : "127.0.0.1", port: 25 };
    family = v6 ? 2 : 1;
    addresses = new Uint8Array(v6 ? 36 : 12);
    const view = new DataView(addresses.buffer);
    if (v6) {
      writeV6(view, 0, parseIPv6(opts.src.address) as bigint);
      writeV6(view, 16, parseIPv6(dst.address) as bigint);
      view.setUint16(32, opts.src.port);
      view.setUint16(34, dst.port);
    } else {
      view.setUint32(0, parseIPv4(opts.src.address) as number);
      view.setUint32(4, parseIPv4(dst.address) as number);
      view.setUint16(8, opts.src.port);
      view.setUint16(10, dst.port);
    }
  }
  const payload = addresses.length + tlvs.length;
  const out = new Uint8Array(16 + payload);
  out.set(V2_SIGNATURE);
  out[12] = 0x20 | command;
  out[13] = opts.src ? (family << 4) | 1 : 0;
  out[14] = payload >> 8;
  out[15] = payload & 0xff;
  out.set(addresses, 16);
  out.set(tlvs, 16 + addresses.length);
  return out;
}

function writeV6(view: DataView, offset: number, value: bigint): void {
  view.setBigUint64(offset, value >> 64n);
  view.setBigUint64(offset + 8, value & 0xffffffffffffffffn);
}

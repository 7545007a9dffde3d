/**
 * Reads a PROXY protocol header off a fresh connection, before any SMTP byte, within
 * a deadline. It reads nothing it does not need beyond the chunk that ends the header;
 * those extra bytes (a pipelined command, a TLS ClientHello) are handed back.
 */

import { parseProxyHeader, type ProxyHeader, V2_MAX_LENGTH } from "./proxy_protocol.ts";

/** Why a header was refused: the reason goes into the one log line. */
export class ProxyHeaderError extends Error {}

/** A header and the bytes read after it, which belong to the stream. */
export interface ProxyRead {
  header: ProxyHeader;
  rest: Uint8Array;
}

/**
 * Reads chunks until the header is complete; throws ProxyHeaderError when it is
 * malformed, oversized, cut off by the peer, or not complete within `timeoutMs`
 * (then the connection is closed to end the pending read).
 */
export async function readProxyHeader(conn: Deno.Conn, timeoutMs: number): Promise<ProxyRead> {
  const buffer = new Uint8Array(V2_MAX_LENGTH);
  let filled = 0;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch { /* closed */ }
  }, timeoutMs);
  try {
    while (true) {
      let n: number | null;
      try {
        n = await conn.read(buffer.subarray(filled));
      } catch (e) {
        if (timedOut) throw new ProxyHeaderError(`no complete header within ${timeoutMs} ms`);
        throw new ProxyHeaderError(`read failed: ${e instanceof Error ? e.message : e}`);
      }
      if (n === null) throw new ProxyHeaderError(`connection closed after ${filled} header bytes`);
      filled += n;
      const parsed = parseProxyHeader(buffer.subarray(0, filled));
      if (parsed.kind === "error") throw new ProxyHeaderError(parsed.reason);
      if (parsed.kind === "done") {
        return { header: parsed.header, rest: buffer.slice(parsed.length, filled) };
      }
      // The parser refuses anything longer than the buffer, so it is never full here.
    }
  } finally {
    clearTimeout(timer);
  }
}

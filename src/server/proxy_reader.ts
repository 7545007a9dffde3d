/**
 * Reads a PROXY protocol header off a fresh connection, before any SMTP byte, within
 * a deadline. It reads nothing it does not need beyond the chunk that ends the header;
 * those extra bytes (a pipelined command, a TLS ClientHello) are handed back, with
 * the client address the header names.
 */

import { errorMessage, type Logger } from "../ops/log.ts";
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

/** What `proxiedClient` needs around the connection. */
export interface ProxiedClientOptions {
  /** The connection id for the log lines. */
  id: string;
  timeoutMs: number;
  /** The server's shutdown: a stop does not wait for a header still to come. */
  signal: AbortSignal;
  log: Logger;
}

/**
 * The client a balancer's header names (its own address for LOCAL and UNKNOWN) and
 * the bytes after the header; undefined, with one log line and the connection
 * closed, when there is no valid header.
 */
export async function proxiedClient(
  conn: Deno.Conn,
  opts: ProxiedClientOptions,
): Promise<{ client: Deno.NetAddr; rest: Uint8Array } | undefined> {
  const peer = conn.remoteAddr as Deno.NetAddr;
  const close = () => {
    try {
      conn.close();
    } catch { /* closed */ }
  };
  opts.signal.addEventListener("abort", close);
  let read: ProxyRead;
  try {
    read = await readProxyHeader(conn, opts.timeoutMs);
  } catch (e) {
    opts.log.warn("proxy header refused", {
      conn: opts.id,
      peer: peer.hostname,
      error: e instanceof ProxyHeaderError ? e.message : errorMessage(e),
    });
    close();
    return undefined;
  } finally {
    opts.signal.removeEventListener("abort", close);
  }
  if (opts.signal.aborted) {
    close();
    return undefined;
  }
  const { header, rest } = read;
  const client: Deno.NetAddr = header.source
    ? { transport: "tcp", hostname: header.source.address, port: header.source.port }
    : peer;
  opts.log.info("proxy", {
    conn: opts.id,
    peer: peer.hostname,
    client: client.hostname,
    version: header.version,
    command: header.command,
  });
  return { client, rest };
}

/**
 * The byte transport under a session: a plain TCP connection or TLS. It can be
 * replaced under a live session (STARTTLS): Deno.startTls is client-only, so the
 * server side wraps the same connection in node:tls's TLSSocket (see DESIGN.md).
 */

import { Duplex } from "node:stream";
import { type SecureContext, TLSSocket } from "node:tls";
import { BufferPool } from "../bytes.ts";

/** Reads and writes raw bytes; one reader at a time, the session's task. */
export interface Transport {
  /** The next chunk of bytes, or null at end of input. */
  read(): Promise<Uint8Array | null>;
  write(bytes: Uint8Array): Promise<void>;
  close(): void;
  /** Runs a server-side TLS handshake over this transport and returns the secure one. */
  startTls(context: SecureContext, timeoutMs: number): Promise<Transport>;
  /** The negotiated TLS protocol, if this transport is secure (e.g. "TLSv1.3"). */
  readonly tlsProtocol?: string;
}

/** Read buffers of closed connections, for the next ones. */
const buffers = new BufferPool(64 * 1024, 64);

/** A Deno.Conn (from Deno.listen or Deno.listenTls). */
export class ConnTransport implements Transport {
  #buffer = buffers.take();
  #reading = false;
  #closed = false;
  /** Bytes already read off the connection (after a PROXY header), served first. */
  #prefix: Uint8Array | undefined;

  constructor(readonly conn: Deno.Conn, readonly tlsProtocol?: string, prefix?: Uint8Array) {
    this.#prefix = prefix && prefix.length > 0 ? prefix : undefined;
  }

  async read(): Promise<Uint8Array | null> {
    const prefix = this.#prefix;
    if (prefix) {
      this.#prefix = undefined;
      return prefix;
    }
    this.#reading = true;
    try {
      const n = await this.conn.read(this.#buffer);
      if (n === null) return null;
      return this.#buffer.subarray(0, n);
    } finally {
      this.#reading = false;
    }
  }

  async write(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) offset += await this.conn.write(bytes.subarray(offset));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch { /* already closed by the peer */ }
    // Kept for another connection only if no read can still land in it.
    if (!this.#reading) buffers.give(this.#buffer);
  }

  startTls(context: SecureContext, timeoutMs: number): Promise<Transport> {
    // No read is pending (the session reads one chunk at a time), so the streams are free.
    const prefix = this.#prefix;
    this.#prefix = undefined;
    const readable = prefix ? prefixed(prefix, this.conn.readable) : this.conn.readable;
    const duplex = Duplex.fromWeb({ readable, writable: this.conn.writable });
    const socket = new TLSSocket(duplex, { isServer: true, secureContext: context });
    return handshake(socket, timeoutMs, () => this.close());
  }
}

/** A TLS session layered by node:tls over another transport's stream. */
class NodeTlsTransport implements Transport {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #closed = false;

  constructor(
    readonly socket: TLSSocket,
    readonly tlsProtocol: string,
    readonly closeInner: () => void,
  ) {
    const web = Duplex.toWeb(socket);
    this.#reader = (web.readable as ReadableStream<Uint8Array>).getReader();
    this.#writer = (web.writable as WritableStream<Uint8Array>).getWriter();
  }

  async read(): Promise<Uint8Array | null> {
    const { value, done } = await this.#reader.read();
    if (done) return null;
    return value instanceof Uint8Array ? value : new Uint8Array(value);
  }

  async write(bytes: Uint8Array): Promise<void> {
    // Copy: the caller may reuse its buffer before the TLS layer has encrypted it.
    await this.#writer.write(bytes.slice());
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.socket.destroy();
    this.closeInner();
  }

  startTls(): Promise<Transport> {
    return Promise.reject(new Error("already using TLS"));
  }
}

function handshake(
  socket: TLSSocket,
  timeoutMs: number,
  closeInner: () => void,
): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      socket.destroy();
      closeInner();
      reject(new Error("TLS handshake timed out"));
    }, timeoutMs);
    const onSecure = () => {
      cleanup();
      resolve(new NodeTlsTransport(socket, socket.getProtocol() ?? "TLS", closeInner));
    };
    const onError = (e: Error) => {
      cleanup();
      socket.destroy();
      closeInner();
      reject(e);
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.off("secure", onSecure);
      socket.off("error", onError);
    };
    socket.once("secure", onSecure);
    socket.once("error", onError);
  });
}

/** `inner` with `first` in front: a TLS handshake whose start came with the PROXY header. */
function prefixed(
  first: Uint8Array,
  inner: ReadableStream<Uint8Array>,
): ReadableStream<Uint8Array> {
  const reader = inner.getReader();
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(first);
    },
    async pull(controller) {
      const { value, done } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/**
 * The socket the upstream client runs on: a `Deno.TcpConn` dressed as a node `net.Socket`,
 * so that connecting needs only `--allow-net=host:port` (see the class comment).
 */

import { Buffer } from "node:buffer";
import { Duplex } from "node:stream";

/**
 * A `net.Socket` stand-in over a `Deno.TcpConn`, handed to nodemailer as its `connection`.
 *
 * Why: nodemailer resolves names with node:dns and connects node:net to the resulting IPs, so
 * Deno would demand --allow-net for the bare host name AND every IP of the smarthost. A
 * connection opened with `Deno.connect({ hostname })` needs only `--allow-net=host:port`.
 * nodemailer then runs STARTTLS / implicit TLS over it with node:tls, which accepts any Duplex.
 */
export class DenoSocket extends Duplex {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly #conn: Deno.TcpConn;
  #timeoutMs = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #reading = false;

  constructor(conn: Deno.TcpConn) {
    super();
    this.#conn = conn;
    const remote = conn.remoteAddr;
    const local = conn.localAddr;
    this.remoteAddress = remote.hostname;
    this.remotePort = remote.port;
    this.localAddress = local.hostname;
    this.localPort = local.port;
  }

  /** Opens a TCP connection, bounded by `timeoutMs`. */
  static async connect(hostname: string, port: number, timeoutMs: number): Promise<DenoSocket> {
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      return new DenoSocket(await Deno.connect({ hostname, port, transport: "tcp", signal }));
    } catch (e) {
      if (signal.aborted) throw new Error(`connection timed out after ${timeoutMs} ms`);
      throw e;
    }
  }

  override _read(): void {
    if (this.#reading) return;
    this.#reading = true;
    void this.#pump();
  }

  async #pump(): Promise<void> {
    const buf = new Uint8Array(16 * 1024);
    try {
      while (!this.destroyed) {
        const n = await this.#conn.read(buf);
        if (n === null) {
          this.#reading = false;
          this.push(null);
          return;
        }
        this.#touch();
        if (!this.push(Buffer.from(buf.subarray(0, n)))) {
          this.#reading = false;
          return;
        }
      }
    } catch (e) {
      this.#reading = false;
      if (!this.destroyed) this.destroy(e instanceof Error ? e : new Error(String(e)));
    }
  }

  override _write(
    chunk: Uint8Array,
    _encoding: string,
    callback: (error?: Error | null) => void,
  ): void {
    this.#touch();
    this.#writeAll(chunk).then(() => callback(), (e) => callback(e));
  }

  async #writeAll(data: Uint8Array): Promise<void> {
    let off = 0;
    while (off < data.length) off += await this.#conn.write(data.subarray(off));
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#conn.closeWrite().then(() => callback(), () => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.#timer);
    this.#timeoutMs = 0;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    callback(error);
  }

  /** Inactivity timeout like net.Socket: emits 'timeout' after `ms` without reads or writes. */
  setTimeout(ms: number, callback?: () => void): this {
    this.#timeoutMs = ms;
    if (callback) this.once("timeout", callback);
    this.#touch();
    return this;
  }

  #touch(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#timeoutMs > 0 && !this.destroyed) {
      this.#timer = setTimeout(() => this.emit("timeout"), this.#timeoutMs);
    }
  }

  setKeepAlive(enable = false): this {
    try {
      this.#conn.setKeepAlive(enable);
    } catch {
      // not fatal
    }
    return this;
  }

  setNoDelay(noDelay = true): this {
    try {
      this.#conn.setNoDelay(noDelay);
    } catch {
      // not fatal
    }
    return this;
  }
}

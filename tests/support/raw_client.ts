/**
 * A byte-level SMTP client for tests that must send what no polite client sends
 * (smuggling attempts, pipelined plaintext after STARTTLS, half messages).
 */

/** One parsed reply: code and the text of each line. */
export interface RawReply {
  code: number;
  lines: string[];
  /** The exact text received for this reply. */
  raw: string;
}

const encoder = new TextEncoder();

/** A TCP connection that reads SMTP replies. */
export class RawClient {
  #buffer = "";
  #decoder = new TextDecoder();

  private constructor(readonly conn: Deno.Conn) {}

  /** Connects (from `localAddress` if given, e.g. 127.0.0.2) and returns the client. */
  static async connect(port: number, opts: { hostname?: string } = {}): Promise<RawClient> {
    const conn = await Deno.connect({ hostname: opts.hostname ?? "127.0.0.1", port });
    return new RawClient(conn);
  }

  /** Sends text or bytes as they are. */
  async send(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    let offset = 0;
    while (offset < bytes.length) offset += await this.conn.write(bytes.subarray(offset));
  }

  /** Reads the next complete reply; rejects after `timeoutMs` or at end of stream. */
  async reply(timeoutMs = 10_000): Promise<RawReply> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const parsed = this.#take();
      if (parsed) return parsed;
      const chunk = await this.#read(deadline - Date.now());
      if (chunk === null) {
        throw new Error(`connection closed; unparsed: ${JSON.stringify(this.#buffer)}`);
      }
      this.#buffer += this.#decoder.decode(chunk, { stream: true });
    }
  }

  /** Reads `n` replies. */
  async replies(n: number, timeoutMs = 10_000): Promise<RawReply[]> {
    const out: RawReply[] = [];
    for (let i = 0; i < n; i++) out.push(await this.reply(timeoutMs));
    return out;
  }

  /** Resolves true if the server closes the connection within `timeoutMs`. */
  async closedByPeer(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        const chunk = await this.#read(deadline - Date.now());
        if (chunk === null) return true;
        this.#buffer += this.#decoder.decode(chunk, { stream: true });
      } catch (e) {
        if (e instanceof Error && e.message === "read timed out") return false;
        return true; // reset by peer
      }
    }
    return false;
  }

  /** Closes the connection (ignoring errors). */
  close(): void {
    this.#inflight?.catch(() => {});
    try {
      this.conn.close();
    } catch { /* closed */ }
  }

  #take(): RawReply | undefined {
    const lines: string[] = [];
    let consumed = 0;
    while (true) {
      const end = this.#buffer.indexOf("\r\n", consumed);
      if (end === -1) return undefined;
      const line = this.#buffer.slice(consumed, end);
      consumed = end + 2;
      lines.push(line.slice(4));
      if (line[3] !== "-") {
        const raw = this.#buffer.slice(0, consumed);
        this.#buffer = this.#buffer.slice(consumed);
        return { code: Number(line.slice(0, 3)), lines, raw };
      }
    }
  }

  #inflight: Promise<number | null> | undefined;
  #readBuffer = new Uint8Array(65536);

  /** One read at a time: a read that timed out stays pending and is reused by the next call. */
  async #read(ms: number): Promise<Uint8Array | null> {
    this.#inflight ??= this.conn.read(this.#readBuffer);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const n = await Promise.race([
        this.#inflight,
        new Promise<never>((_, reject) =>
          timer = setTimeout(() => reject(new Error("read timed out")), Math.max(0, ms))
        ),
      ]);
      this.#inflight = undefined;
      return n === null ? null : this.#readBuffer.slice(0, n);
    } finally {
      clearTimeout(timer);
    }
  }
}

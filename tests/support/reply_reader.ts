/**
 * A reply reader for tests that drive a raw Deno.Conn through STARTTLS or TLS: replies
 * are parsed as they arrive, and a timed-out read is kept for the next call.
 */

const encoder = new TextEncoder();

/**
 * Reads SMTP replies from any Deno.Conn (plain or TLS). A read that times out stays
 * pending and is reused, so no bytes are lost; `close()` settles it.
 */
export class ReplyReader {
  #text = "";
  #pending: Promise<number | null> | undefined;
  #buffer = new Uint8Array(16 * 1024);
  #decoder = new TextDecoder();

  constructor(readonly conn: Deno.Conn) {}

  /** Text received and not yet parsed into replies. */
  get unparsed(): string {
    return this.#text;
  }

  /** True when no read is in flight (required before Deno.startTls on the connection). */
  get idle(): boolean {
    return this.#pending === undefined;
  }

  /** Reads one chunk: "data", "eof" or "timeout" (the read stays pending). */
  async #fill(ms: number): Promise<"data" | "eof" | "timeout"> {
    this.#pending ??= this.conn.read(this.#buffer);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const result = await Promise.race([
      this.#pending.then((n) => n, () => null),
      new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), Math.max(0, ms))),
    ]);
    clearTimeout(timer);
    if (result === "timeout") return "timeout";
    this.#pending = undefined;
    if (result === null) return "eof";
    this.#text += this.#decoder.decode(this.#buffer.subarray(0, result), { stream: true });
    return "data";
  }

  /** The next complete reply (code and raw text). */
  async reply(timeoutMs = 10_000): Promise<{ code: number; raw: string }> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const m = /^(?:\d{3}-[^\r\n]*\r\n)*(\d{3})(?: [^\r\n]*)?\r\n/.exec(this.#text);
      if (m) {
        this.#text = this.#text.slice(m[0].length);
        return { code: Number(m[1]), raw: m[0] };
      }
      const outcome = await this.#fill(deadline - Date.now());
      if (outcome !== "data") {
        throw new Error(`no complete reply (${outcome}); got ${JSON.stringify(this.#text)}`);
      }
    }
  }

  /** True when nothing at all arrives within `ms`. */
  async quiet(ms: number): Promise<boolean> {
    if (this.#text !== "") return false;
    return await this.#fill(ms) === "timeout";
  }

  /** True when the peer closes the connection within `ms` (bytes before the end are kept). */
  async closed(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const outcome = await this.#fill(deadline - Date.now());
      if (outcome === "eof") return true;
      if (outcome === "timeout") return false;
    }
    return false;
  }

  close(): void {
    this.#pending?.catch(() => {});
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}

/** Writes all of `text` to the connection. */
export async function writeAll(conn: Deno.Conn, text: string): Promise<void> {
  const bytes = encoder.encode(text);
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

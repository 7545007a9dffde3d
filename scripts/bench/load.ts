/**
 * The load side of the benchmark: Postfix's `smtp-source` as the sender,
 * `smtp-sink` as the smarthost both relays deliver to, and a probe session that
 * times the reply to the final dot while the load runs.
 */

/** One load shape. */
export interface LoadShape {
  /** Payload bytes per message (smtp-source -l). */
  size: number;
  /** Messages in all. */
  messages: number;
  /** Parallel sessions. */
  sessions: number;
  /** True: many messages per session (-d); false: one message per connection. */
  reuse: boolean;
}

/** Runs smtp-source against 127.0.0.1:`port`; resolves with the seconds it took. */
export async function runSource(port: number, shape: LoadShape, timeoutMs: number) {
  const args = [
    "-4",
    "-l",
    String(shape.size),
    "-m",
    String(shape.messages),
    "-s",
    String(shape.sessions),
    "-f",
    "load@source.bench.invalid",
    "-t",
    "sink@sink.bench.invalid",
    "-M",
    "source.bench.invalid",
    ...(shape.reuse ? ["-d"] : []),
    `127.0.0.1:${port}`,
  ];
  const started = performance.now();
  const child = new Deno.Command("smtp-source", { args, stdout: "null", stderr: "piped" }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const seconds = (performance.now() - started) / 1000;
  const stderr = new TextDecoder().decode(out.stderr).trim();
  if (!out.success) throw new Error(`smtp-source failed (${out.code}): ${stderr}`);
  return { seconds, stderr };
}

/** smtp-sink on 127.0.0.1:`port`, counting what it receives (its -c counter). */
export function startSink(port: number) {
  const child = new Deno.Command("smtp-sink", {
    args: ["-u", "nobody", "-c", "-m", "512", `127.0.0.1:${port}`, "1024"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let received = 0;
  const pump = (async () => {
    const decoder = new TextDecoder();
    let tail = "";
    for await (const chunk of child.stdout) {
      tail = (tail + decoder.decode(chunk, { stream: true })).slice(-200);
      const all = [...tail.matchAll(/mesg=(\d+)/g)];
      if (all.length) received = Math.max(received, Number(all[all.length - 1][1]));
    }
  })();
  return {
    get received() {
      return received;
    },
    /** Resolves true once the sink has `count` messages, false at the deadline. */
    async waitFor(count: number, timeoutMs: number): Promise<boolean> {
      const until = performance.now() + timeoutMs;
      while (received < count) {
        if (performance.now() > until) return false;
        await new Promise((r) => setTimeout(r, 2));
      }
      return true;
    },
    async stop(): Promise<void> {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
      await pump.catch(() => {});
    },
  };
}

const encoder = new TextEncoder();

/**
 * A probe session beside the load: sends small messages one after another and
 * times each final "." to its reply, until `stop` is called or `max` samples.
 */
export class LatencyProbe {
  samples: number[] = [];
  #stopped = false;
  #done: Promise<void> | undefined;

  constructor(readonly port: number, readonly max = 2000) {}

  start(): void {
    this.#done = this.#run().catch(() => {});
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#done;
  }

  async #run(): Promise<void> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
    conn.setNoDelay(true);
    const reader = new ReplyReader(conn);
    try {
      await reader.reply();
      await write(conn, "EHLO probe.bench.invalid\r\n");
      await reader.reply();
      const body = "Subject: probe\r\n\r\n" + "x".repeat(76) + "\r\n";
      while (!this.#stopped && this.samples.length < this.max) {
        await write(conn, "MAIL FROM:<probe@source.bench.invalid>\r\n");
        await reader.reply();
        await write(conn, "RCPT TO:<sink@sink.bench.invalid>\r\n");
        await reader.reply();
        await write(conn, "DATA\r\n");
        await reader.reply();
        const t0 = performance.now();
        await write(conn, body + ".\r\n");
        const code = await reader.reply();
        if (code !== 250) throw new Error(`probe got ${code}`);
        this.samples.push(performance.now() - t0);
        // A probe paced like a client, not a 21st load session.
        await new Promise((r) => setTimeout(r, 5));
      }
      await write(conn, "QUIT\r\n");
    } finally {
      conn.close();
    }
  }
}

async function write(conn: Deno.Conn, text: string): Promise<void> {
  await writeAll(conn, encoder.encode(text));
}

/** Writes all of `bytes` to the connection. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** Reads whole (possibly multi-line) SMTP replies, one at a time. */
export class ReplyReader {
  #text = "";
  #buf = new Uint8Array(4096);
  constructor(readonly conn: Deno.Conn) {}

  /** The next reply's code. */
  async reply(): Promise<number> {
    return Number((await this.replyText()).slice(0, 3));
  }

  /** The next reply's text, all its lines (bounded: at most 10,000 reads). */
  async replyText(): Promise<string> {
    for (let i = 0; i < 10_000; i++) {
      const lines = this.#text.split("\r\n");
      for (let j = 0; j < lines.length - 1; j++) {
        if (lines[j][3] === " " || lines[j].length === 3) {
          const reply = lines.slice(0, j + 1).join("\r\n");
          this.#text = lines.slice(j + 1).join("\r\n");
          return reply;
        }
      }
      const n = await this.conn.read(this.#buf);
      if (n === null) throw new Error(`connection closed; got ${JSON.stringify(this.#text)}`);
      this.#text += new TextDecoder().decode(this.#buf.subarray(0, n));
    }
    throw new Error("no reply");
  }
}

/** The p-th percentile (0..100) of the samples, in ms. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

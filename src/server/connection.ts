/**
 * One client connection: reads bytes, splits lines, feeds the Session and carries
 * out its effects (replies, STARTTLS, DATA and BDAT into the spool, AUTH checks, close).
 * Replies to pipelined commands are written together (RFC 2920); a lone command
 * is answered at once.
 */

import type { SecureContext } from "node:tls";
import type { Logger } from "../ops/log.ts";
import { errorMessage } from "../ops/log.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { QueueRecord } from "../queue/record.ts";
import type { Spool } from "../queue/spool.ts";
import { type BdatCommand, ChunkReader } from "../smtp/bdat.ts";
import { DataScanner } from "../smtp/data.ts";
import type { Effect, Envelope, Step } from "../smtp/envelope.ts";
import { type Line, LineSplitter } from "../smtp/line_stream.ts";
import type { Authenticator } from "../smtp/policy.ts";
import { encodeReplies, type Reply } from "../smtp/reply.ts";
import { MAX_COMMAND_LINE, type Session } from "../smtp/session.ts";
import { IncomingMessage } from "./incoming.ts";
import type { Transport } from "./transport.ts";
import { IoTimeoutError, Watchdog } from "./watchdog.ts";

/** What a connection needs from the server around it. */
export interface ConnectionDeps {
  spool: Spool;
  log: Logger;
  metrics: Metrics;
  hostname: string;
  commandTimeoutMs: number;
  dataTimeoutMs: number;
  dataTotalTimeoutMs: number;
  tlsContext?: () => SecureContext;
  authenticator?: Authenticator;
  /** Called after a message is safely queued, so delivery can start at once. */
  onQueued?: (record: QueueRecord, bytes?: Uint8Array) => void;
  /** Aborted when the server begins a graceful shutdown. */
  shutdown: AbortSignal;
}

class ShutdownError extends Error {}

/** Runs one SMTP session over a transport until it ends. */
export class Connection {
  #transport: Transport;
  #splitter = new LineSplitter(MAX_COMMAND_LINE, true);
  #pending: Reply[] = [];
  /** Message data being read: after DATA, or one BDAT chunk (no message: a refused chunk). */
  #data: {
    reader: DataScanner | ChunkReader;
    message: IncomingMessage | undefined;
    deadline: number;
  } | undefined;
  /** The message of a BDAT transaction, kept between its chunks. */
  #chunked: { message: IncomingMessage; size: number; deadline: number } | undefined;
  #closed = false;
  /** When the command line being read must be complete (trickled bytes do not move it). */
  #lineDeadline: number | undefined;
  #watchdog = new Watchdog();
  #lines: Line[] = [];

  constructor(
    readonly id: string,
    transport: Transport,
    readonly session: Session,
    readonly deps: ConnectionDeps,
  ) {
    this.#transport = transport;
  }

  /** Serves the session; resolves when the connection is closed. Never throws. */
  async run(): Promise<void> {
    const { log } = this.deps;
    const client = this.session.client;
    log.info("connect", {
      conn: this.id,
      client: client.address,
      port: client.port,
      tls: client.tls || undefined,
    });
    // Idle sessions end at once on shutdown; one in a transaction may finish it (the server bounds the wait).
    const onShutdown = () => {
      if (this.#idle()) this.#watchdog.interrupt(new ShutdownError("shutdown"));
    };
    this.deps.shutdown.addEventListener("abort", onShutdown);
    try {
      this.#pending.push(this.session.greeting());
      await this.#flush();
      await this.#loop();
    } catch (e) {
      // The message being received, if any, is discarded in `finally`.
      if (e instanceof IoTimeoutError) {
        log.warn("timeout", { conn: this.id, client: client.address, state: this.session.state });
        this.#pending.push(...this.session.timeout().replies);
        await this.#flush().catch(() => {});
      } else if (e instanceof ShutdownError) {
        this.#pending.push(...this.session.shutdown().replies);
        await this.#flush().catch(() => {});
      } else {
        log.info("connection error", {
          conn: this.id,
          client: client.address,
          error: errorMessage(e),
        });
      }
    } finally {
      this.deps.shutdown.removeEventListener("abort", onShutdown);
      this.#watchdog.stop();
      await this.#abortData();
      this.#closed = true;
      this.#transport.close();
      log.info("disconnect", {
        conn: this.id,
        client: client.address,
        errors: this.session.errors,
      });
    }
  }

  async #loop(): Promise<void> {
    while (!this.#closed) {
      const chunk = await this.#read();
      if (chunk === null) {
        if (this.#data) {
          this.deps.log.warn("client disconnected in DATA", {
            conn: this.id,
            client: this.session.client.address,
          });
        }
        return;
      }
      let pos = 0;
      while (pos < chunk.length) {
        if (this.#data) {
          const end = await this.#dataChunk(chunk, pos);
          if (end === -1) break;
          pos = end;
          if ((await this.#endData()) === "close") return;
          continue;
        }
        const lines = this.#lines;
        lines.length = 0;
        pos = this.#splitter.take(chunk, pos, lines);
        for (const line of lines) {
          const step = this.session.receive(line);
          this.#pending.push(...step.replies);
          // RSET, EHLO or an error ended a BDAT transaction between chunks: drop its message.
          if (this.#chunked && this.session.state !== "bdat" && this.session.state !== "data") {
            await this.#chunked.message.abort();
            this.#chunked = undefined;
          }
          if (!step.effect) continue;
          // STARTTLS: what follows in this chunk is plaintext sent before the handshake.
          const outcome = await this.#effect(step.effect, chunk.length - pos);
          if (outcome === "close") return;
          if (outcome === "restart") pos = chunk.length;
        }
      }
      await this.#flush();
    }
  }

  /** Carries out an effect; "restart" means discard the rest of the input read so far. */
  async #effect(effect: Effect, unread = 0): Promise<"continue" | "close" | "restart"> {
    switch (effect.kind) {
      case "close":
        await this.#flush();
        this.#closed = true;
        return "close";
      case "starttls":
        return await this.#startTls(unread);
      case "data":
        await this.#beginData(effect.envelope);
        return "continue";
      case "chunk":
        await this.#beginChunk(effect.chunk, effect.envelope, effect.discard);
        // BDAT 0: nothing to read, the chunk is complete now.
        return (this.#data?.reader as ChunkReader).done ? await this.#endData() : "continue";
      case "authenticate": {
        await this.#flush();
        const outcome = this.deps.authenticator
          ? await this.deps.authenticator.verify(
            effect.user,
            effect.password,
            this.session.client.address,
          )
          : "failed";
        this.deps.log.info(outcome === "ok" ? "auth ok" : "auth failed", {
          conn: this.id,
          client: this.session.client.address,
          user: effect.user,
          outcome: outcome === "ok" ? undefined : outcome,
        });
        this.deps.metrics.inc(outcome === "ok" ? "auth_success_total" : "auth_failure_total");
        return await this.#reply(this.session.authFinished(outcome));
      }
    }
  }

  async #startTls(unread: number): Promise<"close" | "restart"> {
    await this.#flush();
    // RFC 3207 §4.2 / CVE-2011-0411: bytes pipelined after STARTTLS are never executed.
    const discarded = unread + this.#splitter.buffered;
    this.#splitter.reset();
    try {
      this.#transport = await this.#transport.startTls(
        this.deps.tlsContext!(),
        this.deps.commandTimeoutMs,
      );
    } catch (e) {
      this.deps.log.warn("starttls failed", {
        conn: this.id,
        client: this.session.client.address,
        error: errorMessage(e),
      });
      this.#closed = true;
      return "close";
    }
    this.session.tlsStarted();
    this.deps.log.info("starttls", {
      conn: this.id,
      client: this.session.client.address,
      protocol: this.#transport.tlsProtocol,
      discarded: discarded || undefined,
    });
    return "restart";
  }

  async #beginData(envelope: Envelope): Promise<void> {
    // The 354 goes out now: the client waits for it before sending the message.
    await this.#flush();
    this.#data = {
      reader: new DataScanner(this.session.options.maxMessageSize),
      message: await IncomingMessage.open(this.deps, this.id, envelope),
      deadline: Date.now() + this.deps.dataTotalTimeoutMs,
    };
  }

  /** Starts reading a BDAT chunk (RFC 3030); a transaction's first chunk opens its message. */
  async #beginChunk(chunk: BdatCommand, envelope: Envelope | undefined, discard: boolean) {
    const max = this.session.options.maxMessageSize;
    if (discard) {
      const deadline = Date.now() + this.deps.dataTotalTimeoutMs;
      this.#data = { reader: new ChunkReader(chunk, 0, max), message: undefined, deadline };
      return;
    }
    if (envelope) {
      this.#chunked = {
        message: await IncomingMessage.open(this.deps, this.id, envelope),
        size: 0,
        deadline: Date.now() + this.deps.dataTotalTimeoutMs,
      };
    }
    const { message, size, deadline } = this.#chunked!;
    this.#data = { reader: new ChunkReader(chunk, size, max), message, deadline };
  }

  /** Feeds message data from `chunk[pos..]`; returns the offset after its end, or -1. */
  async #dataChunk(chunk: Uint8Array, pos: number): Promise<number> {
    const data = this.#data!;
    const { spans, end } = data.reader.scan(chunk, pos);
    await data.message?.write(spans);
    return end;
  }

  /** The end of the data (or of a BDAT chunk) was read: stores the message and replies. */
  async #endData(): Promise<"continue" | "close"> {
    const { reader, message } = this.#data!;
    this.#data = undefined;
    // The next command's deadline starts now, not at the read before DATA (which may be long past).
    this.#lineDeadline = undefined;
    if (reader instanceof ChunkReader) {
      // A refused chunk, or one that is not the last: the session answers for the chunk.
      if (!message) return await this.#reply(this.session.dataFinished({ kind: "chunk" }));
      this.#chunked!.size = reader.size;
      if (!reader.chunk.last && !reader.tooBig) {
        return await this.#reply(this.session.dataFinished({ kind: "chunk" }));
      }
      this.#chunked = undefined;
    }
    const { result, queued } = await message!.finish(reader.size, reader.tooBig);
    try {
      const outcome = await this.#reply(this.session.dataFinished(result));
      // Reply first: the promise is kept by the fsync, not by delivery.
      if (queued) await this.#flush();
      return outcome;
    } finally {
      // Queued even if the reply could not be written (client gone): delivery starts now.
      if (queued) this.deps.onQueued?.(queued.record, queued.bytes);
    }
  }

  /** Queues a step's replies; if the session ends with it, flushes and closes. */
  async #reply(step: Step): Promise<"continue" | "close"> {
    this.#pending.push(...step.replies);
    if (step.effect?.kind !== "close") return "continue";
    await this.#flush();
    this.#closed = true;
    return "close";
  }

  async #abortData(): Promise<void> {
    const data = this.#data;
    const chunked = this.#chunked;
    this.#data = undefined;
    this.#chunked = undefined;
    await data?.message?.abort();
    await chunked?.message.abort();
  }

  async #flush(): Promise<void> {
    if (this.#pending.length === 0) return;
    const bytes = encodeReplies(this.#pending);
    this.#pending = [];
    // A client that stops reading cannot hold the session: writes have the command deadline too.
    await this.#watchdog.guard(
      this.#transport.write(bytes),
      Date.now() + this.deps.commandTimeoutMs,
      "write timeout",
    );
  }

  /** Reads the next chunk within the timeout that applies in the current state. */
  #read(): Promise<Uint8Array | null> {
    const now = Date.now();
    let deadline: number;
    if (this.#data) {
      deadline = Math.min(now + this.deps.dataTimeoutMs, this.#data.deadline);
    } else {
      // The command deadline is for a whole line: trickled bytes do not extend it.
      if (this.#lineDeadline === undefined || !this.#splitter.inLine) {
        this.#lineDeadline = now + this.deps.commandTimeoutMs;
      }
      deadline = this.#lineDeadline;
    }
    if (this.deps.shutdown.aborted && this.#idle()) {
      return Promise.reject(new ShutdownError("shutdown"));
    }
    return this.#watchdog.guard(this.#transport.read(), deadline, "timeout");
  }

  /** Between transactions, with no partial command read: safe to end for a shutdown. */
  #idle(): boolean {
    const state = this.session.state;
    return !this.#data && !this.#splitter.inLine && state !== "mail" && state !== "rcpt" &&
      state !== "bdat" && state !== "auth";
  }
}

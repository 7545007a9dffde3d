/**
 * One client connection: reads bytes, splits lines, feeds the Session and carries
 * out its effects (replies, STARTTLS, DATA into the spool, AUTH checks, close).
 * Replies to pipelined commands are written together (RFC 2920); a lone command
 * is answered at once.
 */

import type { SecureContext } from "node:tls";
import type { Logger } from "../ops/log.ts";
import { errorMessage } from "../ops/log.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { MessageWriter } from "../queue/message_writer.ts";
import type { QueueRecord } from "../queue/record.ts";
import type { Spool } from "../queue/spool.ts";
import { DataScanner } from "../smtp/data.ts";
import type { DataResult, Effect, Envelope, Step } from "../smtp/envelope.ts";
import { type Line, LineSplitter } from "../smtp/line_stream.ts";
import type { Authenticator } from "../smtp/policy.ts";
import { receivedHeader } from "../smtp/received.ts";
import { encodeReplies, type Reply } from "../smtp/reply.ts";
import { MAX_COMMAND_LINE, type Session } from "../smtp/session.ts";
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

const encoder = new TextEncoder();

class ShutdownError extends Error {}

/** Runs one SMTP session over a transport until it ends. */
export class Connection {
  #transport: Transport;
  #splitter = new LineSplitter(MAX_COMMAND_LINE, true);
  #pending: Reply[] = [];
  #data: {
    scanner: DataScanner;
    writer: MessageWriter | undefined;
    envelope: Envelope;
    deadline: number;
  } | undefined;
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
    let writer: MessageWriter | undefined;
    try {
      writer = await this.deps.spool.createMessage({
        kind: "message",
        sender: envelope.sender,
        recipients: envelope.recipients,
        smtputf8: envelope.smtputf8,
        body: envelope.body,
        client: envelope.client,
        helo: envelope.helo,
        user: envelope.user,
        protocol: envelope.protocol,
      });
      writer.write(
        encoder.encode(
          receivedHeader(envelope, {
            hostname: this.deps.hostname,
            id: writer.id,
            date: new Date(),
          }),
        ),
      );
    } catch (e) {
      this.deps.log.error("spool write failed", {
        conn: this.id,
        id: writer?.id,
        error: errorMessage(e),
      });
      await writer?.abort();
      writer = undefined;
    }
    this.#data = {
      scanner: new DataScanner(this.session.options.maxMessageSize),
      writer,
      envelope,
      deadline: Date.now() + this.deps.dataTotalTimeoutMs,
    };
  }

  /** Feeds message data from `chunk[pos..]`; returns the offset after the end marker, or -1. */
  async #dataChunk(chunk: Uint8Array, pos: number): Promise<number> {
    const data = this.#data!;
    const { spans, end } = data.scanner.scan(chunk, pos);
    if (data.writer) {
      try {
        for (const span of spans) data.writer.write(span);
      } catch (e) {
        this.deps.log.error("spool write failed", {
          conn: this.id,
          id: data.writer.id,
          error: errorMessage(e),
        });
        await data.writer.abort();
        data.writer = undefined;
      }
    }
    return end;
  }

  /** The end of data was read: stores the message and replies. */
  async #endData(): Promise<"continue" | "close"> {
    const data = this.#data!;
    this.#data = undefined;
    // The next command's deadline starts now, not at the read before DATA (which may be long past).
    this.#lineDeadline = undefined;
    const { writer, envelope } = data;
    const logFields = {
      conn: this.id,
      client: envelope.client.address,
      from: `<${envelope.sender}>`,
      rcpts: envelope.recipients.length,
      size: data.scanner.size,
    };
    if (data.scanner.tooBig) {
      await writer?.abort();
      this.deps.log.warn("rejected: message too big", logFields);
      this.deps.metrics.inc("messages_rejected_total");
      return await this.#dataFinished({ kind: "too-big" });
    }
    if (!writer) {
      this.deps.metrics.inc("messages_rejected_total");
      return await this.#dataFinished({ kind: "store-failed" });
    }
    try {
      await writer.commit();
    } catch (e) {
      await writer.abort();
      this.deps.log.error("spool commit failed", {
        ...logFields,
        id: writer.id,
        error: errorMessage(e),
      });
      this.deps.metrics.inc("messages_rejected_total");
      return await this.#dataFinished({ kind: "store-failed" });
    }
    this.deps.log.info("queued", { ...logFields, id: writer.id });
    this.deps.metrics.inc("messages_accepted_total");
    this.deps.metrics.inc("bytes_accepted_total", writer.size);
    try {
      const outcome = await this.#dataFinished({ kind: "stored", id: writer.id });
      // Reply first: the promise is kept by the fsync, not by delivery.
      await this.#flush();
      return outcome;
    } finally {
      // Queued even if the reply could not be written (client gone): delivery starts now.
      this.deps.onQueued?.({ ...writer.record, size: writer.size }, writer.bytes);
    }
  }

  /** Sends the reply to the end of DATA; the session may close (too many errors). */
  #dataFinished(result: DataResult): Promise<"continue" | "close"> {
    return this.#reply(this.session.dataFinished(result));
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
    if (!data) return;
    this.#data = undefined;
    await data.writer?.abort();
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
      state !== "auth";
  }
}

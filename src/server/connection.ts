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
import type { MessageWriter, Spool } from "../queue/spool.ts";
import { newQueueId, newRecord, type QueueRecord } from "../queue/record.ts";
import { DataReader } from "../smtp/data.ts";
import type { DataResult, Effect, Envelope, Step } from "../smtp/envelope.ts";
import { LineSplitter } from "../smtp/line_stream.ts";
import type { Authenticator } from "../smtp/policy.ts";
import { receivedHeader } from "../smtp/received.ts";
import { encodeReplies, type Reply } from "../smtp/reply.ts";
import { MAX_COMMAND_LINE, type Session } from "../smtp/session.ts";
import type { Transport } from "./transport.ts";
import { DeadlineError, withTimeout } from "../deadline.ts";

/** Longest piece of a DATA line held in memory; longer lines are streamed in fragments. */
const DATA_FRAGMENT = 64 * 1024;

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
  onQueued?: (record: QueueRecord) => void;
  /** Aborted when the server begins a graceful shutdown. */
  shutdown: AbortSignal;
}

const encoder = new TextEncoder();

class TimeoutError extends Error {}
class ShutdownError extends Error {}

/** Runs one SMTP session over a transport until it ends. */
export class Connection {
  #transport: Transport;
  #splitter = new LineSplitter(MAX_COMMAND_LINE);
  #pending: Reply[] = [];
  #data: {
    reader: DataReader;
    writer: MessageWriter | undefined;
    envelope: Envelope;
    deadline: number;
  } | undefined;
  #closed = false;
  /** When the command line being read must be complete (trickled bytes do not move it). */
  #lineDeadline: number | undefined;

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
    try {
      this.#pending.push(this.session.greeting());
      await this.#flush();
      await this.#loop();
    } catch (e) {
      // The message being received, if any, is discarded in `finally`.
      if (e instanceof TimeoutError) {
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
      const lines = this.#splitter.push(chunk);
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i];
        if (this.#data) {
          if ((await this.#dataLine(line)) === "close") return;
          continue;
        }
        const step = this.session.receive(line);
        this.#pending.push(...step.replies);
        if (step.effect) {
          // Lines already split from this chunk after STARTTLS are discarded with the rest.
          const unread = step.effect.kind !== "starttls" ? 0 : lines.slice(i + 1).reduce(
            (n, l) => n + l.bytes.length + (l.complete ? 2 : 0),
            0,
          );
          const outcome = await this.#effect(step.effect, unread);
          if (outcome === "close") return;
          if (outcome === "restart") break; // STARTTLS: the rest of this chunk was plaintext
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
    const id = newQueueId();
    const reader = new DataReader(this.session.options.maxMessageSize);
    this.#splitter.maxLength = DATA_FRAGMENT;
    let writer: MessageWriter | undefined;
    try {
      writer = await this.deps.spool.createMessage(id);
      await writer.write(
        encoder.encode(
          receivedHeader(envelope, { hostname: this.deps.hostname, id, date: new Date() }),
        ),
      );
    } catch (e) {
      this.deps.log.error("spool write failed", { conn: this.id, id, error: errorMessage(e) });
      await writer?.abort();
      writer = undefined;
    }
    this.#data = {
      reader,
      writer,
      envelope,
      deadline: Date.now() + this.deps.dataTotalTimeoutMs,
    };
  }

  /** Feeds one line of message data; at its end, stores the message and replies. */
  async #dataLine(line: Parameters<DataReader["push"]>[0]): Promise<"continue" | "close"> {
    const data = this.#data!;
    const out = data.reader.push(line);
    if (data.writer) {
      try {
        for (const part of out.parts) await data.writer.write(part);
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
    if (!out.end) return "continue";
    this.#data = undefined;
    this.#splitter.maxLength = MAX_COMMAND_LINE;
    // The next command's deadline starts now, not at the read before DATA (which may be long past).
    this.#lineDeadline = undefined;
    const { writer, envelope } = data;
    const logFields = {
      conn: this.id,
      client: envelope.client.address,
      from: `<${envelope.sender}>`,
      rcpts: envelope.recipients.length,
      size: data.reader.size,
    };
    if (data.reader.tooBig) {
      await writer?.abort();
      this.deps.log.warn("rejected: message too big", logFields);
      this.deps.metrics.inc("messages_rejected_total");
      return await this.#dataFinished({ kind: "too-big" });
    }
    if (!writer) {
      this.deps.metrics.inc("messages_rejected_total");
      return await this.#dataFinished({ kind: "store-failed" });
    }
    const record = newRecord({
      id: writer.id,
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
    try {
      await writer.commit(record);
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
      this.deps.onQueued?.({ ...record, size: writer.size });
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
    await withTimeout(this.#transport.write(bytes), this.deps.commandTimeoutMs).catch((e) => {
      throw e instanceof DeadlineError ? new TimeoutError("write timeout") : e;
    });
  }

  /** Reads the next chunk within the timeout that applies in the current state. */
  #read(): Promise<Uint8Array | null> {
    const now = Date.now();
    let ms: number;
    if (this.#data) {
      ms = Math.min(this.deps.dataTimeoutMs, Math.max(0, this.#data.deadline - now));
    } else {
      // The command deadline is for a whole line: trickled bytes do not extend it.
      if (this.#lineDeadline === undefined || this.#splitter.buffered === 0) {
        this.#lineDeadline = now + this.deps.commandTimeoutMs;
      }
      ms = Math.max(0, this.#lineDeadline - now);
    }
    return new Promise((resolve, reject) => {
      let settled = false;
      const onAbort = () => {
        // Idle sessions end at once; one in a transaction may finish it (the server bounds the wait).
        if (this.#idle()) finish(() => reject(new ShutdownError("shutdown")));
      };
      const timer = setTimeout(() => finish(() => reject(new TimeoutError("timeout"))), ms);
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.deps.shutdown.removeEventListener("abort", onAbort);
        fn();
      };
      if (this.deps.shutdown.aborted && this.#idle()) {
        finish(() => reject(new ShutdownError("shutdown")));
        return;
      }
      this.deps.shutdown.addEventListener("abort", onAbort);
      this.#transport.read().then(
        (chunk) => finish(() => resolve(chunk)),
        (e) => finish(() => reject(e)),
      );
    });
  }

  /** Between transactions, with no partial command read: safe to end for a shutdown. */
  #idle(): boolean {
    const state = this.session.state;
    return !this.#data && this.#splitter.buffered === 0 && state !== "mail" && state !== "rcpt" &&
      state !== "auth";
  }
}

/**
 * One message being received, by DATA or by BDAT chunks: its spool file (our Received:
 * header first), the bytes as they come, and the commit whose fsync earns the 250. A spool
 * error mid-message is remembered and answered at the end (451), never thrown at the client.
 */

import { errorMessage, type Logger } from "../ops/log.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { MessageWriter } from "../queue/message_writer.ts";
import type { QueueRecord } from "../queue/record.ts";
import type { Spool } from "../queue/spool.ts";
import type { DataResult, Envelope } from "../smtp/envelope.ts";
import { receivedHeader } from "../smtp/received.ts";

/** What receiving a message needs from the server. */
export interface IncomingDeps {
  spool: Spool;
  log: Logger;
  metrics: Metrics;
  hostname: string;
}

/** How a finished message went, and what to do once the reply is out. */
export interface Finished {
  result: DataResult;
  /** For a stored message: hands it to delivery (call after replying). */
  queued?: { record: QueueRecord; bytes?: Uint8Array };
}

const encoder = new TextEncoder();

/** A message whose data is arriving; `finish` or `abort` ends it. */
export class IncomingMessage {
  #writer: MessageWriter | undefined;

  private constructor(
    readonly deps: IncomingDeps,
    readonly conn: string,
    readonly envelope: Envelope,
    writer: MessageWriter | undefined,
  ) {
    this.#writer = writer;
  }

  /** Opens the spool file and writes the Received: header; a failure shows at `finish`. */
  static async open(
    deps: IncomingDeps,
    conn: string,
    envelope: Envelope,
  ): Promise<IncomingMessage> {
    let writer: MessageWriter | undefined;
    try {
      writer = await deps.spool.createMessage({
        kind: "message",
        sender: envelope.sender,
        recipients: envelope.recipients,
        smtputf8: envelope.smtputf8,
        body: envelope.body,
        client: envelope.client,
        helo: envelope.helo,
        user: envelope.user,
        protocol: envelope.protocol,
        dsn: envelope.dsn,
        recipientDsn: envelope.recipientDsn,
      });
      writer.write(
        encoder.encode(
          receivedHeader(envelope, { hostname: deps.hostname, id: writer.id, date: new Date() }),
        ),
      );
    } catch (e) {
      deps.log.error("spool write failed", { conn, id: writer?.id, error: errorMessage(e) });
      await writer?.abort();
      writer = undefined;
    }
    return new IncomingMessage(deps, conn, envelope, writer);
  }

  /** Appends message bytes (views are copied by the writer). */
  async write(spans: Uint8Array[]): Promise<void> {
    const writer = this.#writer;
    if (!writer || spans.length === 0) return;
    try {
      for (const span of spans) writer.write(span);
    } catch (e) {
      this.deps.log.error("spool write failed", {
        conn: this.conn,
        id: writer.id,
        error: errorMessage(e),
      });
      await writer.abort();
      this.#writer = undefined;
    }
  }

  /**
   * Ends the message: refused if it grew past the limit, else committed (fsync). `size` is
   * the message as the client sent it (without our Received: header), for a refusal's log.
   */
  async finish(size: number, tooBig: boolean): Promise<Finished> {
    const { log, metrics } = this.deps;
    const writer = this.#writer;
    this.#writer = undefined;
    const envelope = this.envelope;
    const fields = {
      conn: this.conn,
      client: envelope.client.address,
      from: `<${envelope.sender}>`,
      rcpts: envelope.recipients.length,
      size,
    };
    if (tooBig) {
      await writer?.abort();
      log.warn("rejected: message too big", fields);
      metrics.inc("messages_rejected_total");
      return { result: { kind: "too-big" } };
    }
    if (!writer) {
      metrics.inc("messages_rejected_total");
      return { result: { kind: "store-failed" } };
    }
    try {
      await writer.commit();
    } catch (e) {
      await writer.abort();
      log.error("spool commit failed", { ...fields, id: writer.id, error: errorMessage(e) });
      metrics.inc("messages_rejected_total");
      return { result: { kind: "store-failed" } };
    }
    // The size as stored, with our Received: header: what `queue list` shows too.
    log.info("queued", { ...fields, size: writer.size, id: writer.id });
    metrics.inc("messages_accepted_total");
    metrics.inc("bytes_accepted_total", writer.size);
    return {
      result: { kind: "stored", id: writer.id },
      queued: { record: { ...writer.record, size: writer.size }, bytes: writer.bytes },
    };
  }

  /** Discards the message (the client went away, or the session ended mid-message). */
  async abort(): Promise<void> {
    const writer = this.#writer;
    this.#writer = undefined;
    await writer?.abort();
  }
}

/**
 * One delivery lane: an upstream connection kept across messages, and the one
 * transaction it carries for a message (reuse, RSET after a pause, reconnect).
 * Failures become per-recipient results here; the worker decides what they mean.
 */

import { errorMessage, type Logger } from "../ops/log.ts";
import { messageStream, type OpenedMessage } from "../queue/message_reader.ts";
import type { QueueRecord } from "../queue/record.ts";
import { UnknownMessageError } from "../queue/spool.ts";
import { hygieneFor, streamWithAddition, withAddition } from "./header_hygiene.ts";
import type { UpstreamSession } from "./upstream.ts";
import { type OutgoingMessage, type RecipientResult, UpstreamError } from "./upstream_types.ts";

/** A connection idle longer than this is checked with RSET before the next message (ms). */
const IDLE_CHECK_MS = 500;

/** A message ready to send: its record and bytes (all of them in `head`, or the rest in `file`). */
export type Loaded = Omit<OpenedMessage, "file"> & { file?: Deno.FsFile };

/** A worker's lane: its connection (if open) and when it last carried a message. */
export interface Lane {
  session: UpstreamSession | undefined;
  done: Promise<void>;
  /** When its connection last finished a transaction (ms since epoch). */
  lastUsed: number;
  /** The settings changed (a reload): the next message goes on a new connection. */
  retire?: boolean;
  /** Which upstream (by name) its connection goes to. */
  upstream?: string;
  /** When it started, until its first connection is up: new lanes wait for it (slow start). */
  warmingSince?: number;
}

/** How long a new lane's first connection may take before the next lane starts anyway (ms). */
const SLOW_START_MS = 1000;

/**
 * Slow start: one new connection at a time, the next once it is up (or after a while), so a
 * burst costs the upstream a few logins, not `limit` at once (Gmail counts them). Returns how
 * many lanes may start now, and when to look again while one is still connecting.
 */
export function slowStart(
  lanes: Iterable<Lane>,
  limit: number,
  now: number,
): { free: number; warming: number } {
  let running = 0;
  let warming = Infinity;
  for (const lane of lanes) {
    running++;
    const until = lane.warmingSince === undefined ? 0 : lane.warmingSince + SLOW_START_MS;
    if (until > now) warming = Math.min(warming, until);
  }
  return { free: warming === Infinity ? Math.min(1, limit - running) : 0, warming };
}

/** What one transaction did. */
export interface Transaction {
  /** One result per pending recipient; absent when the message vanished (`queue delete`). */
  results?: RecipientResult[];
  /** Why the whole attempt failed, if it did. */
  attemptError?: string;
  /** The failure came before MAIL FROM (connect, TLS, login): the upstream's, not the message's. */
  connectFailed: boolean;
  /** The connection broke during the transaction: nothing after it is known delivered. */
  broken?: boolean;
}

/** How a lane reaches the upstream. */
export interface LaneOptions {
  connect: () => Promise<UpstreamSession>;
  messagesPerConnection: number;
  /** The configured host name: the right part of a Message-ID delivery adds. */
  hostname: string;
  /** Where a message that could not get its missing header fields is noted. */
  log?: Logger;
  /** Called once a new connection is up, before the message is sent. */
  onConnected?: () => void;
  /** Called with the seconds from sending the message to the upstream's last reply. */
  onReplied?: (seconds: number) => void;
}

/**
 * Opens the lane's connection if it has none (renewing a spent one first); returns why
 * that failed, if it did. A failure here says nothing about any message.
 */
export async function ensureConnected(lane: Lane, opts: LaneOptions): Promise<string | undefined> {
  try {
    await retireStale(lane, opts.messagesPerConnection);
    if (!lane.session) {
      lane.session = await opts.connect();
      opts.onConnected?.();
    }
    // Known alive now: the transaction that follows needs no RSET check of its own.
    lane.lastUsed = Date.now();
    return undefined;
  } catch (e) {
    await lane.session?.close().catch(() => {});
    lane.session = undefined;
    return errorMessage(e);
  }
}

/** Sends `opened` to the lane's pending recipients, reusing or replacing its connection. */
export async function transact(
  lane: Lane,
  opened: Loaded,
  pendingAddresses: string[],
  opts: LaneOptions,
): Promise<Transaction> {
  const record = opened.record;
  let phase: "connect" | "send" = "connect";
  try {
    await retireStale(lane, opts.messagesPerConnection);
    if (!lane.session) {
      lane.session = await opts.connect();
      opts.onConnected?.();
    }
    phase = "send";
    const started = performance.now();
    const results = await lane.session.send(envelopeOf(record, pendingAddresses, opened, opts));
    opts.onReplied?.((performance.now() - started) / 1000);
    lane.lastUsed = Date.now();
    return { results, connectFailed: false };
  } catch (e) {
    await lane.session?.close().catch(() => {});
    lane.session = undefined;
    if (e instanceof UnknownMessageError) return { connectFailed: false };
    const attemptError = errorMessage(e);
    // A failure before MAIL FROM (connect, TLS, AUTH: even a 5xx such as 535) says
    // nothing about this message: it is retried, never bounced. Otherwise a revoked
    // password would bounce the whole queue, and the bounces, through the same
    // upstream, would fail too (Postfix: smtp_sasl_auth_soft_bounce=yes).
    const permanent = phase === "send" && e instanceof UpstreamError && e.permanent;
    const results = pendingAddresses.map((address): RecipientResult => ({
      recipient: address,
      status: permanent ? "failed" : "deferred",
      code: e instanceof UpstreamError ? e.code : undefined,
      response: attemptError,
    }));
    return {
      results,
      attemptError,
      connectFailed: phase === "connect",
      broken: phase === "send" && !permanent,
    };
  }
}

/** Closes a connection that is spent; checks one idle for a while with RSET. */
async function retireStale(lane: Lane, messagesPerConnection: number): Promise<void> {
  const spent = lane.session &&
    (lane.retire || !lane.session.usable || lane.session.sentCount >= messagesPerConnection);
  if (spent) {
    await lane.session!.close().catch(() => {});
    lane.session = undefined;
  }
  lane.retire = false;
  if (lane.session && Date.now() - lane.lastUsed > IDLE_CHECK_MS) {
    // Back-to-back messages need no RSET; one after a pause checks that the server has
    // not closed the connection meanwhile (else the message would wait a retry interval).
    try {
      await lane.session.reset();
    } catch {
      await lane.session.close().catch(() => {});
      lane.session = undefined;
    }
  }
}

function envelopeOf(
  record: QueueRecord,
  recipients: string[],
  opened: Loaded,
  opts: LaneOptions,
): OutgoingMessage {
  // A small message was read whole with its header: it goes from memory.
  const whole = opened.head.length === record.size ? opened.head : undefined;
  // Missing Message-ID/Date are added on the way out; the stored file stays as received.
  const hygiene = hygieneFor(record, opened.head, opts.hostname);
  if (hygiene.kind === "skip") {
    opts.log?.info("header fields not added", { id: record.id, reason: hygiene.reason });
  }
  const addition = hygiene.kind === "add" ? hygiene.addition : undefined;
  const byAddress = new Map(record.recipients.map((r) => [r.address, r]));
  const asked = record.ret !== undefined || record.envid !== undefined ||
    record.recipients.some((r) => r.notify || r.orcpt);
  return {
    dsn: asked
      ? {
        ret: record.ret,
        envid: record.envid,
        recipients: recipients.map((a) => {
          const r = byAddress.get(a);
          return r && { notify: r.notify, orcpt: r.orcpt };
        }),
      }
      : undefined,
    sender: record.sender,
    recipients,
    smtputf8: record.smtputf8,
    eightBit: record.body === "8BITMIME",
    size: record.size + (addition?.bytes.length ?? 0),
    bytes: whole && addition ? withAddition(whole, addition) : whole,
    open: () => {
      const stream = opened.file
        ? messageStream({ ...opened, file: opened.file }, { again: true })
        : ReadableStream.from([opened.head]);
      return addition ? streamWithAddition(stream, addition) : stream;
    },
  };
}

/**
 * The durable description of one queued message: its envelope and the delivery
 * state of each recipient. Stored as JSON beside the message bytes; the only
 * thing delivery and the queue command change.
 */

import type { MessageDsn, NotifyKind, OriginalRecipient, RecipientDsn } from "../smtp/dsn.ts";

/** Delivery state of one recipient. */
export type RecipientStatus = "pending" | "delivered" | "failed";

/** One recipient of a queued message and what happened to it. */
export interface RecipientRecord {
  address: string;
  status: RecipientStatus;
  /** The upstream's last reply for this recipient, if any. */
  response?: string;
  /** When the status last changed (ISO 8601). */
  updatedAt?: string;
  /**
   * false while a DSN is owed for this recipient (a bounce when failed, a "relayed" notice
   * when delivered with NOTIFY=SUCCESS); true once it is safely queued or none is due.
   */
  bounced?: boolean;
  /** The upstream (its name) that gave `response`. */
  via?: string;
  /** NOTIFY of RCPT TO (RFC 3461); absent means the default, FAILURE and DELAY. */
  notify?: NotifyKind[];
  /** ORCPT of RCPT TO (RFC 3461), reported back in DSNs. */
  orcpt?: OriginalRecipient;
}

/** A queued message's envelope and delivery state (the `ID.json` file). */
export interface QueueRecord {
  version: 1;
  id: string;
  /** "message" from a client; "bounce" for a delivery status notification we made. */
  kind: "message" | "bounce";
  sender: string;
  recipients: RecipientRecord[];
  smtputf8: boolean;
  body: "7BIT" | "8BITMIME";
  /** Bytes in the stored message file (with our Received: header). */
  size: number;
  receivedAt: string;
  client: { address: string; port: number; tls: boolean };
  helo: string;
  user?: string;
  protocol: string;
  /** Delivery attempts so far. */
  attempts: number;
  /** Earliest time of the next attempt (ISO 8601). */
  nextAttemptAt: string;
  lastError?: string;
  /** RET of MAIL FROM: what a DSN returns of the message (default: headers only). */
  ret?: "FULL" | "HDRS";
  /** ENVID of MAIL FROM, reported back in DSNs. */
  envid?: string;
  /** True once the delay warning was queued (it is sent once per message). */
  delayWarned?: boolean;
  /** Put on hold by `carrier queue hold`: never tried (nor expired) until released. */
  held?: boolean;
  /** `attempts` when the operator last requeued it: the backoff counts from there. */
  backoffFrom?: number;
}

/** The envelope facts a new record is made from; the delivery state starts fresh. */
export type NewRecordFields =
  & Pick<
    QueueRecord,
    "id" | "kind" | "sender" | "smtputf8" | "body" | "client" | "helo" | "protocol"
  >
  & { recipients: string[]; user?: string; dsn?: MessageDsn; recipientDsn?: RecipientDsn[] };

/** The record of a message just queued: every recipient pending, due at once (size is set at commit). */
export function newRecord(fields: NewRecordFields, now = new Date()): QueueRecord {
  const at = now.toISOString();
  const { recipients, dsn, recipientDsn, ...envelope } = fields;
  return {
    version: 1,
    ...envelope,
    ...(dsn?.ret ? { ret: dsn.ret } : {}),
    ...(dsn?.envid !== undefined ? { envid: dsn.envid } : {}),
    recipients: recipients.map((address, i) => {
      const r: RecipientRecord = { address, status: "pending" };
      const d = recipientDsn?.[i];
      if (d?.notify) r.notify = d.notify;
      if (d?.orcpt) r.orcpt = d.orcpt;
      return r;
    }),
    size: 0,
    receivedAt: at,
    attempts: 0,
    nextAttemptAt: at,
  };
}

/**
 * First bytes of a stored message file: `CARRIER1 {record JSON}\n` then the message
 * bytes, so one file and one fsync hold both. JSON never contains a raw newline.
 */
export const HEADER_MAGIC = new TextEncoder().encode("CARRIER1 ");
/** The longest header line accepted when reading (a record with many long addresses). */
export const MAX_HEADER = 4 * 1024 * 1024;

/** The header line that starts a stored message file. */
export function encodeHeader(record: QueueRecord): Uint8Array {
  return new TextEncoder().encode(`CARRIER1 ${JSON.stringify(record)}\n`);
}

/** Queue ids: upper-case base-36 time plus random, safe as a file name. */
export const ID_PATTERN = /^[0-9A-Z]{10,40}$/;

/** A new queue id: sortable by arrival time, unique across processes by its random part. */
export function newQueueId(now = Date.now()): string {
  const random = new Uint8Array(8);
  crypto.getRandomValues(random);
  let tail = "";
  for (const b of random) tail += (b % 36).toString(36);
  return now.toString(36).toUpperCase().padStart(9, "0") + tail.toUpperCase();
}

/** When a queue id was made (ms since epoch), read off its time prefix (see newQueueId). */
export function queueIdTime(id: string): number | undefined {
  const t = parseInt(id.slice(0, 9), 36);
  return Number.isFinite(t) ? t : undefined;
}

/** Checks a parsed JSON value is a QueueRecord; throws naming the first bad field. */
export function validateRecord(value: unknown, source: string): QueueRecord {
  const fail = (field: string): never => {
    throw new Error(`${source}: invalid queue record: bad or missing "${field}"`);
  };
  if (typeof value !== "object" || value === null) fail("(root)");
  const r = value as Record<string, unknown>;
  if (r.version !== 1) fail("version");
  if (typeof r.id !== "string" || !ID_PATTERN.test(r.id)) fail("id");
  if (r.kind !== "message" && r.kind !== "bounce") fail("kind");
  if (typeof r.sender !== "string") fail("sender");
  if (!Array.isArray(r.recipients) || r.recipients.length === 0) fail("recipients");
  for (const rcpt of r.recipients as unknown[]) {
    const rr = rcpt as Record<string, unknown>;
    if (typeof rr?.address !== "string") fail("recipients.address");
    if (!["pending", "delivered", "failed"].includes(rr.status as string)) {
      fail("recipients.status");
    }
    if (rr.notify !== undefined && !Array.isArray(rr.notify)) fail("recipients.notify");
  }
  if (typeof r.size !== "number") fail("size");
  if (typeof r.attempts !== "number") fail("attempts");
  if (typeof r.receivedAt !== "string" || Number.isNaN(Date.parse(r.receivedAt))) {
    fail("receivedAt");
  }
  if (typeof r.smtputf8 !== "boolean") fail("smtputf8");
  if (r.body !== "7BIT" && r.body !== "8BITMIME") fail("body");
  const client = r.client as Record<string, unknown> | undefined;
  if (typeof client?.address !== "string" || typeof client.port !== "number") fail("client");
  if (typeof r.helo !== "string") fail("helo");
  if (typeof r.protocol !== "string") fail("protocol");
  if (r.ret !== undefined && r.ret !== "FULL" && r.ret !== "HDRS") fail("ret");
  if (r.held !== undefined && typeof r.held !== "boolean") fail("held");
  if (r.backoffFrom !== undefined && typeof r.backoffFrom !== "number") fail("backoffFrom");
  if (typeof r.nextAttemptAt !== "string" || Number.isNaN(Date.parse(r.nextAttemptAt))) {
    fail("nextAttemptAt");
  }
  return value as QueueRecord;
}

/** Thrown for a queue id that is malformed or not in the queue. */
export class UnknownMessageError extends Error {
  constructor(readonly id: string) {
    super(`no message with id ${JSON.stringify(id)} in the queue`);
  }
}

/**
 * Turning failed recipients into a queued bounce: the RFC 3464 report (with the
 * original headers) stored in the spool like any accepted message, to the sender.
 */

import { enhancedStatus } from "./reply_outcome.ts";
import type { QueueRecord, RecipientRecord } from "../queue/record.ts";
import type { Spool } from "../queue/spool.ts";
import { buildBounce, headerBlock, MAX_HEADER_BLOCK } from "./bounce.ts";

/** Who reports the failures. */
export interface BounceSource {
  /** Our host name (Reporting-MTA, the bounce's HELO). */
  hostname: string;
  /** The upstream that refused (Remote-MTA). */
  remoteMta: string;
}

/** Stores the bounce for `failed` recipients of `record`; resolves with its queue id once durable. */
export async function storeBounce(
  spool: Spool,
  record: QueueRecord,
  failed: RecipientRecord[],
  source: BounceSource,
): Promise<string> {
  const bytes = buildBounce({
    reportingMta: source.hostname,
    originalSender: record.sender,
    arrivalDate: new Date(record.receivedAt),
    messageId: record.id,
    failures: failed.map((r) => ({
      recipient: r.address,
      status: enhancedStatus(r.response),
      diagnostic: r.response ?? "delivery failed",
      remoteMta: source.remoteMta,
    })),
    originalHeaders: await originalHeaders(spool, record.id),
  });
  const writer = await spool.createMessage({
    kind: "bounce",
    sender: "",
    recipients: [record.sender],
    smtputf8: record.smtputf8,
    body: "8BITMIME",
    client: { address: "127.0.0.1", port: 0, tls: false },
    helo: source.hostname,
    protocol: "LOCAL",
  });
  try {
    writer.write(bytes);
    await writer.commit();
  } catch (e) {
    await writer.abort();
    throw e;
  }
  return writer.id;
}

/** The header block of a queued message (at most MAX_HEADER_BLOCK bytes are read). */
async function originalHeaders(spool: Spool, id: string): Promise<Uint8Array> {
  const reader = (await spool.openMessage(id)).getReader();
  const buffer = new Uint8Array(MAX_HEADER_BLOCK);
  let used = 0;
  try {
    while (used < buffer.length) {
      const { value, done } = await reader.read();
      if (done) break;
      const n = Math.min(value.length, buffer.length - used);
      buffer.set(value.subarray(0, n), used);
      used += n;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return headerBlock(buffer.subarray(0, used));
}

/**
 * Turning recipients' outcomes into a queued DSN: the RFC 3464 report (with the original
 * headers, or the whole message for RET=FULL) stored in the spool like any accepted
 * message, to the sender.
 */

import { enhancedStatus } from "./reply_outcome.ts";
import type { QueueRecord, RecipientRecord } from "../queue/record.ts";
import type { Spool } from "../queue/spool.ts";
import { buildBounce, type DsnAction, headerBlock, MAX_HEADER_BLOCK } from "./bounce.ts";

/**
 * RET=FULL returns messages up to this size whole; bigger ones get their headers only (as
 * Postfix's bounce_size_limit), so a report stays small enough to build in memory.
 */
export const FULL_RETURN_LIMIT = 1024 * 1024;

/** Who reports the failures. */
export interface BounceSource {
  /** Our host name (Reporting-MTA, the bounce's HELO). */
  hostname: string;
  /** The upstream's host (Remote-MTA); none in hold mode. */
  remoteMta?: string;
}

/** The host of an upstream URL, for Remote-MTA: never its user name or port. */
export function remoteMtaOf(upstream: string | undefined): string | undefined {
  if (!upstream) return undefined;
  try {
    return new URL(upstream).hostname.replace(/^\[|\]$/g, "") || undefined;
  } catch {
    return undefined;
  }
}

/** The action a recipient is reported with: failed, relayed (delivered) or delayed (pending). */
function actionOf(r: RecipientRecord): DsnAction {
  return r.status === "failed" ? "failed" : r.status === "delivered" ? "relayed" : "delayed";
}

/**
 * Stores the DSN for `recipients` of `record` (each reported by its status); resolves with
 * its queue id once durable. `willRetryUntil` goes with a delay warning.
 */
export async function storeBounce(
  spool: Spool,
  record: QueueRecord,
  recipients: RecipientRecord[],
  source: BounceSource,
  willRetryUntil?: Date,
): Promise<string> {
  const failures = recipients.map((r) => {
    const action = actionOf(r);
    return {
      recipient: r.address,
      action,
      status: action === "relayed" ? "2.0.0" : enhancedStatus(r.response, action === "delayed"),
      diagnostic: r.response ?? (action === "delayed" ? "not yet delivered" : "delivery failed"),
      remoteMta: remoteMtaOf(r.via) ?? source.remoteMta,
      orcpt: r.orcpt,
    };
  });
  const full = record.ret === "FULL" && failures.some((f) => f.action === "failed");
  const original = await readPrefix(spool, record.id, full ? FULL_RETURN_LIMIT : MAX_HEADER_BLOCK);
  const bytes = buildBounce({
    reportingMta: source.hostname,
    originalSender: record.sender,
    arrivalDate: new Date(record.receivedAt),
    messageId: record.id,
    failures,
    originalHeaders: headerBlock(original.bytes),
    fullMessage: full && original.whole ? original.bytes : undefined,
    envid: record.envid,
    willRetryUntil,
  });
  const writer = await spool.createMessage({
    kind: "bounce",
    sender: "",
    recipients: [record.sender],
    smtputf8: record.smtputf8,
    // 8BITMIME only when it has 8-bit bytes: an upstream without 8BITMIME then still takes it.
    body: bytes.some((b) => b > 0x7f) ? "8BITMIME" : "7BIT",
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

/** The first `limit` bytes of a queued message; `whole` when that is all of it. */
async function readPrefix(
  spool: Spool,
  id: string,
  limit: number,
): Promise<{ bytes: Uint8Array; whole: boolean }> {
  const reader = (await spool.openMessage(id)).getReader();
  // One byte more than the limit tells a message of exactly `limit` bytes from a longer one.
  const buffer = new Uint8Array(limit + 1);
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
  return { bytes: buffer.subarray(0, Math.min(used, limit)), whole: used <= limit };
}

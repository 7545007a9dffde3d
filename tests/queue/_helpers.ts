import { newQueueId, type QueueRecord } from "../../src/queue/record.ts";
import type { Spool } from "../../src/queue/spool.ts";

/** A valid record; tests break one field at a time. */
export function sampleRecord(overrides: Partial<QueueRecord> = {}): QueueRecord {
  return {
    version: 1,
    id: newQueueId(1_700_000_000_000),
    kind: "message",
    sender: "alice@example.com",
    recipients: [{ address: "bob@example.org", status: "pending" }],
    smtputf8: false,
    body: "7BIT",
    size: 123,
    receivedAt: "2024-01-01T00:00:00.000Z",
    client: { address: "127.0.0.1", port: 40000, tls: false },
    helo: "client.example.com",
    protocol: "ESMTP",
    attempts: 0,
    nextAttemptAt: "2024-01-01T00:00:00.000Z",
    ...overrides,
  };
}

/**
 * Queues a message the way the server does (createMessage, write, commit: the record goes
 * in the file's header). Delivery state in `record` that a new message cannot have
 * (attempts, recipient statuses, times, lastError) is then written the way delivery
 * writes it, as the `ID.json` beside the file. Returns the record as the spool reads it.
 */
export async function storeMessage(
  spool: Spool,
  bytes: Uint8Array | string,
  record: Partial<QueueRecord> = {},
): Promise<QueueRecord> {
  const base = sampleRecord({ id: newQueueId(), ...record });
  const writer = await spool.createMessage({
    id: base.id,
    kind: base.kind,
    sender: base.sender,
    recipients: base.recipients.map((r) => r.address),
    smtputf8: base.smtputf8,
    body: base.body,
    client: base.client,
    helo: base.helo,
    user: base.user,
    protocol: base.protocol,
  });
  try {
    writer.write(
      typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes,
    );
    await writer.commit();
  } catch (e) {
    await writer.abort();
    throw e;
  }
  const fresh: QueueRecord = { ...writer.record, size: writer.size };
  const state: Partial<QueueRecord> = {};
  for (
    const key of ["recipients", "attempts", "receivedAt", "nextAttemptAt", "lastError"] as const
  ) {
    if (key in record) Object.assign(state, { [key]: record[key] });
  }
  // As JSON: a field left undefined is absent, as in the record read back.
  const wanted: QueueRecord = JSON.parse(JSON.stringify({ ...fresh, ...state }));
  if (JSON.stringify(wanted) !== JSON.stringify(fresh)) await spool.update(wanted);
  return wanted;
}

import { newQueueId, type QueueRecord } from "../../src/queue/record.ts";

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

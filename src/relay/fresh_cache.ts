/**
 * Just-queued messages kept in memory for their first delivery attempt: the
 * record (no re-read of the file's header) and, for a small message, its bytes
 * (no read at all). Bounded in count and bytes; anything else is read back.
 */

import type { QueueRecord } from "../queue/record.ts";

/** Records kept at most. */
const MAX_RECORDS = 2000;
/** Bytes of small messages kept at most, in all. */
const MAX_BYTES = 8 * 1024 * 1024;

/** What the first attempt of a message can use without reading the spool. */
export interface Fresh {
  record: QueueRecord;
  bytes?: Uint8Array;
}

/** The cache: one entry per id, taken once. */
export class FreshCache {
  #entries = new Map<string, Fresh>();
  #bytes = 0;

  /** Keeps `record` (and `bytes` while they fit) if there is room. */
  put(record: QueueRecord, bytes?: Uint8Array): void {
    if (this.#entries.size >= MAX_RECORDS) return;
    const keep = bytes && this.#bytes + bytes.length <= MAX_BYTES ? bytes : undefined;
    this.#bytes += keep?.length ?? 0;
    this.#entries.set(record.id, { record, bytes: keep });
  }

  /** Removes and returns the entry for `id`, if any. */
  take(id: string): Fresh | undefined {
    const entry = this.#entries.get(id);
    if (!entry) return undefined;
    this.#entries.delete(id);
    this.#bytes -= entry.bytes?.length ?? 0;
    return entry;
  }
}

/** Byte helpers shared by the protocol, the spool and bounces (mail is bytes, not text). */

/** Joins byte arrays into one. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/**
 * Buffers of one size kept for reuse: one allocated per message or connection
 * churns memory outside the heap faster than the collector returns it.
 */
export class BufferPool {
  #spare: Uint8Array[] = [];

  constructor(readonly size: number, readonly max: number) {}

  /** A buffer of `size` bytes (contents undefined). */
  take(): Uint8Array {
    return this.#spare.pop() ?? new Uint8Array(this.size);
  }

  /** Keeps `buffer` for later, if it is one of ours and there is room. */
  give(buffer: Uint8Array): void {
    if (buffer.length === this.size && this.#spare.length < this.max) this.#spare.push(buffer);
  }
}

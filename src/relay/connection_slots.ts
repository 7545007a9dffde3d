/**
 * At most N connections open to one upstream at once (its `max_connections`): a lane
 * waits for a free slot instead of opening one more, and frees it when its connection
 * closes. Providers count concurrent sessions (Gmail's is low); this keeps under theirs.
 */

import { keepByName } from "./by_name.ts";
import type { UpstreamSession } from "./upstream.ts";

/** A counting semaphore for one upstream's connections. */
export class ConnectionSlots {
  #open = 0;
  #waiting: (() => void)[] = [];

  /** @param max connections at once; 0 = no limit of its own (a reload may change it) */
  constructor(public max: number) {}

  /** Connections open (or being opened) now. */
  get open(): number {
    return this.#open;
  }

  /**
   * Opens a connection with `connect` once a slot is free; the slot is freed when the
   * session closes (or when opening it fails).
   */
  async connect(
    connect: () => Promise<UpstreamSession>,
    signal?: AbortSignal,
  ): Promise<UpstreamSession> {
    while (this.max > 0 && this.#open >= this.max) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal?.removeEventListener("abort", wake);
          const i = this.#waiting.indexOf(wake);
          if (i >= 0) this.#waiting.splice(i, 1);
          resolve();
        };
        this.#waiting.push(wake);
        signal?.addEventListener("abort", wake);
      });
    }
    signal?.throwIfAborted(); // stopping: no new connection
    this.#open++;
    let session: UpstreamSession;
    try {
      session = await connect();
    } catch (e) {
      this.#release();
      throw e;
    }
    const close = session.close.bind(session);
    let released = false;
    session.close = async () => {
      try {
        await close();
      } finally {
        if (!released) {
          released = true;
          this.#release();
        }
      }
    };
    return session;
  }

  /** A reload's new limit; lanes waiting look again. */
  setMax(max: number): void {
    this.max = max;
    this.#wakeAll();
  }

  #release(): void {
    this.#open--;
    this.#wakeAll();
  }

  /** Every waiter looks again (one may have given up on stop; at most a lane count of them). */
  #wakeAll(): void {
    for (const wake of [...this.#waiting]) wake();
  }
}

/** Each upstream's slots by name with its limit: those of an upstream kept by a reload stay. */
export function slotsByName(
  previous: ReadonlyMap<string, ConnectionSlots>,
  upstreams: readonly { name: string; maxConnections?: number }[],
): Map<string, ConnectionSlots> {
  const next = keepByName(previous, upstreams.map((u) => u.name), () => new ConnectionSlots(0));
  for (const u of upstreams) next.get(u.name)!.setMax(u.maxConnections ?? 0);
  return next;
}

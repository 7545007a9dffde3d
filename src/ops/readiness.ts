/**
 * What `/readyz` answers: ready only while the listeners are open, the spool
 * takes a real write (probed at most every few seconds) and the upstream, if
 * any, has not been failing longer than the configured outage.
 */

import { join } from "node:path";
import { errorMessage } from "./log.ts";

/** Where readiness looks. */
export interface ReadinessSources {
  /** The spool's `tmp/` directory, where the probe file is written. */
  probeDir: string;
  /** False once shutdown has begun (listeners closing). */
  listening: () => boolean;
  /** When the upstream started failing (ms since epoch), 0 while it works or with none. */
  upstreamFailingSince: () => number;
  /** How long the upstream may fail before Carrier reports not ready (ms). */
  maxUpstreamOutageMs: number;
  /** How long a spool probe's result is reused (ms). */
  probeEveryMs?: number;
}

/** Checks readiness with a cached spool probe. */
export class Readiness {
  #probedAt = -Infinity;
  #probeError: string | undefined;
  #probing: Promise<void> | undefined;

  constructor(readonly sources: ReadinessSources) {}

  /** Why Carrier is not ready (one line), or undefined when it is. */
  async notReady(now = Date.now()): Promise<string | undefined> {
    const s = this.sources;
    if (!s.listening()) return "shutting down: listeners closed";
    if (now - this.#probedAt >= (s.probeEveryMs ?? 2000)) {
      this.#probing ??= this.#probe().finally(() => this.#probing = undefined);
      await this.#probing;
      this.#probedAt = now;
    }
    if (this.#probeError) return `spool not writable: ${this.#probeError}`;
    const since = s.upstreamFailingSince();
    if (since > 0 && now - since > s.maxUpstreamOutageMs) {
      return `upstream failing for ${Math.round((now - since) / 1000)}s (limit ${
        Math.round(s.maxUpstreamOutageMs / 1000)
      }s)`;
    }
    return undefined;
  }

  /** Writes, fsyncs and removes a small file: a read-only or full disk fails here. */
  async #probe(): Promise<void> {
    const path = join(this.sources.probeDir, "readyz-probe");
    try {
      const file = await Deno.open(path, {
        write: true,
        create: true,
        truncate: true,
        mode: 0o600,
      });
      try {
        await file.write(new TextEncoder().encode("ok\n"));
        await file.sync();
      } finally {
        file.close();
      }
      await Deno.remove(path);
      this.#probeError = undefined;
    } catch (e) {
      this.#probeError = errorMessage(e);
    }
  }
}

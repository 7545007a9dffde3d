/**
 * What the running server tells `carrier queue list` about why mail waits: hold mode, or
 * an upstream pause and its error. A small advisory file in the spool, rewritten when that
 * changes and removed at a clean stop; it never decides anything.
 */

import { join } from "node:path";
import { errorMessage, type Logger } from "../ops/log.ts";

/** The file's name in the spool directory. */
export const SERVER_STATE_FILE = "server-state.json";

/** The server's delivery state as last written. */
export interface ServerState {
  /** "hold": no upstream is configured, nothing is sent. */
  mode: "relay" | "hold";
  /** While the upstream is paused: until when (ISO 8601) and why. */
  pausedUntil?: string;
  pauseError?: string;
  updatedAt: string;
}

/** Replaces the state file (temp file and rename: a reader never sees half of it). */
export async function writeServerState(spoolDir: string, state: ServerState): Promise<void> {
  const path = join(spoolDir, SERVER_STATE_FILE);
  await Deno.writeTextFile(`${path}.tmp`, JSON.stringify(state) + "\n", { mode: 0o600 });
  await Deno.rename(`${path}.tmp`, path);
}

/** The state file, or undefined when there is none (no server, or an unreadable file). */
export async function readServerState(spoolDir: string): Promise<ServerState | undefined> {
  try {
    const value = JSON.parse(await Deno.readTextFile(join(spoolDir, SERVER_STATE_FILE)));
    return value?.mode === "relay" || value?.mode === "hold" ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Removes the state file at a clean stop. */
export async function clearServerState(spoolDir: string): Promise<void> {
  await Deno.remove(join(spoolDir, SERVER_STATE_FILE)).catch(() => {});
}

/** Writes the state file in order, one write at a time; a failed write is logged, not fatal. */
export class ServerStateWriter {
  #writing: Promise<void> = Promise.resolve();

  constructor(readonly spoolDir: string, readonly log: Logger) {}

  /** Queues a write of `state` (stamped now); resolves once it is written (or failed). */
  publish(state: Omit<ServerState, "updatedAt">): Promise<void> {
    const stamped = { ...state, updatedAt: new Date().toISOString() };
    this.#writing = this.#writing
      .then(() => writeServerState(this.spoolDir, stamped))
      .catch((e) => this.log.warn("server state not written", { error: errorMessage(e) }));
    return this.#writing;
  }

  /** Waits for the writes, then removes the file (a clean stop). */
  async close(): Promise<void> {
    await this.#writing;
    await clearServerState(this.spoolDir);
  }
}

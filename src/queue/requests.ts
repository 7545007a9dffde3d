/**
 * Requests from `carrier queue` to the server that owns the spool: small files it
 * picks up on its next poll (or at start), so an operator never races a delivery.
 */

import { join } from "node:path";
import { ID_PATTERN, UnknownMessageError } from "./record.ts";

/** Name of the file a running server polls for "try everything now". */
export const FLUSH_REQUEST_FILE = "flush-request";

/** What an operator can ask of the server for one message. */
export type OperatorAction = "delete" | "hold" | "release" | "requeue";

/** One request waiting in the spool for the server. */
export interface OperatorRequest {
  action: OperatorAction;
  id: string;
}

/** In the order they are applied: a message both deleted and held is simply deleted. */
const ACTIONS: readonly OperatorAction[] = ["delete", "hold", "release", "requeue"];

/** The request files of one spool. */
export class OperatorRequests {
  constructor(readonly spoolDir: string, readonly requestDir: string) {}

  /** Asks the server to try every queued message now (honoured at start if none runs). */
  async askFlush(): Promise<void> {
    await Deno.writeTextFile(
      join(this.spoolDir, FLUSH_REQUEST_FILE),
      new Date().toISOString() + "\n",
      { mode: 0o600 },
    );
  }

  /** True (once) if a flush was requested. */
  async takeFlush(): Promise<boolean> {
    try {
      await Deno.remove(join(this.spoolDir, FLUSH_REQUEST_FILE));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Asks the running server to act on a message (it may be in a delivery right now). A hold
   * replaces a release not yet applied, and the other way round: the last word counts.
   */
  async ask(action: OperatorAction, id: string): Promise<void> {
    if (!ID_PATTERN.test(id)) throw new UnknownMessageError(id);
    await Deno.mkdir(this.requestDir, { recursive: true, mode: 0o700 });
    const opposite = action === "hold" ? "release" : action === "release" ? "hold" : undefined;
    if (opposite) await Deno.remove(join(this.requestDir, `${opposite}-${id}`)).catch(() => {});
    await Deno.writeTextFile(join(this.requestDir, `${action}-${id}`), "", { mode: 0o600 });
  }

  /** The requests not yet carried out (they stay until `clear`); deletes first. */
  async pending(): Promise<OperatorRequest[]> {
    const found: OperatorRequest[] = [];
    try {
      for await (const entry of Deno.readDir(this.requestDir)) {
        const dash = entry.name.indexOf("-");
        const action = entry.name.slice(0, dash) as OperatorAction;
        const id = entry.name.slice(dash + 1);
        if (dash > 0 && ACTIONS.includes(action) && ID_PATTERN.test(id)) found.push({ action, id });
        else await Deno.remove(join(this.requestDir, entry.name)).catch(() => {});
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return found.sort((a, b) => ACTIONS.indexOf(a.action) - ACTIONS.indexOf(b.action));
  }

  /** Whether a request is still waiting to be carried out. */
  async waiting(request: OperatorRequest): Promise<boolean> {
    try {
      await Deno.stat(this.#path(request));
      return true;
    } catch {
      return false;
    }
  }

  /** Drops a request once it has been carried out. */
  async clear(request: OperatorRequest): Promise<void> {
    if (!ID_PATTERN.test(request.id)) return;
    await Deno.remove(this.#path(request)).catch(() => {});
  }

  #path(r: OperatorRequest): string {
    return join(this.requestDir, `${r.action}-${r.id}`);
  }
}

/**
 * Requests from `carrier queue` to the server that owns the spool: small files it
 * picks up on its next poll (or at start), so an operator never races a delivery.
 */

import { join } from "node:path";
import { ID_PATTERN, UnknownMessageError } from "./record.ts";

/** Name of the file a running server polls for "try everything now". */
export const FLUSH_REQUEST_FILE = "flush-request";

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

  /** Asks the running server to delete a message (it may be in a delivery right now). */
  async askDelete(id: string): Promise<void> {
    if (!ID_PATTERN.test(id)) throw new UnknownMessageError(id);
    await Deno.mkdir(this.requestDir, { recursive: true, mode: 0o700 });
    await Deno.writeTextFile(join(this.requestDir, `delete-${id}`), "", { mode: 0o600 });
  }

  /** The ids whose deletion was requested (the requests stay until `clearDelete`). */
  async deletes(): Promise<string[]> {
    const ids: string[] = [];
    try {
      for await (const entry of Deno.readDir(this.requestDir)) {
        const id = entry.name.startsWith("delete-") ? entry.name.slice(7) : "";
        if (ID_PATTERN.test(id)) ids.push(id);
        else await Deno.remove(join(this.requestDir, entry.name)).catch(() => {});
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return ids;
  }

  /** Drops a delete request once it has been carried out. */
  async clearDelete(id: string): Promise<void> {
    if (!ID_PATTERN.test(id)) return;
    await Deno.remove(join(this.requestDir, `delete-${id}`)).catch(() => {});
  }
}

/**
 * `carrier queue delete|hold|release|requeue`: changes an operator makes to queued
 * messages. With no server on the spool they are applied at once; with one, they are
 * requests it applies between delivery attempts, so nothing races a delivery.
 */

import { operatorUpdate } from "./operator_update.ts";
import type { OperatorAction } from "./requests.ts";
import type { Spool } from "./spool.ts";

const DONE: Record<OperatorAction, string> = {
  delete: "deleted",
  hold: "held",
  release: "released",
  requeue: "requeued",
};

/** How long the command waits for a running server to apply its requests. */
const WAIT_MS = 10_000;

/** Applies `action` to every id (all must exist first); returns the exit code. */
export async function operatorAction(
  spool: Spool,
  action: OperatorAction,
  ids: string[],
  json: boolean,
): Promise<number> {
  const records = [];
  for (const id of ids) records.push(await spool.read(id)); // nothing changes if one is unknown
  const lock = await spool.tryLock();
  if (lock) {
    // No server owns the spool: change the files directly, under its lock.
    try {
      const now = new Date();
      for (const record of records) {
        if (action === "delete") await spool.remove(record.id);
        else await spool.update(operatorUpdate(action, record, now));
      }
    } finally {
      lock.close();
    }
    report(action, ids, [], json);
    return 0;
  }
  // A server runs and may be delivering one of them: it applies each request after that
  // attempt, and a server started later applies it at start. Wait a little for it.
  for (const id of ids) await spool.requests.ask(action, id);
  const waiting = new Set(ids);
  for (let i = 0; i < WAIT_MS / 200 && waiting.size > 0; i++) {
    await new Promise((r) => setTimeout(r, 200));
    for (const id of [...waiting]) {
      if (!(await spool.requests.waiting({ action, id }))) waiting.delete(id);
    }
  }
  report(action, ids.filter((id) => !waiting.has(id)), [...waiting], json);
  return 0;
}

function report(action: OperatorAction, done: string[], requested: string[], json: boolean) {
  if (json) {
    console.log(JSON.stringify({ action, [DONE[action]]: done, requested }));
    return;
  }
  for (const id of done) console.log(`${DONE[action]} ${id}`);
  for (const id of requested) {
    console.log(
      `${action} of ${id} requested: the server applies it when its delivery attempt ends`,
    );
  }
}

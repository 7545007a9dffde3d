/**
 * The durable spool: every accepted message is a pair of files in `queue/`,
 * `ID.msg` (the exact bytes) and `ID.json` (its QueueRecord). Writes go to
 * `tmp/`, are fsync'ed, renamed into place and the directory fsync'ed, so a
 * message is either wholly in the queue or not there at all ("250 is a promise").
 */

import { join } from "node:path";
import { ID_PATTERN, type QueueRecord, validateRecord } from "./record.ts";

const WRITE_BUFFER = 64 * 1024;

/** Thrown for a queue id that is malformed or not in the queue. */
export class UnknownMessageError extends Error {
  constructor(readonly id: string) {
    super(`no message with id ${JSON.stringify(id)} in the queue`);
  }
}

/** Writes one incoming message; nothing is visible in the queue until `commit`. */
export class MessageWriter {
  #file: Deno.FsFile;
  #buffer = new Uint8Array(WRITE_BUFFER);
  #used = 0;
  #size = 0;
  #closed = false;

  constructor(
    private readonly spool: Spool,
    readonly id: string,
    file: Deno.FsFile,
    private readonly tmpPath: string,
  ) {
    this.#file = file;
  }

  /** Bytes written so far. */
  get size(): number {
    return this.#size;
  }

  /** Appends bytes (buffered; flushed in large writes). */
  async write(bytes: Uint8Array): Promise<void> {
    this.#size += bytes.length;
    if (this.#used + bytes.length > this.#buffer.length) {
      await this.#flush();
      if (bytes.length >= this.#buffer.length) {
        await writeAll(this.#file, bytes);
        return;
      }
    }
    this.#buffer.set(bytes, this.#used);
    this.#used += bytes.length;
  }

  /** Makes the message durable and visible: fsync, rename, fsync the directory. */
  async commit(record: QueueRecord): Promise<void> {
    await this.#flush();
    await this.#file.sync();
    this.#file.close();
    this.#closed = true;
    await this.spool.publish(this.id, this.tmpPath, { ...record, size: this.#size });
  }

  /** Discards the message (client went away, too big, or a write failed). */
  async abort(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#file.close();
      } catch { /* already closed */ }
    }
    await Deno.remove(this.tmpPath).catch(() => {});
  }

  async #flush(): Promise<void> {
    if (this.#used === 0) return;
    await writeAll(this.#file, this.#buffer.subarray(0, this.#used));
    this.#used = 0;
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await file.write(bytes.subarray(offset));
}

/** Name of the file a running server polls for "try everything now". */
export const FLUSH_REQUEST_FILE = "flush-request";

/**
 * The spool directory: `tmp/` for writes in progress, `queue/` for accepted
 * messages, `requests/` for operator requests to a running server, and `lock`,
 * held by the one server that owns the spool.
 */
export class Spool {
  readonly tmpDir: string;
  readonly queueDir: string;
  readonly requestDir: string;

  private constructor(readonly dir: string) {
    this.tmpDir = join(dir, "tmp");
    this.queueDir = join(dir, "queue");
    this.requestDir = join(dir, "requests");
  }

  /**
   * Takes the spool's exclusive lock (released when the process ends, even by
   * SIGKILL). Undefined when another process holds it: a server owns the spool.
   */
  async tryLock(): Promise<Deno.FsFile | undefined> {
    const file = await Deno.open(join(this.dir, "lock"), {
      read: true,
      write: true,
      create: true,
      mode: 0o600,
    });
    if (await file.tryLock(true)) return file;
    file.close();
    return undefined;
  }

  /** Asks the server to try every queued message now (honoured at start if none runs). */
  async requestFlush(): Promise<void> {
    await Deno.writeTextFile(join(this.dir, FLUSH_REQUEST_FILE), new Date().toISOString() + "\n", {
      mode: 0o600,
    });
  }

  /** True (once) if a flush was requested. */
  async takeFlushRequest(): Promise<boolean> {
    try {
      await Deno.remove(join(this.dir, FLUSH_REQUEST_FILE));
      return true;
    } catch {
      return false;
    }
  }

  /** Asks the running server to delete a message (it may be in a delivery right now). */
  async requestDelete(id: string): Promise<void> {
    if (!ID_PATTERN.test(id)) throw new UnknownMessageError(id);
    await Deno.mkdir(this.requestDir, { recursive: true, mode: 0o700 });
    await Deno.writeTextFile(join(this.requestDir, `delete-${id}`), "", { mode: 0o600 });
  }

  /** The ids whose deletion was requested (the requests stay until `clearDeleteRequest`). */
  async deleteRequests(): Promise<string[]> {
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
  async clearDeleteRequest(id: string): Promise<void> {
    if (!ID_PATTERN.test(id)) return;
    await Deno.remove(join(this.requestDir, `delete-${id}`)).catch(() => {});
  }

  /** Opens (creating if needed) the spool at `dir`. */
  static async open(dir: string): Promise<Spool> {
    const spool = new Spool(dir);
    await Deno.mkdir(spool.tmpDir, { recursive: true, mode: 0o700 });
    await Deno.mkdir(spool.queueDir, { recursive: true, mode: 0o700 });
    // Made by the spool's owner, so requests written by an operator stay readable to it.
    await Deno.mkdir(spool.requestDir, { recursive: true, mode: 0o700 });
    return spool;
  }

  /**
   * Removes what a crash left half-done: files in `tmp/`, and message files in
   * `queue/` whose record never landed (those were never acknowledged). Only the
   * server calls this, at start, before it accepts connections.
   */
  async recover(): Promise<{ removedTmp: number; removedOrphans: number; removedBroken: number }> {
    let removedTmp = 0;
    let removedOrphans = 0;
    let removedBroken = 0;
    for await (const entry of Deno.readDir(this.tmpDir)) {
      await Deno.remove(join(this.tmpDir, entry.name)).catch(() => {});
      removedTmp++;
    }
    const names = new Set<string>();
    for await (const entry of Deno.readDir(this.queueDir)) names.add(entry.name);
    for (const name of names) {
      if (name.endsWith(".msg") && !names.has(name.slice(0, -4) + ".json")) {
        await Deno.remove(join(this.queueDir, name)).catch(() => {});
        removedOrphans++;
      } else if (name.endsWith(".json") && !names.has(name.slice(0, -5) + ".msg")) {
        // A record whose bytes are gone (a delete that raced a late update, then a
        // crash): nothing can be delivered; the caller logs it.
        await Deno.remove(join(this.queueDir, name)).catch(() => {});
        removedBroken++;
      }
    }
    if (removedOrphans + removedBroken > 0) await this.#syncDir(this.queueDir);
    return { removedTmp, removedOrphans, removedBroken };
  }

  /** Starts writing a new message with the given id. */
  async createMessage(id: string): Promise<MessageWriter> {
    if (!ID_PATTERN.test(id)) throw new Error(`invalid queue id ${JSON.stringify(id)}`);
    const tmpPath = join(this.tmpDir, `${id}.msg`);
    const file = await Deno.open(tmpPath, { write: true, createNew: true, mode: 0o600 });
    return new MessageWriter(this, id, file, tmpPath);
  }

  /** Moves a synced message file and its record into the queue (used by MessageWriter). */
  async publish(id: string, tmpMessage: string, record: QueueRecord): Promise<void> {
    const tmpRecord = join(this.tmpDir, `${id}.json`);
    try {
      await writeSynced(tmpRecord, JSON.stringify(record, null, 2) + "\n");
      await Deno.rename(tmpMessage, this.messagePath(id));
      // The record's rename is the commit point: a .msg without .json is an orphan.
      await Deno.rename(tmpRecord, this.recordPath(id));
      await this.#syncDir(this.queueDir);
    } catch (e) {
      // Not acknowledged (the client gets 451): leave nothing of it in the queue.
      await Deno.remove(tmpRecord).catch(() => {});
      await Deno.remove(tmpMessage).catch(() => {});
      await Deno.remove(this.recordPath(id)).catch(() => {});
      await Deno.remove(this.messagePath(id)).catch(() => {});
      throw e;
    }
  }

  /**
   * Replaces a message's record atomically (temp file, fsync, rename, fsync dir).
   * Throws UnknownMessageError if the message was deleted meanwhile, so a delivery
   * finishing late never brings a deleted message back.
   */
  async update(record: QueueRecord): Promise<void> {
    if (!ID_PATTERN.test(record.id)) throw new UnknownMessageError(record.id);
    const tmp = join(this.tmpDir, `${record.id}.json.${crypto.randomUUID()}`);
    try {
      await writeSynced(tmp, JSON.stringify(record, null, 2) + "\n");
      if (!(await pathExists(this.recordPath(record.id)))) throw new UnknownMessageError(record.id);
      await Deno.rename(tmp, this.recordPath(record.id));
      // A remove() that ran between the check and the rename took the bytes too (it
      // removes the record first): take back the record we just brought back.
      if (!(await pathExists(this.messagePath(record.id)))) {
        await Deno.remove(this.recordPath(record.id)).catch(() => {});
        await this.#syncDir(this.queueDir);
        throw new UnknownMessageError(record.id);
      }
      await this.#syncDir(this.queueDir);
    } catch (e) {
      await Deno.remove(tmp).catch(() => {});
      throw e;
    }
  }

  /** Reads one record; throws UnknownMessageError for a bad or absent id. */
  async read(id: string): Promise<QueueRecord> {
    if (!ID_PATTERN.test(id)) throw new UnknownMessageError(id);
    let text: string;
    try {
      text = await Deno.readTextFile(this.recordPath(id));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new UnknownMessageError(id);
      throw e;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new Error(`${this.recordPath(id)}: invalid JSON: ${(e as Error).message}`);
    }
    return validateRecord(json, this.recordPath(id));
  }

  /** All queued records, oldest first; unreadable records are reported, not fatal. */
  async list(): Promise<{ records: QueueRecord[]; problems: string[] }> {
    const records: QueueRecord[] = [];
    const problems: string[] = [];
    for await (const entry of Deno.readDir(this.queueDir)) {
      if (!entry.name.endsWith(".json")) continue;
      const id = entry.name.slice(0, -5);
      try {
        records.push(await this.read(id));
      } catch (e) {
        if (e instanceof UnknownMessageError) continue; // removed meanwhile
        problems.push(e instanceof Error ? e.message : String(e));
      }
    }
    records.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    return { records, problems };
  }

  /** Removes a message: the record first (the commit point), then its bytes. */
  async remove(id: string): Promise<void> {
    if (!ID_PATTERN.test(id)) throw new UnknownMessageError(id);
    try {
      await Deno.remove(this.recordPath(id));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new UnknownMessageError(id);
      throw e;
    }
    await Deno.remove(this.messagePath(id)).catch(() => {});
    await this.#syncDir(this.queueDir);
  }

  /** Opens the stored bytes of a message for reading. */
  async openMessage(id: string): Promise<Deno.FsFile> {
    if (!ID_PATTERN.test(id)) throw new UnknownMessageError(id);
    try {
      return await Deno.open(this.messagePath(id), { read: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new UnknownMessageError(id);
      throw e;
    }
  }

  /** Path of a message's bytes. */
  messagePath(id: string): string {
    return join(this.queueDir, `${id}.msg`);
  }

  /** Path of a message's record. */
  recordPath(id: string): string {
    return join(this.queueDir, `${id}.json`);
  }

  async #syncDir(dir: string): Promise<void> {
    const handle = await Deno.open(dir, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  }
}

/** True if a file exists at `path` (other errors propagate). */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Writes a whole small file and fsyncs it before returning. */
async function writeSynced(path: string, text: string): Promise<void> {
  const file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
  try {
    await writeAll(file, new TextEncoder().encode(text));
    await file.sync();
  } finally {
    file.close();
  }
}

/**
 * The durable spool: every accepted message is one file in `queue/`, `ID.msg`: a
 * header line with its QueueRecord, then the exact bytes. It is written in `tmp/`,
 * fdatasync'ed, renamed into place, and the directory fsync'ed (one fsync shared by
 * the messages committed together), so a message is either wholly in the queue or
 * not there at all ("250 is a promise"). When delivery changes the record, the new
 * one goes beside it as `ID.json`, which then wins over the header.
 */

import { join } from "node:path";
import { FreeFiles } from "./free_files.ts";
import { GroupSync } from "./group_sync.ts";
import { OperatorRequests } from "./requests.ts";
import { MessageWriter, writeAll } from "./message_writer.ts";
import { messageStream, type OpenedMessage, readHeader } from "./message_reader.ts";
import {
  ID_PATTERN,
  newQueueId,
  newRecord,
  type NewRecordFields,
  type QueueRecord,
  UnknownMessageError,
  validateRecord,
} from "./record.ts";

export { UnknownMessageError } from "./record.ts";

/**
 * The spool directory: `queue/` for accepted messages, `free/` for spare message
 * files (a message is written there, then renamed into the queue), `tmp/` for
 * record updates in progress, `requests/` for operator requests to a running
 * server, and `lock`, held by the one server that owns the spool.
 */
export class Spool {
  readonly tmpDir: string;
  readonly queueDir: string;
  readonly requestDir: string;
  readonly freeDir: string;
  /** Flush and delete requests from `carrier queue` to the running server. */
  readonly requests: OperatorRequests;
  readonly #free: FreeFiles;

  /** The queue directory's fsync, shared by the commits and removals that need it together. */
  readonly #queueSync = new GroupSync(() => this.#syncQueueDir());
  /** The queue directory, kept open for its fsyncs (a server syncs it many times a second). */
  #queueHandle: Deno.FsFile | undefined;

  private constructor(readonly dir: string) {
    this.tmpDir = join(dir, "tmp");
    this.queueDir = join(dir, "queue");
    this.requestDir = join(dir, "requests");
    this.freeDir = join(dir, "free");
    this.requests = new OperatorRequests(dir, this.requestDir);
    this.#free = new FreeFiles(this.freeDir);
  }

  /** Directory fsync rounds so far (each may cover many messages). */
  get syncRounds(): number {
    return this.#queueSync.rounds;
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

  /** Opens (creating if needed) the spool at `dir`. */
  static async open(dir: string): Promise<Spool> {
    const spool = new Spool(dir);
    await Deno.mkdir(spool.tmpDir, { recursive: true, mode: 0o700 });
    await Deno.mkdir(spool.queueDir, { recursive: true, mode: 0o700 });
    // Made by the spool's owner, so requests written by an operator stay readable to it.
    await Deno.mkdir(spool.requestDir, { recursive: true, mode: 0o700 });
    await Deno.mkdir(spool.freeDir, { recursive: true, mode: 0o700 });
    await spool.#free.load();
    return spool;
  }

  /**
   * Removes what a crash left half-done: files in `tmp/` (never acknowledged), and
   * records (`ID.json`) whose message file is gone. Only the server calls this, at
   * start, before it accepts connections.
   */
  async recover(): Promise<{ removedTmp: number; removedBroken: number; removedStale: number }> {
    let removedTmp = 0;
    let removedBroken = 0;
    let removedStale = 0;
    for await (const entry of Deno.readDir(this.tmpDir)) {
      await Deno.remove(join(this.tmpDir, entry.name)).catch(() => {});
      removedTmp++;
    }
    const names = new Set<string>();
    for await (const entry of Deno.readDir(this.queueDir)) names.add(entry.name);
    for (const name of names) {
      if (name.endsWith(".json") && !names.has(name.slice(0, -5) + ".msg")) {
        // A record whose bytes are gone (a delete that raced a late update, then a
        // crash): nothing can be delivered; the caller logs it.
        await Deno.remove(join(this.queueDir, name)).catch(() => {});
        removedBroken++;
      } else if (name.endsWith(".msg") && !names.has(name.slice(0, -4) + ".json")) {
        // Without a record beside it, the file's header must name this very message.
        // Otherwise it is a message file an older Carrier never committed (no header,
        // no record), or an entry a crash brought back after its file was reused.
        const id = name.slice(0, -4);
        if (!(await this.#headerNames(id))) {
          await Deno.remove(join(this.queueDir, name)).catch(() => {});
          removedStale++;
        }
      }
    }
    if (removedBroken + removedStale > 0) await this.#queueSync.request();
    return { removedTmp, removedBroken, removedStale };
  }

  /**
   * False if queue/ID.msg is certainly not message ID: it has no header (an older
   * Carrier's uncommitted bytes) or its header names another message. A file that
   * cannot be read or parsed is kept (and reported by the scans), never removed.
   */
  async #headerNames(id: string): Promise<boolean> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(this.messagePath(id), { read: true });
    } catch {
      return true;
    }
    try {
      const { header, offset } = await readHeader(file, this.messagePath(id), true);
      if (offset === 0) return false; // no header, and no record beside it
      return (header as { id?: unknown }).id === id;
    } catch {
      return true;
    } finally {
      file.close();
    }
  }

  /**
   * Starts writing a new message under a new id; its record (every recipient
   * pending, due at once) goes in the file's header.
   */
  // Kept async although nothing in it waits any more: callers await it, and a bad id
  // or a failure to open the file reaches them as a rejection.
  // deno-lint-ignore require-await
  async createMessage(
    fields: Omit<NewRecordFields, "id"> & { id?: string },
  ): Promise<MessageWriter> {
    const record = newRecord({ ...fields, id: fields.id ?? newQueueId() });
    if (!ID_PATTERN.test(record.id)) {
      throw new Error(`invalid queue id ${JSON.stringify(record.id)}`);
    }
    // Written over a spare file in free/ (see FreeFiles), renamed into queue/ at commit.
    const { path, file } = this.#free.take();
    return new MessageWriter(this, record, file, path);
  }

  /** Moves a synced message file into the queue and waits for the shared directory fsync. */
  async publish(id: string, path: string): Promise<void> {
    try {
      Deno.renameSync(path, this.messagePath(id));
      await this.#queueSync.request();
    } catch (e) {
      // Not acknowledged (the client gets 451): leave nothing of it in the queue.
      await Deno.remove(path).catch(() => {});
      await Deno.remove(this.messagePath(id)).catch(() => {});
      throw e;
    }
  }

  /** Creates spare message files in the background (see FreeFiles.prepare). */
  prepareFiles(signal?: AbortSignal): Promise<void> {
    return this.#free.prepare(signal);
  }

  /** Takes back the file of a message that was not committed. */
  discard(path: string): void {
    this.#free.giveBack(path);
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
      if (!(await pathExists(this.messagePath(record.id)))) {
        throw new UnknownMessageError(record.id);
      }
      await Deno.rename(tmp, this.recordPath(record.id));
      // A remove() that ran between the check and the rename took the message (the
      // commit point) first: take back the record we just brought back.
      if (!(await pathExists(this.messagePath(record.id)))) {
        await Deno.remove(this.recordPath(record.id)).catch(() => {});
        await this.#queueSync.request();
        throw new UnknownMessageError(record.id);
      }
      await this.#queueSync.request();
    } catch (e) {
      await Deno.remove(tmp).catch(() => {});
      throw e;
    }
  }

  /** Reads one record; throws UnknownMessageError for a bad or absent id. */
  async read(id: string): Promise<QueueRecord> {
    const { record, file } = await this.open(id);
    file.close();
    return record;
  }

  /**
   * Opens a stored message: its current record (the `ID.json` beside it if delivery
   * changed it, else the file's header) and its bytes. `known` is the record the
   * caller already holds (just queued, never updated): the file's header is then
   * only skipped, not parsed again.
   */
  async open(id: string, known?: QueueRecord): Promise<OpenedMessage> {
    if (!ID_PATTERN.test(id)) throw new UnknownMessageError(id);
    const path = this.messagePath(id);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new UnknownMessageError(id);
      throw e;
    }
    try {
      const { header, offset, buffer, used } = await readHeader(file, path, known === undefined);
      // Emptied: removed (and its file retired) between the open and the read.
      if (used === 0) throw new UnknownMessageError(id);
      let record = known;
      if (!record) {
        const size = (await file.stat()).size - offset;
        const stored = (await this.#readOverlay(id)) ??
          (header === undefined ? undefined : validateRecord(header, path));
        if (!stored) throw new Error(`${path}: no record`);
        // Another message's bytes: this one was removed and its file reused meanwhile (a
        // crash bringing back such an entry is undone by recover()).
        if (stored.id !== id) throw new UnknownMessageError(id);
        record = { ...stored, size };
      }
      return { record, file, head: buffer.subarray(offset, used), restAt: used };
    } catch (e) {
      file.close();
      throw e;
    }
  }

  async #readOverlay(id: string): Promise<QueueRecord | undefined> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.recordPath(id));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
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
      if (!entry.name.endsWith(".msg")) continue;
      const id = entry.name.slice(0, -4);
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

  /**
   * Removes a message: its file first (the commit point; kept in free/ for reuse),
   * then a record written beside it.
   */
  async remove(id: string, opts: { noRecord?: boolean } = {}): Promise<void> {
    if (!ID_PATTERN.test(id)) throw new UnknownMessageError(id);
    let spare: string | undefined;
    try {
      spare = this.#free.retire(this.messagePath(id));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new UnknownMessageError(id);
      throw e;
    }
    // `noRecord`: the caller knows no record was ever written beside it (saves a failed unlink).
    if (!opts.noRecord) await Deno.remove(this.recordPath(id)).catch(() => {});
    await this.#queueSync.request();
    // Only now may the file carry another message (see FreeFiles.retire).
    this.#free.release(spare);
  }

  /** The stored bytes of a message, as a stream that closes the file when done. */
  async openMessage(id: string): Promise<ReadableStream<Uint8Array>> {
    return messageStream(await this.open(id));
  }

  /** Path of a message's file (header line, then the bytes). */
  messagePath(id: string): string {
    return join(this.queueDir, `${id}.msg`);
  }

  /** Path of the record delivery wrote beside a message, when it changed. */
  recordPath(id: string): string {
    return join(this.queueDir, `${id}.json`);
  }

  async #syncQueueDir(): Promise<void> {
    this.#queueHandle ??= await Deno.open(this.queueDir, { read: true });
    try {
      await this.#queueHandle.sync();
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** Releases the directory handle kept for fsyncs (reopened if needed). */
  close(): void {
    try {
      this.#queueHandle?.close();
    } catch { /* already closed */ }
    this.#queueHandle = undefined;
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
    writeAll(file, new TextEncoder().encode(text));
    await file.sync();
  } finally {
    file.close();
  }
}

/**
 * Spare message files, kept for reuse. Creating a file is the most expensive
 * step of storing a message on many file systems (inode allocation costs far
 * more than a rename or a write), so a delivered message's file is renamed into
 * `free/` and the next message is written over it instead of into a new file.
 */

import { join } from "node:path";

/** Most spare files kept; beyond this, delivered files are deleted. */
const MAX_FREE = 1024;
/** Spare files made ahead of need after start, so a burst of mail finds them ready. */
const PREPARE = 256;

/** The `free/` directory of a spool and the names in it. */
export class FreeFiles {
  #names: string[] = [];
  #seq = 0;
  // Time plus randomness: names never collide with another process's (a CLI's) spares.
  #prefix = Date.now().toString(36).toUpperCase() +
    crypto.getRandomValues(new Uint32Array(1))[0].toString(36).toUpperCase();

  constructor(readonly dir: string) {}

  /**
   * Loads the names in `free/`. A name that shares its file with another entry (a
   * crash between a rename and the directory's write, repaired by fsck as a hard
   * link) is dropped, so a queued message is never written over.
   */
  async load(): Promise<void> {
    this.#names = [];
    for await (const entry of Deno.readDir(this.dir)) {
      if (!entry.isFile) continue;
      const path = join(this.dir, entry.name);
      let info: Deno.FileInfo;
      try {
        info = await Deno.stat(path);
      } catch (e) {
        // Taken meanwhile (`carrier queue` opening the spool of a running server).
        if (e instanceof Deno.errors.NotFound) continue;
        throw e;
      }
      if ((info.nlink ?? 1) > 1) await Deno.remove(path).catch(() => {});
      else this.#names.push(entry.name);
    }
  }

  /**
   * Creates spare files until `PREPARE` are available, one at a time (file creation
   * is slow; this runs in the background while the server starts serving).
   */
  async prepare(signal?: AbortSignal): Promise<void> {
    while (this.#names.length < PREPARE && !signal?.aborted) {
      const name = this.#newName();
      const file = await Deno.open(join(this.dir, name), {
        write: true,
        createNew: true,
        mode: 0o600,
      });
      file.close();
      this.#names.unshift(name); // taken last: recycled (warm) files go first
    }
  }

  /** Spare files available now. */
  get size(): number {
    return this.#names.length;
  }

  /**
   * Opens a spare file for a new message, emptied; creates one when none is left.
   * Returns its path: the message is written there and renamed into the queue.
   */
  take(): { path: string; file: Deno.FsFile } {
    for (;;) {
      const name = this.#names.pop() ?? this.#newName();
      const path = join(this.dir, name);
      // Synchronous, like the writes and renames of a message: cheaper than a thread hop.
      const file = Deno.openSync(path, { write: true, create: true, truncate: true, mode: 0o600 });
      // A file linked elsewhere too (a hard-link backup of the spool) is never written over.
      if ((file.statSync().nlink ?? 1) === 1) return { path, file };
      file.close();
      Deno.removeSync(path);
    }
  }

  /** Gives back a file that was taken and not used (the message was aborted), emptied. */
  giveBack(path: string): void {
    if (this.#names.length >= MAX_FREE) {
      Deno.remove(path).catch(() => {});
      return;
    }
    try {
      Deno.truncateSync(path, 0);
    } catch { /* emptied when taken again */ }
    this.#names.push(path.slice(this.dir.length + 1));
  }

  /**
   * Moves a finished message's file here (or deletes it when enough are spare).
   * The file is not reusable yet: call `release` with the returned name once the
   * queue directory no longer listing it is durable. Reused earlier, a crash could
   * bring the old entry back pointing at a newer message's bytes.
   */
  retire(path: string): string | undefined {
    if (this.#names.length >= MAX_FREE) {
      Deno.removeSync(path);
      return undefined;
    }
    const name = this.#newName();
    const target = join(this.dir, name);
    Deno.renameSync(path, target);
    // Emptied now: no delivered mail lingers in free/, and no disk space is held.
    try {
      Deno.truncateSync(target, 0);
    } catch { /* emptied when taken again */ }
    return name;
  }

  /** Makes a retired file available for the next message. */
  release(name: string | undefined): void {
    if (name !== undefined && this.#names.length < MAX_FREE) this.#names.push(name);
  }

  #newName(): string {
    return `F${this.#prefix}${(++this.#seq).toString(36).toUpperCase()}`;
  }
}

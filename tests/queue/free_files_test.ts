import { deepStrictEqual, notStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { FreeFiles } from "../../src/queue/free_files.ts";

async function withDir(fn: (dir: string, free: FreeFiles) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "carrier-free-test-" });
  const dir = join(root, "free");
  await Deno.mkdir(dir);
  try {
    await fn(dir, new FreeFiles(dir));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

/** A finished message file outside free/ (as in queue/), `size` bytes long. */
async function finished(dir: string, name: string, size: number): Promise<string> {
  const path = join(dir, "..", name);
  await Deno.writeFile(path, new Uint8Array(size).fill(0x61));
  return path;
}

Deno.test("FreeFiles: take with nothing spare creates a new private file in free/", async () => {
  await withDir(async (dir, free) => {
    await free.load();
    strictEqual(free.size, 0);
    const { path, file } = await free.take();
    file.close();
    strictEqual(join(dir, path.slice(dir.length + 1)), path, "a path inside free/");
    deepStrictEqual(await names(dir), [path.slice(dir.length + 1)]);
    strictEqual((await Deno.stat(path)).mode! & 0o777, 0o600);
    strictEqual(free.size, 0, "a taken file is no longer spare");
  });
});

Deno.test("FreeFiles: take reuses a recycled file (same inode), emptied", async () => {
  await withDir(async (dir, free) => {
    const old = await finished(dir, "A.msg", 1000);
    const inode = (await Deno.stat(old)).ino;
    free.release(free.retire(old));
    strictEqual(free.size, 1);
    const [spare] = await names(dir);
    strictEqual((await Deno.stat(join(dir, spare))).ino, inode);
    strictEqual(
      (await Deno.stat(join(dir, spare))).size,
      0,
      "emptied at once: no delivered mail lingers",
    );

    const { path, file } = await free.take();
    try {
      strictEqual(path, join(dir, spare));
      strictEqual((await file.stat()).ino, inode);
      strictEqual((await file.stat()).size, 0, "emptied: nothing of the old message is left");
      await file.write(new TextEncoder().encode("new"));
    } finally {
      file.close();
    }
    strictEqual(await Deno.readTextFile(path), "new");
    strictEqual(free.size, 0);
  });
});

Deno.test("FreeFiles: a recycled file is truncated at once; names never repeat", async () => {
  await withDir(async (dir, free) => {
    const big = await finished(dir, "B.msg", 300 * 1024);
    free.release(free.retire(big));
    const [name] = await names(dir);
    strictEqual((await Deno.stat(join(dir, name))).size, 0);
    const again = await finished(dir, "C.msg", 10);
    free.release(free.retire(again));
    const both = await names(dir);
    strictEqual(both.length, 2);
    notStrictEqual(both[0], both[1]);
  });
});

Deno.test("FreeFiles: giveBack returns an unused file to the spares", async () => {
  await withDir(async (dir, free) => {
    const { path, file } = await free.take();
    file.close();
    free.giveBack(path);
    strictEqual(free.size, 1);
    const second = await free.take();
    second.file.close();
    strictEqual(second.path, path);
    deepStrictEqual(await names(dir), [path.slice(dir.length + 1)]);
  });
});

Deno.test("FreeFiles: load keeps plain files and drops a name that shares its file (nlink > 1)", async () => {
  await withDir(async (dir, free) => {
    await Deno.writeTextFile(join(dir, "F1"), "spare");
    await Deno.writeTextFile(join(dir, "F2"), "spare");
    // A crash between a rename into queue/ and the directory's write, repaired as a hard
    // link: the queued message must never be written over.
    const queued = join(dir, "..", "QUEUED.msg");
    await Deno.writeTextFile(queued, "a queued message");
    await Deno.link(queued, join(dir, "F3"));
    await Deno.mkdir(join(dir, "subdir"));
    await free.load();
    strictEqual(free.size, 2);
    deepStrictEqual(await names(dir), ["F1", "F2", "subdir"]);
    strictEqual(await Deno.readTextFile(queued), "a queued message", "the message is untouched");
    const taken = new Set<string>();
    for (let i = 0; i < 2; i++) {
      const { path, file } = await free.take();
      file.close();
      taken.add(path);
    }
    deepStrictEqual([...taken].sort(), [join(dir, "F1"), join(dir, "F2")]);
    strictEqual(await Deno.readTextFile(queued), "a queued message");
  });
});

Deno.test("FreeFiles: load skips a spare file taken by a running server meanwhile", async () => {
  // `carrier queue ...` opens the spool of a running server: a spare file can be renamed
  // into queue/ (a message committed) between the directory listing and its stat.
  await withDir(async (dir, free) => {
    await Deno.writeTextFile(join(dir, "F1"), "");
    await Deno.writeTextFile(join(dir, "F2"), "");
    const stat = Deno.stat;
    let raced = false;
    Deno.stat = async (path: string | URL) => {
      if (!raced && String(path) === join(dir, "F1")) {
        raced = true;
        await Deno.rename(join(dir, "F1"), join(dir, "..", "COMMITTED.msg"));
      }
      return await stat(path);
    };
    try {
      await free.load();
    } finally {
      Deno.stat = stat;
    }
    ok(raced, "the race was staged");
    strictEqual(free.size, 1);
    const { path, file } = await free.take();
    file.close();
    strictEqual(path, join(dir, "F2"));
  });
});

Deno.test("FreeFiles: recycle past the maximum deletes the file instead", async () => {
  await withDir(async (dir, free) => {
    const MAX_FREE = 1024;
    for (let i = 0; i < MAX_FREE; i++) await Deno.writeFile(join(dir, `S${i}`), new Uint8Array());
    await free.load();
    strictEqual(free.size, MAX_FREE);
    const extra = await finished(dir, "D.msg", 10);
    free.release(free.retire(extra));
    strictEqual(free.size, MAX_FREE);
    strictEqual((await names(dir)).length, MAX_FREE);
    await Deno.stat(extra).then(
      () => ok(false, "the file should be gone"),
      (e) => ok(e instanceof Deno.errors.NotFound),
    );
  });
});

Deno.test("FreeFiles: prepare makes spare files ahead of need; recycled ones are taken first", async () => {
  await withDir(async (dir, free) => {
    await free.prepare();
    const PREPARE = 256;
    strictEqual(free.size, PREPARE);
    strictEqual((await names(dir)).length, PREPARE);
    await free.prepare(); // enough already: nothing more
    strictEqual((await names(dir)).length, PREPARE);
    const warm = await finished(dir, "W.msg", 10);
    const inode = (await Deno.stat(warm)).ino;
    free.release(free.retire(warm));
    const { file } = await free.take();
    try {
      strictEqual((await file.stat()).ino, inode, "a recycled (warm) file goes first");
    } finally {
      file.close();
    }
  });
});

Deno.test("FreeFiles: prepare stops when its signal is aborted", async () => {
  await withDir(async (dir, free) => {
    const stop = new AbortController();
    stop.abort();
    await free.prepare(stop.signal);
    strictEqual(free.size, 0);
    deepStrictEqual(await names(dir), []);
  });
});

Deno.test("FreeFiles: a spare file linked elsewhere too (a hard-link backup) is never written over", async () => {
  await withDir(async (dir, free) => {
    const old = await finished(dir, "E.msg", 100);
    const name = free.retire(old);
    free.release(name);
    const backup = join(dir, "..", "backup-copy");
    await Deno.link(join(dir, name!), backup);
    const { path, file } = free.take();
    file.close();
    notStrictEqual(path, join(dir, name!), "the linked spare was dropped, a new one made");
    strictEqual((await Deno.stat(backup)).nlink, 1, "the backup keeps its file");
    await Deno.remove(backup);
  });
});

Deno.test("FreeFiles: a retired file is not handed out before it is released", async () => {
  await withDir(async (dir, free) => {
    const old = await finished(dir, "D.msg", 100);
    const inode = (await Deno.stat(old)).ino;
    const name = free.retire(old);
    strictEqual(free.size, 0, "not reusable until the queue directory is synced");
    const first = free.take();
    notStrictEqual((await first.file.stat()).ino, inode, "a new file, not the retired one");
    first.file.close();
    free.release(name);
    const second = free.take();
    strictEqual((await second.file.stat()).ino, inode);
    second.file.close();
  });
});

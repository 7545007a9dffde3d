/**
 * The connection's one timer for all read and write deadlines. Deadlines are real
 * (Date.now based) but every check is about order and outcome, never about how long
 * something took: the margins between events are wide.
 */
import { ok, rejects, strictEqual } from "node:assert/strict";
import { IoTimeoutError, Watchdog } from "../../src/server/watchdog.ts";

/** Every test here checks that no timer or promise op outlives it. */
const CHECKED = { sanitizeOps: true, sanitizeResources: true };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** An I/O promise the test settles by hand. */
function pendingIo<T>() {
  let resolve!: (value: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** The outcome of `p`, or "pending" if it has not settled within `ms` (a bound, not a timing check). */
async function outcome<T>(p: Promise<T>, ms: number): Promise<T | Error | "pending"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = new Promise<"pending">((r) => timer = setTimeout(() => r("pending"), ms));
  try {
    return await Promise.race([p.catch((e: Error) => e), bound]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test(
  "Watchdog: I/O that settles in time passes its value or its error through",
  CHECKED,
  async () => {
    const w = new Watchdog();
    try {
      strictEqual(await w.guard(Promise.resolve(42), Date.now() + 60_000, "read"), 42);
      await rejects(
        w.guard(Promise.reject(new Error("reset by peer")), Date.now() + 60_000, "read"),
        /reset by peer/,
      );
    } finally {
      w.stop();
    }
  },
);

Deno.test(
  "Watchdog: a read past its deadline rejects with IoTimeoutError naming it",
  CHECKED,
  async () => {
    const w = new Watchdog();
    const io = pendingIo<string>();
    try {
      await rejects(w.guard(io.promise, Date.now() + 30, "read timeout"), (e: unknown) => {
        ok(e instanceof IoTimeoutError, String(e));
        strictEqual(e.message, "read timeout");
        return true;
      });
    } finally {
      w.stop();
      io.resolve("late"); // the transport's read settles later; nothing listens any more
    }
  },
);

Deno.test("Watchdog: a deadline already past rejects at once", CHECKED, async () => {
  const w = new Watchdog();
  const io = pendingIo<void>();
  try {
    await rejects(w.guard(io.promise, Date.now() - 1000, "timeout"), IoTimeoutError);
  } finally {
    w.stop();
    io.resolve();
  }
});

Deno.test(
  "Watchdog: a later deadline re-arms the timer instead of firing early",
  CHECKED,
  async () => {
    const w = new Watchdog();
    try {
      // The first guard arms the timer for a near deadline, then settles at once.
      strictEqual(await w.guard(Promise.resolve("a"), Date.now() + 50, "t"), "a");
      // The next I/O has a far deadline and settles after the first timer has fired.
      const io = pendingIo<string>();
      const guarded = w.guard(io.promise, Date.now() + 10_000, "t");
      await sleep(200);
      strictEqual(await outcome(guarded, 0), "pending", "not timed out by the earlier deadline");
      io.resolve("b");
      strictEqual(await guarded, "b");
      // An earlier deadline than the armed one still fires on time (the timer moves forward).
      const stuck = pendingIo<string>();
      await rejects(w.guard(stuck.promise, Date.now() + 30, "t"), IoTimeoutError);
      stuck.resolve("never read");
    } finally {
      w.stop();
    }
  },
);

Deno.test(
  "Watchdog: interrupt fails the pending I/O with the given error; false when idle",
  CHECKED,
  async () => {
    const w = new Watchdog();
    try {
      strictEqual(w.interrupt(new Error("shutdown")), false, "nothing pending");
      const io = pendingIo<string>();
      const guarded = w.guard(io.promise, Date.now() + 60_000, "read");
      strictEqual(w.interrupt(new Error("shutdown")), true);
      await rejects(guarded, /shutdown/);
      strictEqual(w.interrupt(new Error("again")), false, "only once");
      io.resolve("late");
      // The watchdog keeps working for the next I/O.
      strictEqual(await w.guard(Promise.resolve("next"), Date.now() + 60_000, "read"), "next");
    } finally {
      w.stop();
    }
  },
);

Deno.test(
  "Watchdog: an abandoned read settling late does not disarm the next I/O's deadline",
  CHECKED,
  async () => {
    // After a timeout or a shutdown interrupt the connection writes a 421 while the
    // transport's read is still outstanding; if that read then settles, the write must
    // keep its deadline (a client that stops reading cannot hold the session).
    const w = new Watchdog();
    const read = pendingIo<string>();
    const write = pendingIo<void>();
    try {
      await rejects(w.guard(read.promise, Date.now() + 20, "timeout"), IoTimeoutError);
      const guardedWrite = w.guard(write.promise, Date.now() + 100, "write timeout");
      read.resolve("bytes that arrived late");
      const result = await outcome(guardedWrite, 5000);
      ok(result instanceof IoTimeoutError, `the write timed out: ${String(result)}`);
      strictEqual(result.message, "write timeout");
    } finally {
      w.stop();
      write.resolve();
    }
  },
);

Deno.test(
  "Watchdog: stop clears the timer (no timer outlives the connection)",
  CHECKED,
  async () => {
    const w = new Watchdog();
    const io = pendingIo<string>();
    const guarded = w.guard(io.promise, Date.now() + 60_000, "read");
    w.stop(); // the op sanitizer (CHECKED) fails the test if the timer were left running
    io.resolve("done");
    strictEqual(await guarded, "done");
  },
);

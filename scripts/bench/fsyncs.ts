/**
 * Counts the fsync-family system calls a server makes per message, by running
 * it under `strace -f -c` (a separate pass: tracing slows everything down).
 */

import { join } from "node:path";

const CALLS = ["fsync", "fdatasync", "sync_file_range", "syncfs", "sync", "msync"];

/** Runs `body` with a command prefix that traces the server; returns fsyncs per message. */
export async function countFsyncs(
  body: (prefix: string[]) => Promise<void>,
  dir: string,
  messages: number,
): Promise<number> {
  await Deno.mkdir(dir, { recursive: true });
  const out = join(dir, "strace.txt");
  await body(["strace", "-f", "-qq", "-c", "-o", out, "-e", `trace=${CALLS.join(",")}`]);
  // strace writes its summary when the last traced process has exited.
  for (let i = 0; i < 200; i++) {
    const text = await Deno.readTextFile(out).catch(() => "");
    if (/total/.test(text)) return parseCalls(text) / messages;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("strace wrote no summary");
}

/** The calls column summed over the fsync-family rows of an `strace -c` table. */
export function parseCalls(text: string): number {
  let total = 0;
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    const name = f[f.length - 1];
    if (!CALLS.includes(name)) continue;
    // % time, seconds, usecs/call, calls, [errors], syscall
    total += Number(f[3]);
  }
  return total;
}

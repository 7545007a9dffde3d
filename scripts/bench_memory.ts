/**
 * `deno task bench:memory`: Carrier's memory under the loads that break relays
 * that buffer messages: 100 sessions sending 10 MB each at once, and a 1 GB line
 * without CRLF, in DATA and as a command. Prints the peak resident set of what
 * `deno task dev` runs (VmHWM), before and after each load. Loopback only.
 *
 *   deno task bench:memory [--sessions 100] [--size-mb 10] [--line-mb 1024]
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { HeapSampler, startCarrier } from "./bench/carrier.ts";
import { ReplyReader, startSink, writeAll } from "./bench/load.ts";
import { waitForPort } from "./bench/postfix.ts";
import { MemorySampler } from "./bench/procs.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    sessions: { type: "string", default: "100" },
    "size-mb": { type: "string", default: "10" },
    "line-mb": { type: "string", default: "1024" },
    dir: { type: "string", default: "/var/tmp" },
  },
});
const sessions = Number(values.sessions);
const sizeMb = Number(values["size-mb"]);
const lineMb = Number(values["line-mb"]);
const MiB = 1024 * 1024;
const encoder = new TextEncoder();

const base = await Deno.makeTempDir({ dir: values.dir, prefix: "carrier-bench-memory-" });
const port = 30000 + Math.floor(Math.random() * 20000);
const sink = startSink(port + 1);
await waitForPort(port + 1);
const carrier = await startCarrier(join(base, "carrier"), port, port + 1, [], port + 2, [
  "--max-message-size",
  `${sizeMb + 1}M`,
  "--max-connections",
  String(sessions + 20),
  "--max-connections-per-client",
  String(sessions + 10),
]);
await waitForPort(port, 30_000);
const memory = new MemorySampler(carrier.pid, 50);
const heap = new HeapSampler(port + 2, 100);
memory.start();
heap.start();

/** A raw client: writes commands and reads one reply per command. */
async function session(
  fn: (say: (s: string) => Promise<string>, conn: Deno.Conn) => Promise<void>,
) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const replies = new ReplyReader(conn);
  const say = async (s: string) => {
    if (s) await writeAll(conn, encoder.encode(s));
    return await replies.replyText();
  };
  try {
    await replies.replyText();
    await fn(say, conn);
    await say("QUIT\r\n");
  } finally {
    conn.close();
  }
}

const line = encoder.encode("x".repeat(998) + "\r\n");
const chunk = new Uint8Array(64 * 1000);
for (let i = 0; i < chunk.length; i += 1000) chunk.set(line, i);

async function bigMessage(): Promise<string> {
  let result = "";
  await session(async (say, conn) => {
    await say("EHLO memory.bench.invalid\r\n");
    await say("MAIL FROM:<load@source.bench.invalid>\r\n");
    await say("RCPT TO:<sink@sink.bench.invalid>\r\n");
    await say("DATA\r\n");
    for (let sent = 0; sent < sizeMb * 1000 * 1000; sent += chunk.length) {
      await writeAll(conn, chunk);
    }
    result = await say(".\r\n");
  });
  return result;
}

const idleKiB = (await memory.sample(), memory.peakRssKiB);
const t0 = performance.now();
const replies = await Promise.all(Array.from({ length: sessions }, bigMessage));
const seconds = (performance.now() - t0) / 1000;
const accepted = replies.filter((r) => r.startsWith("250")).length;
await sink.waitFor(accepted, 600_000);
await memory.sample();
await heap.sample();
const afterBig = memory.peakRssKiB;
console.log(
  `${sessions} concurrent ${sizeMb} MB messages: ${accepted} accepted in ${seconds.toFixed(1)} s ` +
    `(${((sessions * sizeMb) / seconds).toFixed(0)} MB/s), all relayed; peak RSS ` +
    `${(afterBig / 1024).toFixed(0)} MiB (idle ${(idleKiB / 1024).toFixed(0)} MiB); heap peak ` +
    `${(heap.peak.heapUsed / MiB).toFixed(0)}/${(heap.peak.heapTotal / MiB).toFixed(0)} MiB ` +
    `used/reserved, external ${(heap.peak.external / MiB).toFixed(0)} MiB`,
);

// A 1 GB line without CRLF, first inside DATA (message too big: 552), then as a command (500).
const run = new Uint8Array(MiB).fill(0x78);
let dataReply = "";
await session(async (say, conn) => {
  await say("EHLO memory.bench.invalid\r\n");
  await say("MAIL FROM:<load@source.bench.invalid>\r\n");
  await say("RCPT TO:<sink@sink.bench.invalid>\r\n");
  await say("DATA\r\n");
  for (let i = 0; i < lineMb; i++) await writeAll(conn, run);
  dataReply = await say("\r\n.\r\n");
});
await memory.sample();
const afterDataLine = memory.peakRssKiB;
let commandReply = "";
await session(async (say, conn) => {
  await say("EHLO memory.bench.invalid\r\n");
  for (let i = 0; i < lineMb; i++) await writeAll(conn, run);
  commandReply = await say("\r\n");
});
await memory.stop();
heap.stop();
console.log(
  `${lineMb} MB line without CRLF in DATA: "${dataReply.trim()}"; as a command: ` +
    `"${commandReply.trim()}"; peak RSS after the DATA line ${(afterDataLine / 1024).toFixed(0)} ` +
    `MiB, after the command line ${(memory.peakRssKiB / 1024).toFixed(0)} MiB ` +
    `(after the big messages: ${(afterBig / 1024).toFixed(0)} MiB)`,
);
await carrier.stop();
await sink.stop();
await Deno.remove(base, { recursive: true });

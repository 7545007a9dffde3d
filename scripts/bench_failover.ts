/**
 * `deno run -A scripts/bench_failover.ts`: what upstream connections cost and what a failover
 * adds, measured on loopback with Carrier run from source (the e2e tests' launcher, with its
 * derived permissions) and smtp-server smarthosts (STARTTLS + AUTH, the test PKI).
 *
 *   (a) 200 messages to one upstream with the default --messages-per-connection and
 *       --delivery-concurrency: upstream connections and AUTH logins, sent from one session
 *       and from 10 sessions at once.
 *   (b) the delay from Carrier's "250 queued" to the smarthost having the message, with one
 *       healthy upstream, and with a closed port or a blackhole (accepts TCP, never greets)
 *       first in the list; one message at a time, and a burst before the first is known bad.
 *
 *   deno run -A scripts/bench_failover.ts [--timeout 5] [--sequential 6] [--burst 10]
 */

import { parseArgs } from "node:util";
import { percentile } from "./bench/load.ts";
import { type CarrierProcess, startCarrier } from "../tests/support/carrier.ts";
import { RawClient } from "../tests/support/raw_client.ts";
import { type Smarthost, startSmarthost, upstreamListArgs } from "../tests/support/smarthost.ts";
import { makeTestPki, type TestPki } from "../tests/support/tls.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    timeout: { type: "string", default: "5" },
    sequential: { type: "string", default: "6" },
    burst: { type: "string", default: "10" },
    messages: { type: "string", default: "200" },
  },
});
const TIMEOUT_S = Number(values.timeout);
const SEQUENTIAL = Number(values.sequential);
const BURST = Number(values.burst);
const MESSAGES = Number(values.messages);
const USER = "bench@example.com";
const PASSWORD = "bench-upstream-password";
/** Every wait is bounded by this (ms). */
const WAIT_MS = 120_000;

/** Queues `count` messages on one SMTP session; calls `queued(seq)` at each "250 queued". */
async function session(
  port: number,
  seqs: number[],
  queued: (seq: number) => void = () => {},
): Promise<void> {
  const c = await RawClient.connect(port);
  try {
    await c.reply();
    await c.send("EHLO bench.test\r\n");
    await c.reply();
    for (const seq of seqs) {
      await c.send(`MAIL FROM:<bench@example.org>\r\nRCPT TO:<r${seq}@example.net>\r\nDATA\r\n`);
      const [mail, rcpt, data] = await c.replies(3, WAIT_MS);
      if (mail.code !== 250 || rcpt.code !== 250 || data.code !== 354) {
        throw new Error(`refused: ${mail.raw}${rcpt.raw}${data.raw}`);
      }
      await c.send(`X-Bench-Seq: ${seq}\r\nSubject: bench ${seq}\r\n\r\nbody\r\n.\r\n`);
      const done = await c.reply(WAIT_MS);
      if (done.code !== 250) throw new Error(`not queued: ${done.raw}`);
      queued(seq);
    }
    await c.send("QUIT\r\n");
  } finally {
    c.close();
  }
}

/** The X-Bench-Seq of a received message. */
function seqOf(data: Uint8Array): number {
  const m = /X-Bench-Seq: (\d+)/.exec(new TextDecoder().decode(data));
  if (!m) throw new Error("a message without X-Bench-Seq");
  return Number(m[1]);
}

/** Resolves with the time (performance.now) each message reached `host`, by sequence. */
function arrivals(host: Smarthost, count: number): Promise<Map<number, number>> {
  return (async () => {
    const at = new Map<number, number>();
    for (let k = host.received.length + 1; at.size < count; k++) {
      const mails = await host.waitFor(k, WAIT_MS);
      at.set(seqOf(mails[k - 1].data), performance.now());
    }
    return at;
  })();
}

/** A listener that accepts connections and never says a word (closed at the end). */
function blackhole(): { port: number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  (async () => {
    try {
      for await (const conn of listener) held.push(conn);
    } catch { /* closed */ }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close() {
      for (const c of held) {
        try {
          c.close();
        } catch { /* gone */ }
      }
      listener.close();
    },
  };
}

/** A port with nothing listening on it. */
function closedPort(): number {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return port;
}

interface Run {
  carrier: CarrierProcess;
  host: Smarthost;
  stop(): Promise<void>;
}

/** A healthy smarthost, behind `before` (ports tried first), and Carrier relaying to them. */
async function start(pki: TestPki, before: number[], extra: string[] = []): Promise<Run> {
  const host = await startSmarthost({ pki, users: { [USER]: PASSWORD } });
  const list = [...before.map((port) => ({ port, user: USER })), { port: host.port, user: USER }];
  // Later flags win: the default retry policy (the failed upstream's pause is ~1 min).
  const args = upstreamListArgs(pki, list, ["--retry-min", "1m", "--retry-max", "1h", ...extra]);
  const carrier = await startCarrier({ args, env: { CARRIER_UPSTREAM_PASSWORD: PASSWORD } });
  return {
    carrier,
    host,
    async stop() {
      await carrier.stop();
      await host.close();
    },
  };
}

/** (a): connections and logins for MESSAGES messages from `sessions` sessions at once. */
async function connectionCost(pki: TestPki, sessions: number) {
  const run = await start(pki, []);
  try {
    const started = performance.now();
    const all = run.host.waitFor(MESSAGES, WAIT_MS);
    const per = Math.ceil(MESSAGES / sessions);
    await Promise.all(
      Array.from({ length: sessions }, (_, s) =>
        session(
          run.carrier.port,
          Array.from({ length: per }, (_, i) => s * per + i).filter((n) => n < MESSAGES),
        )),
    );
    await all;
    const seconds = (performance.now() - started) / 1000;
    return {
      sessions,
      connections: run.host.connections,
      logins: run.host.logins,
      seconds,
    };
  } finally {
    await run.stop();
  }
}

interface Delays {
  first: number;
  rest: number[];
}

/** (b): one message at a time; the delay (ms) of the first and of the others. */
async function sequentialDelays(pki: TestPki, before: number[]): Promise<Delays> {
  const run = await start(pki, before, ["--upstream-timeout", `${TIMEOUT_S}s`]);
  try {
    const delays: number[] = [];
    for (let seq = 0; seq < SEQUENTIAL; seq++) {
      const arrived = arrivals(run.host, 1);
      let queuedAt = 0;
      await session(run.carrier.port, [seq], () => queuedAt = performance.now());
      delays.push((await arrived).get(seq)! - queuedAt);
    }
    return { first: delays[0], rest: delays.slice(1) };
  } finally {
    await run.stop();
  }
}

/** (b): BURST messages from BURST sessions at once on a fresh server; delays (ms). */
async function burstDelays(pki: TestPki, before: number[]): Promise<number[]> {
  const run = await start(pki, before, ["--upstream-timeout", `${TIMEOUT_S}s`]);
  try {
    const queuedAt = new Map<number, number>();
    const arrived = arrivals(run.host, BURST);
    await Promise.all(
      Array.from(
        { length: BURST },
        (_, seq) => session(run.carrier.port, [seq], () => queuedAt.set(seq, performance.now())),
      ),
    );
    const at = await arrived;
    return [...queuedAt].map(([seq, t]) => at.get(seq)! - t);
  } finally {
    await run.stop();
  }
}

const ms = (n: number) => n.toFixed(n < 100 ? 1 : 0);

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

async function main(): Promise<void> {
  const pki = await makeTestPki();
  console.error(`(a) ${MESSAGES} messages to one upstream, default concurrency and reuse`);
  const costs = [];
  for (const sessions of [1, 10]) costs.push(await connectionCost(pki, sessions));

  console.error(`(b) failover delay, --upstream-timeout ${TIMEOUT_S}s`);
  const hole = blackhole();
  const scenarios: [string, () => number[]][] = [
    ["one healthy upstream", () => []],
    ["closed port first", () => [closedPort()]],
    ["blackhole first", () => [hole.port]],
  ];
  const rows: string[][] = [];
  try {
    for (const [name, before] of scenarios) {
      const seq = await sequentialDelays(pki, before());
      const burst = await burstDelays(pki, before());
      rows.push([
        name,
        ms(seq.first),
        ms(percentile(seq.rest, 50)),
        ms(Math.max(...seq.rest)),
        ms(percentile(burst, 50)),
        ms(Math.max(...burst)),
      ]);
    }
  } finally {
    hole.close();
  }

  console.log(`\n(a) ${MESSAGES} messages, one upstream (STARTTLS + AUTH), defaults`);
  console.log(table(
    ["client sessions", "upstream connections", "AUTH logins", "msgs/connection", "seconds"],
    costs.map((c) => [
      String(c.sessions),
      String(c.connections),
      String(c.logins),
      (MESSAGES / c.connections).toFixed(1),
      c.seconds.toFixed(2),
    ]),
  ));
  console.log(
    `\n(b) delay from "250 queued" to the smarthost (ms), --upstream-timeout ${TIMEOUT_S}s; ` +
      `${SEQUENTIAL} messages one at a time, then ${BURST} at once on a fresh server`,
  );
  console.log(table(
    ["first upstream", "1st msg", "later p50", "later max", "burst p50", "burst max"],
    rows,
  ));
}

if (import.meta.main) await main();

/**
 * `deno task bench`: Carrier and Postfix side by side in one run, on loopback.
 * Both relay to Postfix's smtp-sink; Postfix's smtp-source is the load. Runs
 * are interleaved (A B, then B A) and each scenario is repeated; the table shows
 * medians. A second pass under strace counts fsyncs per message.
 *
 *   deno task bench [--runs 3] [--scale 1] [--only 1k-many,...] [--no-fsyncs]
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { HeapSampler, startCarrier } from "./bench/carrier.ts";
import {
  LatencyProbe,
  type LatencyProbe as Probe,
  type LoadShape,
  percentile,
  runSource,
  startSink,
} from "./bench/load.ts";
import { ensurePostfix, startPostfix, waitForPort } from "./bench/postfix.ts";
import { MemorySampler, treeCpuSeconds } from "./bench/procs.ts";
import { countFsyncs } from "./bench/fsyncs.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "3" },
    scale: { type: "string", default: "1" },
    only: { type: "string" },
    "no-fsyncs": { type: "boolean", default: false },
    systems: { type: "string", default: "carrier,postfix" },
    // Both queues go here (same file system for both): file creation costs differ a lot
    // between directories of one disk, so never compare runs made in different places.
    dir: { type: "string", default: "/var/tmp" },
  },
});

type System = "carrier" | "postfix";

interface Scenario extends LoadShape {
  key: string;
  name: string;
}

const scale = Number(values.scale);
const n = (count: number) => Math.max(20, Math.round(count * scale));
const SCENARIOS: Scenario[] = [
  {
    key: "1k-many",
    name: "1 KB, 20 sessions × many",
    size: 1024,
    messages: n(5000),
    sessions: 20,
    reuse: true,
  },
  {
    key: "100k-many",
    name: "100 KB, 20 sessions × many",
    size: 102400,
    messages: n(2000),
    sessions: 20,
    reuse: true,
  },
  {
    key: "1k-one",
    name: "1 KB, 20 sessions × 1 message",
    size: 1024,
    messages: n(2000),
    sessions: 20,
    reuse: false,
  },
  {
    key: "100k-one",
    name: "100 KB, 20 sessions × 1 message",
    size: 102400,
    messages: n(1000),
    sessions: 20,
    reuse: false,
  },
  {
    key: "1k-single",
    name: "1 KB, 1 session",
    size: 1024,
    messages: n(2000),
    sessions: 1,
    reuse: true,
  },
];
const scenarios = values.only
  ? SCENARIOS.filter((s) => values.only!.split(",").includes(s.key))
  : SCENARIOS;
const systems = values.systems.split(",") as System[];
const runs = Number(values.runs);
const RUN_TIMEOUT_MS = 300_000;
const MiB = 1024 * 1024;

/** One run of one scenario against one system. */
interface Result {
  acceptRate: number;
  e2eRate: number;
  cpuMsPerMessage: number;
  peakRssMiB: number;
  peakPssMiB: number;
  p50: number;
  p99: number;
  /** Carrier only: peak V8 heap reserved / used and external memory, MiB. */
  heap?: { total: number; used: number; external: number };
}

let nextPort = 20000 + Math.floor(Math.random() * 20000);
const base = await Deno.makeTempDir({ dir: values.dir, prefix: "carrier-bench-" });
await Deno.chmod(base, 0o755); // Postfix's daemons run as the postfix user and need to reach their queue

async function start(
  system: System,
  dir: string,
  port: number,
  sinkPort: number,
  prefix: string[] = [],
  metricsPort = 0,
) {
  if (system === "carrier") {
    const c = await startCarrier(dir, port, sinkPort, prefix, metricsPort);
    await waitForPort(port, 30_000);
    return { root: c.pid, stop: () => c.stop() };
  }
  const p = await startPostfix(dir, port, sinkPort, prefix);
  return { root: await p.masterPid(), stop: () => p.stop() };
}

async function runOnce(system: System, scenario: Scenario, index: number): Promise<Result> {
  const dir = join(base, `${system}-${scenario.key}-${index}`);
  const port = nextPort++;
  const sinkPort = nextPort++;
  const sink = startSink(sinkPort);
  await waitForPort(sinkPort);
  const metricsPort = system === "carrier" ? nextPort++ : 0;
  const server = await start(system, dir, port, sinkPort, [], metricsPort);
  const heap = metricsPort ? new HeapSampler(metricsPort) : undefined;
  try {
    const memory = new MemorySampler(server.root);
    memory.start();
    heap?.start();
    const cpu0 = await treeCpuSeconds(server.root);
    const probe: Probe = new LatencyProbe(port);
    probe.start();
    const started = performance.now();
    const source = await runSource(port, scenario, RUN_TIMEOUT_MS);
    await probe.stop();
    const total = scenario.messages + probe.samples.length;
    const ok = await sink.waitFor(total, RUN_TIMEOUT_MS);
    if (!ok) throw new Error(`${system}: the sink got ${sink.received} of ${total} messages`);
    const e2eSeconds = (performance.now() - started) / 1000;
    const cpu = (await treeCpuSeconds(server.root)) - cpu0;
    await memory.stop();
    heap?.stop();
    return {
      acceptRate: scenario.messages / source.seconds,
      e2eRate: scenario.messages / e2eSeconds,
      cpuMsPerMessage: (cpu * 1000) / total,
      peakRssMiB: memory.peakRssKiB / 1024,
      peakPssMiB: memory.peakPssKiB / 1024,
      p50: percentile(probe.samples, 50),
      p99: percentile(probe.samples, 99),
      heap: heap && {
        total: heap.peak.heapTotal / MiB,
        used: heap.peak.heapUsed / MiB,
        external: heap.peak.external / MiB,
      },
    };
  } finally {
    await server.stop();
    await sink.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function fsyncsPerMessage(system: System, scenario: Scenario): Promise<number> {
  const dir = join(base, `${system}-${scenario.key}-strace`);
  const port = nextPort++;
  const sinkPort = nextPort++;
  const sink = startSink(sinkPort);
  await waitForPort(sinkPort);
  const messages = Math.min(scenario.messages, 1000);
  console.error(`fsync pass: ${system} ${scenario.key}`);
  return await countFsyncs(
    async (prefix) => {
      const server = await start(system, dir, port, sinkPort, prefix);
      try {
        await runSource(port, { ...scenario, messages }, RUN_TIMEOUT_MS);
        if (!(await sink.waitFor(messages, RUN_TIMEOUT_MS))) throw new Error("sink incomplete");
      } finally {
        await server.stop();
        await sink.stop();
      }
    },
    dir,
    messages,
  ).finally(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

if (systems.includes("postfix")) await ensurePostfix();
const results = new Map<string, Result[]>();
let flip = false;
for (const scenario of scenarios) {
  for (let i = 0; i < runs; i++) {
    const order = flip ? [...systems].reverse() : systems;
    flip = !flip;
    for (const system of order) {
      const r = await runOnce(system, scenario, i);
      const key = `${scenario.key}/${system}`;
      results.set(key, [...(results.get(key) ?? []), r]);
      console.error(
        `${scenario.key} ${system} run ${i + 1}: accept ${r.acceptRate.toFixed(0)}/s, ` +
          `e2e ${r.e2eRate.toFixed(0)}/s, cpu ${r.cpuMsPerMessage.toFixed(2)} ms/msg, ` +
          `rss ${r.peakRssMiB.toFixed(0)} MiB, pss ${r.peakPssMiB.toFixed(0)} MiB, ` +
          `p50/p99 ${r.p50.toFixed(1)}/${r.p99.toFixed(1)} ms` +
          (r.heap
            ? `, heap ${r.heap.used.toFixed(0)}/${r.heap.total.toFixed(0)} MiB used/reserved, ` +
              `external ${r.heap.external.toFixed(0)} MiB`
            : ""),
      );
    }
  }
}

const fsyncs = new Map<string, number>();
if (!values["no-fsyncs"]) {
  for (const scenario of scenarios.filter((s) => s.reuse && s.sessions > 1)) {
    for (const system of systems) {
      fsyncs.set(`${scenario.key}/${system}`, await fsyncsPerMessage(system, scenario));
    }
  }
}
await Deno.remove(base, { recursive: true }).catch(() => {});

const med = (key: string, f: (r: Result) => number) => median((results.get(key) ?? []).map(f));
const fmt = (x: number, digits = 0) => Number.isFinite(x) ? x.toFixed(digits) : "—";
console.log(
  `\nCarrier / Postfix, medians of ${runs} interleaved runs, ${navigator.hardwareConcurrency} cores, ` +
    `queues in ${values.dir} (deno task bench)\n`,
);
console.log(
  "| scenario (messages) | accept msg/s | end to end msg/s | CPU ms/msg | peak memory MiB | " +
    "final-dot reply p50 / p99 ms | fsyncs/msg |",
);
console.log("|---|---|---|---|---|---|---|");
for (const s of scenarios) {
  const c = (f: (r: Result) => number) => med(`${s.key}/carrier`, f);
  const p = (f: (r: Result) => number) => med(`${s.key}/postfix`, f);
  const pair = (f: (r: Result) => number, digits: number, ratio: boolean) =>
    `${fmt(c(f), digits)} / ${fmt(p(f), digits)}` + (ratio ? ` (${fmt(c(f) / p(f), 2)}×)` : "");
  const fc = fsyncs.get(`${s.key}/carrier`);
  const fp = fsyncs.get(`${s.key}/postfix`);
  console.log(
    [
      `${s.name} (${s.messages})`,
      pair((r) => r.acceptRate, 0, true),
      pair((r) => r.e2eRate, 0, true),
      pair((r) => r.cpuMsPerMessage, 2, false),
      // Carrier: peak RSS of what `deno task dev` runs; Postfix: peak PSS of all its processes
      // (their RSS sum counts shared pages once per process).
      `${fmt(c((r) => r.peakRssMiB))} RSS / ${fmt(p((r) => r.peakPssMiB))} PSS`,
      `${fmt(c((r) => r.p50), 1)} / ${fmt(c((r) => r.p99), 1)} vs ${fmt(p((r) => r.p50), 1)} / ${
        fmt(p((r) => r.p99), 1)
      }`,
      fc === undefined && fp === undefined ? "" : `${fmt(fc ?? NaN, 2)} / ${fmt(fp ?? NaN, 2)}`,
    ].map((cell) => ` ${cell} `).join("|").replace(/^/, "|").replace(/$/, "|"),
  );
}

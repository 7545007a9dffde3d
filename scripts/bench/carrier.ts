/**
 * Starts Carrier for the benchmark exactly as a user does: the `dev` task's own
 * command line from deno.json (launcher included), logs to a file.
 */

import { join } from "node:path";
import { processTree } from "./procs.ts";

/** One started Carrier, as `deno task dev` would run it. */
export interface CarrierInstance {
  /** The process the task starts: what `deno task dev` runs, less the task runner. */
  pid: number;
  stop(): Promise<void>;
}

/** What `deno task dev` runs (scripts/run.sh), with this Deno. */
export function devCommand(): string[] {
  return ["env", `DENO=${Deno.execPath()}`, "sh", "scripts/run.sh", "serve"];
}

/** Starts Carrier on 127.0.0.1:`port` relaying to 127.0.0.1:`relayPort` (0 = hold mode). */
export async function startCarrier(
  dir: string,
  port: number,
  relayPort: number,
  prefix: string[] = [],
  metricsPort = 0,
  extra: string[] = [],
): Promise<CarrierInstance> {
  await Deno.mkdir(dir, { recursive: true });
  const [cmd, ...args] = [...prefix, ...devCommand()];
  const log = await Deno.open(join(dir, "carrier.log"), { write: true, create: true });
  const child = new Deno.Command(cmd, {
    args: [
      ...args,
      "--listen",
      `127.0.0.1:${port}`,
      "--spool",
      join(dir, "spool"),
      "--hostname",
      "carrier.bench.invalid",
      "--max-connections-per-client",
      "200",
      ...(relayPort ? ["--upstream", `smtp://127.0.0.1:${relayPort}`] : []),
      ...(metricsPort ? ["--metrics-listen", `127.0.0.1:${metricsPort}`] : []),
      ...extra,
    ],
    cwd: new URL("../..", import.meta.url).pathname,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const pump = child.stderr.pipeTo(log.writable).catch(() => {});
  return {
    pid: child.pid,
    async stop() {
      // Under a tracer, signal the launcher it runs: strace itself would only detach.
      const target = prefix.length ? (await processTree(child.pid))[1] : child.pid;
      try {
        if (target) Deno.kill(target, "SIGTERM");
      } catch { /* gone */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 15_000);
      await child.status;
      clearTimeout(timer);
      await pump;
    },
  };
}

/** Peaks of the server's own memory figures (Deno.memoryUsage via /metrics), in bytes. */
export class HeapSampler {
  peak = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0 };
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(readonly port: number, readonly everyMs = 250) {}

  start(): void {
    this.#timer = setInterval(() => this.sample().catch(() => {}), this.everyMs);
  }

  async sample(): Promise<void> {
    const text = await (await fetch(`http://127.0.0.1:${this.port}/metrics`)).text();
    const get = (name: string) =>
      Number(new RegExp(`^carrier_${name} (\\d+)$`, "m").exec(text)?.[1] ?? 0);
    const p = this.peak;
    p.rss = Math.max(p.rss, get("memory_rss_bytes"));
    p.heapTotal = Math.max(p.heapTotal, get("memory_heap_total_bytes"));
    p.heapUsed = Math.max(p.heapUsed, get("memory_heap_used_bytes"));
    p.external = Math.max(p.external, get("memory_external_bytes"));
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

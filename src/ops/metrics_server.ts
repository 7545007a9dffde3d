/**
 * The optional HTTP endpoint for operators: `/healthz` for liveness, `/readyz`
 * for readiness (503 with the reason) and `/metrics` in the Prometheus text
 * format. Off unless --metrics-listen is set.
 */

import type { ListenAddress } from "../config/units.ts";
import type { UpstreamPauses } from "../relay/upstream_pause.ts";
import type { Logger } from "./log.ts";
import { type Metrics, sampleMemory } from "./metrics.ts";
import type { QueueCounts } from "../relay/queue_counts.ts";
import type { Readiness } from "./readiness.ts";

/** What the endpoint reads besides the counters. */
export interface MetricsSources {
  queueSize: () => number;
  readiness?: Readiness;
  /** Queue depth by state and the oldest message, counted in memory. */
  queueCounts?: (now: number) => QueueCounts;
  pause?: Pick<UpstreamPauses, "paused" | "failingSince">;
}

/** Starts the endpoint; the returned server is shut down on stop. */
export function startMetricsServer(
  address: ListenAddress,
  metrics: Metrics,
  sources: MetricsSources,
  log: Logger,
): Deno.HttpServer {
  return Deno.serve({
    hostname: address.hostname,
    port: address.port,
    onListen: (addr) => log.info("metrics listening", { address: `${addr.hostname}:${addr.port}` }),
  }, async (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/healthz") return new Response("ok\n");
    if (path === "/readyz") {
      const reason = await sources.readiness?.notReady();
      return reason === undefined
        ? new Response("ready\n")
        : new Response(`not ready: ${reason}\n`, { status: 503 });
    }
    if (path === "/metrics") {
      const now = Date.now();
      metrics.set("queue_messages", sources.queueSize());
      if (sources.pause) {
        metrics.set("upstream_paused", sources.pause.paused(now) ? 1 : 0);
        const since = sources.pause.failingSince;
        metrics.set("upstream_failing_seconds", since ? Math.round((now - since) / 1000) : 0);
      }
      const counts = sources.queueCounts?.(now);
      if (counts) {
        metrics.queueDepth = counts.depth;
        const age = counts.oldestAt === undefined ? 0 : Math.round((now - counts.oldestAt) / 1000);
        metrics.set("queue_oldest_message_age_seconds", Math.max(0, age));
      }
      sampleMemory(metrics);
      return new Response(metrics.render(), {
        headers: { "content-type": "text/plain; version=0.0.4" },
      });
    }
    return new Response("not found\n", { status: 404 });
  });
}

/**
 * The optional HTTP endpoint for operators: `/healthz` for liveness checks and
 * `/metrics` in the Prometheus text format. Off unless --metrics-listen is set.
 */

import type { ListenAddress } from "../config/units.ts";
import type { Logger } from "./log.ts";
import { type Metrics, sampleMemory } from "./metrics.ts";

/** Starts the endpoint; the returned server is shut down on stop. */
export function startMetricsServer(
  address: ListenAddress,
  metrics: Metrics,
  queueSize: () => number,
  log: Logger,
): Deno.HttpServer {
  return Deno.serve({
    hostname: address.hostname,
    port: address.port,
    onListen: (addr) => log.info("metrics listening", { address: `${addr.hostname}:${addr.port}` }),
  }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/healthz") return new Response("ok\n");
    if (path === "/metrics") {
      metrics.set("queue_messages", queueSize());
      sampleMemory(metrics);
      return new Response(metrics.render(), {
        headers: { "content-type": "text/plain; version=0.0.4" },
      });
    }
    return new Response("not found\n", { status: 404 });
  });
}

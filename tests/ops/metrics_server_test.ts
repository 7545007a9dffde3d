import { match, ok, strictEqual } from "node:assert/strict";
import { Logger } from "../../src/ops/log.ts";
import { Metrics } from "../../src/ops/metrics.ts";
import { startMetricsServer } from "../../src/ops/metrics_server.ts";

Deno.test("metrics endpoint: /healthz, /metrics with the queue size, 404 otherwise", async () => {
  const lines: string[] = [];
  const metrics = new Metrics();
  metrics.inc("messages_accepted_total", 3);
  let queued = 5;
  const server = startMetricsServer(
    { hostname: "127.0.0.1", port: 0 },
    metrics,
    { queueSize: () => queued },
    new Logger("text", (l) => lines.push(l)),
  );
  try {
    const { port } = server.addr as Deno.NetAddr;
    const base = `http://127.0.0.1:${port}`;

    const health = await fetch(`${base}/healthz`);
    strictEqual(health.status, 200);
    strictEqual(await health.text(), "ok\n");

    const first = await fetch(`${base}/metrics`);
    strictEqual(first.status, 200);
    match(first.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const body = await first.text();
    match(body, /^carrier_messages_accepted_total 3$/m);
    match(body, /^carrier_queue_messages 5$/m);

    queued = 2;
    match(await (await fetch(`${base}/metrics`)).text(), /^carrier_queue_messages 2$/m);

    const missing = await fetch(`${base}/nope`);
    strictEqual(missing.status, 404);
    await missing.body?.cancel();
    ok(lines.some((l) => l.includes("metrics listening") && l.includes(`:${port}`)), lines.join());
  } finally {
    await server.shutdown();
  }
});

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { Metrics, quote } from "../../src/ops/metrics.ts";

/** The sample lines of a Prometheus text exposition, as name → value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    ok(m, `sample line: ${line}`);
    out.set(m[1], Number(m[2]));
  }
  return out;
}

Deno.test("counters start at 0, inc adds, set replaces, get reads", () => {
  const m = new Metrics();
  strictEqual(m.get("connections_total"), 0);
  m.inc("connections_total");
  m.inc("connections_total");
  m.inc("bytes_accepted_total", 1500);
  m.set("connections_active", 3);
  m.set("connections_active", 2);
  strictEqual(m.get("connections_total"), 2);
  strictEqual(m.get("bytes_accepted_total"), 1500);
  strictEqual(m.get("connections_active"), 2);
  m.inc("connections_active", -1);
  strictEqual(m.get("connections_active"), 1);
});

Deno.test("render: HELP and TYPE before each family, counters and gauges", () => {
  const m = new Metrics();
  m.inc("messages_accepted_total", 5);
  m.set("queue_messages", 7);
  const text = m.render();
  ok(text.endsWith("\n"));
  let family = "";
  let type = "";
  for (const line of text.split("\n").slice(0, -1)) {
    const help = /^# HELP (carrier_[a-z_]+) \S.*$/.exec(line);
    if (help) {
      family = help[1];
      continue;
    }
    const t = /^# TYPE (carrier_[a-z_]+) (counter|gauge|histogram)$/.exec(line);
    if (t) {
      strictEqual(t[1], family, line);
      type = t[2];
      continue;
    }
    const sample = /^(carrier_[a-z_]+)(\{[^}]*\})? -?\d+(\.\d+)?(e-?\d+)?$/.exec(line);
    ok(sample, line);
    const base = type === "histogram" ? sample[1].replace(/_(bucket|sum|count)$/, "") : sample[1];
    strictEqual(base, family, line);
    if (type !== "histogram") strictEqual(type, family.endsWith("_total") ? "counter" : "gauge");
  }
  ok(text.includes("# TYPE carrier_messages_accepted_total counter\n"));
  ok(text.includes("# TYPE carrier_queue_messages gauge\n"));
  const values = samples(text);
  strictEqual(values.get("carrier_messages_accepted_total"), 5);
  strictEqual(values.get("carrier_queue_messages"), 7);
  strictEqual(values.get("carrier_connections_total"), 0, "untouched metrics render as 0");
});

Deno.test("render: labelled families derived from the counters, build info, queue depth", () => {
  const m = new Metrics("1.2.3", ["starttls://smtp.example.com:587", "smtps://backup:465"]);
  m.outcome("delivered", "starttls://smtp.example.com:587");
  m.outcome("delivered", "starttls://smtp.example.com:587");
  m.outcome("failed", "starttls://smtp.example.com:587");
  m.outcome("deferred", "smtps://backup:465");
  m.inc("relay_denied_total", 3);
  m.queueDepth = { due: 1, deferred: 4, held: 0 };
  const v = samples(m.render());
  const up = 'upstream="starttls://smtp.example.com:587"';
  strictEqual(v.get('carrier_build_info{version="1.2.3"}'), 1);
  strictEqual(v.get(`carrier_delivery_outcomes_total{outcome="delivered",${up}}`), 2);
  strictEqual(v.get(`carrier_delivery_outcomes_total{outcome="failed",${up}}`), 1);
  strictEqual(v.get(`carrier_delivery_outcomes_total{outcome="deferred",${up}}`), 0);
  const backup = 'upstream="smtps://backup:465"';
  strictEqual(v.get(`carrier_delivery_outcomes_total{outcome="deferred",${backup}}`), 1);
  strictEqual(v.get(`carrier_delivery_outcomes_total{outcome="delivered",${backup}}`), 0);
  strictEqual(v.get("carrier_deliveries_total"), 2, "the unlabelled total counts them all");
  strictEqual(v.get("carrier_deferrals_total"), 1);
  strictEqual(v.get('carrier_refusals_total{reason="relay_denied"}'), 3);
  strictEqual(v.get('carrier_refusals_total{reason="connection_limit"}'), 0);
  strictEqual(v.get('carrier_queue_depth{state="deferred"}'), 4);
  strictEqual(v.get('carrier_queue_depth{state="due"}'), 1);
});

Deno.test("render: the upstream reply histogram has cumulative buckets, sum and count", () => {
  const m = new Metrics("1", ["u"]);
  m.observeUpstreamReply(0.003, "u");
  m.observeUpstreamReply(0.2, "u");
  m.observeUpstreamReply(0.25, "u");
  m.observeUpstreamReply(100, "u");
  const v = samples(m.render());
  const b = (le: string) => v.get(`carrier_upstream_reply_seconds_bucket{upstream="u",le="${le}"}`);
  strictEqual(b("0.005"), 1);
  strictEqual(b("0.1"), 1);
  strictEqual(b("0.25"), 3, "a value equal to a bound falls in that bucket");
  strictEqual(b("30"), 3);
  strictEqual(b("+Inf"), 4);
  strictEqual(v.get('carrier_upstream_reply_seconds_count{upstream="u"}'), 4);
  strictEqual(v.get('carrier_upstream_reply_seconds_sum{upstream="u"}'), 100.453);
});

Deno.test("quote: label values escape backslash, quote and newline", () => {
  strictEqual(quote('a\\b"c\nd'), '"a\\\\b\\"c\\nd"');
});

Deno.test("render reflects later changes", () => {
  const m = new Metrics();
  strictEqual(samples(m.render()).get("carrier_deliveries_total"), 0);
  m.inc("deliveries_total", 2);
  strictEqual(samples(m.render()).get("carrier_deliveries_total"), 2);
});

Deno.test("every metric the code touches is rendered (no typo'd names)", async () => {
  const rendered = samples(new Metrics().render());
  const used = new Set<string>();
  const root = new URL("../../src/", import.meta.url);
  const walk = async (dir: URL): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory) await walk(new URL(`${entry.name}/`, dir));
      else if (entry.name.endsWith(".ts")) {
        const text = await Deno.readTextFile(new URL(entry.name, dir));
        for (const m of text.matchAll(/\bmetrics\.(?:inc|set)\(\s*"([a-z_]+)"/g)) used.add(m[1]);
      }
    }
  };
  await walk(root);
  ok(used.size >= 10, `found the metric calls: ${[...used].join(", ")}`);
  deepStrictEqual(
    [...used].filter((name) => !rendered.has(`carrier_${name}`)),
    [],
    "metrics updated in code but missing from render()",
  );
});

Deno.test("render: quota waits by upstream, each configured upstream shown from the start", () => {
  const m = new Metrics("1.0", ["gmail", "ses"]);
  m.quotaWait("gmail");
  m.quotaWait("gmail");
  const out = m.render();
  ok(out.includes("# TYPE carrier_upstream_quota_waits_total counter\n"), out);
  ok(out.includes('carrier_upstream_quota_waits_total{upstream="gmail"} 2\n'), out);
  ok(out.includes('carrier_upstream_quota_waits_total{upstream="ses"} 0\n'), out);
});

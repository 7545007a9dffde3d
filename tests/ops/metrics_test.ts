import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { Metrics } from "../../src/ops/metrics.ts";

/** The sample lines of a Prometheus text exposition, as name → value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*) (\S+)$/.exec(line);
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

Deno.test("render: HELP and TYPE lines before each sample, counters and gauges", () => {
  const m = new Metrics();
  m.inc("messages_accepted_total", 5);
  m.set("queue_messages", 7);
  const text = m.render();
  ok(text.endsWith("\n"));
  const lines = text.split("\n").slice(0, -1);
  strictEqual(lines.length % 3, 0);
  for (let i = 0; i < lines.length; i += 3) {
    const help = /^# HELP (carrier_[a-z_]+) \S.*$/.exec(lines[i]);
    ok(help, lines[i]);
    const name = help[1];
    match(lines[i + 1], new RegExp(`^# TYPE ${name} (counter|gauge)$`));
    match(lines[i + 2], new RegExp(`^${name} -?\\d+(\\.\\d+)?$`));
    const type = lines[i + 1].split(" ")[3];
    strictEqual(type, name.endsWith("_total") ? "counter" : "gauge", name);
  }
  ok(text.includes("# TYPE carrier_messages_accepted_total counter\n"));
  ok(text.includes("# TYPE carrier_queue_messages gauge\n"));
  ok(text.includes("# TYPE carrier_connections_active gauge\n"));
  const values = samples(text);
  strictEqual(values.get("carrier_messages_accepted_total"), 5);
  strictEqual(values.get("carrier_queue_messages"), 7);
  strictEqual(values.get("carrier_connections_total"), 0, "untouched metrics render as 0");
  strictEqual(new Set(lines.filter((l) => l.startsWith("# HELP"))).size, values.size);
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

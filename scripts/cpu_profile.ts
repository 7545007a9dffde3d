/**
 * CPU profile of a running Deno process, over the inspector. Deno 2.9.6 has no
 * `--cpu-prof`, so this drives V8's Profiler domain through the Chrome DevTools
 * Protocol of a process started with `--inspect=127.0.0.1:PORT`, writes a
 * `.cpuprofile` (open it in Chrome DevTools > Performance), and prints where the
 * time went: top functions by self and by inclusive time, and self time per file.
 *
 *   deno run --allow-all scripts/cpu_profile.ts --port 9229 --seconds 10 \
 *     [--host 127.0.0.1] [--out profile.cpuprofile] [--top 40] [--interval-us 100]
 *
 * Ctrl-C stops early. V8 reports lines of Deno's transpiled JS; the summary maps
 * them back to .ts lines through the scripts' inline source maps (the written file
 * stays raw). Code optimized before the profiler started loses its inlined frames
 * (their time shows in the caller): to see them, start the target with
 * --inspect-wait instead; it is resumed once the profiler runs.
 */

import { parseArgs } from "node:util";

const CONNECT_TIMEOUT_MS = 5_000;
const MESSAGE_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 60_000; // Profiler.stop serializes the whole profile

type CallFrame = {
  functionName: string;
  scriptId: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
};
type ProfileNode = { id: number; callFrame: CallFrame; children?: number[] };
type Profile = {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
};
type Message = {
  id?: number;
  method?: string;
  params?: Record<string, string>;
  result?: Record<string, unknown>;
  error?: { message: string };
};

/** Opens the first inspector target on host:port; every `send` has a deadline. */
async function connect(host: string, port: string, onEvent: (m: Message) => void) {
  const listUrl = `http://${host}:${port}/json/list`;
  const list = await fetch(listUrl, { signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS) })
    .then((r) => r.json()).catch((e) => {
      const why = e?.cause?.message ?? e?.message ?? e;
      throw new Error(`${listUrl}: ${why} (is the target running with --inspect=${host}:${port}?)`);
    }) as { webSocketDebuggerUrl?: string; url?: string }[];
  const target = list.find((t) => t.webSocketDebuggerUrl);
  if (!target?.webSocketDebuggerUrl) throw new Error(`no inspector target on ${host}:${port}`);
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise<void>((resolve, reject) => {
    const fail = (why: string) => (ws.close(), reject(new Error(`WebSocket connect ${why}`)));
    const timer = setTimeout(() => fail("timed out"), CONNECT_TIMEOUT_MS);
    ws.onopen = () => (clearTimeout(timer), resolve());
    ws.onerror = () => (clearTimeout(timer), fail("failed"));
  });
  const pending = new Map<number, (reply: Message) => void>();
  const closed = { error: { message: "inspector connection closed" } };
  ws.onmessage = (event) => {
    const message = JSON.parse(String(event.data)) as Message;
    if (message.id === undefined) onEvent(message);
    else pending.get(message.id)?.(message);
  };
  ws.onclose = () => pending.forEach((settle) => settle(closed));
  let nextId = 1;
  const send = (method: string, params: object = {}, timeoutMs = MESSAGE_TIMEOUT_MS) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => settle({ error: { message: "no reply" } }), timeoutMs);
      const settle = (reply: Message) => {
        clearTimeout(timer);
        pending.delete(id);
        if (reply.error) reject(new Error(`${method}: ${reply.error.message}`));
        else resolve(reply.result ?? {});
      };
      pending.set(id, settle);
      if (ws.readyState !== WebSocket.OPEN) settle(closed);
      else ws.send(JSON.stringify({ id, method, params }));
    });
  return { target: target.url ?? "?", send, close: () => ws.close() };
}

/** Resolves after `ms`, or earlier on SIGINT. */
function sleepOrInterrupt(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => (clearTimeout(timer), Deno.removeSignalListener("SIGINT", done), resolve());
    const timer = setTimeout(done, ms);
    Deno.addSignalListener("SIGINT", done);
  });
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/** Per generated line, [generated column, original line] pairs of a source map's `mappings`. */
export function decodeMappings(mappings: string): [number, number][][] {
  let srcLine = 0;
  return mappings.split(";").map((text) => {
    let genCol = 0;
    const segments: [number, number][] = [];
    for (const segment of text.split(",").filter(Boolean)) {
      const fields: number[] = [];
      let value = 0, shift = 0;
      for (const ch of segment) {
        const digit = B64.indexOf(ch);
        value += (digit & 31) << shift;
        if (digit & 32) shift += 5;
        else fields.push(value & 1 ? -(value >>> 1) : value >>> 1), value = shift = 0;
      }
      genCol += fields[0];
      if (fields.length >= 4) segments.push([genCol, srcLine += fields[2]]);
    }
    return segments;
  });
}

/** Rewrites callFrame lines (0-based) to original source lines, where an inline map exists. */
function remapLines(profile: Profile, sourceMaps: Map<string, string>) {
  const decoded = new Map<string, [number, number][][]>();
  for (const { callFrame: f } of profile.nodes) {
    const dataUrl = sourceMaps.get(f.scriptId);
    if (!dataUrl?.match(/^data:[^,]*;base64,/) || f.lineNumber < 0) continue;
    if (!decoded.has(f.scriptId)) {
      const bytes = Uint8Array.from(atob(dataUrl.split(",")[1]), (c) => c.charCodeAt(0));
      const map = JSON.parse(new TextDecoder().decode(bytes)) as { mappings: string };
      decoded.set(f.scriptId, decodeMappings(map.mappings));
    }
    const segments = decoded.get(f.scriptId)![f.lineNumber] ?? [];
    const hit = segments.findLast(([col]) => col <= f.columnNumber) ?? segments[0];
    if (hit) f.lineNumber = hit[1];
  }
}

const repoRoot = new URL("../", import.meta.url).href;
/** file:///work/main/src/x.ts -> src/x.ts; npm files -> npm:package/path; ext: URLs kept. */
export function shortUrl(url: string): string {
  const npm = url.match(/.*\/node_modules\/((?:@[^/]+\/)?[^/]+\/.*)$/) ??
    url.match(/\/registry\.npmjs\.org\/((?:@[^/]+\/)?[^/]+)\/[^/]+(\/.*)$/); // Deno's npm cache
  if (npm) return `npm:${npm.slice(1).join("")}`;
  if (url.startsWith(repoRoot)) return url.slice(repoRoot.length);
  return url.startsWith("file://") ? decodeURIComponent(new URL(url).pathname) : url;
}

/** Self and inclusive ms per function, and self ms per category (meta node, native or file). */
export function summarize(profile: Profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const add = <K>(m: Map<K, number>, k: K, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  // Sample i lasts until sample i+1 (the last one until endTime).
  const nodeSelf = new Map<number, number>();
  let at = profile.startTime, totalMs = 0;
  const stamps = (profile.timeDeltas ?? []).map((d) => (at += d));
  (profile.samples ?? []).forEach((id, i) => {
    const ms = Math.max(0, (stamps[i + 1] ?? profile.endTime) - stamps[i]) / 1000;
    add(nodeSelf, id, ms);
    totalMs += ms;
  });
  const fnSelf = new Map<string, number>(), fnTotal = new Map<string, number>();
  const category = new Map<string, number>();
  const key = (f: CallFrame) =>
    `${f.functionName || "(anonymous)"}\t${f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : ""}`;
  for (const [id, ms] of nodeSelf) {
    const frame = byId.get(id)!.callFrame;
    add(fnSelf, key(frame), ms);
    const meta = /^\(.*\)$/.test(frame.functionName); // (idle), (program), (garbage collector)
    add(category, meta ? frame.functionName : shortUrl(frame.url) || "(native/eval)", ms);
    // Inclusive: each function on this node's stack counts once, however deep it recurses.
    const stack = new Set<string>();
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
      const f = byId.get(n)!.callFrame;
      if (f.functionName !== "(root)") stack.add(key(f));
    }
    stack.forEach((k) => add(fnTotal, k, ms));
  }
  return { totalMs, fnSelf, fnTotal, category };
}

function table(title: string, rows: Map<string, number>, totalMs: number, n: number): string {
  const lines = [...rows].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, ms]) => {
    const [name, place = ""] = k.split("\t");
    const label = (place && name.length > 40 ? `${name.slice(0, 39)}…` : name).padEnd(40);
    const pct = totalMs > 0 ? (100 * ms) / totalMs : 0;
    return `${ms.toFixed(1).padStart(10)} ${pct.toFixed(1).padStart(6)}%  ${label} ${place}`;
  });
  return [`\n${title}`, `${"ms".padStart(10)} ${"%".padStart(7)}`, ...lines].join("\n");
}

async function main(args: string[]) {
  const { values: v } = parseArgs({
    args,
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "9229" },
      seconds: { type: "string", default: "10" },
      out: { type: "string", default: "profile.cpuprofile" },
      top: { type: "string", default: "40" },
      "interval-us": { type: "string", default: "100" },
    },
  });
  const [seconds, top, interval] = [v.seconds, v.top, v["interval-us"]].map(Number);
  if (![seconds, top, interval].every((x) => x > 0)) {
    throw new Error("--seconds, --top and --interval-us must be positive numbers");
  }
  const sourceMaps = new Map<string, string>();
  const inspector = await connect(v.host, v.port, ({ method, params }) => {
    if (method === "Debugger.scriptParsed" && params?.sourceMapURL) {
      sourceMaps.set(params.scriptId, params.sourceMapURL);
    }
  });
  try {
    await inspector.send("Profiler.enable");
    await inspector.send("Profiler.setSamplingInterval", { interval });
    await inspector.send("Profiler.start");
    await inspector.send("Runtime.runIfWaitingForDebugger"); // no-op unless --inspect-wait
    console.error(`profiling ${inspector.target} for ${seconds}s (Ctrl-C stops early)...`);
    await sleepOrInterrupt(seconds * 1000);
    const stopped = await inspector.send("Profiler.stop", {}, STOP_TIMEOUT_MS);
    const profile = stopped.profile as Profile;
    await inspector.send("Profiler.disable");
    await Deno.writeTextFile(v.out, JSON.stringify(profile));
    // Debugger.enable replays a scriptParsed (with its sourceMapURL) for every loaded script.
    await inspector.send("Debugger.enable").then(() => inspector.send("Debugger.disable"))
      .catch((e) => console.error(`no source maps, lines are of transpiled JS: ${e}`));
    remapLines(profile, sourceMaps);
    const { totalMs, fnSelf, fnTotal, category } = summarize(profile);
    const wallMs = (profile.endTime - profile.startTime) / 1000;
    console.log(
      `wrote ${v.out}: ${profile.samples?.length ?? 0} samples, ` +
        `${totalMs.toFixed(1)} ms sampled over ${wallMs.toFixed(1)} ms wall`,
    );
    console.log(table(`Top ${top} by self time`, fnSelf, totalMs, top));
    console.log(table(`Top ${top} by total (inclusive) time`, fnTotal, totalMs, top));
    console.log(table("Self time by category", category, totalMs, Infinity));
  } finally {
    inspector.close();
  }
}

if (import.meta.main) {
  await main(Deno.args).catch((e) => {
    console.error(`cpu_profile: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  });
}

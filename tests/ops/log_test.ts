import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { errorMessage, type LogFields, Logger } from "../../src/ops/log.ts";

const TIME = "2024-05-06T07:08:09.010Z";

function capture(format: "text" | "json") {
  const lines: string[] = [];
  const log = new Logger(format, (line) => lines.push(line), () => new Date(TIME));
  return { log, lines };
}

/** Characters some reader treats as a line break: LF, VT, FF, CR, FS, GS, RS, NEL, LS, PS. */
const BREAKS = [0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029];

/** Splits on every character some reader treats as a line break. */
function physicalLines(text: string): string[] {
  const out = [""];
  for (const c of text) {
    if (BREAKS.includes(c.codePointAt(0)!)) out.push("");
    else out[out.length - 1] += c;
  }
  return out;
}

/** True if `text` has a raw C0 or C1 control character or DEL. */
function hasControl(text: string): boolean {
  return [...text].some((c) => {
    const code = c.codePointAt(0)!;
    return code < 0x20 || (code >= 0x7f && code <= 0x9f);
  });
}

Deno.test("text: TIME LEVEL EVENT key=value, plain tokens unquoted", () => {
  const { log, lines } = capture("text");
  log.info("accepted", {
    id: "0LXYZ123ABCDEFGHI",
    from: "<alice@example.com>",
    client: "127.0.0.1:40000",
    v6: "[::1]:2525",
    size: 1234,
    tls: true,
    user: null,
  });
  deepStrictEqual(lines, [
    `${TIME} info accepted id=0LXYZ123ABCDEFGHI from=<alice@example.com> client=127.0.0.1:40000 ` +
    "v6=[::1]:2525 size=1234 tls=true user=null",
  ]);
});

Deno.test("text: each level method writes its level", () => {
  const { log, lines } = capture("text");
  log.level = "debug";
  log.debug("a");
  log.info("b");
  log.warn("c");
  log.error("d");
  log.log("warn", "e", {});
  deepStrictEqual(lines, [
    `${TIME} debug a`,
    `${TIME} info b`,
    `${TIME} warn c`,
    `${TIME} error d`,
    `${TIME} warn e`,
  ]);
});

Deno.test("level: lines below the least severity are not written; a change takes effect at once", () => {
  const { log, lines } = capture("text");
  log.debug("hidden by default");
  log.info("shown");
  log.level = "warn";
  log.info("hidden now");
  log.warn("kept");
  log.error("kept too");
  deepStrictEqual(lines, [`${TIME} info shown`, `${TIME} warn kept`, `${TIME} error kept too`]);
});

Deno.test("text: undefined fields are dropped", () => {
  const { log, lines } = capture("text");
  log.info("x", { a: undefined, b: "1", c: undefined });
  deepStrictEqual(lines, [`${TIME} info x b=1`]);
});

Deno.test("text: values with spaces, quotes, = after a space, or empty are JSON-quoted", () => {
  const cases: [string, string][] = [
    ["hello world", '"hello world"'],
    ['say "hi"', '"say \\"hi\\""'],
    ["", '""'],
    ["a level=error", '"a level=error"'],
    ["back\\slash", '"back\\\\slash"'],
    ["tab\there", '"tab\\there"'],
    ["caf\u00e9", '"caf\u00e9"'],
  ];
  for (const [value, shown] of cases) {
    const { log, lines } = capture("text");
    log.info("e", { v: value });
    strictEqual(lines[0], `${TIME} info e v=${shown}`, JSON.stringify(value));
    strictEqual(JSON.parse(lines[0].slice(`${TIME} info e v=`.length)), value);
  }
});

Deno.test("text: a client cannot forge a second log line", () => {
  const forged = `${TIME} error forged admin=true`;
  const hostile = [
    `x\r\n${forged}`,
    `x\n${forged}`,
    `x\r${forged}`,
    `x\u0085${forged}`,
    `x\u2028${forged}`,
    `x\u2029${forged}`,
    `x\x1e${forged}`,
    `x\v${forged}`,
    `x\x1b[2K\r${forged}`, // erase the terminal line, then write over it
    `x\x7f\x9b2K${forged}`,
  ];
  for (const value of hostile) {
    const { log, lines } = capture("text");
    log.warn("bad command", { helo: value, cmd: value });
    strictEqual(lines.length, 1);
    deepStrictEqual(physicalLines(lines[0]), [lines[0]], JSON.stringify(lines[0]));
    ok(
      !hasControl(lines[0]),
      `no raw control character: ${JSON.stringify(lines[0])}`,
    );
    ok(lines[0].startsWith(`${TIME} warn bad command helo="x\\`), lines[0]);
    // The quoted value reads back exactly.
    const m = /helo=("(?:[^"\\]|\\.)*") cmd=/.exec(lines[0]);
    ok(m, lines[0]);
    strictEqual(JSON.parse(m[1]), value);
  }
});

Deno.test("json: one object a line with time, level, event and the fields", () => {
  const { log, lines } = capture("json");
  log.error("delivery failed", {
    id: "ABC0123456",
    attempts: 3,
    permanent: false,
    user: null,
    skipped: undefined,
    error: "550 no\r\nsuch user\u2028",
  });
  strictEqual(lines.length, 1);
  deepStrictEqual(physicalLines(lines[0]), [lines[0]]);
  ok(!hasControl(lines[0]), lines[0]);
  const record = JSON.parse(lines[0]);
  deepStrictEqual(record, {
    time: TIME,
    level: "error",
    event: "delivery failed",
    id: "ABC0123456",
    attempts: 3,
    permanent: false,
    user: null,
    error: "550 no\r\nsuch user\u2028",
  });
  ok(!("skipped" in record));
  deepStrictEqual(Object.keys(record).slice(0, 3), ["time", "level", "event"]);
});

Deno.test("json: a field cannot smuggle a key or a line", () => {
  const { log, lines } = capture("json");
  const fields: LogFields = { note: '","level":"debug' };
  log.info("e", fields);
  strictEqual(JSON.parse(lines[0]).level, "info");
  strictEqual(JSON.parse(lines[0]).note, '","level":"debug');
});

Deno.test("the default clock and sink: ISO time first", () => {
  const lines: string[] = [];
  new Logger("text", (l) => lines.push(l)).info("x");
  ok(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info x$/.test(lines[0]), lines[0]);
  strictEqual(new Logger().format, "text");
});

Deno.test("errorMessage", () => {
  strictEqual(errorMessage(new Error("boom")), "boom");
  strictEqual(errorMessage("text"), "text");
  strictEqual(errorMessage(42), "42");
  strictEqual(errorMessage(undefined), "undefined");
});

Deno.test("flushLog: a closed standard error (EPIPE) loses the lines, never the process", async () => {
  // A child process logs through the default sink after the parent closed the read end
  // of its stderr pipe: the explicit flush, the timer's flush and the one at exit all fail.
  const dir = await Deno.makeTempDir({ prefix: "carrier-log-test-" });
  try {
    const script = join(dir, "child.ts");
    const logUrl = new URL("../../src/ops/log.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { flushLog, Logger } from ${JSON.stringify(logUrl)};
const log = new Logger();
console.log("ready");
// Waits until the parent has closed our stderr (it then writes a line, or closes stdin).
await Deno.stdin.read(new Uint8Array(16));
log.info("first", { n: 1 });
flushLog();
console.log("after explicit flush");
log.info("second");
await new Promise((resolve) => setTimeout(resolve, 50));
console.log("after timer flush");
log.info("third");
`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--no-prompt", "--no-config", script],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).spawn();
    const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    for (let i = 0; i < 100 && !out.includes("\n"); i++) {
      const { value, done } = await stdout.read();
      if (done) break;
      out += value;
    }
    strictEqual(out, "ready\n");
    await child.stderr.cancel(); // closes the read end: the child's writes now fail (EPIPE)
    const stdin = child.stdin.getWriter();
    await stdin.write(new TextEncoder().encode("go\n"));
    await stdin.close();
    for (let i = 0; i < 100; i++) {
      const { value, done } = await stdout.read();
      if (done) break;
      out += value;
    }
    const status = await child.status;
    strictEqual(out, "ready\nafter explicit flush\nafter timer flush\n");
    strictEqual(status.signal, null);
    strictEqual(status.code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

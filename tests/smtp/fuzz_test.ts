/**
 * Property-based tests of the protocol layer with fast-check. Runs are bounded so the
 * whole file stays fast; a failure prints a shrunk counterexample and its seed.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import fc from "fast-check";
import { AddressError, parseParams, parsePath } from "../../src/smtp/address.ts";
import { DataScanner } from "../../src/smtp/data.ts";
import { type Line, LineSplitter } from "../../src/smtp/line_stream.ts";
import { formatReply } from "../../src/smtp/reply.ts";
import type { DataResult, Step } from "../../src/smtp/envelope.ts";
import { OPEN_POLICY } from "../../src/smtp/policy.ts";
import { MAX_COMMAND_LINE, Session } from "../../src/smtp/session.ts";
import { concat, enc, latin1, validEnhanced } from "./_helpers.ts";

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

/** Bytes with CR, LF and "." much more frequent than chance. */
const protocolByte = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 255 }) },
  { weight: 2, arbitrary: fc.constantFrom(CR, LF, DOT, 0x61) },
);
const protocolBytes = (maxLength: number) =>
  fc.array(protocolByte, { maxLength }).map((a) => Uint8Array.from(a));

/** Splits `bytes` at the given cut points (any values; taken modulo the length, sorted). */
function cut(bytes: Uint8Array, points: number[]): Uint8Array[] {
  const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let last = 0;
  for (const p of at) {
    pieces.push(bytes.subarray(last, p));
    last = p;
  }
  pieces.push(bytes.subarray(last));
  return pieces;
}

type Shape = [string, boolean, boolean];

/** The specification of the splitter: CRLF lines, each cut into maxLength pieces. */
function referenceLines(input: Uint8Array, maxLength: number): Shape[] {
  const lines: [Uint8Array, boolean][] = [];
  let begin = 0;
  for (let i = 0; i + 1 < input.length; i++) {
    if (input[i] === CR && input[i + 1] === LF) {
      lines.push([input.subarray(begin, i), true]);
      begin = i + 2;
      i++;
    }
  }
  if (begin < input.length) lines.push([input.subarray(begin), false]);
  const out: Shape[] = [];
  for (const [bytes, complete] of lines) {
    const count = Math.max(1, Math.ceil(bytes.length / maxLength));
    for (let k = 0; k < count; k++) {
      const piece = bytes.subarray(k * maxLength, (k + 1) * maxLength);
      out.push([latin1(piece), complete && k === count - 1, k === 0]);
    }
  }
  return out;
}

Deno.test("fuzz: LineSplitter reproduces its input and bounds every piece", () => {
  fc.assert(
    fc.property(
      protocolBytes(400),
      fc.integer({ min: 1, max: 40 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (input, maxLength, points) => {
        const splitter = new LineSplitter(maxLength);
        const pieces: Line[] = [];
        for (const chunk of cut(input, points)) {
          pieces.push(...splitter.push(chunk));
          ok(splitter.buffered <= maxLength + 1);
        }
        pieces.push(...splitter.flush());
        strictEqual(splitter.buffered, 0);
        const rebuilt = concat(
          pieces.flatMap((p) => (p.complete ? [p.bytes, Uint8Array.of(CR, LF)] : [p.bytes])),
        );
        strictEqual(latin1(rebuilt), latin1(input));
        for (const [i, p] of pieces.entries()) {
          ok(p.bytes.length <= maxLength, `piece of ${p.bytes.length} > ${maxLength}`);
          strictEqual(
            p.start,
            i === 0 || pieces[i - 1].complete,
            "start follows the previous piece",
          );
          if (!p.complete && i < pieces.length - 1) strictEqual(p.bytes.length, maxLength);
        }
        deepStrictEqual(
          pieces.map((p): Shape => [latin1(p.bytes), p.complete, p.start]),
          referenceLines(input, maxLength),
        );
      },
    ),
    { numRuns: 1000 },
  );
});

/** What a command reader gets with discardOverlong: the first piece of an overlong line, then its end. */
function referenceDiscarding(input: Uint8Array, maxLength: number): Shape[] {
  const out: Shape[] = [];
  let previousOverlong = false;
  for (const [bytes, complete, start] of referenceLines(input, maxLength)) {
    if (start) previousOverlong = !complete;
    if (start) out.push([bytes, complete, start]);
    else if (complete && previousOverlong) out.push(["", true, false]);
  }
  return out;
}

Deno.test("fuzz: LineSplitter with discardOverlong keeps the first piece of an overlong line and its end", () => {
  fc.assert(
    fc.property(
      protocolBytes(400),
      fc.integer({ min: 1, max: 40 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (input, maxLength, points) => {
        const splitter = new LineSplitter(maxLength, true);
        const pieces: Line[] = [];
        for (const chunk of cut(input, points)) {
          pieces.push(...splitter.push(chunk));
          ok(splitter.buffered <= maxLength + 1);
        }
        pieces.push(...splitter.flush());
        strictEqual(splitter.buffered, 0);
        deepStrictEqual(
          pieces.map((p): Shape => [latin1(p.bytes), p.complete, p.start]),
          referenceDiscarding(input, maxLength),
        );
      },
    ),
    { numRuns: 1000 },
  );
});

Deno.test("fuzz: dot-stuffed messages come back byte-exact through the data scanner", () => {
  fc.assert(
    fc.property(
      protocolBytes(300),
      fc.array(fc.nat(), { maxLength: 10 }),
      (body, points) => {
        // What the client does (RFC 5321 §4.5.2): end with CRLF, stuff lines starting with ".".
        let text = latin1(body);
        if (!text.endsWith("\r\n")) text += "\r\n";
        const stuffed =
          text.slice(0, -2).split("\r\n").map((l) => (l.startsWith(".") ? "." + l : l))
            .join("\r\n") + "\r\n.\r\nQUIT\r\n";
        const wire = Uint8Array.from(stuffed, (c) => c.charCodeAt(0));
        const scanner = new DataScanner(1_000_000);
        const parts: Uint8Array[] = [];
        let ends = 0;
        const after: string[] = [];
        for (const chunk of cut(wire, points)) {
          if (ends > 0) {
            after.push(latin1(chunk));
            continue;
          }
          const { spans, end } = scanner.scan(chunk);
          for (const span of spans) parts.push(span.slice());
          if (end !== -1) {
            ends++;
            after.push(latin1(chunk.subarray(end)));
          }
        }
        strictEqual(ends, 1, "exactly one end of data");
        strictEqual(latin1(concat(parts)), text);
        strictEqual(scanner.size, text.length);
        strictEqual(after.join(""), "QUIT\r\n");
      },
    ),
    { numRuns: 800 },
  );
});

Deno.test("fuzz: raw data without CRLF.CRLF never ends the message", () => {
  fc.assert(
    fc.property(protocolBytes(300), fc.array(fc.nat(), { maxLength: 10 }), (body, points) => {
      const text = latin1(body);
      fc.pre(!text.includes("\r\n.\r\n") && !text.startsWith(".\r\n"));
      const scanner = new DataScanner(1_000_000);
      for (const chunk of cut(body, points)) strictEqual(scanner.scan(chunk).end, -1);
    }),
    { numRuns: 800 },
  );
});

/** Text that looks like a path and parameters, with the characters that matter to the parser. */
const pathish = fc
  .array(
    fc.oneof(
      fc.constantFrom("<", ">", "@", '"', "\\", ".", "[", "]", ":", ",", " ", "=", "-", "+"),
      fc.constantFrom("a", "Z", "0", "IPv6", "ü", "例", "\u{1F600}", "\t", "\x7f", "\u0000"),
      fc.string({ unit: "binary", maxLength: 4 }),
    ),
    { maxLength: 40 },
  )
  .map((parts) => parts.join(""));

const anyText = fc.oneof(
  pathish,
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.string({ maxLength: 80 }),
);

Deno.test("fuzz: parsePath and parseParams only ever throw AddressError", () => {
  fc.assert(
    fc.property(anyText, fc.boolean(), fc.boolean(), (input, allowNull, utf8) => {
      let parsed;
      try {
        parsed = parsePath(input, { allowNull, utf8 });
      } catch (e) {
        ok(e instanceof AddressError, `parsePath threw ${e}`);
        ok(e.code === 501 || e.code === 553);
      }
      if (parsed) {
        ok(allowNull || parsed.address !== "");
        ok(utf8 || !parsed.utf8);
        strictEqual(parsed.rest, parsed.rest.trim());
        ok(input.includes(parsed.address));
        // A parsed address parses again to itself.
        if (parsed.address !== "") {
          strictEqual(
            parsePath(`<${parsed.address}>`, { allowNull, utf8 }).address,
            parsed.address,
          );
        }
        // What parses without SMTPUTF8 parses the same with it.
        if (!utf8) strictEqual(parsePath(input, { allowNull, utf8: true }).address, parsed.address);
      }
      for (const rest of [input, input.trim(), parsed?.rest ?? ""]) {
        try {
          for (const p of parseParams(rest)) {
            ok(/^[A-Z0-9][A-Z0-9-]*$/.test(p.keyword), p.keyword);
            ok(p.value === undefined || /^[\x21-\x3c\x3e-\x7e]+$/.test(p.value));
          }
        } catch (e) {
          ok(e instanceof AddressError, `parseParams threw ${e}`);
        }
      }
    }),
    { numRuns: 1000 },
  );
});

// ---- the session ----

const b64 = (text: string) => btoa(String.fromCharCode(...enc(text)));

const goodCommand = fc.constantFrom(
  "EHLO client.example",
  "HELO client.example",
  "MAIL FROM:<a@b.c>",
  "MAIL FROM:<>",
  "MAIL FROM:<a@b.c> SIZE=100 BODY=8BITMIME",
  "MAIL FROM:<jörg@bücher.example> SMTPUTF8",
  "MAIL FROM:<a@b.c> SIZE=99999999999",
  "RCPT TO:<d@e.f>",
  'RCPT TO:<"x y"@[192.0.2.1]>',
  "RCPT TO:<δ@e.f>",
  "DATA",
  "RSET",
  "NOOP",
  "VRFY x",
  "HELP",
  "STARTTLS",
  "AUTH PLAIN",
  "AUTH LOGIN",
  "AUTH PLAIN " + b64("\0user\0pass"),
  b64("user"),
  b64("\0user\0pass"),
  "*",
  "=",
  ".",
  "QUIT",
);

const verbWithArgs = fc
  .tuple(
    fc.constantFrom(
      "EHLO",
      "HELO",
      "MAIL FROM:",
      "mail from:",
      "RCPT TO:",
      "DATA",
      "RSET",
      "NOOP",
      "VRFY",
      "HELP",
      "STARTTLS",
      "AUTH",
      "AUTH PLAIN",
      "AUTH LOGIN",
      "EXPN",
      "QUIT",
      "",
    ),
    fc.oneof(pathish, fc.string({ maxLength: 30 }), fc.string({ unit: "binary", maxLength: 30 })),
  )
  .map(([verb, args]) => `${verb}${verb.endsWith(":") || verb === "" ? "" : " "}${args}`);

/** Well-formed sequences that take the session deep: transactions, AUTH exchanges, STARTTLS. */
const script = fc.constantFrom(
  ["EHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>", "DATA"],
  [
    "EHLO c",
    "MAIL FROM:<a@b.c> SIZE=10",
    "RCPT TO:<d@e.f>",
    "RCPT TO:<g@h.i>",
    "RCPT TO:<j@k.l>",
    "DATA",
  ],
  ["MAIL FROM:<> BODY=8BITMIME", "RCPT TO:<d@e.f>", "DATA"],
  ["RCPT TO:<x@y.z>", "DATA"],
  ["EHLO c", "AUTH PLAIN " + b64("\0user\0pass")],
  ["EHLO c", "AUTH LOGIN", b64("user"), b64("pass")],
  ["EHLO c", "AUTH PLAIN", b64("\0user\0pass")],
  ["EHLO c", "STARTTLS", "EHLO c"],
  [
    "EHLO c",
    "MAIL FROM:<a@b.c>",
    "RCPT TO:<d@e.f>",
    "DATA",
    "Subject: x",
    "",
    "..dot",
    ".",
    "NOOP",
  ],
);

/** One input: a line's bytes and whether it ends with CRLF (false: a fragment of a long line). */
const input = fc.oneof(
  { weight: 3, arbitrary: script.map((lines) => lines.map((l) => [enc(l), true] as const)) },
  { weight: 4, arbitrary: fc.tuple(goodCommand.map(enc), fc.constant(true)) },
  { weight: 4, arbitrary: fc.tuple(verbWithArgs.map(enc), fc.boolean()) },
  { weight: 2, arbitrary: fc.tuple(protocolBytes(60), fc.boolean()) },
  {
    weight: 1,
    arbitrary: fc.tuple(
      fc.integer({ min: 500, max: 700 }).map((n) => enc("x".repeat(n))),
      fc.boolean(),
    ),
  },
).map((item) => (Array.isArray(item[0]) ? item : [item]) as (readonly [Uint8Array, boolean])[]);

const outcomes = {
  data: fc.constantFrom<DataResult>({ kind: "stored", id: "ID1" }, { kind: "too-big" }, {
    kind: "store-failed",
  }),
  auth: fc.constantFrom<"ok" | "failed" | "throttled">("ok", "failed", "throttled"),
};

const REPLY_WIRE = /^(\d{3}[ -][^\r\n]*\r\n)+$/;

Deno.test("fuzz: the session never throws and keeps every reply well-formed", () => {
  fc.assert(
    fc.property(
      fc.record({
        maxErrors: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 6, max: 40 })),
        maxRecipients: fc.integer({ min: 1, max: 4 }),
        maxMessageSize: fc.integer({ min: 1, max: 1_000_000 }),
        starttls: fc.boolean(),
        auth: fc.boolean(),
        authOnPlaintext: fc.boolean(),
        tls: fc.boolean(),
      }),
      fc.array(input, { maxLength: 30 }).map((items) => items.flat()),
      fc.array(fc.tuple(outcomes.data, outcomes.auth), { minLength: 200, maxLength: 200 }),
      (opts, inputs, results) => {
        const s = new Session(
          { ...opts, hostname: "mx.test", policy: OPEN_POLICY },
          { address: "192.0.2.1", port: 25, tls: opts.tls },
        );
        let start = true;
        let errorReplies = 0;
        let closed = false;

        const check = (step: Step) => {
          for (const r of step.replies) {
            ok(Number.isInteger(r.code) && r.code >= 200 && r.code <= 599, `code ${r.code}`);
            ok(REPLY_WIRE.test(formatReply(r)), JSON.stringify(formatReply(r)));
            if (r.enhanced !== undefined) ok(validEnhanced(r.code, r.enhanced), JSON.stringify(r));
            else ok([250, 334, 354].includes(r.code), `no enhanced code: ${JSON.stringify(r)}`);
            if (r.code >= 400 && r.code !== 452 && r.code !== 421) errorReplies++;
          }
          strictEqual(s.errors, errorReplies, "errors counts exactly the error replies");
          ok(s.errors <= opts.maxErrors, "never more errors than the limit");
          if (step.effect?.kind === "close") {
            strictEqual(s.state, "closed");
            closed = true;
          } else if (s.errors >= opts.maxErrors) {
            ok(closed, "the limit was reached without a close effect");
          }
          if (step.replies.some((r) => r.code === 421)) {
            deepStrictEqual(step.effect, { kind: "close" });
          }
        };

        for (const [i, [bytes, complete]] of inputs.entries()) {
          const step = s.receive({ bytes, complete, start });
          start = complete;
          if (closed) {
            deepStrictEqual(step, { replies: [] }, "nothing after close");
            continue;
          }
          check(step);
          const [dataResult, authOutcome] = results[i];
          switch (step.effect?.kind) {
            case "data":
              strictEqual(s.state, "data");
              ok(step.effect.envelope.recipients.length >= 1);
              ok(step.effect.envelope.recipients.length <= opts.maxRecipients);
              check(s.dataFinished(dataResult));
              strictEqual(s.state, closed ? "closed" : "greeted");
              break;
            case "authenticate":
              strictEqual(s.state, "auth");
              check(s.authFinished(authOutcome));
              break;
            case "starttls":
              ok(opts.starttls && !s.client.tls);
              s.tlsStarted();
              strictEqual(s.state, "connected");
              break;
          }
        }
      },
    ),
    { numRuns: 1000 },
  );
});

Deno.test("fuzz: the session behind a real splitter, on arbitrary byte streams", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          input.map((items) =>
            concat(
              items.map(([bytes, complete]) => complete ? concat([bytes, enc("\r\n")]) : bytes),
            )
          ),
          protocolBytes(80),
        ),
        { maxLength: 30 },
      ),
      fc.array(fc.nat(), { maxLength: 10 }),
      (pieces, points) => {
        const s = new Session(
          {
            hostname: "mx.test",
            maxMessageSize: 10_000,
            maxRecipients: 3,
            maxErrors: 5,
            starttls: true,
            auth: true,
            authOnPlaintext: true,
            policy: OPEN_POLICY,
          },
          { address: "127.0.0.1", port: 1, tls: false },
        );
        // Drives the session the way the connection does: one command line at a time from
        // the splitter, the data scanner from the byte after DATA, and the rest of a chunk
        // discarded after STARTTLS.
        const splitter = new LineSplitter(MAX_COMMAND_LINE, true);
        let data: DataScanner | undefined;
        const lines: Line[] = [];
        for (const chunk of cut(concat(pieces), points)) {
          let pos = 0;
          for (let guard = 0; pos < chunk.length; guard++) {
            ok(guard <= chunk.length + 1, "every step consumes input");
            if (s.state === "closed") return;
            if (data) {
              const { end } = data.scan(chunk, pos);
              if (end === -1) break;
              ok(end > pos && end <= chunk.length, "the end marker's last byte is in this chunk");
              pos = end;
              data = undefined;
              s.dataFinished({ kind: "stored", id: "X" });
              continue;
            }
            lines.length = 0;
            const next = splitter.take(chunk, pos, lines);
            ok(next > pos, "take consumes at least one byte");
            pos = next;
            for (const [i, line] of lines.entries()) {
              if (line.complete) strictEqual(i, lines.length - 1, "a whole line comes last");
              const step = s.receive(line);
              for (const r of step.replies) ok(REPLY_WIRE.test(formatReply(r)));
              ok(s.errors <= 5);
              if (step.effect?.kind === "data") data = new DataScanner(10_000);
              if (step.effect?.kind === "authenticate") s.authFinished("failed");
              if (step.effect?.kind === "starttls") {
                splitter.reset();
                s.tlsStarted();
                pos = chunk.length;
              }
            }
          }
        }
      },
    ),
    { numRuns: 800 },
  );
});

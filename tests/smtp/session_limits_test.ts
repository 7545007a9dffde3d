/**
 * The Session's bounds: recipients, error replies, command line length and encoding, and
 * a sweep checking that every error reply has a valid enhanced status code.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { LineSplitter } from "../../src/smtp/line_stream.ts";
import { type Reply, reply } from "../../src/smtp/reply.ts";
import type { DataResult } from "../../src/smtp/envelope.ts";
import { MAX_COMMAND_LINE, type Session } from "../../src/smtp/session.ts";
import {
  b64,
  codes,
  dataEnvelope,
  enc,
  expectReply,
  ok2xx,
  refusingPolicy,
  send,
  session,
  validEnhanced,
} from "./_helpers.ts";

Deno.test("Session: too many recipients is 452 4.5.3 and not counted as an error", () => {
  const s = session({ maxRecipients: 2, maxErrors: 2 });
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<r1@x.y>", "RCPT TO:<r2@x.y>");
  for (let i = 0; i < 5; i++) {
    const step = send(s, `RCPT TO:<r${i + 3}@x.y>`);
    expectReply(step, 452, "4.5.3", /too many recipients/);
    strictEqual(step.effect, undefined);
  }
  strictEqual(s.errors, 0);
  deepStrictEqual(dataEnvelope(send(s, "DATA")).recipients, ["r1@x.y", "r2@x.y"]);
});

Deno.test("Session: every reply but the greeting, EHLO/HELO, 334 and 354 has a valid enhanced code", () => {
  const s = session({ auth: true, starttls: true, maxRecipients: 1 }, { tls: false });
  const policy = session({ policy: refusingPolicy().policy });
  const all: Reply[] = [];
  const results: DataResult[] = [{ kind: "stored", id: "I" }, { kind: "too-big" }, {
    kind: "store-failed",
  }];
  let dataCount = 0;
  const run = (target: Session, commands: string[]) => {
    for (const c of commands) {
      const step = send(target, c);
      all.push(...step.replies);
      if (step.effect?.kind === "data") {
        const result = results[dataCount++ % results.length];
        all.push(...target.dataFinished(result).replies);
      }
    }
  };
  run(s, [
    "NOOP",
    "RSET",
    "VRFY x",
    "VRFY",
    "HELP",
    "FOO",
    "EXPN x",
    "MAIL FROM:<a@b.c>",
    "RCPT TO:<a@b.c>",
    "DATA",
    "EHLO",
    "AUTH PLAIN",
    "STARTTLS x",
    "EHLO c",
    "MAIL FROM:<a@b.c> SIZE=1 SIZE=2",
    "MAIL FROM:<a@b.c> X=1",
    "MAIL FROM:<a@b.c> SIZE=99999999999",
    "MAIL FROM:a",
    "MAIL FROM:<ä@b.c>",
    "AUTH PLAIN",
    "MAIL FROM:<a@b.c>",
    "MAIL FROM:<a@b.c>",
    "DATA",
    "RCPT TO:<x>",
    "RCPT TO:<x@y.z> A=1",
    "RCPT TO:<x@y.z>",
    "RCPT TO:<x2@y.z>",
    "STARTTLS",
    "DATA",
    "DATA",
    "STARTTLS",
    "MAIL FROM:<a@b.c>",
    "RCPT TO:<x@y.z>",
    "DATA",
    "MAIL FROM:<a@b.c>",
    "RCPT TO:<x@y.z>",
    "DATA",
  ]);
  strictEqual(dataCount, 3, "each data outcome was produced");
  run(policy, ["EHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<x@refused.example>"]);
  all.push(...session().timeout().replies, ...session().shutdown().replies);
  const a = session({ auth: true }, { tls: true });
  run(a, ["EHLO c", "AUTH LOGIN", "*", "AUTH PLAIN !!!!", "AUTH X", "AUTH", "AUTH LOGIN", "="]);
  run(a, ["AUTH PLAIN " + b64("\0u\0p")]);
  all.push(...a.authFinished("failed").replies);
  run(a, ["AUTH PLAIN " + b64("\0u\0p")]);
  all.push(...a.authFinished("ok").replies);
  run(a, ["AUTH PLAIN " + b64("\0u\0p"), "QUIT"]);
  const e = session({ maxErrors: 1 });
  run(e, ["BAD"]);

  const exempt = all.filter((r) =>
    r.code === 334 || r.code === 354 || r.code === 250 && r.enhanced === undefined
  );
  ok(exempt.length >= 4, "EHLO, 334 and 354 replies were produced");
  const checked = all.filter((r) => !exempt.includes(r));
  ok(checked.length > 40, `only ${checked.length} replies`);
  for (const r of checked) {
    ok(validEnhanced(r.code, r.enhanced), `bad enhanced code: ${JSON.stringify(r)}`);
  }
  // The replies seen cover every class and many codes.
  const seen = new Set(checked.map((r) => r.code));
  for (
    const code of [
      214,
      220,
      221,
      235,
      250,
      252,
      421,
      451,
      452,
      500,
      501,
      502,
      503,
      504,
      535,
      538,
      552,
      553,
      554,
      555,
    ]
  ) {
    ok(seen.has(code), `code ${code} not exercised`);
  }
});

Deno.test("Session: after maxErrors error replies, 421 4.7.0 and close", () => {
  const s = session({ maxErrors: 3 });
  expectReply(send(s, "BAD1"), 500, "5.5.2");
  ok2xx(s, "NOOP");
  expectReply(send(s, "MAIL FROM:<a@b.c>"), 503, "5.5.1");
  strictEqual(s.errors, 2);
  strictEqual(s.state, "connected");
  const step = send(s, "BAD3");
  deepStrictEqual(codes(step), [500, 421]);
  strictEqual(step.replies[1].enhanced, "4.7.0");
  ok(/too many errors/.test(step.replies[1].lines[0]));
  deepStrictEqual(step.effect, { kind: "close" });
  strictEqual(s.state, "closed");
  strictEqual(s.errors, 3);
  deepStrictEqual(send(s, "NOOP"), { replies: [] });
});

Deno.test("Session: the error limit counts dataFinished and auth failures too", () => {
  const s = session({ maxErrors: 2, auth: true }, { tls: true });
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>", "DATA");
  expectReply(s.dataFinished({ kind: "too-big" }), 552, "5.3.4");
  send(s, "AUTH PLAIN " + b64("\0u\0p"));
  const step = s.authFinished("failed");
  deepStrictEqual(codes(step), [535, 421]);
  deepStrictEqual(step.effect, { kind: "close" });
});

Deno.test("Session: an overlong command gets exactly one 500 5.5.6 and the session goes on", () => {
  const s = session();
  ok2xx(s, "EHLO c");
  const fragment = { bytes: enc("MAIL FROM:<" + "a".repeat(500)), complete: false, start: true };
  deepStrictEqual(s.receive(fragment), { replies: [] });
  deepStrictEqual(s.receive({ ...fragment, start: false }), { replies: [] });
  const step = s.receive({ bytes: enc("@b.c>"), complete: true, start: false });
  deepStrictEqual(step, { replies: [reply(500, "5.5.6", "Line too long")] });
  strictEqual(s.errors, 1);
  strictEqual(s.state, "greeted", "the overlong MAIL was not executed");
  ok2xx(s, "MAIL FROM:<a@b.c>");
});

Deno.test("Session: command length bound through the real splitter", () => {
  const s = session();
  const splitter = new LineSplitter(MAX_COMMAND_LINE);
  const exact = "NOOP " + "x".repeat(MAX_COMMAND_LINE - 5);
  const long = "NOOP " + "x".repeat(2000);
  const lines = splitter.push(enc(`${exact}\r\n${long}\r\nNOOP\r\n`));
  strictEqual(lines.length, 6, "1 whole + 4 pieces + 1 whole");
  const replies = lines.flatMap((l) => s.receive(l).replies);
  deepStrictEqual(replies.map((r) => [r.code, r.enhanced]), [
    [250, "2.0.0"],
    [500, "5.5.6"],
    [250, "2.0.0"],
  ]);
  // A complete line longer than the bound (the splitter was configured larger) is refused too.
  expectReply(send(s, "NOOP " + "y".repeat(MAX_COMMAND_LINE)), 500, "5.5.6");
});

Deno.test("Session: invalid UTF-8 and control characters in a command are 500", () => {
  const s = session();
  const bad = s.receive({
    bytes: new Uint8Array([0x45, 0x48, 0x4c, 0x4f, 0x20, 0xff, 0xfe]),
    complete: true,
    start: true,
  });
  expectReply(bad, 500, "5.5.2", /UTF-8/);
  expectReply(send(s, "EHLO a\u0000b"), 500, "5.5.2", /Control/);
  expectReply(send(s, "NOOP \x1b[31m"), 500, "5.5.2", /Control/);
  expectReply(send(s, "EHLO a\nb"), 500, "5.5.2", /Control/);
  strictEqual(s.state, "connected");
  ok2xx(s, "EHLO ok");
});

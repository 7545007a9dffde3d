/** The session's side of CHUNKING (RFC 3030): BDAT's order rules, replies and effects. */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { expectReply, ok2xx, send, session } from "./_helpers.ts";
import type { Step } from "../../src/smtp/envelope.ts";

function chunkEffect(step: Step) {
  const effect = step.effect;
  ok(effect?.kind === "chunk", `chunk effect expected: ${JSON.stringify(step)}`);
  strictEqual(step.replies.length, 0, "the reply comes after the chunk's octets are read");
  return effect;
}

Deno.test("Session: BDAT chunks, then BDAT LAST queues the message", () => {
  const s = session();
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  const first = chunkEffect(send(s, "BDAT 100"));
  deepStrictEqual([first.chunk, first.discard], [{ size: 100, last: false }, false]);
  deepStrictEqual(first.envelope?.recipients, ["d@e.f"]);
  strictEqual(s.state, "data");
  expectReply(s.dataFinished({ kind: "chunk" }), 250, "2.0.0", /chunk received/);
  strictEqual(s.state, "bdat");
  const last = chunkEffect(send(s, "bdat 0 last"));
  deepStrictEqual([last.chunk, last.envelope, last.discard], [
    { size: 0, last: true },
    undefined,
    false,
  ]);
  expectReply(s.dataFinished({ kind: "stored", id: "Q1" }), 250, "2.0.0", /queued as Q1/);
  strictEqual(s.state, "greeted");
});

Deno.test("Session: BDAT out of order is refused after its octets are read", () => {
  const s = session();
  ok2xx(s, "EHLO c");
  const early = chunkEffect(send(s, "BDAT 5 LAST"));
  strictEqual(early.discard, true);
  expectReply(s.dataFinished({ kind: "chunk" }), 503, "5.5.1", /need RCPT/);
  ok2xx(s, "MAIL FROM:<a@b.c>");
  strictEqual(chunkEffect(send(s, "BDAT 5")).discard, true);
  expectReply(s.dataFinished({ kind: "chunk" }), 554, "5.5.1", /no valid recipients/);
  strictEqual(s.state, "mail");
});

Deno.test("Session: DATA, RCPT and STARTTLS cannot follow BDAT; RSET ends the transaction", () => {
  const s = session({ starttls: true });
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  chunkEffect(send(s, "BDAT 3"));
  s.dataFinished({ kind: "chunk" });
  expectReply(send(s, "DATA"), 503, "5.5.1", /DATA cannot follow BDAT/);
  expectReply(send(s, "RCPT TO:<x@y.z>"), 503, "5.5.1", /BDAT/);
  expectReply(send(s, "STARTTLS"), 503, "5.5.1", /transaction/);
  expectReply(send(s, "MAIL FROM:<a@b.c>"), 503, "5.5.1", /nested/);
  strictEqual(s.state, "bdat");
  ok2xx(s, "RSET");
  strictEqual(s.state, "greeted");
});

Deno.test("Session: a BDAT chunk over the size limit is 552 and ends the transaction", () => {
  const s = session();
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  chunkEffect(send(s, "BDAT 10"));
  expectReply(s.dataFinished({ kind: "too-big" }), 552, "5.3.4");
  strictEqual(s.state, "greeted");
  strictEqual(chunkEffect(send(s, "BDAT 10 LAST")).discard, true);
  expectReply(s.dataFinished({ kind: "chunk" }), 503, "5.5.1");
});

Deno.test("Session: BDAT syntax errors are 501", () => {
  const s = session();
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  for (const bad of ["BDAT", "BDAT x", "BDAT -1", "BDAT 1 FIRST", "BDAT 1 LAST x", "BDAT 1e3"]) {
    const step = send(s, bad);
    strictEqual(step.effect, undefined, bad);
    expectReply(step, 501, "5.5.4", /BDAT chunk-size/);
  }
  strictEqual(s.state, "rcpt");
});

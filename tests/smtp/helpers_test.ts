/** The transcript helper itself: it must fail on every kind of mismatch, or it proves nothing. */

import { AssertionError, throws } from "node:assert/strict";
import { session, transcript } from "./_helpers.ts";

Deno.test("transcript: passes on the exact replies, fails on any difference", () => {
  transcript(session({ maxMessageSize: 1000 }), [
    "S: 220 mx.test ESMTP Carrier",
    "C: EHLO c",
    "S: 250-mx.test",
    "S: 250-PIPELINING",
    "S: 250-SIZE 1000",
    "S: 250-8BITMIME",
    "S: 250-SMTPUTF8",
    "S: 250-ENHANCEDSTATUSCODES",
    "S: 250-DSN",
    "S: 250 CHUNKING",
    "C: EHLO c",
    "S: 250",
    "C: MAIL FROM:<a@b.c>",
    "S: 250 2.1.0",
    "C: RCPT TO:<d@e.f>",
    "S: 250 2.1.5 Ok",
  ]);
  const mismatches: [string, string][] = [
    ["C: NOOP", "S: 251 2.0.0 Ok"],
    ["C: NOOP", "S: 251"],
    ["C: NOOP", "S: 250 2.0.1 Ok"],
    ["C: NOOP", "S: 250 2.0.1"],
    ["C: NOOP", "S: 250"],
    ["C: NOOP", "S: 250 Ok"],
    ["C: NOOP", "S: 250 2.0.0 Okay"],
    ["C: HELO", "S: 250 2.0.0"],
    ["C: EHLO c", "S: 250 ENHANCEDSTATUSCODES"],
  ];
  for (const [command, reply] of mismatches) {
    throws(() => transcript(session(), [command, reply]), AssertionError, `${command} / ${reply}`);
  }
  throws(() => transcript(session(), ["C: NOOP"]), /0 replies expected/);
  throws(() => transcript(session(), ["C: NOOP", "S: 250 2.0.0", "S: 250 2.0.0"]), /2 replies/);
  throws(() => transcript(session(), ["C: NOOP", "S: 250-2.0.0 Ok"]), /continues nothing/);
  throws(() => transcript(session(), ["S: 220 2.0.0"]), /greeting/);
  throws(() => transcript(session(), ["NOOP"]), /expected "C: \.\.\."/);
});

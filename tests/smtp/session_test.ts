import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { LineSplitter } from "../../src/smtp/line_stream.ts";
import { type Reply, reply } from "../../src/smtp/reply.ts";
import type { DataResult, Envelope, Step } from "../../src/smtp/envelope.ts";
import type { PolicyContext, SessionPolicy } from "../../src/smtp/policy.ts";
import { MAX_COMMAND_LINE, type Session } from "../../src/smtp/session.ts";
import { codes, enc, send, session, validEnhanced } from "./_helpers.ts";

const b64 = (text: string) => btoa(String.fromCharCode(...enc(text)));

/** Asserts one reply with this code and enhanced code (and text matching, if given). */
function expectReply(step: Step, code: number, enhanced: string | undefined, text?: RegExp): Reply {
  strictEqual(step.replies.length, 1, `one reply expected: ${JSON.stringify(step.replies)}`);
  const r = step.replies[0];
  strictEqual(r.code, code, JSON.stringify(r));
  strictEqual(r.enhanced, enhanced, JSON.stringify(r));
  if (text) ok(text.test(r.lines.join("\n")), `${JSON.stringify(r.lines)} !~ ${text}`);
  return r;
}

/** Runs a script of commands expecting a 2xx/3xx for each. */
function ok2xx(s: Session, ...commands: string[]): Step[] {
  return commands.map((c) => {
    const step = send(s, c);
    ok(step.replies.length === 1 && step.replies[0].code < 400, `${c}: ${JSON.stringify(step)}`);
    return step;
  });
}

function dataEnvelope(step: Step): Envelope {
  const effect = step.effect;
  ok(effect?.kind === "data", `data effect expected: ${JSON.stringify(step)}`);
  return effect.envelope;
}

Deno.test("Session: greeting is 220 without an enhanced code", () => {
  const s = session();
  deepStrictEqual(s.greeting(), {
    code: 220,
    enhanced: undefined,
    lines: ["mx.test ESMTP Carrier"],
  });
  strictEqual(s.state, "connected");
  strictEqual(s.errors, 0);
});

Deno.test("Session: EHLO advertises the extensions", () => {
  const s = session({ maxMessageSize: 12345 });
  const step = send(s, "EHLO client.example");
  deepStrictEqual(step, {
    replies: [{
      code: 250,
      lines: ["mx.test", "PIPELINING", "SIZE 12345", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"],
    }],
  });
  strictEqual(s.state, "greeted");
});

Deno.test("Session: STARTTLS and AUTH are advertised only when usable", () => {
  const ext = (opts: Parameters<typeof session>[0], tls: boolean) =>
    send(session(opts, { tls }), "EHLO c").replies[0].lines.slice(6);
  deepStrictEqual(ext({ starttls: true }, false), ["STARTTLS"]);
  deepStrictEqual(ext({ starttls: true }, true), []);
  deepStrictEqual(ext({ starttls: false }, false), []);
  deepStrictEqual(ext({ auth: true }, false), []);
  deepStrictEqual(ext({ auth: true }, true), ["AUTH PLAIN LOGIN"]);
  deepStrictEqual(ext({ auth: true, authOnPlaintext: true }, false), ["AUTH PLAIN LOGIN"]);
  deepStrictEqual(ext({ auth: false, authOnPlaintext: true }, false), []);
  deepStrictEqual(ext({ starttls: true, auth: true }, false), ["STARTTLS"]);
  deepStrictEqual(ext({ starttls: true, auth: true, authOnPlaintext: true }, false), [
    "STARTTLS",
    "AUTH PLAIN LOGIN",
  ]);
});

Deno.test("Session: HELO replies with the hostname only and means plain SMTP", () => {
  const s = session();
  deepStrictEqual(send(s, "HELO client.example"), {
    replies: [{ code: 250, enhanced: undefined, lines: ["mx.test"] }],
  });
  strictEqual(s.state, "greeted");
  expectReply(send(s, "MAIL FROM:<a@b.c> SIZE=10"), 555, "5.5.4", /EHLO/);
  ok2xx(s, "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  const envelope = dataEnvelope(send(s, "DATA"));
  strictEqual(envelope.protocol, "SMTP");
  strictEqual(envelope.helo, "client.example");
});

Deno.test("Session: EHLO/HELO need exactly one name", () => {
  const s = session();
  expectReply(send(s, "EHLO"), 501, "5.5.4", /EHLO hostname/);
  expectReply(send(s, "EHLO   "), 501, "5.5.4");
  expectReply(send(s, "HELO a b"), 501, "5.5.4", /HELO hostname/);
  strictEqual(s.state, "connected");
  strictEqual(s.errors, 3);
});

Deno.test("Session: MAIL before EHLO is 503", () => {
  const s = session();
  expectReply(send(s, "MAIL FROM:<a@b.c>"), 503, "5.5.1", /HELO\/EHLO first/);
  strictEqual(s.state, "connected");
});

Deno.test("Session: nested MAIL is 503", () => {
  const s = session();
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>");
  expectReply(send(s, "MAIL FROM:<x@y.z>"), 503, "5.5.1", /nested/);
  ok2xx(s, "RCPT TO:<d@e.f>");
  expectReply(send(s, "MAIL FROM:<x@y.z>"), 503, "5.5.1", /nested/);
  strictEqual(dataEnvelope(send(s, "DATA")).sender, "a@b.c");
});

Deno.test("Session: RCPT before MAIL is 503", () => {
  const s = session();
  expectReply(send(s, "RCPT TO:<d@e.f>"), 503, "5.5.1", /need MAIL/);
  ok2xx(s, "EHLO c");
  expectReply(send(s, "RCPT TO:<d@e.f>"), 503, "5.5.1", /need MAIL/);
});

Deno.test("Session: DATA before RCPT is 503, after MAIL without recipients 554", () => {
  const s = session();
  expectReply(send(s, "DATA"), 503, "5.5.1", /need RCPT/);
  ok2xx(s, "EHLO c");
  expectReply(send(s, "DATA"), 503, "5.5.1", /need RCPT/);
  ok2xx(s, "MAIL FROM:<a@b.c>");
  expectReply(send(s, "DATA"), 554, "5.5.1", /no valid recipients/);
  strictEqual(s.state, "mail");
  ok2xx(s, "RCPT TO:<d@e.f>");
  expectReply(send(s, "DATA extra"), 501, "5.5.4", /Syntax: DATA/);
  strictEqual(s.state, "rcpt");
});

Deno.test("Session: a whole transaction, the data effect and its envelope", () => {
  const s = session({}, { address: "198.51.100.4", port: 1234 });
  ok2xx(s, "EHLO client.example");
  expectReply(send(s, "MAIL FROM:<a@b.c> SIZE=500 BODY=8BITMIME"), 250, "2.1.0");
  strictEqual(s.state, "mail");
  expectReply(send(s, "RCPT TO:<d@e.f>"), 250, "2.1.5");
  strictEqual(s.state, "rcpt");
  expectReply(send(s, "RCPT TO:<g@h.i>"), 250, "2.1.5");
  const step = send(s, "DATA");
  expectReply(step, 354, undefined, /<CR><LF>\.<CR><LF>/);
  deepStrictEqual(step.effect, {
    kind: "data",
    envelope: {
      sender: "a@b.c",
      recipients: ["d@e.f", "g@h.i"],
      smtputf8: false,
      body: "8BITMIME",
      declaredSize: 500,
      helo: "client.example",
      client: { address: "198.51.100.4", port: 1234, tls: false },
      user: undefined,
      protocol: "ESMTP",
    },
  });
  strictEqual(s.state, "data");
  throws(() => send(s, "NOOP"), /data state/);
  const done = s.dataFinished({ kind: "stored", id: "Q1X2Y3" });
  deepStrictEqual(done, { replies: [reply(250, "2.0.0", "Ok: queued as Q1X2Y3")] });
  strictEqual(s.state, "greeted");
  // The transaction is over: a new MAIL is accepted, and its recipients start empty.
  ok2xx(s, "MAIL FROM:<>");
  expectReply(send(s, "DATA"), 554, "5.5.1");
  ok2xx(s, "RCPT TO:<x@y.z>");
  const next = dataEnvelope(send(s, "DATA"));
  deepStrictEqual([next.sender, next.recipients, next.body, next.declaredSize], [
    "",
    ["x@y.z"],
    "7BIT",
    undefined,
  ]);
});

Deno.test("Session: the envelope is a copy", () => {
  const s = session();
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  const envelope = dataEnvelope(send(s, "DATA"));
  envelope.recipients.push("evil@x.y");
  envelope.client.tls = true;
  s.dataFinished({ kind: "stored", id: "1" });
  strictEqual(s.client.tls, false);
  ok2xx(s, "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  deepStrictEqual(dataEnvelope(send(s, "DATA")).recipients, ["d@e.f"]);
});

Deno.test("Session: dataFinished too-big is 552, store-failed 451; both reset", () => {
  for (
    const [kind, code, enhanced] of [
      ["too-big", 552, "5.3.4"],
      ["store-failed", 451, "4.3.0"],
    ] as const
  ) {
    const s = session();
    ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>", "DATA");
    expectReply(s.dataFinished({ kind }), code, enhanced);
    strictEqual(s.state, "greeted");
    strictEqual(s.errors, 1);
    expectReply(send(s, "RCPT TO:<d@e.f>"), 503, "5.5.1");
    ok2xx(s, "MAIL FROM:<a@b.c>");
  }
  throws(() => session().dataFinished({ kind: "stored", id: "x" }), /outside of data/);
});

Deno.test("Session: unknown verbs are 500 5.5.2; EXPN and friends 502", () => {
  const s = session();
  expectReply(send(s, "FOO bar"), 500, "5.5.2", /not recognized/);
  expectReply(send(s, ""), 500, "5.5.2");
  expectReply(send(s, " EHLO x"), 500, "5.5.2");
  expectReply(send(s, "EXPN list"), 502, "5.5.1", /EXPN not implemented/);
  expectReply(send(s, "turn"), 502, "5.5.1", /TURN/);
  expectReply(send(s, "ETRN x"), 502, "5.5.1");
  strictEqual(s.errors, 6);
});

Deno.test("Session: verbs and FROM:/TO: are case-insensitive", () => {
  const s = session();
  ok2xx(s, "ehlo c", "mail from:<a@b.c> size=10 body=8bitmime", "Rcpt To:<d@e.f>", "noop");
  const envelope = dataEnvelope(send(s, "data"));
  strictEqual(envelope.body, "8BITMIME");
  strictEqual(envelope.declaredSize, 10);
});

Deno.test("Session: MAIL and RCPT syntax errors are 501", () => {
  const s = session();
  ok2xx(s, "EHLO c");
  expectReply(send(s, "MAIL <a@b.c>"), 501, "5.5.4", /MAIL FROM:<address>/);
  expectReply(send(s, "MAIL FROM <a@b.c>"), 501, "5.5.4");
  expectReply(send(s, "MAIL FROM:a@b.c"), 501, "5.1.3", /angle brackets/);
  expectReply(send(s, "MAIL FROM:<a@b.c"), 501, "5.1.3", /closing/);
  expectReply(send(s, "MAIL FROM:<a@b.c>SIZE=1"), 501, "5.1.3", /space/);
  expectReply(send(s, "MAIL FROM:<a@b.c> SIZE=x"), 501, "5.5.4", /SIZE=<number>/);
  expectReply(send(s, "MAIL FROM:<a@b.c> SIZE"), 501, "5.5.4", /SIZE=<number>/);
  expectReply(send(s, "MAIL FROM:<a@b.c> SIZE=1 SIZE=1"), 501, "5.5.4", /duplicate SIZE/);
  expectReply(send(s, "MAIL FROM:<a@b.c> BAD_KW"), 501, "5.1.3", /bad parameter/);
  ok2xx(s, "MAIL FROM: <a@b.c>");
  expectReply(send(s, "RCPT <d@e.f>"), 501, "5.5.4", /RCPT TO:<address>/);
  expectReply(send(s, "RCPT TO:<>"), 501, "5.1.3", /null/);
  expectReply(send(s, "RCPT TO:<a..b@x>"), 501, "5.1.3", /empty atom/);
  expectReply(send(s, `RCPT TO:<${"l".repeat(65)}@x.com>`), 553, "5.1.7", /too long/);
  strictEqual(s.state, "mail");
});

Deno.test("Session: MAIL parameters: unknown 555, SIZE 552, BODY", () => {
  const s = session({ maxMessageSize: 1000 });
  ok2xx(s, "EHLO c");
  expectReply(send(s, "MAIL FROM:<a@b.c> X-FOO=1"), 555, "5.5.4", /Unsupported parameter X-FOO/);
  expectReply(send(s, "MAIL FROM:<a@b.c> RET=HDRS"), 555, "5.5.4");
  expectReply(
    send(s, "MAIL FROM:<a@b.c> SIZE=1001"),
    552,
    "5.3.4",
    /exceeds fixed maximum message size/,
  );
  expectReply(send(s, "MAIL FROM:<a@b.c> SIZE=99999999999999999999"), 552, "5.3.4");
  expectReply(send(s, "MAIL FROM:<a@b.c> BODY=BINARYMIME"), 555, "5.5.4", /BODY/);
  expectReply(send(s, "MAIL FROM:<a@b.c> BODY"), 555, "5.5.4", /BODY/);
  expectReply(send(s, "MAIL FROM:<a@b.c> SMTPUTF8=yes"), 555, "5.5.4", /SMTPUTF8/);
  expectReply(send(s, "MAIL FROM:<a@b.c> AUTH=<>"), 555, "5.5.4", /AUTH/);
  strictEqual(s.state, "greeted");
  expectReply(send(s, "MAIL FROM:<a@b.c> SIZE=1000 BODY=7BIT"), 250, "2.1.0");
  ok2xx(s, "RCPT TO:<d@e.f>");
  const envelope = dataEnvelope(send(s, "DATA"));
  deepStrictEqual([envelope.declaredSize, envelope.body], [1000, "7BIT"]);
});

Deno.test("Session: MAIL AUTH= is accepted where AUTH is offered", () => {
  const s = session({ auth: true }, { tls: true });
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c> AUTH=<>");
});

Deno.test("Session: SMTPUTF8 allows UTF-8 addresses; without it they are 553", () => {
  const s = session();
  ok2xx(s, "EHLO c");
  expectReply(send(s, "MAIL FROM:<jörg@example.com>"), 553, "5.1.7", /SMTPUTF8/);
  ok2xx(s, "MAIL FROM:<a@b.c>");
  expectReply(send(s, "RCPT TO:<jörg@bücher.example>"), 553, "5.1.7", /SMTPUTF8/);
  ok2xx(s, "RSET", "MAIL FROM:<jörg@example.com> SMTPUTF8", "RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>");
  const envelope = dataEnvelope(send(s, "DATA"));
  strictEqual(envelope.smtputf8, true);
  strictEqual(envelope.sender, "jörg@example.com");
  deepStrictEqual(envelope.recipients, ["δοκιμή@παράδειγμα.δοκιμή"]);
});

Deno.test("Session: RCPT parameters are 555", () => {
  const s = session();
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>");
  expectReply(send(s, "RCPT TO:<d@e.f> NOTIFY=NEVER"), 555, "5.5.4", /NOTIFY/);
  expectReply(send(s, "RCPT TO:<d@e.f> orcpt=rfc822;d@e.f"), 555, "5.5.4", /ORCPT/);
  strictEqual(s.state, "mail");
});

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

Deno.test("Session: RSET resets the transaction", () => {
  const s = session();
  expectReply(send(s, "RSET"), 250, "2.0.0");
  strictEqual(s.state, "connected", "RSET does not greet");
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  expectReply(send(s, "RSET"), 250, "2.0.0", /Ok/);
  strictEqual(s.state, "greeted");
  expectReply(send(s, "DATA"), 503, "5.5.1");
  ok2xx(s, "MAIL FROM:<x@y.z>", "RCPT TO:<r@s.t>");
  const envelope = dataEnvelope(send(s, "DATA"));
  deepStrictEqual([envelope.sender, envelope.recipients], ["x@y.z", ["r@s.t"]]);
  s.dataFinished({ kind: "stored", id: "1" });
  expectReply(send(s, "RSET now"), 501, "5.5.4", /Syntax: RSET/);
});

Deno.test("Session: a new EHLO resets the transaction", () => {
  const s = session();
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c> SMTPUTF8", "RCPT TO:<d@e.f>", "EHLO again");
  strictEqual(s.state, "greeted");
  ok2xx(s, "MAIL FROM:<x@y.z>");
  expectReply(send(s, "DATA"), 554, "5.5.1");
  ok2xx(s, "RCPT TO:<r@s.t>");
  const envelope = dataEnvelope(send(s, "DATA"));
  deepStrictEqual([envelope.recipients, envelope.smtputf8, envelope.helo], [
    ["r@s.t"],
    false,
    "again",
  ]);
});

Deno.test("Session: VRFY 252, HELP 214, NOOP 250", () => {
  const s = session();
  expectReply(send(s, "VRFY someone"), 252, "2.5.0", /Cannot VRFY/);
  expectReply(send(s, "VRFY"), 501, "5.5.4");
  const help = expectReply(send(s, "HELP"), 214, "2.0.0");
  ok(help.lines.length >= 2 && help.lines.some((l) => /EHLO.*STARTTLS/.test(l)));
  expectReply(send(s, "HELP MAIL"), 214, "2.0.0");
  expectReply(send(s, "NOOP"), 250, "2.0.0", /^Ok$/);
  expectReply(send(s, "NOOP anything"), 250, "2.0.0");
  strictEqual(s.state, "connected");
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>", "NOOP", "VRFY x", "HELP");
  strictEqual(s.state, "mail", "NOOP, VRFY and HELP keep the transaction");
});

Deno.test("Session: QUIT replies 221 and closes", () => {
  const s = session();
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>");
  const step = send(s, "QUIT");
  deepStrictEqual(step, { replies: [reply(221, "2.0.0", "Bye")], effect: { kind: "close" } });
  strictEqual(s.state, "closed");
  deepStrictEqual(send(s, "NOOP"), { replies: [] });
  deepStrictEqual(s.receive({ bytes: enc("x"), complete: false, start: true }), { replies: [] });
});

Deno.test("Session: timeout and shutdown reply 421 and close", () => {
  const a = session();
  const t = a.timeout();
  expectReply(t, 421, "4.4.2", /mx\.test.*timeout/);
  deepStrictEqual(t.effect, { kind: "close" });
  strictEqual(a.state, "closed");
  const b = session();
  const sd = b.shutdown();
  expectReply(sd, 421, "4.3.2", /mx\.test.*shutting down/);
  deepStrictEqual(sd.effect, { kind: "close" });
  strictEqual(b.state, "closed");
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

Deno.test("Session: STARTTLS, then the session starts over under TLS", () => {
  const s = session({ starttls: true });
  ok2xx(s, "EHLO c");
  const step = send(s, "STARTTLS");
  deepStrictEqual(step, {
    replies: [reply(220, "2.0.0", "Ready to start TLS")],
    effect: { kind: "starttls" },
  });
  s.tlsStarted();
  strictEqual(s.state, "connected");
  strictEqual(s.client.tls, true);
  expectReply(send(s, "MAIL FROM:<a@b.c>"), 503, "5.5.1", /EHLO first/);
  const ehlo = send(s, "EHLO c");
  ok(!ehlo.replies[0].lines.includes("STARTTLS"));
  expectReply(send(s, "STARTTLS"), 502, "5.5.1");
  ok2xx(s, "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  const envelope = dataEnvelope(send(s, "DATA"));
  strictEqual(envelope.protocol, "ESMTPS");
  strictEqual(envelope.client.tls, true);
});

Deno.test("Session: STARTTLS refusals", () => {
  expectReply(send(session(), "STARTTLS"), 502, "5.5.1", /not available/);
  expectReply(send(session({ starttls: true }, { tls: true }), "STARTTLS"), 502, "5.5.1");
  const s = session({ starttls: true });
  ok2xx(s, "EHLO c");
  expectReply(send(s, "STARTTLS now"), 501, "5.5.4");
  ok2xx(s, "MAIL FROM:<a@b.c>");
  const step = send(s, "STARTTLS");
  expectReply(step, 503, "5.5.1", /transaction/);
  strictEqual(step.effect, undefined);
});

Deno.test("Session: tlsStarted forgets the EHLO name, the transaction and the user", () => {
  const s = session({ starttls: true, auth: true, authOnPlaintext: true });
  ok2xx(s, "EHLO before");
  send(s, "AUTH PLAIN " + b64("\0u\0p"));
  s.authFinished("ok");
  strictEqual(s.user, "u");
  s.tlsStarted();
  strictEqual(s.user, undefined);
  ok2xx(s, "EHLO after", "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  const envelope = dataEnvelope(send(s, "DATA"));
  deepStrictEqual([envelope.helo, envelope.user, envelope.protocol], [
    "after",
    undefined,
    "ESMTPS",
  ]);
});

Deno.test("Session: AUTH PLAIN with an initial response, then ESMTPSA", () => {
  const s = session({ auth: true }, { tls: true });
  ok2xx(s, "EHLO c");
  const step = send(s, "AUTH PLAIN " + b64("\0alice\0s3cr3t pw"));
  deepStrictEqual(step, {
    replies: [],
    effect: { kind: "authenticate", user: "alice", password: "s3cr3t pw" },
  });
  strictEqual(s.state, "auth");
  deepStrictEqual(s.authFinished("ok"), {
    replies: [reply(235, "2.7.0", "Authentication successful")],
  });
  strictEqual(s.user, "alice");
  strictEqual(s.state, "greeted");
  ok2xx(s, "MAIL FROM:<alice@b.c>", "RCPT TO:<d@e.f>");
  const envelope = dataEnvelope(send(s, "DATA"));
  deepStrictEqual([envelope.protocol, envelope.user], ["ESMTPSA", "alice"]);
  s.dataFinished({ kind: "stored", id: "x" });
  expectReply(send(s, "AUTH PLAIN " + b64("\0alice\0pw")), 503, "5.5.1", /Already/);
});

Deno.test("Session: AUTH PLAIN without an initial response; authzid", () => {
  const s = session({ auth: true }, { tls: true });
  ok2xx(s, "EHLO c");
  deepStrictEqual(send(s, "auth plain"), {
    replies: [{ code: 334, enhanced: undefined, lines: [""] }],
  });
  deepStrictEqual(send(s, b64("bob\0bob\0pw")).effect, {
    kind: "authenticate",
    user: "bob",
    password: "pw",
  });
  s.authFinished("failed");
  send(s, "AUTH PLAIN");
  expectReply(send(s, b64("eve\0bob\0pw")), 501, "5.5.2", /PLAIN/);
  expectReply(send(s, "AUTH PLAIN " + b64("\0\0pw")), 501, "5.5.2", /PLAIN/);
  expectReply(send(s, "AUTH PLAIN " + b64("bob\0pw")), 501, "5.5.2", /PLAIN/);
  expectReply(send(s, "AUTH PLAIN ="), 501, "5.5.2", /PLAIN/);
  expectReply(send(s, "AUTH PLAIN not-base64!"), 501, "5.5.2", /decode/);
  expectReply(send(s, "AUTH PLAIN " + btoa("\0u\0\xff")), 501, "5.5.2", /decode/);
  strictEqual(s.state, "greeted");
});

Deno.test("Session: AUTH LOGIN in two steps", () => {
  const s = session({ auth: true, authOnPlaintext: true });
  ok2xx(s, "EHLO c");
  deepStrictEqual(send(s, "AUTH LOGIN"), { replies: [reply(334, undefined, "VXNlcm5hbWU6")] });
  strictEqual(s.state, "auth");
  deepStrictEqual(send(s, b64("carol")), { replies: [reply(334, undefined, "UGFzc3dvcmQ6")] });
  deepStrictEqual(send(s, b64("pässword")), {
    replies: [],
    effect: { kind: "authenticate", user: "carol", password: "pässword" },
  });
  expectReply(s.authFinished("ok"), 235, "2.7.0");
  ok2xx(s, "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  strictEqual(dataEnvelope(send(s, "DATA")).protocol, "ESMTPA");
});

Deno.test("Session: AUTH LOGIN with the user name as initial response", () => {
  const s = session({ auth: true }, { tls: true });
  ok2xx(s, "EHLO c");
  deepStrictEqual(send(s, "AUTH LOGIN " + b64("dave")), {
    replies: [reply(334, undefined, "UGFzc3dvcmQ6")],
  });
  deepStrictEqual(send(s, "=").effect, { kind: "authenticate", user: "dave", password: "" });
  const s2 = session({ auth: true }, { tls: true });
  ok2xx(s2, "EHLO c", "AUTH LOGIN");
  expectReply(send(s2, "="), 501, "5.5.2", /Empty user/);
  strictEqual(s2.state, "greeted");
});

Deno.test("Session: AUTH without TLS where not allowed is 538 5.7.11", () => {
  const s = session({ auth: true, starttls: true });
  ok2xx(s, "EHLO c");
  const step = send(s, "AUTH PLAIN " + b64("\0u\0p"));
  expectReply(step, 538, "5.7.11", /Encryption required/);
  strictEqual(step.effect, undefined);
  strictEqual(s.state, "greeted");
});

Deno.test("Session: AUTH refusals before, outside and inside a transaction", () => {
  expectReply(send(session(), "AUTH PLAIN"), 502, "5.5.1", /AUTH not available/);
  const a = session({ auth: true }, { tls: true });
  expectReply(send(a, "AUTH PLAIN"), 503, "5.5.1", /EHLO first/);
  ok2xx(a, "HELO c");
  expectReply(send(a, "AUTH PLAIN"), 503, "5.5.1", /EHLO first/);
  ok2xx(a, "EHLO c");
  expectReply(send(a, "AUTH"), 501, "5.5.4");
  expectReply(send(a, "AUTH CRAM-MD5"), 504, "5.5.4", /mechanism/);
  expectReply(send(a, "AUTH PLAIN a b"), 501, "5.5.4");
  ok2xx(a, "MAIL FROM:<a@b.c>");
  expectReply(send(a, "AUTH PLAIN"), 503, "5.5.1", /transaction/);
  strictEqual(a.state, "mail");
});

Deno.test("Session: cancelling AUTH with * is 501", () => {
  const s = session({ auth: true }, { tls: true });
  ok2xx(s, "EHLO c", "AUTH LOGIN");
  expectReply(send(s, "*"), 501, "5.0.0", /cancelled/);
  strictEqual(s.state, "greeted");
  ok2xx(s, "AUTH PLAIN");
  expectReply(send(s, "*"), 501, "5.0.0");
  ok2xx(s, "AUTH LOGIN", b64("u"));
  expectReply(send(s, "*"), 501, "5.0.0");
  strictEqual(s.user, undefined);
  throws(() => s.authFinished("ok"), /without a pending/);
});

Deno.test("Session: authFinished failed is 535 5.7.8, throttled 421 and close", () => {
  const s = session({ auth: true }, { tls: true });
  ok2xx(s, "EHLO c");
  send(s, "AUTH PLAIN " + b64("\0u\0wrong"));
  deepStrictEqual(s.authFinished("failed"), {
    replies: [reply(535, "5.7.8", "Authentication credentials invalid")],
  });
  strictEqual(s.user, undefined);
  strictEqual(s.state, "greeted");
  strictEqual(s.errors, 1);
  ok2xx(s, "MAIL FROM:<a@b.c>", "RSET");
  send(s, "AUTH PLAIN " + b64("\0u\0wrong"));
  const step = s.authFinished("throttled");
  expectReply(step, 421, "4.7.0");
  deepStrictEqual(step.effect, { kind: "close" });
  strictEqual(s.state, "closed");
  strictEqual(s.user, undefined);
});

Deno.test("Session: an overlong line during AUTH ends the exchange", () => {
  const s = session({ auth: true }, { tls: true });
  ok2xx(s, "EHLO c", "AUTH LOGIN");
  s.receive({ bytes: enc("x".repeat(600)), complete: false, start: true });
  expectReply(s.receive({ bytes: enc("x"), complete: true, start: false }), 500, "5.5.6");
  strictEqual(s.state, "greeted");
  ok2xx(s, "NOOP");
});

function refusingPolicy() {
  const calls: { kind: string; ctx: PolicyContext; args: string[] }[] = [];
  const policy: SessionPolicy = {
    mail(ctx, sender) {
      calls.push({ kind: "mail", ctx, args: [sender] });
      return sender.endsWith("@banned.example") ? reply(550, "5.7.1", "Sender refused") : undefined;
    },
    rcpt(ctx, recipient, sender) {
      calls.push({ kind: "rcpt", ctx, args: [recipient, sender] });
      return recipient.endsWith("@refused.example")
        ? reply(554, "5.7.1", "Relay access denied")
        : undefined;
    },
  };
  return { policy, calls };
}

Deno.test("Session: the policy is consulted at MAIL and RCPT; its replies pass through", () => {
  const { policy, calls } = refusingPolicy();
  const s = session({ policy, auth: true }, { tls: true });
  ok2xx(s, "EHLO c");
  deepStrictEqual(send(s, "MAIL FROM:<x@banned.example>"), {
    replies: [reply(550, "5.7.1", "Sender refused")],
  });
  strictEqual(s.state, "greeted");
  ok2xx(s, "MAIL FROM:<a@b.c>", "RCPT TO:<ok@x.example>");
  deepStrictEqual(send(s, "RCPT TO:<no@refused.example>"), {
    replies: [reply(554, "5.7.1", "Relay access denied")],
  });
  strictEqual(s.errors, 2);
  ok2xx(s, "RCPT TO:<ok2@x.example>");
  deepStrictEqual(dataEnvelope(send(s, "DATA")).recipients, ["ok@x.example", "ok2@x.example"]);
  deepStrictEqual(calls.map((c) => [c.kind, ...c.args]), [
    ["mail", "x@banned.example"],
    ["mail", "a@b.c"],
    ["rcpt", "ok@x.example", "a@b.c"],
    ["rcpt", "no@refused.example", "a@b.c"],
    ["rcpt", "ok2@x.example", "a@b.c"],
  ]);
  deepStrictEqual(calls[0].ctx, {
    client: { address: "192.0.2.7", port: 40000, tls: true },
    user: undefined,
  });
});

Deno.test("Session: the policy sees the authenticated user", () => {
  const { policy, calls } = refusingPolicy();
  const s = session({ policy, auth: true }, { tls: true });
  ok2xx(s, "EHLO c");
  send(s, "AUTH PLAIN " + b64("\0alice\0pw"));
  s.authFinished("ok");
  ok2xx(s, "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>");
  deepStrictEqual(calls.map((c) => c.ctx.user), ["alice", "alice"]);
});

Deno.test("Session: a refused RCPT leaves a transaction with no recipient at 554 on DATA", () => {
  const { policy } = refusingPolicy();
  const s = session({ policy });
  ok2xx(s, "EHLO c", "MAIL FROM:<a@b.c>");
  expectReply(send(s, "RCPT TO:<a@refused.example>"), 554, "5.7.1");
  expectReply(send(s, "DATA"), 554, "5.5.1");
});

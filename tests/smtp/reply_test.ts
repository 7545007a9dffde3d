import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { encodeReplies, formatReply, reply } from "../../src/smtp/reply.ts";
import { dec } from "./_helpers.ts";

Deno.test("reply: builds a reply from text lines", () => {
  deepStrictEqual(reply(250, "2.0.0", "Ok"), { code: 250, enhanced: "2.0.0", lines: ["Ok"] });
  deepStrictEqual(reply(214, undefined, "a", "b"), {
    code: 214,
    enhanced: undefined,
    lines: ["a", "b"],
  });
  deepStrictEqual(reply(334, undefined), { code: 334, enhanced: undefined, lines: [""] });
});

Deno.test("formatReply: single line, with and without an enhanced code", () => {
  strictEqual(formatReply(reply(250, "2.1.0", "Ok")), "250 2.1.0 Ok\r\n");
  strictEqual(formatReply(reply(220, undefined, "mx ESMTP Carrier")), "220 mx ESMTP Carrier\r\n");
});

Deno.test("formatReply: multi-line replies use '-' on all but the last line", () => {
  strictEqual(
    formatReply({ code: 250, lines: ["mx", "PIPELINING", "SIZE 10"] }),
    "250-mx\r\n250-PIPELINING\r\n250 SIZE 10\r\n",
  );
  strictEqual(formatReply(reply(214, "2.0.0", "one", "two")), "214-2.0.0 one\r\n214 2.0.0 two\r\n");
});

Deno.test("formatReply: an empty 334 challenge keeps its space (RFC 4954 continue-req)", () => {
  strictEqual(formatReply(reply(334, undefined, "")), "334 \r\n");
  strictEqual(formatReply(reply(334, undefined, "VXNlcm5hbWU6")), "334 VXNlcm5hbWU6\r\n");
  strictEqual(formatReply({ code: 250, lines: ["", ""] }), "250-\r\n250 \r\n");
});

Deno.test("formatReply: trailing spaces of the text are dropped", () => {
  strictEqual(formatReply(reply(250, "2.0.0", "Ok   ")), "250 2.0.0 Ok\r\n");
  strictEqual(formatReply(reply(250, "2.0.0", "")), "250 2.0.0\r\n");
});

Deno.test("formatReply: control characters cannot split a reply", () => {
  const text = formatReply(reply(501, "5.1.3", "bad\r\n250 fake\x00\x1b\x7f\tend"));
  strictEqual(text, "501 5.1.3 bad??250 fake????end\r\n");
  ok(/^(\d{3}[ -][^\r\n]*\r\n)+$/.test(text));
  strictEqual(formatReply({ code: 250, lines: ["a\nb", "c\rd"] }), "250-a?b\r\n250 c?d\r\n");
});

Deno.test("formatReply: reply text is ASCII (RFC 5321 §4.2); non-ASCII client input is masked", () => {
  const bytes = encodeReplies([reply(553, "5.1.7", "<ü@例え.jp> not allowed")]);
  strictEqual(dec(bytes), "553 5.1.7 <?@??.jp> not allowed\r\n");
  ok(bytes.every((b) => b < 0x80));
});

Deno.test("encodeReplies: several replies in one buffer, in order", () => {
  const bytes = encodeReplies([
    reply(250, "2.1.0", "Ok"),
    reply(550, "5.1.1", "No such user"),
    { code: 250, lines: ["mx", "8BITMIME"] },
  ]);
  ok(bytes instanceof Uint8Array);
  strictEqual(dec(bytes), "250 2.1.0 Ok\r\n550 5.1.1 No such user\r\n250-mx\r\n250 8BITMIME\r\n");
  strictEqual(encodeReplies([]).length, 0);
});

/** The DSN parameter parsers (RFC 3461): xtext both ways, NOTIFY, ORCPT, RET and ENVID. */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  checkRcptParams,
  decodeXtext,
  encodeXtext,
  type MessageDsn,
  parseNotify,
  parseOrcpt,
  takeMailDsnParam,
} from "../../src/smtp/dsn.ts";

Deno.test("xtext: decodes +XX, refuses bad escapes and raw specials; encodes what it must", () => {
  strictEqual(decodeXtext("a+2Bb+3Dc"), "a+b=c");
  strictEqual(decodeXtext("plain.text@x"), "plain.text@x");
  for (const bad of ["a+2", "a+2b", "a+ZZ", "a=b", "a b", "é"]) {
    strictEqual(decodeXtext(bad), undefined, bad);
  }
  strictEqual(encodeXtext("a+b=c d"), "a+2Bb+3Dc+20d");
  strictEqual(encodeXtext("é"), "+C3+A9");
  for (const s of ["x+y=z", "Q 1\t2", "ordinary@example.com"]) {
    strictEqual(decodeXtext(encodeXtext(s)), s);
  }
});

Deno.test("parseNotify: NEVER alone, or SUCCESS/FAILURE/DELAY without repeats", () => {
  deepStrictEqual(parseNotify("never"), ["NEVER"]);
  deepStrictEqual(parseNotify("FAILURE,delay"), ["FAILURE", "DELAY"]);
  for (const bad of [undefined, "", "NEVER,FAILURE", "FAILURE,FAILURE", "ALWAYS", "FAILURE,"]) {
    strictEqual("error" in (parseNotify(bad) as object), true, String(bad));
  }
});

Deno.test("parseOrcpt: type;xtext, utf-8 addresses with \\x{HEX}", () => {
  deepStrictEqual(parseOrcpt("rfc822;user+2Btag@example.com"), {
    type: "rfc822",
    address: "user+tag@example.com",
  });
  deepStrictEqual(parseOrcpt("UTF-8;j\\x{F6}rg@example.com"), {
    type: "utf-8",
    address: "jörg@example.com",
  });
  for (
    const bad of [
      undefined,
      "",
      "user@example.com",
      ";a@b",
      "rfc822;",
      "rfc 822;a@b",
      `rfc822;${"a".repeat(500)}`,
    ]
  ) {
    strictEqual("error" in (parseOrcpt(bad) as object), true, String(bad));
  }
});

Deno.test("takeMailDsnParam: RET and ENVID; other keywords are left to the caller", () => {
  const dsn: MessageDsn = {};
  strictEqual(takeMailDsnParam({ keyword: "RET", value: "full" }, dsn), true);
  strictEqual(takeMailDsnParam({ keyword: "ENVID", value: "id+2B1" }, dsn), true);
  deepStrictEqual(dsn, { ret: "FULL", envid: "id+1" });
  strictEqual(takeMailDsnParam({ keyword: "SIZE", value: "1" }, dsn), false);
  const bad = takeMailDsnParam({ keyword: "ENVID", value: "x".repeat(101) }, dsn);
  strictEqual(typeof bad === "object" && bad.error.code, 501);
});

Deno.test("checkRcptParams: only NOTIFY and ORCPT, once each", () => {
  deepStrictEqual(checkRcptParams([{ keyword: "NOTIFY", value: "SUCCESS" }]), {
    notify: ["SUCCESS"],
  });
  const dup = checkRcptParams([{ keyword: "ORCPT", value: "rfc822;a@b" }, {
    keyword: "ORCPT",
    value: "rfc822;a@b",
  }]);
  strictEqual("error" in dup && dup.error.code, 501);
  const other = checkRcptParams([{ keyword: "XFORWARD", value: "1" }]);
  strictEqual("error" in other && other.error.code, 555);
});

import { strictEqual } from "node:assert/strict";
import { extraParams, withExtraParams } from "../../src/relay/envelope_params.ts";
import type { OutgoingMessage } from "../../src/relay/upstream_types.ts";

function message(dsn?: OutgoingMessage["dsn"]): OutgoingMessage {
  const bytes = new TextEncoder().encode("Subject: x\r\n\r\nbody\r\n");
  return {
    sender: "a@example.com",
    recipients: ["b@example.net", "c@example.net"],
    smtputf8: false,
    eightBit: false,
    size: bytes.length,
    open: () => new Blob([bytes]).stream(),
    bytes,
    dsn,
  };
}

const DSN: OutgoingMessage["dsn"] = {
  ret: "HDRS",
  envid: "id+1 x",
  recipients: [{
    notify: ["SUCCESS", "FAILURE"],
    orcpt: { type: "rfc822", address: "B=@example.net" },
  }, undefined],
};

Deno.test("extraParams: DSN requests are passed on when the upstream offers DSN, xtext-encoded", () => {
  const extra = extraParams(message(DSN), ["8BITMIME", "DSN"], false);
  strictEqual(
    withExtraParams("MAIL FROM:<a@example.com> BODY=8BITMIME", extra),
    "MAIL FROM:<a@example.com> BODY=8BITMIME RET=HDRS ENVID=id+2B1+20x",
  );
  strictEqual(
    withExtraParams("RCPT TO:<b@example.net>", extra),
    "RCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+3D@example.net",
  );
  strictEqual(withExtraParams("RCPT TO:<c@example.net>", extra), "RCPT TO:<c@example.net>");
  strictEqual(withExtraParams("DATA", extra), "DATA");
});

Deno.test("extraParams: nothing is added for an upstream without DSN", () => {
  const extra = extraParams(message(DSN), ["8BITMIME"], false);
  strictEqual(withExtraParams("MAIL FROM:<a@example.com>", extra), "MAIL FROM:<a@example.com>");
  strictEqual(withExtraParams("RCPT TO:<b@example.net>", extra), "RCPT TO:<b@example.net>");
});

Deno.test("extraParams: SMTPUTF8 is added once, even when nodemailer wrote it", () => {
  const extra = extraParams(message(), ["SMTPUTF8"], true);
  strictEqual(
    withExtraParams("MAIL FROM:<a@example.com>", extra),
    "MAIL FROM:<a@example.com> SMTPUTF8",
  );
  strictEqual(
    withExtraParams("MAIL FROM:<j\u00fc@example.com> SMTPUTF8", extra),
    "MAIL FROM:<j\u00fc@example.com> SMTPUTF8",
  );
});

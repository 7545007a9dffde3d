import { strictEqual } from "node:assert/strict";
import { enhancedStatus } from "../../src/relay/reply_outcome.ts";

Deno.test("enhancedStatus: the reply's code, a 4.x.x made permanent, 5.0.0 when none", () => {
  strictEqual(enhancedStatus("550 5.1.1 no such user"), "5.1.1");
  strictEqual(enhancedStatus("451 4.4.1 timed out (expired)"), "5.4.1");
  strictEqual(enhancedStatus("554 rejected"), "5.0.0");
  strictEqual(enhancedStatus(undefined), "5.0.0");
});

Deno.test("enhancedStatus: a delay warning keeps the transient class", () => {
  strictEqual(enhancedStatus("450 4.2.1 mailbox busy", true), "4.2.1");
  strictEqual(enhancedStatus("421 try later", true), "4.0.0");
  strictEqual(enhancedStatus(undefined, true), "4.0.0");
});

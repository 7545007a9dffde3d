import { deepStrictEqual } from "node:assert/strict";
import { INTEGER_KEYS } from "../../src/config/schema.ts";

Deno.test("INTEGER_KEYS: the whole-number keys read off the schema, with their least value", () => {
  // The list config.ts kept by hand before the keys were derived from the schema.
  deepStrictEqual(
    new Map(INTEGER_KEYS),
    new Map([
      ["maxRecipients", 1],
      ["maxConnections", 1],
      ["maxConnectionsPerClient", 1],
      ["maxErrors", 1],
      ["rateMessagesPerMinute", 0],
      ["rateRecipientsPerHour", 0],
      ["deliveryConcurrency", 1],
      ["messagesPerConnection", 1],
    ]),
  );
});

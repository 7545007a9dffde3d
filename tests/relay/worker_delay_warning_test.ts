/**
 * The delay warning goes out when it falls due, not at the next retry: a deferred message
 * whose retry is an hour away still warns its sender after --delay-warning.
 */

import { ok, strictEqual } from "node:assert/strict";
import { dec, enqueue, readRecord, SENDER, waitUntil, withEnv } from "./_worker_helpers.ts";

Deno.test("delay warning: due before the next retry, it brings that retry forward", async () => {
  await withEnv({ behavior: { rejectRecipients: { "slow@example.net": 450 } } }, async (env) => {
    const { spool, host, worker, logs } = env;
    const w = worker({
      // Retries an hour apart; the warning is due two seconds after receipt.
      retry: {
        minMs: 3_600_000,
        maxMs: 7_200_000,
        lifetimeMs: 5 * 86_400_000,
        delayWarningMs: 2000,
      },
    });
    await w.start();
    const r = await enqueue(spool, { recipients: ["slow@example.net"] });
    w.notify(r);
    const deferred = await waitUntil("the first attempt", async () => {
      const now = await readRecord(spool, r.id);
      return now && now.attempts >= 1 ? now : undefined;
    });
    const next = Date.parse(deferred.nextAttemptAt) - Date.parse(r.receivedAt);
    ok(next <= 2500, `next attempt ${next} ms after receipt, at the warning's time`);
    const warning = await waitUntil(
      "the delay warning at the smarthost",
      () => host.received.find((m) => m.to.includes(SENDER)),
      10_000,
    );
    ok(dec.decode(warning.data).includes("Action: delayed"), dec.decode(warning.data));
    strictEqual(host.received.filter((m) => m.to.includes(SENDER)).length, 1);
    const after = await readRecord(spool, r.id);
    strictEqual(after?.delayWarned, true);
    ok(Date.parse(after!.nextAttemptAt) - Date.now() > 30 * 60_000, "then the backoff again");
    ok(logs.some((l) => l.includes("delay warning queued")), logs.join("\n"));
  });
});

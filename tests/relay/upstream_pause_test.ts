import { strictEqual } from "node:assert/strict";
import { UpstreamPause } from "../../src/relay/upstream_pause.ts";

const retry = { minMs: 1_000, maxMs: 60_000, lifetimeMs: 86_400_000 };

Deno.test("UpstreamPause: failures together count once; each outage pauses longer; recovery ends it", () => {
  const pause = new UpstreamPause(retry);
  strictEqual(pause.paused(0), false);
  const first = pause.failed(10_000);
  strictEqual(pause.failures, 1);
  strictEqual(pause.paused(10_000 + first - 1), true);
  pause.failed(10_001); // another lane, same outage
  strictEqual(pause.failures, 1);
  const after = pause.until + 1; // a new outage, once the pause is over
  const second = pause.failed(after);
  strictEqual(pause.failures, 2);
  strictEqual(second > first, true, `${second} > ${first}`);
  pause.recovered();
  strictEqual(pause.failures, 0);
  strictEqual(pause.paused(after + 1), false);
});

Deno.test("UpstreamPause: three soft failures in a row pause; a delivery starts the count again", () => {
  const pause = new UpstreamPause(retry);
  strictEqual(pause.softFailure(), false);
  strictEqual(pause.softFailure(), false);
  pause.delivered();
  strictEqual(pause.softFailure(), false);
  strictEqual(pause.softFailure(), false);
  strictEqual(pause.softFailure(), true);
  strictEqual(pause.softFailure(), false); // counted from zero again
});

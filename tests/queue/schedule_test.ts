import { ok, strictEqual } from "node:assert/strict";
import fc from "fast-check";
import { expired, retryDelayMs, type RetryPolicy } from "../../src/queue/schedule.ts";

const policy: RetryPolicy = { minMs: 60_000, maxMs: 3_600_000, lifetimeMs: 5 * 86_400_000 };
const middle = () => 0.5; // jitter factor exactly 1

Deno.test("retryDelayMs doubles from min up to max (no jitter at random=0.5)", () => {
  const expected = [60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000, 3_600_000, 3_600_000];
  for (let i = 0; i < expected.length; i++) {
    strictEqual(retryDelayMs(policy, i + 1, middle), expected[i], `attempts ${i + 1}`);
  }
});

Deno.test("retryDelayMs treats zero or negative attempts as the first retry", () => {
  strictEqual(retryDelayMs(policy, 0, middle), 60_000);
  strictEqual(retryDelayMs(policy, -5, middle), 60_000);
});

Deno.test("retryDelayMs stays finite and capped for huge attempt counts", () => {
  for (const attempts of [31, 100, 1_000, 1e9, Number.MAX_SAFE_INTEGER]) {
    const d = retryDelayMs(policy, attempts, middle);
    strictEqual(d, 3_600_000, `attempts ${attempts}`);
  }
});

Deno.test("retryDelayMs jitter spreads by -20%..+20% of the step", () => {
  strictEqual(retryDelayMs(policy, 1, () => 0), 48_000);
  strictEqual(retryDelayMs(policy, 2, () => 0), 96_000);
  strictEqual(retryDelayMs(policy, 2, () => 0.25), 108_000);
  strictEqual(retryDelayMs(policy, 2, () => 0.75), 132_000);
  strictEqual(retryDelayMs(policy, 2, () => 1 - 1e-12), 144_000);
  strictEqual(retryDelayMs(policy, 50, () => 0), 2_880_000);
  strictEqual(retryDelayMs(policy, 50, () => 1 - 1e-12), 4_320_000);
});

Deno.test("retryDelayMs is always within [0.8*step, 1.2*step] and [0.8*min, 1.2*max]", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 100_000 }),
      fc.integer({ min: 1, max: 1_000 }),
      fc.integer({ min: -3, max: 80 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (minMs, factor, attempts, r) => {
        const p: RetryPolicy = { minMs, maxMs: minMs * factor, lifetimeMs: 1 };
        const d = retryDelayMs(p, attempts, () => r);
        const step = Math.min(p.maxMs, p.minMs * 2 ** Math.max(0, attempts - 1));
        ok(Number.isInteger(d));
        ok(d >= Math.floor(0.8 * p.minMs) && d <= Math.ceil(1.2 * p.maxMs), `${d}`);
        ok(d >= Math.floor(0.8 * step) && d <= Math.ceil(1.2 * step), `${d} vs step ${step}`);
      },
    ),
    { numRuns: 1_000 },
  );
});

Deno.test("retryDelayMs uses Math.random by default, within the jitter bounds", () => {
  for (let i = 0; i < 100; i++) {
    const d = retryDelayMs(policy, 3);
    ok(d >= 192_000 && d <= 288_000, `${d}`);
  }
});

Deno.test("expired() is true from exactly the lifetime on", () => {
  const received = "2024-01-01T00:00:00.000Z";
  const t0 = Date.parse(received);
  strictEqual(expired(policy, received, t0), false);
  strictEqual(expired(policy, received, t0 + policy.lifetimeMs - 1), false);
  strictEqual(expired(policy, received, t0 + policy.lifetimeMs), true);
  strictEqual(expired(policy, received, t0 + policy.lifetimeMs + 1), true);
  strictEqual(expired(policy, received, t0 - 1_000), false, "clock went backwards");
  strictEqual(expired({ ...policy, lifetimeMs: 0 }, received, t0), true);
});

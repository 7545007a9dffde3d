import { ok, strictEqual, throws } from "node:assert/strict";
import { FailureThrottle, RateLimiter } from "../../src/policy/rate_limit.ts";

function fakeClock(start = 1_000_000) {
  const clock = { t: start, now: () => clock.t };
  return clock;
}

Deno.test("RateLimiter allows a burst of limit, then refuses without counting", () => {
  const clock = fakeClock();
  const rl = new RateLimiter({ limit: 3, windowMs: 60_000, now: clock.now });
  strictEqual(rl.take("a"), true);
  strictEqual(rl.take("a"), true);
  strictEqual(rl.take("a"), true);
  strictEqual(rl.peek("a"), 3);
  strictEqual(rl.take("a"), false);
  strictEqual(rl.peek("a"), 3, "a refused take is not counted");
  strictEqual(rl.retryAfterMs("a"), 20_000);
  strictEqual(rl.take("b"), true, "keys are independent");
  strictEqual(rl.peek("unknown"), 0);
  strictEqual(rl.retryAfterMs("unknown"), 0);
});

Deno.test("RateLimiter refills continuously (token bucket)", () => {
  const clock = fakeClock();
  const rl = new RateLimiter({ limit: 3, windowMs: 60_000, now: clock.now });
  for (let i = 0; i < 3; i++) ok(rl.take("a"));
  clock.t += 19_999;
  strictEqual(rl.take("a"), false);
  strictEqual(rl.retryAfterMs("a"), 1);
  clock.t += 1;
  strictEqual(rl.retryAfterMs("a"), 0);
  strictEqual(rl.take("a"), true, "one unit refilled after windowMs/limit");
  strictEqual(rl.take("a"), false);
  clock.t += 60_000;
  strictEqual(rl.peek("a"), 0, "fully refilled after a window");
  for (let i = 0; i < 3; i++) ok(rl.take("a"));
  strictEqual(rl.take("a"), false, "never more than limit at once");
});

Deno.test("RateLimiter amounts", () => {
  const clock = fakeClock();
  const rl = new RateLimiter({ limit: 10, windowMs: 1000, now: clock.now });
  strictEqual(rl.take("a", 7), true);
  strictEqual(rl.take("a", 4), false);
  strictEqual(rl.peek("a"), 7);
  strictEqual(rl.take("a", 3), true);
  strictEqual(rl.take("b", 11), false, "more than the limit is never allowed");
  strictEqual(rl.peek("b"), 0);
  clock.t += 500;
  strictEqual(rl.peek("a"), 5);
  throws(() => rl.take("a", -1), RangeError);
});

Deno.test("RateLimiter with limit 0 is unlimited", () => {
  const rl = new RateLimiter({ limit: 0, windowMs: 0 });
  for (let i = 0; i < 1000; i++) ok(rl.take("a", 100));
  strictEqual(rl.peek("a"), 0);
  strictEqual(rl.retryAfterMs("a"), 0);
  strictEqual(rl.size, 0);
});

Deno.test("RateLimiter rejects bad options", () => {
  throws(() => new RateLimiter({ limit: -1, windowMs: 1000 }), /limit must be/);
  throws(() => new RateLimiter({ limit: 5, windowMs: 0 }), /windowMs must be/);
  throws(() => new RateLimiter({ limit: 5, windowMs: 1000, maxKeys: 0 }), /maxKeys must be/);
});

Deno.test("RateLimiter memory stays bounded under 100000 distinct keys (LRU eviction)", () => {
  const clock = fakeClock();
  const rl = new RateLimiter({ limit: 1, windowMs: 60_000, maxKeys: 1000, now: clock.now });
  ok(rl.take("hot"));
  for (let i = 0; i < 100_000; i++) {
    rl.take(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    if (i % 500 === 0) strictEqual(rl.take("hot"), false, "a recently used key stays tracked");
    ok(rl.size <= 1000);
  }
  strictEqual(rl.size, 1000);
  strictEqual(rl.peek("10.0.0.0"), 0, "the oldest keys were evicted");
  strictEqual(rl.peek("10.1.134.159"), 1, "the newest key is tracked");
  strictEqual(rl.peek("hot"), 1);
});

Deno.test("RateLimiter default maxKeys is 10000", () => {
  const rl = new RateLimiter({ limit: 5, windowMs: 1000 });
  for (let i = 0; i < 20_000; i++) rl.take(`k${i}`);
  strictEqual(rl.size, 10_000);
});

Deno.test("FailureThrottle delays grow exponentially and are capped", () => {
  const clock = fakeClock();
  const ft = new FailureThrottle({
    maxFailures: 10,
    windowMs: 60_000,
    baseDelayMs: 1000,
    maxDelayMs: 5000,
    now: clock.now,
  });
  strictEqual(ft.delayMs("a"), 0);
  const delays = [];
  for (let i = 0; i < 5; i++) {
    ft.fail("a");
    delays.push(ft.delayMs("a"));
  }
  strictEqual(delays.join(","), "1000,2000,4000,5000,5000");
  strictEqual(ft.delayMs("b"), 0);
  ok(!ft.blocked("a"));
});

Deno.test("FailureThrottle blocks at maxFailures within a sliding window", () => {
  const clock = fakeClock();
  const ft = new FailureThrottle({
    maxFailures: 3,
    windowMs: 60_000,
    baseDelayMs: 100,
    maxDelayMs: 10_000,
    now: clock.now,
  });
  ft.fail("a");
  clock.t += 10_000;
  ft.fail("a");
  ok(!ft.blocked("a"));
  clock.t += 10_000;
  ft.fail("a");
  ok(ft.blocked("a"));
  ok(!ft.blocked("b"));
  clock.t += 39_999;
  ok(ft.blocked("a"), "still three failures in the last minute");
  clock.t += 1;
  ok(!ft.blocked("a"), "the first failure left the window");
  strictEqual(ft.delayMs("a"), 200, "two recent failures remain");
  clock.t += 60_000;
  strictEqual(ft.delayMs("a"), 0);
  strictEqual(ft.size, 0, "expired records are dropped");
});

Deno.test("FailureThrottle succeed forgets failures", () => {
  const clock = fakeClock();
  const ft = new FailureThrottle({
    maxFailures: 2,
    windowMs: 60_000,
    baseDelayMs: 100,
    maxDelayMs: 1000,
    now: clock.now,
  });
  ft.fail("a");
  ft.fail("a");
  ok(ft.blocked("a"));
  ft.succeed("a");
  ok(!ft.blocked("a"));
  strictEqual(ft.delayMs("a"), 0);
});

Deno.test("FailureThrottle with maxFailures 0 never blocks but still delays", () => {
  const ft = new FailureThrottle({
    maxFailures: 0,
    windowMs: 60_000,
    baseDelayMs: 100,
    maxDelayMs: 30_000,
  });
  for (let i = 0; i < 100; i++) ft.fail("a");
  ok(!ft.blocked("a"));
  strictEqual(ft.delayMs("a"), 30_000);
});

Deno.test("FailureThrottle memory stays bounded under 100000 distinct keys", () => {
  const clock = fakeClock();
  const ft = new FailureThrottle({
    maxFailures: 5,
    windowMs: 60_000,
    baseDelayMs: 100,
    maxDelayMs: 1000,
    maxKeys: 500,
    now: clock.now,
  });
  for (let i = 0; i < 100_000; i++) {
    ft.fail(`2001:db8::${i.toString(16)}`);
    ok(ft.size <= 500);
  }
  strictEqual(ft.size, 500);
  strictEqual(ft.delayMs("2001:db8::0"), 0, "oldest evicted");
  strictEqual(ft.delayMs(`2001:db8::${(99_999).toString(16)}`), 100);
  throws(() => new FailureThrottle({ maxFailures: 1, windowMs: 0, baseDelayMs: 1, maxDelayMs: 1 }));
});

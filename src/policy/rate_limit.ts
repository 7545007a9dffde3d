/**
 * In-memory limits for abuse control (per client address, per user), with bounded memory:
 * each structure tracks at most `maxKeys` keys and evicts the least recently used.
 */

const DEFAULT_MAX_KEYS = 10000;
/** Tolerance for floating-point refill arithmetic. */
const EPSILON = 1e-9;

/** A Map used as an LRU: re-inserting a key moves it to the end; the first key is the oldest. */
class LruMap<V> {
  readonly #map = new Map<string, V>();
  readonly #maxKeys: number;

  constructor(maxKeys: number) {
    this.#maxKeys = maxKeys;
  }

  get(key: string): V | undefined {
    return this.#map.get(key);
  }

  /** Stores and marks as most recently used; evicts the oldest keys beyond the bound. */
  set(key: string, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    while (this.#map.size > this.#maxKeys) {
      const oldest = this.#map.keys().next();
      if (oldest.done) break;
      this.#map.delete(oldest.value);
    }
  }

  delete(key: string): void {
    this.#map.delete(key);
  }

  get size(): number {
    return this.#map.size;
  }
}

function checkCount(name: string, value: number, min: number): void {
  if (!Number.isFinite(value) || value < min) {
    throw new RangeError(`${name} must be a finite number >= ${min}, got ${value}`);
  }
}

interface Bucket {
  /** Units used and not yet refilled, as of `at`. */
  used: number;
  at: number;
}

/**
 * Token-bucket rate limiter: each key has a bucket of `limit` units that refills
 * continuously at `limit` per `windowMs`. A fresh key may spend `limit` at once (a burst);
 * sustained use is capped at `limit` per window. `limit: 0` means unlimited.
 */
export class RateLimiter {
  #limit: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #buckets: LruMap<Bucket>;

  /** `maxKeys` (default 10000) bounds memory; `now` is injectable for tests. */
  constructor(
    opts: { limit: number; windowMs: number; maxKeys?: number; now?: () => number },
  ) {
    checkCount("limit", opts.limit, 0);
    if (opts.limit > 0 && !(opts.windowMs > 0 && Number.isFinite(opts.windowMs))) {
      throw new RangeError(`windowMs must be a finite number > 0, got ${opts.windowMs}`);
    }
    const maxKeys = opts.maxKeys ?? DEFAULT_MAX_KEYS;
    checkCount("maxKeys", maxKeys, 1);
    this.#limit = opts.limit;
    this.#windowMs = opts.windowMs;
    this.#now = opts.now ?? Date.now;
    this.#buckets = new LruMap(Math.floor(maxKeys));
  }

  /** The limit per window (a reload may change it); the counts so far are kept. */
  get limit(): number {
    return this.#limit;
  }

  set limit(limit: number) {
    checkCount("limit", limit, 0);
    if (limit > 0 && !(this.#windowMs > 0 && Number.isFinite(this.#windowMs))) {
      throw new RangeError(`windowMs must be a finite number > 0, got ${this.#windowMs}`);
    }
    this.#limit = limit;
  }

  /** Units used as of now (refilled share removed), without touching recency. */
  #used(key: string, now: number): number {
    const bucket = this.#buckets.get(key);
    if (bucket === undefined) return 0;
    const refilled = (Math.max(0, now - bucket.at) * this.#limit) / this.#windowMs;
    const used = bucket.used - refilled;
    return used < EPSILON ? 0 : used;
  }

  /**
   * Spends `amount` units (default 1) for `key`: true = allowed and counted; false = over
   * the limit and not counted. An amount larger than the limit is never allowed.
   */
  take(key: string, amount = 1): boolean {
    if (this.#limit === 0) return true;
    checkCount("amount", amount, 0);
    const now = this.#now();
    const used = this.#used(key, now);
    const allowed = used + amount <= this.#limit + EPSILON;
    if (allowed || this.#buckets.get(key) !== undefined) {
      // A refused take still marks the key as recently used, so active abusers stay tracked.
      this.#buckets.set(key, { used: allowed ? used + amount : used, at: now });
    }
    return allowed;
  }

  /** Units used in the current window (fractional while refilling; 0 for unknown keys or unlimited). */
  peek(key: string): number {
    if (this.#limit === 0) return 0;
    return this.#used(key, this.#now());
  }

  /** Milliseconds until `take(key)` of one unit would succeed: 0 when it would now (for 4xx replies / logs). */
  retryAfterMs(key: string): number {
    if (this.#limit === 0) return 0;
    const excess = this.#used(key, this.#now()) + 1 - this.#limit;
    if (excess <= EPSILON) return 0;
    return Math.ceil((excess * this.#windowMs) / this.#limit - EPSILON);
  }

  /** Number of keys tracked (bounded by `maxKeys`). */
  get size(): number {
    return this.#buckets.size;
  }
}

/**
 * Brute-force protection for AUTH, per client address: failures within a sliding window
 * slow down the next reply (exponential delay, capped) and, at `maxFailures`, block the key
 * until the oldest counted failure leaves the window. `maxFailures: 0` never blocks.
 */
export class FailureThrottle {
  readonly #maxFailures: number;
  readonly #windowMs: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #now: () => number;
  /** Per key, the times of recent failures, oldest first, at most `#keep` of them. */
  readonly #failures: LruMap<number[]>;
  readonly #keep: number;

  /** `maxKeys` (default 10000) bounds memory; `now` is injectable for tests. */
  constructor(opts: {
    maxFailures: number;
    windowMs: number;
    baseDelayMs: number;
    maxDelayMs: number;
    maxKeys?: number;
    now?: () => number;
  }) {
    checkCount("maxFailures", opts.maxFailures, 0);
    checkCount("windowMs", opts.windowMs, 1);
    checkCount("baseDelayMs", opts.baseDelayMs, 0);
    checkCount("maxDelayMs", opts.maxDelayMs, 0);
    const maxKeys = opts.maxKeys ?? DEFAULT_MAX_KEYS;
    checkCount("maxKeys", maxKeys, 1);
    this.#maxFailures = Math.floor(opts.maxFailures);
    this.#windowMs = opts.windowMs;
    this.#baseDelayMs = opts.baseDelayMs;
    this.#maxDelayMs = opts.maxDelayMs;
    this.#now = opts.now ?? Date.now;
    this.#failures = new LruMap(Math.floor(maxKeys));
    // Enough history to decide blocking; with blocking off, enough for the delay to reach its cap.
    this.#keep = this.#maxFailures > 0 ? this.#maxFailures : 32;
  }

  /** Failures of `key` within the window (drops expired ones). */
  #recent(key: string): number {
    const times = this.#failures.get(key);
    if (times === undefined) return 0;
    const cutoff = this.#now() - this.#windowMs;
    let expired = 0;
    while (expired < times.length && times[expired] <= cutoff) expired++;
    if (expired === times.length) {
      this.#failures.delete(key);
      return 0;
    }
    if (expired > 0) times.splice(0, expired);
    return times.length;
  }

  /** Delay before replying to the next attempt: 0, then `base * 2^(failures-1)` capped at `maxDelayMs`. */
  delayMs(key: string): number {
    const failures = this.#recent(key);
    if (failures === 0) return 0;
    return Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (failures - 1));
  }

  /** True once `maxFailures` failures fall within the window: refuse AUTH without checking. */
  blocked(key: string): boolean {
    return this.#maxFailures > 0 && this.#recent(key) >= this.#maxFailures;
  }

  /** Records a failed attempt. */
  fail(key: string): void {
    this.#recent(key);
    const times = this.#failures.get(key) ?? [];
    times.push(this.#now());
    if (times.length > this.#keep) times.splice(0, times.length - this.#keep);
    this.#failures.set(key, times);
  }

  /** Records a success: forgets the key's failures. */
  succeed(key: string): void {
    this.#failures.delete(key);
  }

  /** Number of keys tracked (bounded by `maxKeys`). */
  get size(): number {
    return this.#failures.size;
  }
}

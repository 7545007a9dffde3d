/**
 * The bucket bounds of the upstream reply histogram and its Prometheus lines
 * (cumulative `_bucket{le}` counts, `_sum`, `_count`).
 */

/** Upper bounds (seconds) from a fast loopback smarthost to a slow provider. */
export const UPSTREAM_REPLY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The sample lines of a histogram: `counts[i]` observations fell in bucket i
 * (the last one is above every bound), `labels` is `k="v"` text put on each.
 */
export function histogramLines(
  name: string,
  labels: string,
  counts: readonly number[],
  sum: number,
): string {
  let out = "";
  let cumulative = 0;
  UPSTREAM_REPLY_BUCKETS.forEach((bound, i) => {
    cumulative += counts[i] ?? 0;
    out += `${name}_bucket{${labels},le="${bound}"} ${cumulative}\n`;
  });
  cumulative += counts[UPSTREAM_REPLY_BUCKETS.length] ?? 0;
  out += `${name}_bucket{${labels},le="+Inf"} ${cumulative}\n`;
  out += `${name}_sum{${labels}} ${sum}\n${name}_count{${labels}} ${cumulative}\n`;
  return out;
}

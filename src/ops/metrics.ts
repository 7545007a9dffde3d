/**
 * Counters, gauges and histograms for operators, exposed in the Prometheus text
 * format on the optional metrics endpoint. A small renderer, not a library: the
 * hot path is one map update; labelled families are derived when scraped.
 */

import { histogramLines, UPSTREAM_REPLY_BUCKETS } from "./histogram.ts";

const HELP: Record<string, string> = {
  connections_total: "SMTP connections accepted",
  connections_rejected_total: "SMTP connections refused by connection limits",
  connections_active: "SMTP connections open now",
  messages_accepted_total: "Messages queued after a 250 reply",
  messages_rejected_total: "Messages refused at the end of DATA",
  bytes_accepted_total: "Bytes of accepted messages",
  auth_success_total: "Successful inbound authentications",
  auth_failure_total: "Failed inbound authentications",
  relay_denied_total: "Recipients refused by the relay policy",
  rate_limited_total: "Commands refused by rate limits",
  deliveries_total: "Recipients delivered upstream",
  deferrals_total: "Recipients deferred for a later retry",
  failures_total: "Recipients failed permanently",
  bounces_total: "Bounces queued to senders",
  delay_warnings_total: "Delay warnings (RFC 3464 delayed) queued to senders",
  delivery_attempts_total: "Delivery attempts (one message on one connection)",
  upstream_errors_total: "Failures to connect, secure or log in to the upstream",
  queue_messages: "Messages in the queue",
  queue_oldest_message_age_seconds: "Age of the oldest queued message (0 when empty)",
  upstream_paused: "1 while deliveries wait for a failing upstream",
  upstream_failing_seconds: "How long the upstream has been failing (0 while it works)",
  memory_rss_bytes: "Resident memory of the process",
  memory_heap_total_bytes: "JavaScript heap reserved (V8)",
  memory_heap_used_bytes: "JavaScript heap in use (V8)",
  memory_external_bytes: "Memory held outside the heap by JavaScript objects (buffers)",
};

/** Refusal reasons of `carrier_refusals_total`, each read from the plain counter beside it. */
const REFUSALS: [reason: string, counter: string][] = [
  ["connection_limit", "connections_rejected_total"],
  ["relay_denied", "relay_denied_total"],
  ["rate_limited", "rate_limited_total"],
  ["message_rejected", "messages_rejected_total"],
  ["auth_failed", "auth_failure_total"],
];

/** Outcomes of `carrier_delivery_outcomes_total`, each read from its plain counter. */
const OUTCOMES: [outcome: string, counter: string][] = [
  ["delivered", "deliveries_total"],
  ["deferred", "deferrals_total"],
  ["failed", "failures_total"],
];

/** Queue states of `carrier_queue_depth`. */
export const QUEUE_STATES = ["due", "deferred", "held"] as const;

/** One of the queue states. */
export type QueueState = typeof QUEUE_STATES[number];

/** Sets the memory gauges from the runtime (called when metrics are scraped). */
export function sampleMemory(metrics: Metrics): void {
  const m = Deno.memoryUsage();
  metrics.set("memory_rss_bytes", m.rss);
  metrics.set("memory_heap_total_bytes", m.heapTotal);
  metrics.set("memory_heap_used_bytes", m.heapUsed);
  metrics.set("memory_external_bytes", m.external);
}

/** A set of named counters, gauges and the upstream reply histogram. */
export class Metrics {
  #values = new Map<string, number>();
  /** Per upstream: recipients by outcome, and the reply histogram (counts by bucket, sum). */
  #byUpstream = new Map<
    string,
    { outcomes: Map<string, number>; counts: number[]; sum: number; quotaWaits: number }
  >();
  /** Messages in each queue state, as last counted from the spool. */
  queueDepth: Record<QueueState, number> = { due: 0, deferred: 0, held: 0 };

  /**
   * @param version Carrier's version, for `carrier_build_info`.
   * @param upstreams The upstreams as configured (no secrets), the `upstream` label values
   *   shown before any mail went through them ("none" in hold mode).
   */
  constructor(readonly version = "unknown", upstreams: string[] = ["none"]) {
    for (const u of upstreams) this.#upstream(u);
  }

  #upstream(name: string) {
    let entry = this.#byUpstream.get(name);
    if (!entry) {
      entry = {
        outcomes: new Map(),
        counts: new Array<number>(UPSTREAM_REPLY_BUCKETS.length + 1).fill(0),
        sum: 0,
        quotaWaits: 0,
      };
      this.#byUpstream.set(name, entry);
    }
    return entry;
  }

  /** Counts one recipient's outcome at an upstream (and in the unlabelled total). */
  outcome(outcome: "delivered" | "deferred" | "failed", upstream: string): void {
    const counter = OUTCOMES.find(([o]) => o === outcome)![1];
    this.inc(counter);
    const { outcomes } = this.#upstream(upstream);
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }

  /** Counts one message held back by an upstream's quota (it waits or takes the next one). */
  quotaWait(upstream: string): void {
    this.#upstream(upstream).quotaWaits++;
  }

  /** Adds to a counter. */
  inc(name: string, by = 1): void {
    this.#values.set(name, (this.#values.get(name) ?? 0) + by);
  }

  /** Sets a gauge. */
  set(name: string, value: number): void {
    this.#values.set(name, value);
  }

  /** Reads a value (0 if never touched). */
  get(name: string): number {
    return this.#values.get(name) ?? 0;
  }

  /** Records how long an upstream took to answer one message (seconds). */
  observeUpstreamReply(seconds: number, upstream: string): void {
    let i = 0;
    while (i < UPSTREAM_REPLY_BUCKETS.length && seconds > UPSTREAM_REPLY_BUCKETS[i]!) i++;
    const entry = this.#upstream(upstream);
    entry.counts[i]!++;
    entry.sum += seconds;
  }

  /** The Prometheus text exposition of every known metric. */
  render(): string {
    let out = "";
    for (const [name, help] of Object.entries(HELP)) {
      out += header(name, help, name.endsWith("_total") ? "counter" : "gauge");
      out += `carrier_${name} ${this.get(name)}\n`;
    }
    out += header("build_info", "Carrier's version (always 1)", "gauge");
    out += `carrier_build_info{version=${quote(this.version)}} 1\n`;
    out += header("delivery_outcomes_total", "Recipients by outcome and upstream", "counter");
    for (const [upstream, { outcomes }] of this.#byUpstream) {
      for (const [outcome] of OUTCOMES) {
        out += `carrier_delivery_outcomes_total{outcome="${outcome}",upstream=${quote(upstream)}} ${
          outcomes.get(outcome) ?? 0
        }\n`;
      }
    }
    out += header(
      "refusals_total",
      "Connections, commands and messages refused, by reason",
      "counter",
    );
    for (const [reason, counter] of REFUSALS) {
      out += `carrier_refusals_total{reason="${reason}"} ${this.get(counter)}\n`;
    }
    out += header(
      "upstream_quota_waits_total",
      "Messages an upstream's quota held back (they waited or took the next upstream)",
      "counter",
    );
    for (const [upstream, { quotaWaits }] of this.#byUpstream) {
      out += `carrier_upstream_quota_waits_total{upstream=${quote(upstream)}} ${quotaWaits}\n`;
    }
    out += header("queue_depth", "Queued messages by state", "gauge");
    for (const state of QUEUE_STATES) {
      out += `carrier_queue_depth{state="${state}"} ${this.queueDepth[state]}\n`;
    }
    out += header(
      "upstream_reply_seconds",
      "Time from sending a message to the upstream's last reply for it",
      "histogram",
    );
    for (const [upstream, { counts, sum }] of this.#byUpstream) {
      out += histogramLines(
        "carrier_upstream_reply_seconds",
        `upstream=${quote(upstream)}`,
        counts,
        sum,
      );
    }
    return out;
  }
}

function header(name: string, help: string, type: string): string {
  return `# HELP carrier_${name} ${help}\n# TYPE carrier_${name} ${type}\n`;
}

/** A label value in the exposition format: backslash, quote and newline escaped. */
export function quote(value: string): string {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

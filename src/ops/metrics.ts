/**
 * Counters and gauges for operators, exposed in the Prometheus text format on
 * the optional metrics endpoint. In-process and allocation-free on the hot path.
 */

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
  delivery_attempts_total: "Delivery attempts (one message on one connection)",
  upstream_errors_total: "Failures to connect, secure or log in to the upstream",
  queue_messages: "Messages in the queue",
  memory_rss_bytes: "Resident memory of the process",
  memory_heap_total_bytes: "JavaScript heap reserved (V8)",
  memory_heap_used_bytes: "JavaScript heap in use (V8)",
  memory_external_bytes: "Memory held outside the heap by JavaScript objects (buffers)",
};

/** Sets the memory gauges from the runtime (called when metrics are scraped). */
export function sampleMemory(metrics: Metrics): void {
  const m = Deno.memoryUsage();
  metrics.set("memory_rss_bytes", m.rss);
  metrics.set("memory_heap_total_bytes", m.heapTotal);
  metrics.set("memory_heap_used_bytes", m.heapUsed);
  metrics.set("memory_external_bytes", m.external);
}

/** A set of named counters and gauges. */
export class Metrics {
  #values = new Map<string, number>();

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

  /** The Prometheus text exposition of every known metric. */
  render(): string {
    let out = "";
    for (const [name, help] of Object.entries(HELP)) {
      const type = name.endsWith("_total") ? "counter" : "gauge";
      out += `# HELP carrier_${name} ${help}\n# TYPE carrier_${name} ${type}\n`;
      out += `carrier_${name} ${this.get(name)}\n`;
    }
    return out;
  }
}

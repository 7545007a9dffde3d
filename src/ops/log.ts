/**
 * Structured log lines on standard error: `TIME LEVEL EVENT key=value ...` for
 * people or one JSON object a line for collectors. Values are quoted when needed
 * and control characters escaped, so a client cannot forge log lines.
 */

/** Field values a log line may carry. */
export type LogFields = Record<string, string | number | boolean | undefined | null>;

/** Log severities, least first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

/** A log severity. */
export type LogLevel = typeof LOG_LEVELS[number];

const encoder = new TextEncoder();
let pending: string[] = [];
let flushTimer: ReturnType<typeof setTimeout> | undefined;

/** Writes the log lines gathered so far to standard error (also run at exit). */
export function flushLog(): void {
  clearTimeout(flushTimer);
  flushTimer = undefined;
  if (pending.length === 0) return;
  const bytes = encoder.encode(pending.join("\n") + "\n");
  pending = [];
  try {
    let offset = 0;
    while (offset < bytes.length) offset += Deno.stderr.writeSync(bytes.subarray(offset));
  } catch {
    // Whoever read the log went away (EPIPE): the lines are lost, the server goes on.
  }
}

globalThis.addEventListener("unload", flushLog);

/**
 * The default sink: lines logged in one turn of the event loop go out in one
 * write to standard error, right after it (one system call, not one per line).
 */
export function stderrSink(line: string): void {
  pending.push(line);
  if (pending.length >= 512) flushLog();
  else flushTimer ??= setTimeout(flushLog, 0);
}

/** The logger every part of Carrier writes through. */
export class Logger {
  constructor(
    /** Line format; a reload may change it (every part shares this one logger). */
    public format: "text" | "json" = "text",
    readonly sink: (line: string) => void = stderrSink,
    readonly now: () => Date = () => new Date(),
    /** The least severity written; a reload may change it. */
    public level: LogLevel = "info",
  ) {}

  /** Logs an event at info level. */
  info(event: string, fields: LogFields = {}): void {
    this.log("info", event, fields);
  }

  /** Logs an event at warn level. */
  warn(event: string, fields: LogFields = {}): void {
    this.log("warn", event, fields);
  }

  /** Logs an event at error level. */
  error(event: string, fields: LogFields = {}): void {
    this.log("error", event, fields);
  }

  /** Logs an event at debug level. */
  debug(event: string, fields: LogFields = {}): void {
    this.log("debug", event, fields);
  }

  /** Writes one log line. */
  log(level: LogLevel, event: string, fields: LogFields): void {
    if (LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(this.level)) return;
    const time = this.now().toISOString();
    if (this.format === "json") {
      const record: Record<string, unknown> = { time, level, event };
      for (const [k, v] of Object.entries(fields)) if (v !== undefined) record[k] = v;
      this.sink(escapeSeparators(JSON.stringify(record)));
      return;
    }
    let line = `${time} ${level} ${event}`;
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      line += ` ${k}=${formatValue(v)}`;
    }
    this.sink(line);
  }
}

function formatValue(v: string | number | boolean | null): string {
  if (typeof v !== "string") return String(v);
  if (/^[A-Za-z0-9_.:@<>\/+\-\[\]=,]+$/.test(v) && v !== "") return v;
  return escapeSeparators(JSON.stringify(v));
}

/**
 * JSON.stringify leaves DEL, the C1 controls (NEL U+0085 among them) and U+2028/U+2029
 * unescaped; some readers split lines there. They only occur inside JSON strings, where
 * a \uXXXX escape means the same.
 */
function escapeSeparators(json: string): string {
  return json.replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** A short message of an unknown thrown value, for log fields. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * The contract between the delivery worker and the upstream client: credentials and
 * connection settings, the message as sent, and each recipient's result.
 */
import type { MessageDsn, RecipientDsn } from "../smtp/dsn.ts";
import type { UpstreamConfig } from "../upstream_url.ts";
import type { UpstreamSession } from "./upstream.ts";
import type { QuotaLimits } from "./upstream_quota.ts";

/** Credentials for the smarthost: a password (PLAIN/LOGIN) or an OAuth2 refresh token. */
export type UpstreamAuth =
  | { kind: "password"; user: string; password: string }
  | {
    kind: "xoauth2";
    user: string;
    clientId: string;
    clientSecret: string;
    refreshToken: string;
    accessUrl?: string;
  };

/** Everything needed to open one session to the smarthost. */
export interface UpstreamOptions {
  config: UpstreamConfig;
  auth?: UpstreamAuth;
  /**
   * Trusted CA certificate(s), PEM. When given, it replaces the default trust store for this
   * connection (pins a private CA); when absent, the runtime's default roots are used.
   */
  ca?: string;
  /** Our name for EHLO. */
  clientHostname: string;
  /** Limit for the TCP connect, and again for greeting + STARTTLS (default 30 s each). */
  connectTimeoutMs?: number;
  /** Inactivity limit while connecting, securing and logging in (default 5 min). */
  socketTimeoutMs?: number;
  /**
   * Inactivity limit once logged in, for transactions: the reply after DATA's final dot may
   * take long (RFC 5321 §4.5.3.2.6 suggests 10 minutes). Default: socketTimeoutMs.
   */
  transactionTimeoutMs?: number;
}

/** One configured upstream, in failover order: how to reach it, and its limits. */
export interface UpstreamTarget {
  /** As the operator wrote it (a URL never holds a password): logs, metrics, reports. */
  name: string;
  /** Opens an authenticated connection. */
  connect: () => Promise<UpstreamSession>;
  /** Connections open to it at once (absent or 0: only the worker's concurrency). */
  maxConnections?: number;
  /** Recipients per transaction; more are split into several (its LIMITS may lower it). */
  maxRecipients: number;
  /** Messages one connection carries before it is renewed (default: the worker's). */
  messagesPerConnection?: number;
  /** Its sending quotas (absent or 0: none). */
  quota?: QuotaLimits;
}

/** One queued message as the upstream client needs it. */
export interface OutgoingMessage {
  /** Envelope sender; "" for the null sender `<>`. */
  sender: string;
  recipients: string[];
  /** The message needs SMTPUTF8 (the client used it, or addresses/headers are UTF-8). */
  smtputf8: boolean;
  /** The body has 8-bit bytes (BODY=8BITMIME). */
  eightBit: boolean;
  /** Size in bytes, announced with SIZE= when the server supports it. */
  size: number;
  /** Exact message bytes, not dot-stuffed (stuffing happens on the wire). */
  open(): Promise<ReadableStream<Uint8Array>> | ReadableStream<Uint8Array>;
  /** The whole message, when it is already in memory (small messages): `open` is not called. */
  bytes?: Uint8Array;
  /** The client's DSN requests (RFC 3461); `recipients` in the order of `recipients`. */
  dsn?: MessageDsn & { recipients: (RecipientDsn | undefined)[] };
}

/** Outcome of one recipient: delivered (2xx), deferred (4xx, retry) or failed (5xx, bounce). */
export interface RecipientResult {
  recipient: string;
  status: "delivered" | "deferred" | "failed";
  /** SMTP reply code, when the server gave one. */
  code?: number;
  /** Server reply text (or our own explanation), one line. */
  response: string;
  /**
   * The refusal was about the session or account (MAIL FROM answered 530 or X.4.5), not this
   * message: the worker pauses the queue as for a failed login.
   */
  sessionLevel?: boolean;
  /** Deferred by a 4xx to MAIL FROM: the whole transaction, not this recipient, was refused. */
  refusedMail?: boolean;
  /** The upstream's reply to this recipient's RCPT TO: its answer, never the upstream's state. */
  rcptReply?: boolean;
  /** Delivered to an upstream that offers DSN, with the client's DSN requests passed on. */
  dsnForwarded?: boolean;
  /** The upstream that gave this result (its name); none when no upstream answered. */
  upstream?: string;
}

/**
 * A failure of the session as a whole. `permanent` is true only when the server said 5xx
 * (e.g. 535 bad credentials); connection problems, timeouts and TLS errors are temporary.
 */
export class UpstreamError extends Error {
  constructor(message: string, readonly permanent: boolean, readonly code?: number) {
    super(message);
    this.name = "UpstreamError";
  }
}

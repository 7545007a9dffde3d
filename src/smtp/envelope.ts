/**
 * What passes between the Session and the server that drives it: the client as the
 * session sees it, the envelope of a message, and the replies and effects of each step.
 * Kept apart from the state machine so the server and policies need only these shapes.
 */

import type { BdatCommand } from "./bdat.ts";
import type { MessageDsn, RecipientDsn } from "./dsn.ts";
import type { Reply } from "./reply.ts";

/** What the server knows about the connected client. */
export interface ClientInfo {
  address: string;
  port: number;
  /** True on an implicit-TLS listener or after STARTTLS. */
  tls: boolean;
}

/** The envelope of a message whose data the server is about to read. */
export interface Envelope {
  sender: string;
  recipients: string[];
  smtputf8: boolean;
  body: "7BIT" | "8BITMIME";
  declaredSize?: number;
  helo: string;
  client: ClientInfo;
  user?: string;
  /** RFC 3848 "with" keyword: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA. */
  protocol: string;
  /** RET and ENVID of MAIL FROM (RFC 3461). */
  dsn: MessageDsn;
  /** NOTIFY and ORCPT of each RCPT TO, in the order of `recipients`. */
  recipientDsn: RecipientDsn[];
}

/** Work the server must do for the session. */
export type Effect =
  | { kind: "close" }
  | { kind: "starttls" }
  | { kind: "data"; envelope: Envelope }
  /**
   * Read exactly `chunk.size` octets (RFC 3030). `envelope` comes with a transaction's first
   * chunk; `discard` means the BDAT was refused and its octets are read only to stay in step.
   */
  | { kind: "chunk"; chunk: BdatCommand; envelope?: Envelope; discard: boolean }
  | { kind: "authenticate"; user: string; password: string };

/** The outcome of one input: replies to send (in order) and an optional effect. */
export interface Step {
  replies: Reply[];
  effect?: Effect;
}

/** How the reading of message data ended, as reported by the server. */
export type DataResult =
  | { kind: "stored"; id: string }
  /** A BDAT chunk without LAST was read; the message goes on. */
  | { kind: "chunk" }
  | { kind: "too-big" }
  | { kind: "store-failed" };

/** The states of an SMTP session (DESIGN.md principle 1). */
export type SessionState =
  | "connected"
  | "greeted"
  | "mail"
  | "rcpt"
  | "data"
  /** Between the chunks of a BDAT transaction (RFC 3030). */
  | "bdat"
  | "auth"
  | "closed";

/**
 * What passes between the Session and the server that drives it: the client as the
 * session sees it, the envelope of a message, and the replies and effects of each step.
 * Kept apart from the state machine so the server and policies need only these shapes.
 */

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
}

/** Work the server must do for the session. */
export type Effect =
  | { kind: "close" }
  | { kind: "starttls" }
  | { kind: "data"; envelope: Envelope }
  | { kind: "authenticate"; user: string; password: string };

/** The outcome of one input: replies to send (in order) and an optional effect. */
export interface Step {
  replies: Reply[];
  effect?: Effect;
}

/** How the reading of message data ended, as reported by the server. */
export type DataResult =
  | { kind: "stored"; id: string }
  | { kind: "too-big" }
  | { kind: "store-failed" };

/** The states of an SMTP session (DESIGN.md principle 1). */
export type SessionState =
  | "connected"
  | "greeted"
  | "mail"
  | "rcpt"
  | "data"
  | "auth"
  | "closed";

/**
 * Which commands may come when (RFC 5321 §4.1.4, RFC 3030 §2, RFC 3207, RFC 4954): the
 * reply for a command sent out of order, from the session's state alone. Pure; the
 * session asks before it parses a command's arguments.
 */

import type { SessionState } from "./envelope.ts";
import { type Reply, reply } from "./reply.ts";

/** The commands whose place in a session is checked here. */
export type SequencedVerb = "MAIL" | "RCPT" | "DATA" | "BDAT" | "AUTH";

/** What the order rules depend on. */
export interface SequenceFacts {
  state: SessionState;
  /** The client said EHLO (not HELO). */
  esmtp: boolean;
  authenticated: boolean;
  /** AUTH is configured and allowed on this connection now (TLS or a loopback exception). */
  authOffered: boolean;
}

const inTransaction = (s: SessionState) => s === "mail" || s === "rcpt" || s === "bdat";

/** The refusal for `verb` in this state, or undefined when it may come now. */
export function outOfSequence(verb: SequencedVerb, f: SequenceFacts): Reply | undefined {
  switch (verb) {
    case "MAIL":
      if (f.state === "connected") return reply(503, "5.5.1", "Error: send HELO/EHLO first");
      if (f.state !== "greeted") return reply(503, "5.5.1", "Error: nested MAIL command");
      return undefined;
    case "RCPT":
      if (f.state === "bdat") return reply(503, "5.5.1", "Error: RCPT cannot follow BDAT");
      if (f.state !== "mail" && f.state !== "rcpt") {
        return reply(503, "5.5.1", "Error: need MAIL command");
      }
      return undefined;
    case "DATA":
      if (f.state === "bdat") {
        return reply(503, "5.5.1", "Error: DATA cannot follow BDAT in one transaction");
      }
      if (f.state === "mail") return reply(554, "5.5.1", "Error: no valid recipients");
      if (f.state !== "rcpt") return reply(503, "5.5.1", "Error: need RCPT command");
      return undefined;
    case "BDAT":
      if (f.state === "mail") return reply(554, "5.5.1", "Error: no valid recipients");
      if (f.state !== "rcpt" && f.state !== "bdat") {
        return reply(503, "5.5.1", "Error: need RCPT command");
      }
      return undefined;
    case "AUTH":
      if (!f.esmtp || f.state === "connected") return reply(503, "5.5.1", "Error: send EHLO first");
      if (!f.authOffered) {
        return reply(538, "5.7.11", "Encryption required for requested authentication mechanism");
      }
      if (f.authenticated) return reply(503, "5.5.1", "Already authenticated");
      if (inTransaction(f.state)) {
        return reply(503, "5.5.1", "Error: AUTH not allowed in a transaction");
      }
      return undefined;
  }
}

/** STARTTLS's order rule: not inside a transaction. */
export function starttlsOutOfSequence(state: SessionState): Reply | undefined {
  return inTransaction(state)
    ? reply(503, "5.5.1", "Error: STARTTLS not allowed in a transaction")
    : undefined;
}

/**
 * What the session asks of the world outside the protocol: who may send what (checked
 * at MAIL and RCPT) and whether AUTH credentials are good. src/policy implements these;
 * defining them here keeps the arrows pointing down from policy and server to smtp.
 */

import type { ClientInfo } from "./envelope.ts";
import type { Reply } from "./reply.ts";

/** Facts the relay policy decides on, given at MAIL and RCPT time. */
export interface PolicyContext {
  client: ClientInfo;
  /** The authenticated user, if any. */
  user?: string;
}

/** Who may send what: checked at MAIL and RCPT; a reply means refusal. */
export interface SessionPolicy {
  mail(ctx: PolicyContext, sender: string): Reply | undefined;
  rcpt(ctx: PolicyContext, recipient: string, sender: string): Reply | undefined;
}

/** A policy that refuses nothing (for tests of the protocol alone). */
export const OPEN_POLICY: SessionPolicy = { mail: () => undefined, rcpt: () => undefined };

/** Checks AUTH credentials; may delay (throttling) and may refuse outright. */
export interface Authenticator {
  verify(
    user: string,
    password: string,
    clientAddress: string,
  ): Promise<"ok" | "failed" | "throttled">;
}

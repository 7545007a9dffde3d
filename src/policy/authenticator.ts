/**
 * Inbound AUTH checks against the users file, slowed and limited per client
 * address so that guessing passwords is slow and then stopped.
 */

import type { Authenticator } from "../server/connection.ts";
import { FailureThrottle } from "./rate_limit.ts";
import type { UserDb } from "./users.ts";

/** Verifies credentials with growing delays after failures and a lockout per client. */
export class UserAuthenticator implements Authenticator {
  #throttle: FailureThrottle;

  constructor(
    public users: UserDb,
    opts: { maxFailures?: number; windowMs?: number; baseDelayMs?: number; maxDelayMs?: number } =
      {},
  ) {
    this.#throttle = new FailureThrottle({
      maxFailures: opts.maxFailures ?? 5,
      windowMs: opts.windowMs ?? 15 * 60_000,
      baseDelayMs: opts.baseDelayMs ?? 1000,
      maxDelayMs: opts.maxDelayMs ?? 8000,
    });
  }

  async verify(
    user: string,
    password: string,
    clientAddress: string,
  ): Promise<"ok" | "failed" | "throttled"> {
    if (this.#throttle.blocked(clientAddress)) return "throttled";
    const ok = await this.users.verify(user, password);
    if (ok) return "ok";
    // Failures expire with the window; a success does not wipe them (a valid account must not reset guessing).
    this.#throttle.fail(clientAddress);
    // The failure that reaches the limit is answered at once: the session is closed anyway.
    if (this.#throttle.blocked(clientAddress)) return "throttled";
    await new Promise((resolve) => setTimeout(resolve, this.#throttle.delayMs(clientAddress)));
    return "failed";
  }
}

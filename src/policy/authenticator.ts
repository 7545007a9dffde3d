/**
 * Inbound AUTH checks against the users file, slowed and limited per client
 * address so that guessing passwords is slow and then stopped.
 */

import type { Authenticator } from "../smtp/policy.ts";
import { FailureThrottle } from "./rate_limit.ts";
import type { UserDb } from "./users.ts";

/** Verifies credentials with growing delays after failures and a lockout per client. */
export class UserAuthenticator implements Authenticator {
  #throttle: FailureThrottle;
  /** Attempts in progress per client address: they run one after another. */
  #inProgress = new Map<string, Promise<unknown>>();

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

  /**
   * Checks credentials. Attempts from one address are serialised (delay included),
   * so parallel connections cannot multiply the guesses allowed per window.
   */
  verify(
    user: string,
    password: string,
    clientAddress: string,
  ): Promise<"ok" | "failed" | "throttled"> {
    const previous = this.#inProgress.get(clientAddress) ?? Promise.resolve();
    const attempt = previous.then(() => this.#verifyNow(user, password, clientAddress));
    const tail = attempt.catch(() => {});
    this.#inProgress.set(clientAddress, tail);
    tail.then(() => {
      if (this.#inProgress.get(clientAddress) === tail) this.#inProgress.delete(clientAddress);
    });
    return attempt;
  }

  async #verifyNow(
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

/**
 * Who may relay what (DESIGN.md principle 5): unauthenticated relaying only from
 * configured networks, sender and recipient rules, and per-client and per-user
 * rate limits. Checked by the session at MAIL and RCPT with a clear reply.
 */

import type { Config } from "../config/schema.ts";
import type { Logger } from "../ops/log.ts";
import type { Metrics } from "../ops/metrics.ts";
import { type Reply, reply } from "../smtp/reply.ts";
import type { PolicyContext, SessionPolicy } from "../smtp/policy.ts";
import type { NetworkList } from "./networks.ts";
import { RateLimiter } from "./rate_limit.ts";
import { type AddressRules, recipientAllowed, senderAllowed } from "./rules.ts";

/** Settings of the relay policy. */
export interface RelayPolicyOptions {
  networks: NetworkList;
  rules: AddressRules;
  /** AUTH is configured: refused clients are told to authenticate (530) rather than 554. */
  authAvailable: boolean;
  messagesPerMinute: number;
  recipientsPerHour: number;
  log: Logger;
  metrics: Metrics;
}

/** The policy settings of `config` (with its relay networks parsed): at start and on a reload. */
export function policySettings(
  config: Pick<
    Config,
    | "senders"
    | "recipientDomains"
    | "userSenders"
    | "rateMessagesPerMinute"
    | "rateRecipientsPerHour"
  >,
  networks: NetworkList,
  authAvailable: boolean,
): Omit<RelayPolicyOptions, "log" | "metrics"> {
  return {
    networks,
    rules: {
      senders: config.senders,
      recipientDomains: config.recipientDomains,
      userSenders: config.userSenders,
    },
    authAvailable,
    messagesPerMinute: config.rateMessagesPerMinute,
    recipientsPerHour: config.rateRecipientsPerHour,
  };
}

/** The relay policy of a running server. */
export class RelayPolicy implements SessionPolicy {
  #messages: RateLimiter;
  #recipients: RateLimiter;

  constructor(public options: RelayPolicyOptions) {
    this.#messages = new RateLimiter({ limit: options.messagesPerMinute, windowMs: 60_000 });
    this.#recipients = new RateLimiter({ limit: options.recipientsPerHour, windowMs: 3_600_000 });
  }

  /**
   * Takes new settings (a reload): the next MAIL and RCPT are checked against them. The rate
   * counters so far are kept, measured against the new limits.
   */
  reconfigure(options: RelayPolicyOptions): void {
    this.#messages.limit = options.messagesPerMinute;
    this.#recipients.limit = options.recipientsPerHour;
    this.options = options;
  }

  mail(ctx: PolicyContext, sender: string): Reply | undefined {
    const { log, metrics } = this.options;
    for (const key of keys(ctx)) {
      if (!this.#messages.take(key)) {
        log.warn("rate limited: messages", { client: ctx.client.address, user: ctx.user, key });
        metrics.inc("rate_limited_total");
        return reply(450, "4.7.1", "Error: too many messages, slow down and try again later");
      }
    }
    if (!senderAllowed(this.options.rules, sender, ctx.user)) {
      log.warn("sender refused", {
        client: ctx.client.address,
        user: ctx.user,
        from: `<${sender}>`,
      });
      return reply(
        553,
        "5.7.1",
        `Sender address <${sender}> not allowed${ctx.user ? " for this user" : ""}`,
      );
    }
    return undefined;
  }

  rcpt(ctx: PolicyContext, recipient: string, sender: string): Reply | undefined {
    const { log, metrics, networks } = this.options;
    if (ctx.user === undefined && !networks.contains(ctx.client.address)) {
      metrics.inc("relay_denied_total");
      log.warn("relay denied", {
        client: ctx.client.address,
        from: `<${sender}>`,
        to: `<${recipient}>`,
      });
      return this.options.authAvailable
        ? reply(530, "5.7.0", "Authentication required")
        : reply(554, "5.7.1", `<${recipient}>: Relay access denied`);
    }
    if (!recipientAllowed(this.options.rules, recipient)) {
      log.warn("recipient refused", {
        client: ctx.client.address,
        user: ctx.user,
        to: `<${recipient}>`,
      });
      return reply(550, "5.7.1", `<${recipient}>: Recipient domain not allowed`);
    }
    for (const key of keys(ctx)) {
      if (!this.#recipients.take(key)) {
        log.warn("rate limited: recipients", { client: ctx.client.address, user: ctx.user, key });
        metrics.inc("rate_limited_total");
        return reply(450, "4.7.1", "Error: too many recipients this hour, try again later");
      }
    }
    return undefined;
  }
}

function keys(ctx: PolicyContext): string[] {
  const out = [`client:${ctx.client.address}`];
  if (ctx.user !== undefined) out.push(`user:${ctx.user}`);
  return out;
}

/** An in-memory upstream for worker tests that are about scheduling, not SMTP: it accepts all. */

import type { UpstreamSession } from "../../src/relay/upstream.ts";
import type { OutgoingMessage, UpstreamTarget } from "../../src/relay/upstream_types.ts";
import { sleep } from "./_worker_helpers.ts";

/** An upstream `name` that takes `delayMs` per message and records [name, ...recipients]. */
export function fakeTarget(
  name: string,
  sends: string[][],
  delayMs: number,
  quota?: UpstreamTarget["quota"],
): UpstreamTarget {
  return {
    name,
    maxRecipients: 100,
    quota,
    connect: () => {
      let sent = 0;
      const session = {
        usable: true,
        get sentCount() {
          return sent;
        },
        recipientLimit: undefined,
        async send(msg: OutgoingMessage) {
          await sleep(delayMs);
          sent++;
          sends.push([name, ...msg.recipients]);
          return msg.recipients.map((recipient) => ({
            recipient,
            status: "delivered" as const,
            code: 250,
            response: "250 ok",
          }));
        },
        async reset() {},
        close() {
          session.usable = false;
          return Promise.resolve();
        },
      };
      return Promise.resolve(session as unknown as UpstreamSession);
    },
  };
}

/** An upstream that defers every recipient (RCPT 450) on its first send and accepts afterwards. */
export function greylisting(name: string, sends: string[][]): UpstreamTarget {
  let calls = 0;
  const inner = fakeTarget(name, sends, 0);
  return {
    ...inner,
    connect: async () => {
      const session = await inner.connect();
      const send = session.send.bind(session);
      session.send = (msg: OutgoingMessage) => {
        if (calls++ > 0) return send(msg);
        return Promise.resolve(msg.recipients.map((recipient) => ({
          recipient,
          status: "deferred" as const,
          code: 450,
          response: "450 4.2.0 greylisted",
          rcptReply: true,
        })));
      };
      return session;
    },
  };
}

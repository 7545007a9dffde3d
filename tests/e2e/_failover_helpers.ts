/**
 * Shared parts of the failover end-to-end tests: two smarthost accounts with different
 * passwords, sending with Python's smtplib, and bounded waits on the queue.
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { type CarrierProcess, python, runCarrier } from "../support/carrier.ts";
import type { ReceivedMail } from "../support/smarthost.ts";

export const FIRST_USER = "first@example.com";
export const FIRST_PASSWORD = "first-upstream-pass";
export const SECOND_USER = "second@example.com";
export const SECOND_PASSWORD = "second-upstream-pass";
export const SENDER = "app@example.org";

/** The name Carrier gives upstream `user@127.0.0.1:port` (as the operator wrote it). */
export function upstreamName(user: string | undefined, port: number): string {
  return `starttls://${user ? `${user}@` : ""}127.0.0.1:${port}`;
}

/** `text` with every regular expression metacharacter escaped. */
export function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Queues one message to `recipients` with smtplib; returns its queue id. `lines` of 1 KiB
 * pad the body (a smarthost that drops the connection mid-DATA needs more than one read).
 */
export async function sendMail(
  port: number,
  recipients: string[],
  subject = "failover",
  lines = 0,
): Promise<string> {
  const out = await python(
    `
import json, smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30) as s:
    s.ehlo("client.test")
    s.mail(sys.argv[3])
    for r in json.loads(sys.argv[2]):
        code, resp = s.rcpt(r)
        assert code == 250, (r, code, resp)
    pad = ("x" * 1022 + "\\r\\n") * int(sys.argv[5])
    code, resp = s.data(("Subject: " + sys.argv[4] + "\\r\\n\\r\\nbody\\r\\n" + pad).encode())
    assert code == 250, (code, resp)
    print(resp.decode().split()[-1])
`,
    [String(port), JSON.stringify(recipients), SENDER, subject, String(lines)],
  );
  strictEqual(out.code, 0, out.stderr);
  return out.stdout.trim();
}

/** `n` distinct recipient addresses. */
export function recipients(n: number, domain = "example.net"): string[] {
  return Array.from({ length: n }, (_, i) => `user${String(i).padStart(3, "0")}@${domain}`);
}

/** Every recipient of `mails` together, sorted (duplicates kept, so they show). */
export function allRecipients(...mails: ReceivedMail[][]): string[] {
  return mails.flat().flatMap((m) => m.to).sort();
}

/** Asserts that every address of `expected` arrived exactly once over all of `mails`. */
export function deliveredOnce(expected: string[], ...mails: ReceivedMail[][]): void {
  deepStrictEqual(allRecipients(...mails), [...expected].sort());
}

export { waitUntil } from "../support/mail_client.ts";

/** `carrier queue ARGS --spool SPOOL` with its derived permissions. */
export function queueCommand(carrier: CarrierProcess, ...args: string[]) {
  return runCarrier(["queue", ...args, "--spool", carrier.spool]);
}

/** The "upstream unavailable" log line of upstream `name` (waits for it). */
export function unavailable(carrier: CarrierProcess, name: string, timeoutMs = 20_000) {
  return carrier.waitForLog(
    new RegExp(`error upstream unavailable upstream=${escaped(name)} `),
    timeoutMs,
  );
}

/** Log lines matching `pattern`. */
export function logLines(carrier: CarrierProcess, pattern: RegExp): string[] {
  return carrier.logs().split("\n").filter((l) => pattern.test(l));
}

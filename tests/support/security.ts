/**
 * Helpers shared by the end-to-end security tests (tests/e2e/security_*_test.ts): the
 * stored messages of a spool, a users file with alice, swaks arguments, log waits.
 */

import { ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { type CarrierProcess, runCarrier } from "./carrier.ts";
import { type StoredMessage, storedMessages } from "./spool.ts";
import type { TestPki } from "./tls.ts";

export { storedMessages };

/** The password of alice in the shared users file. */
export const ALICE_PASSWORD = "hunter2-Alice-9f3k";

/** The one stored message whose Subject: is `subject`. */
export async function storedBySubject(spool: string, subject: string): Promise<StoredMessage> {
  const found = (await storedMessages(spool)).filter((m) =>
    m.text.includes(`\r\nSubject: ${subject}\r\n`)
  );
  strictEqual(found.length, 1, `one message with Subject: ${subject}`);
  return found[0];
}

/** The "with" keyword of our Received: header (RFC 3848). */
export function receivedWith(text: string): string | undefined {
  ok(text.startsWith("Received: from "), text.slice(0, 60));
  return /^Received: [^;]*?\r\n\tby carrier\.test \(Carrier\) with (\S+) id /.exec(text)?.[1];
}

/** The flags that give Carrier the test certificate and key. */
export function tlsArgs(pki: TestPki): string[] {
  return ["--tls-cert", pki.certPath, "--tls-key", pki.keyPath];
}

/** Runs `carrier users add NAME --users FILE` with the password on stdin. */
export async function addUser(file: string, name: string, password: string) {
  return await runCarrier(["users", "add", name, "--users", file], { stdin: `${password}\n` });
}

let sharedUsers: Promise<string> | undefined;

/** A users file with alice (ALICE_PASSWORD), made once per test process. */
export function usersFile(): Promise<string> {
  return sharedUsers ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "carrier-users-" });
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* already gone */ }
    });
    const file = join(dir, "users");
    const result = await addUser(file, "alice", ALICE_PASSWORD);
    strictEqual(result.code, 0, result.stderr);
    return file;
  })();
}

/** swaks arguments for one message with a distinct subject. */
export function message(subject: string, to = "ops@example.com"): string[] {
  return ["--from", "app@example.org", "--to", to, "--header", `Subject: ${subject}`];
}

/** swaks arguments to authenticate with `mechanism`. */
export function authArgs(mechanism: "PLAIN" | "LOGIN", user: string, password: string): string[] {
  return ["--auth", mechanism, "--auth-user", user, "--auth-password", password];
}

/** Waits (bounded) until `pattern` occurs `count` times in the logs. */
export async function waitForCount(
  carrier: CarrierProcess,
  pattern: RegExp,
  count: number,
  timeoutMs = 15_000,
): Promise<void> {
  const global = new RegExp(pattern.source, "g");
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((carrier.logs().match(global) ?? []).length >= count) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`fewer than ${count} log lines matching ${pattern}:\n${carrier.logs()}`);
}

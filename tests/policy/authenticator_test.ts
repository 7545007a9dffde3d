import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { UserAuthenticator } from "../../src/policy/authenticator.ts";
import { hashPassword, UserDb } from "../../src/policy/users.ts";

async function authenticator(): Promise<UserAuthenticator> {
  const db = UserDb.parse(`alice:${await hashPassword("right")}\n`, "users");
  return new UserAuthenticator(db, { maxFailures: 5, baseDelayMs: 1, maxDelayMs: 4 });
}

Deno.test("authenticator: right password ok, wrong one failed, unknown user failed", async () => {
  const auth = await authenticator();
  strictEqual(await auth.verify("alice", "right", "192.0.2.1"), "ok");
  strictEqual(await auth.verify("alice", "wrong", "192.0.2.1"), "failed");
  strictEqual(await auth.verify("mallory", "right", "192.0.2.1"), "failed");
});

Deno.test("authenticator: parallel guesses from one address cannot exceed the lockout", async () => {
  const auth = await authenticator();
  let checked = 0;
  const verify = auth.users.verify.bind(auth.users);
  auth.users.verify = (name, password) => {
    checked++;
    return verify(name, password);
  };
  const outcomes = await Promise.all(
    Array.from({ length: 12 }, (_, i) => auth.verify("alice", `guess-${i}`, "192.0.2.7")),
  );
  // Serialised: four failures with delays, the fifth reaches the limit, the rest are refused unchecked.
  deepStrictEqual(outcomes, [...Array(4).fill("failed"), ...Array(8).fill("throttled")]);
  strictEqual(checked, 5, "only five guesses were ever checked");
  strictEqual(
    await auth.verify("alice", "right", "192.0.2.7"),
    "throttled",
    "locked out even with the right password",
  );
  strictEqual(
    await auth.verify("alice", "right", "192.0.2.8"),
    "ok",
    "another address is not affected",
  );
});

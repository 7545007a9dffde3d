import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { addUser, hashPassword, UserDb, verifyPassword } from "../../src/policy/users.ts";

const SALT = "AAAAAAAAAAAAAAAAAAAAAA==";
const KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const WELL_FORMED = `scrypt$16384$8$1$${SALT}$${KEY}`;

Deno.test("hashPassword output verifies with the right password only", async () => {
  const encoded = await hashPassword("correct horse ✓");
  ok(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/.test(encoded), encoded);
  strictEqual(await verifyPassword("correct horse ✓", encoded), true);
  strictEqual(await verifyPassword("correct horse", encoded), false);
});

Deno.test("verifyPassword is false, never a throw, for malformed entries", async () => {
  const bad = [
    "",
    "plain",
    "bcrypt$16384$8$1$" + SALT + "$" + KEY,
    "scrypt$16384$8$1$" + SALT,
    "scrypt$3$8$1$" + SALT + "$" + KEY,
    "scrypt$0$8$1$" + SALT + "$" + KEY,
    "scrypt$16384$0$1$" + SALT + "$" + KEY,
    "scrypt$1073741824$64$1$" + SALT + "$" + KEY,
    "scrypt$16384$8$1$not*base64$" + KEY,
    "scrypt$16384$8$1$" + SALT + "$AAAA",
  ];
  for (const encoded of bad) strictEqual(await verifyPassword("pw", encoded), false, encoded);
  strictEqual(await verifyPassword(undefined as unknown as string, WELL_FORMED), false);
});

Deno.test("UserDb.parse accepts comments, blank lines and CRLF", () => {
  const db = UserDb.parse(
    `# users\r\n\r\nalice:${WELL_FORMED}\r\n  bob@example.com:${WELL_FORMED}  \n`,
    "users.txt",
  );
  strictEqual(db.size, 2);
  ok(db.has("alice"));
  ok(db.has("bob@example.com"));
  ok(!db.has("Alice"), "names are case-sensitive");
  ok(!db.has("carol"));
  strictEqual(UserDb.parse("", "empty").size, 0);
});

Deno.test("UserDb.parse errors name the source and line, never the secret", () => {
  const cases: [string, RegExp][] = [
    ["alice\n", /^users\.txt:1: expected name:scrypt/],
    [`# x\n\nbad name:${WELL_FORMED}`, /^users\.txt:3: invalid user name/],
    ["alice:hunter2", /^users\.txt:1: user "alice": expected scrypt\$N\$r\$p/],
    [`alice:${WELL_FORMED}\nalice:${WELL_FORMED}`, /^users\.txt:2: duplicate user "alice"$/],
    [`alice:scrypt$16384$8$1$${SALT}$c2VjcmV0`, /^users\.txt:1: user "alice": hash must be/],
  ];
  for (const [text, expected] of cases) {
    throws(() => UserDb.parse(text, "users.txt"), (err: Error) => {
      ok(expected.test(err.message), err.message);
      ok(!err.message.includes("hunter2") && !err.message.includes("c2VjcmV0"), err.message);
      ok(!err.message.includes(SALT), err.message);
      return true;
    });
  }
});

Deno.test("UserDb.load names the file when it cannot be read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await rejects(UserDb.load(`${dir}/missing.txt`), (err: Error) => {
      ok(err.message.startsWith(`cannot read users file ${dir}/missing.txt:`), err.message);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("addUser creates a 0600 file, replaces users in place, and UserDb verifies", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/users.txt`;
  try {
    strictEqual(await addUser(path, "alice", "first-password"), "added");
    strictEqual((await Deno.stat(path)).mode! & 0o777, 0o600);
    strictEqual(await addUser(path, "bob", "bob-password"), "added");

    // A hand-written comment survives a rewrite.
    await Deno.writeTextFile(path, "# relay users\n" + await Deno.readTextFile(path));
    strictEqual(await addUser(path, "alice", "second-password"), "replaced");

    const lines = (await Deno.readTextFile(path)).split("\n");
    strictEqual(lines[0], "# relay users");
    deepStrictEqual(lines.slice(1).map((l) => l.split(":")[0]), ["alice", "bob", ""]);
    strictEqual((await Deno.stat(path)).mode! & 0o777, 0o600);
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    deepStrictEqual(names, ["users.txt"], "no temp files left behind");

    const db = await UserDb.load(path);
    strictEqual(db.size, 2);
    strictEqual(await db.verify("alice", "second-password"), true);
    strictEqual(await db.verify("alice", "first-password"), false);
    strictEqual(await db.verify("nobody", "second-password"), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("addUser rejects bad names, empty passwords and a malformed file", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/users.txt`;
  try {
    for (const name of ["", "a".repeat(65), "has space", "colon:name", "new\nline"]) {
      await rejects(addUser(path, name, "pw"), /invalid user name/, JSON.stringify(name));
    }
    await rejects(addUser(path, "alice", ""), /empty password for user "alice"/);
    await rejects(Deno.stat(path), Deno.errors.NotFound);

    await Deno.writeTextFile(path, "alice:not-a-hash\n");
    await rejects(addUser(path, "bob", "pw"), /users\.txt:1: user "alice"/);
    strictEqual(await Deno.readTextFile(path), "alice:not-a-hash\n", "file left untouched");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * The inbound AUTH user database: a text file of `name:scrypt$N$r$p$salt$hash` lines.
 *
 * Passwords are hashed with scrypt (N=16384, r=8, p=1, 16-byte salt, 32-byte key) from
 * their UTF-8 bytes, unnormalised. User names are compared exactly (case-sensitive).
 */

import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";

const SCRYPT_N = 16384;
const SCRYPT_R = 8;
const SCRYPT_P = 1;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Upper bound on the memory a stored hash may ask scrypt for (128 * N * r bytes). */
const MAX_SCRYPT_MEMORY = 256 * 1024 * 1024;

const NAME_PATTERN = /^[A-Za-z0-9._@+-]{1,64}$/;
const BASE64_PATTERN = /^[A-Za-z0-9+/]+={0,2}$/;

interface ScryptHash {
  n: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

/** A well-formed entry with the default cost: verifying an unknown user costs the same time. */
const DUMMY_ENTRY = `scrypt$${SCRYPT_N}$${SCRYPT_R}$${SCRYPT_P}$${
  Buffer.alloc(SALT_BYTES).toString("base64")
}$${Buffer.alloc(KEY_BYTES).toString("base64")}`;

/** Parses an encoded hash; returns a reason string (never echoing the hash) on error. */
function decodeHash(encoded: string): ScryptHash | string {
  const parts = encoded.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") {
    return "expected scrypt$N$r$p$saltBase64$hashBase64";
  }
  const [, nText, rText, pText, saltText, hashText] = parts;
  const int = (t: string) => /^[1-9][0-9]{0,9}$/.test(t) ? Number(t) : NaN;
  const n = int(nText);
  const r = int(rText);
  const p = int(pText);
  if (!(n >= 2 && n <= 2 ** 30 && (n & (n - 1)) === 0)) {
    return "scrypt N must be a power of two greater than 1";
  }
  if (!(r >= 1 && r <= 64) || !(p >= 1 && p <= 64)) return "scrypt r and p must be 1-64";
  if (128 * n * r > MAX_SCRYPT_MEMORY) return "scrypt parameters need too much memory";
  if (!BASE64_PATTERN.test(saltText) || !BASE64_PATTERN.test(hashText)) {
    return "salt and hash must be base64";
  }
  const salt = Buffer.from(saltText, "base64");
  const hash = Buffer.from(hashText, "base64");
  if (salt.length < 8) return "salt must be at least 8 bytes";
  if (hash.length < 16 || hash.length > 128) return "hash must be 16-128 bytes";
  return { n, r, p, salt, hash };
}

function derive(password: string, salt: Buffer, keyLength: number, h: ScryptHash | null) {
  const n = h?.n ?? SCRYPT_N;
  const r = h?.r ?? SCRYPT_R;
  const p = h?.p ?? SCRYPT_P;
  return new Promise<Buffer>((resolve, reject) => {
    scrypt(
      Buffer.from(password, "utf8"),
      salt,
      keyLength,
      { N: n, r, p, maxmem: 2 * 128 * n * r + 1024 * 1024 },
      (err, key) => err ? reject(err) : resolve(key),
    );
  });
}

/** Hashes a password for the users file (`scrypt$16384$8$1$salt$hash`), with a fresh random salt. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, KEY_BYTES, null);
  return `scrypt$${SCRYPT_N}$${SCRYPT_R}$${SCRYPT_P}$${salt.toString("base64")}$${
    key.toString("base64")
  }`;
}

/** Checks a password against an encoded hash in constant time; false (never a throw) for malformed input. */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  try {
    if (typeof password !== "string" || typeof encoded !== "string") return false;
    const h = decodeHash(encoded);
    if (typeof h === "string") return false;
    const key = await derive(password, h.salt, h.hash.length, h);
    return key.length === h.hash.length && timingSafeEqual(key, h.hash);
  } catch {
    return false;
  }
}

/** Splits a users-file line into name and hash, or a reason (never echoing the line). */
function parseLine(line: string): { name: string; hash: string } | string | null {
  const text = line.trim();
  if (text === "" || text.startsWith("#")) return null;
  const colon = text.indexOf(":");
  if (colon < 0) return "expected name:scrypt$N$r$p$salt$hash";
  const name = text.slice(0, colon);
  if (!NAME_PATTERN.test(name)) return `invalid user name (1-64 characters of A-Za-z0-9._@+-)`;
  const reason = decodeHash(text.slice(colon + 1));
  if (typeof reason === "string") return `user "${name}": ${reason}`;
  return { name, hash: text.slice(colon + 1) };
}

/** The users allowed to AUTH, loaded once at startup; lookups and verification in memory. */
export class UserDb {
  readonly #users: Map<string, string>;

  private constructor(users: Map<string, string>) {
    this.#users = users;
  }

  /** Reads and parses a users file; errors name the file (and line, for content errors). */
  static async load(path: string): Promise<UserDb> {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new Error(`cannot read users file ${path}: ${why}`, { cause: err });
    }
    return UserDb.parse(text, path);
  }

  /** Parses users-file text; `source` names it in errors (`file:line: what is wrong`). */
  static parse(text: string, source: string): UserDb {
    const users = new Map<string, string>();
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const parsed = parseLine(lines[i]);
      if (parsed === null) continue;
      if (typeof parsed === "string") throw new Error(`${source}:${i + 1}: ${parsed}`);
      if (users.has(parsed.name)) {
        throw new Error(`${source}:${i + 1}: duplicate user "${parsed.name}"`);
      }
      users.set(parsed.name, parsed.hash);
    }
    return new UserDb(users);
  }

  /** True when the user exists (exact, case-sensitive name). */
  has(name: string): boolean {
    return this.#users.has(name);
  }

  /** Checks a user's password; an unknown user costs the same scrypt work, so timing hides which names exist. */
  async verify(name: string, password: string): Promise<boolean> {
    const encoded = this.#users.get(name);
    if (encoded === undefined) {
      await verifyPassword(password, DUMMY_ENTRY);
      return false;
    }
    return await verifyPassword(password, encoded);
  }

  /** Number of users, for startup logs. */
  get size(): number {
    return this.#users.size;
  }
}

/**
 * Adds or replaces a user in a users file (the `user add` command). Creates the file with
 * mode 0600; keeps other lines and an existing file's mode; writes atomically.
 * Concurrent calls on one file may lose an update (last rename wins).
 */
export async function addUser(
  path: string,
  name: string,
  password: string,
): Promise<"added" | "replaced"> {
  if (!NAME_PATTERN.test(name)) {
    throw new Error(
      `invalid user name ${JSON.stringify(name)}: use 1-64 characters of A-Za-z0-9._@+-`,
    );
  }
  if (password === "") throw new Error(`empty password for user "${name}"`);

  let text = "";
  let mode = 0o600;
  try {
    text = await Deno.readTextFile(path);
    const info = await Deno.stat(path);
    if (info.mode !== null) mode = info.mode & 0o777;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      const why = err instanceof Error ? err.message : String(err);
      throw new Error(`cannot read users file ${path}: ${why}`, { cause: err });
    }
  }
  UserDb.parse(text, path); // refuse to rewrite a file we cannot read back

  const line = `${name}:${await hashPassword(password)}`;
  const lines = text === "" ? [] : text.replace(/\r?\n$/, "").split(/\r?\n/);
  const index = lines.findIndex((l) => {
    const parsed = parseLine(l);
    return parsed !== null && typeof parsed !== "string" && parsed.name === name;
  });
  if (index >= 0) lines[index] = line;
  else lines.push(line);
  await writeAtomically(path, lines.join("\n") + "\n", mode);
  return index >= 0 ? "replaced" : "added";
}

/** Writes a temp file in the same directory, syncs it, renames it over `path`, syncs the directory. */
async function writeAtomically(path: string, text: string, mode: number): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".";
  const base = path.slice(slash + 1);
  const temp = `${dir}/.${base}.${randomBytes(6).toString("hex")}.tmp`;
  const file = await Deno.open(temp, { write: true, createNew: true, mode });
  try {
    try {
      // FsFile.write may write fewer bytes than asked: loop until all are written.
      const bytes = new TextEncoder().encode(text);
      for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
      if (Deno.build.os !== "windows") await Deno.chmod(temp, mode);
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temp, path);
  } catch (err) {
    await Deno.remove(temp).catch(() => {});
    throw err;
  }
  if (Deno.build.os !== "windows") {
    try {
      const d = await Deno.open(dir, { read: true });
      try {
        await d.sync();
      } finally {
        d.close();
      }
    } catch {
      // Directory fsync is best effort: not every filesystem supports it.
    }
  }
}

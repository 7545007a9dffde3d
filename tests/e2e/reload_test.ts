/**
 * SIGHUP through the real server: the config file is read again and a new limit holds
 * for the next message; a bad file keeps the running configuration; a new listen
 * address is named as needing a restart and the old listener keeps serving.
 */

import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { type CarrierProcess, freePort, startCarrier } from "../support/carrier.ts";
import { RawClient } from "../support/raw_client.ts";

/** Sends SIGHUP and waits (bounded) for one more log line matching `pattern` than before. */
async function hup(carrier: CarrierProcess, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  const matching = () => carrier.logs().split("\n").filter((l) => pattern.test(l));
  const before = matching().length;
  carrier.child.kill("SIGHUP");
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const lines = matching();
    if (lines.length > before) return lines[before];
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no new log line matching ${pattern} after SIGHUP; log:\n${carrier.logs()}`);
}

/** Sends one message of about `bytes` bytes on a new connection; returns the final reply. */
async function send(port: number, bytes: number) {
  const client = await RawClient.connect(port);
  try {
    await client.reply();
    await client.send(
      "EHLO x.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n",
    );
    deepStrictEqual((await client.replies(4)).map((r) => r.code), [250, 250, 250, 354]);
    const line = "x".repeat(62) + "\r\n";
    await client.send("Subject: reload\r\n\r\n" + line.repeat(Math.ceil(bytes / 64)) + ".\r\n");
    return await client.reply();
  } finally {
    client.close();
  }
}

async function withConfig(
  toml: string,
  run: (file: string, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "carrier-reload-" });
  const file = join(dir, "carrier.toml");
  await Deno.writeTextFile(file, toml);
  try {
    await run(file, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("SIGHUP reads the config file again: a larger max_message_size holds for the next message", async () => {
  await withConfig('[limits]\nmax_message_size = "1K"\n', async (file) => {
    const carrier = await startCarrier({ args: ["--config", file] });
    try {
      const refused = await send(carrier.port, 2048);
      strictEqual(refused.code, 552, refused.raw);
      await Deno.writeTextFile(file, '[limits]\nmax_message_size = "4K"\n');
      const line = await hup(carrier, / reloaded /);
      match(line, /changed=max_message_size/);
      const accepted = await send(carrier.port, 2048);
      strictEqual(accepted.code, 250, accepted.raw);
      match(accepted.raw, /queued as/);

      // A bad value: one error line naming the key, and the 4K limit still holds.
      await Deno.writeTextFile(file, '[limits]\nmax_message_size = "huge"\n');
      const failed = await hup(carrier, / reload failed; keeping the running configuration /);
      match(failed, /max_message_size/);
      strictEqual((await send(carrier.port, 2048)).code, 250, "the running limit still holds");
      strictEqual((await send(carrier.port, 8192)).code, 552, "and it is still 4K");
      strictEqual(carrier.logs().split("\n").filter((l) => / reloaded /.test(l)).length, 1);
    } finally {
      await carrier.stop();
    }
  });
});

Deno.test("SIGHUP: a new listen address needs a restart; the old listener keeps serving", async () => {
  const port = freePort();
  const other = freePort();
  const toml = (p: number, size: string) =>
    `[listen]\nlisten = ["127.0.0.1:${p}"]\n[limits]\nmax_message_size = "${size}"\n`;
  await withConfig(toml(port, "1K"), async (file) => {
    const carrier = await startCarrier({ args: ["--config", file], plain: false });
    try {
      strictEqual(carrier.port, port);
      await Deno.writeTextFile(file, toml(other, "4K"));
      const warned = await hup(carrier, / reload: these settings need a restart/);
      match(warned, /keys=listen(\s|$)/);
      const reloaded = await carrier.waitForLog(/ reloaded /);
      match(reloaded, /changed=max_message_size/);
      strictEqual((await send(port, 2048)).code, 250, "served on the old port, new limit");
      const refused = await Deno.connect({ hostname: "127.0.0.1", port: other }).then(
        (c) => (c.close(), false),
        () => true,
      );
      ok(refused, "nothing listens on the new port");
    } finally {
      await carrier.stop();
    }
  });
});

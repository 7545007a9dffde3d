import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { ProxyHeaderError, readProxyHeader } from "../../src/server/proxy_reader.ts";
import { ConnTransport } from "../../src/server/transport.ts";
import { proxyV2 } from "../support/proxy_header.ts";

/** A connected loopback pair: [server side, client side]. */
async function pair(): Promise<[Deno.Conn, Deno.Conn]> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = Deno.connect({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  const server = await listener.accept();
  listener.close();
  return [server, await client];
}

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("readProxyHeader joins a header split over writes and hands back the bytes after it", async () => {
  const [server, client] = await pair();
  const header = proxyV2({ src: { address: "192.0.2.44", port: 7 } });
  await client.write(header.subarray(0, 5));
  const reading = readProxyHeader(server, 5000);
  await new Promise((r) => setTimeout(r, 20));
  await client.write(header.subarray(5, 20));
  await client.write(new Uint8Array([...header.subarray(20), ...text("EHLO x\r\n")]));
  const { header: parsed, rest } = await reading;
  deepStrictEqual(parsed.source, { address: "192.0.2.44", port: 7 });
  // The transport serves those bytes first, then reads on.
  const transport = new ConnTransport(server, undefined, rest);
  let seen = "";
  while (!seen.endsWith("EHLO x\r\n")) seen += new TextDecoder().decode((await transport.read())!);
  strictEqual(seen, "EHLO x\r\n");
  await client.write(text("QUIT\r\n"));
  strictEqual(new TextDecoder().decode((await transport.read())!), "QUIT\r\n");
  transport.close();
  client.close();
});

Deno.test("readProxyHeader refuses a malformed, truncated or slow header", async () => {
  {
    const [server, client] = await pair();
    await client.write(text("HELO x\r\n"));
    await rejects(readProxyHeader(server, 5000), ProxyHeaderError);
    server.close();
    client.close();
  }
  {
    const [server, client] = await pair();
    await client.write(proxyV2({ src: { address: "192.0.2.1", port: 1 } }).subarray(0, 18));
    client.close();
    await rejects(readProxyHeader(server, 5000), /connection closed after 18 header bytes/);
    server.close();
  }
  {
    const [server, client] = await pair();
    await client.write(text("PROXY TCP4 "));
    await rejects(readProxyHeader(server, 50), /no complete header within 50 ms/);
    client.close();
  }
});

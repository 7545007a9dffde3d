import { ok, strictEqual } from "node:assert/strict";
import { isLoopbackAddress } from "../src/ip.ts";
import { LOOPBACK_NETWORKS, NetworkList } from "../src/policy/networks.ts";

Deno.test("isLoopbackAddress", () => {
  ok(isLoopbackAddress("127.0.0.1"));
  ok(isLoopbackAddress("127.3.4.5"));
  ok(isLoopbackAddress("::1"));
  ok(isLoopbackAddress("::ffff:127.0.0.1"));
  ok(!isLoopbackAddress("10.0.0.1"));
  ok(!isLoopbackAddress("::"));
  ok(!isLoopbackAddress("fe80::1"));
  ok(!isLoopbackAddress("not an address"));
});

Deno.test("isLoopbackAddress agrees with the loopback relay networks", () => {
  const list = NetworkList.parse(LOOPBACK_NETWORKS);
  for (
    const address of [
      "127.0.0.1",
      " 127.255.255.255 ",
      "128.0.0.1",
      "126.255.255.255",
      "127.0.0.1%lo",
      "::1",
      "[::1]",
      "::1%lo",
      "0:0:0:0:0:0:0:1",
      "::2",
      "::127.0.0.1",
      "::ffff:127.9.9.9",
      "::ffff:7f00:1",
      "::ffff:128.0.0.1",
      "",
      "localhost",
    ]
  ) {
    strictEqual(isLoopbackAddress(address), list.contains(address), address);
  }
});

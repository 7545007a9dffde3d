import { ok, strictEqual, throws } from "node:assert/strict";
import { LOOPBACK_NETWORKS, NetworkList } from "../../src/policy/networks.ts";

Deno.test("IPv4 networks and bare addresses", () => {
  const list = NetworkList.parse("127.0.0.0/8, 10.1.2.3 ,192.168.0.0/16");
  ok(list.contains("127.0.0.1"));
  ok(list.contains("127.255.255.255"));
  ok(!list.contains("128.0.0.1"));
  ok(list.contains("10.1.2.3"));
  ok(!list.contains("10.1.2.4"));
  ok(list.contains("192.168.44.5"));
  ok(!list.contains("192.169.0.1"));
  strictEqual(list.toString(), "127.0.0.0/8,10.1.2.3/32,192.168.0.0/16");
});

Deno.test("IPv6 compressed forms, zones and brackets", () => {
  const list = NetworkList.parse(["::1/128", "fe80::/10", "2001:db8:0:0:1::/80"]);
  ok(list.contains("::1"));
  ok(list.contains("0:0:0:0:0:0:0:1"));
  ok(!list.contains("::2"));
  ok(!list.contains("::"));
  ok(list.contains("fe80::1"));
  ok(list.contains("FE80::abcd%eth0"));
  ok(list.contains("[fe80::1]"));
  ok(list.contains("febf:ffff::1"));
  ok(!list.contains("fec0::1"));
  ok(list.contains("2001:db8::1:0:ffff:1"));
  ok(!list.contains("2001:db8::2:0:0:1"));
  strictEqual(list.toString(), "::1/128,fe80::/10,2001:db8:0:0:1::/80");
});

Deno.test("all-zero networks match everything in their family", () => {
  const v4 = NetworkList.parse("0.0.0.0/0");
  ok(v4.contains("8.8.8.8"));
  ok(v4.contains("::ffff:8.8.8.8"));
  ok(!v4.contains("2001:db8::1"));
  const v6 = NetworkList.parse("::/0");
  ok(v6.contains("2001:db8::1"));
  ok(v6.contains("8.8.8.8"), "IPv4 lives in ::ffff:0:0/96, inside ::/0");
});

Deno.test("IPv4-mapped IPv6 addresses match IPv4 networks and the reverse", () => {
  const list = NetworkList.parse(LOOPBACK_NETWORKS);
  ok(list.contains("::ffff:127.0.0.1"));
  ok(list.contains("::FFFF:7f00:1"));
  ok(list.contains("0:0:0:0:0:ffff:127.1.2.3"));
  ok(!list.contains("::ffff:10.0.0.1"));
  ok(!list.contains("::127.0.0.1"), "IPv4-compatible form is not mapped");
  const mapped = NetworkList.parse("::ffff:10.0.0.0/104");
  ok(mapped.contains("10.9.9.9"));
  strictEqual(mapped.toString(), "::ffff:10.0.0.0/104");
});

Deno.test("host bits in an entry are cleared", () => {
  const list = NetworkList.parse("10.1.2.3/8,2001:db8::1/32");
  strictEqual(list.toString(), "10.0.0.0/8,2001:db8::/32");
  ok(list.contains("10.200.0.1"));
  ok(list.contains("2001:db8:ffff::1"));
});

Deno.test("toString uses RFC 5952 form", () => {
  strictEqual(NetworkList.parse("2001:0DB8:0:0:0:0:0:1").toString(), "2001:db8::1/128");
  strictEqual(NetworkList.parse("1:0:0:2:0:0:0:3").toString(), "1:0:0:2::3/128");
  strictEqual(NetworkList.parse("1:0:2:3:4:5:6:7").toString(), "1:0:2:3:4:5:6:7/128");
  strictEqual(NetworkList.parse("::/0").toString(), "::/0");
  strictEqual(NetworkList.parse("").toString(), "");
});

Deno.test("an empty list matches nothing", () => {
  const list = NetworkList.parse(" , ");
  ok(!list.contains("127.0.0.1"));
});

Deno.test("invalid entries throw naming the entry and the reason", () => {
  const cases: [string, RegExp][] = [
    ["10.0.0.0/33", /^invalid network "10\.0\.0\.0\/33": prefix length must be 0-32$/],
    ["::1/129", /^invalid network "::1\/129": prefix length must be 0-128$/],
    ["10.0.0.0/", /"10\.0\.0\.0\/": prefix length must be 0-32/],
    ["10.0.0.0/-1", /prefix length/],
    ["10.0.0.0/8/8", /prefix length/],
    ["256.0.0.1", /"256\.0\.0\.1": "256" is greater than 255/],
    ["10.0.0", /four dot-separated parts/],
    ["010.0.0.1", /leading zero/],
    ["example.com", /"example\.com"/],
    ["1:2:3:4:5:6:7:8:9", /eight 16-bit groups/],
    ["1::2::3", /only once/],
    ["12345::", /hex group/],
    ["1:2:3:4:5:6:7::8", /at least one zero group/],
    [":1::", /empty group/],
    ["1.2.3.4::", /hex group/],
    ["::ffff:1.2.3", /embedded IPv4/],
    ["10.0.0.1%eth0", /zone id/],
  ];
  for (const [entry, expected] of cases) {
    throws(() => NetworkList.parse(`127.0.0.1,${entry}`), { message: expected }, entry);
  }
});

Deno.test("contains is false for unparseable addresses", () => {
  const list = NetworkList.parse("0.0.0.0/0,::/0");
  for (const bad of ["", "localhost", "1.2.3", "1::2::3", "300.1.1.1", "1.2.3.4/8"]) {
    ok(!list.contains(bad), bad);
  }
  ok(list.contains("::1%"), "empty zone id is stripped");
});

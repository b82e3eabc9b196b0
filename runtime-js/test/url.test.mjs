import { test } from "node:test";
import assert from "node:assert/strict";
import { loadRuntime } from "./harness.mjs";

const { url: mod, console: consoleModule } = await loadRuntime();
const { URL, URLSearchParams } = mod;

test("URL parses with and without a base", () => {
  const u = new URL("https://user:pw@Example.com:8080/a/../b?x=1#frag");
  assert.equal(u.href, "https://user:pw@example.com:8080/b?x=1#frag");
  assert.equal(u.origin, "https://example.com:8080");
  assert.equal(u.protocol, "https:");
  assert.equal(u.username, "user");
  assert.equal(u.password, "pw");
  assert.equal(u.host, "example.com:8080");
  assert.equal(u.hostname, "example.com");
  assert.equal(u.port, "8080");
  assert.equal(u.pathname, "/b");
  assert.equal(u.search, "?x=1");
  assert.equal(u.hash, "#frag");
  assert.equal(new URL("../c?y", "https://h.test/a/b").href, "https://h.test/c?y");
  assert.equal(new URL("https://h.test", undefined).href, "https://h.test/");
  assert.equal(new URL(new URL("https://h.test/x")).href, "https://h.test/x"); // stringifies
});

test("invalid URLs throw TypeError; canParse and parse do not", () => {
  assert.throws(() => new URL("/relative"), TypeError);
  assert.throws(() => new URL("http://"), TypeError);
  assert.throws(() => new URL("x", "not a base"), TypeError);
  assert.throws(() => new URL(), TypeError);
  assert.equal(URL.canParse("https://ok.test"), true);
  assert.equal(URL.canParse("/nope"), false);
  assert.equal(URL.canParse("/yes", "https://base.test"), true);
  assert.equal(URL.parse("/nope"), null);
  assert.equal(URL.parse("/p", "https://b.test").href, "https://b.test/p");
});

test("every setter updates href", () => {
  const u = new URL("https://example.com/path?q=1#h");
  u.protocol = "http";
  assert.equal(u.href, "http://example.com/path?q=1#h");
  u.username = "me";
  u.password = "secret";
  assert.equal(u.href, "http://me:secret@example.com/path?q=1#h");
  u.host = "other.test:81";
  assert.equal(u.host, "other.test:81");
  u.hostname = "third.test";
  assert.equal(u.href, "http://me:secret@third.test:81/path?q=1#h");
  u.port = "80"; // default port: dropped
  assert.equal(u.port, "");
  u.port = "bad"; // invalid: ignored
  assert.equal(u.port, "");
  u.pathname = "/a b";
  assert.equal(u.pathname, "/a%20b");
  u.search = "x=1 2";
  assert.equal(u.search, "?x=1%202");
  u.hash = "top";
  assert.equal(u.hash, "#top");
  u.hash = "";
  u.search = "";
  assert.equal(u.href, "http://me:secret@third.test/a%20b");
  u.href = "https://fresh.test/?k=v";
  assert.equal(u.searchParams.get("k"), "v");
  assert.throws(() => {
    u.href = "not a url";
  }, TypeError);
  assert.equal(u.href, "https://fresh.test/?k=v");
  assert.equal(String(u), u.href);
  assert.equal(u.toJSON(), u.href);
  assert.equal(JSON.stringify({ u }), '{"u":"https://fresh.test/?k=v"}');
});

test("searchParams is live-linked both ways", () => {
  const u = new URL("https://h.test/p?a=1&b=2");
  const params = u.searchParams;
  assert.equal(u.searchParams, params); // same object every time
  params.append("c", "x y");
  assert.equal(u.search, "?a=1&b=2&c=x+y");
  params.delete("a");
  assert.equal(u.href, "https://h.test/p?b=2&c=x+y");
  u.search = "?z=9";
  assert.equal(params.get("z"), "9");
  assert.equal(params.has("b"), false);
  params.delete("z");
  assert.equal(u.href, "https://h.test/p"); // no trailing "?"
  u.href = "https://h.test/?n=1&n=2";
  assert.deepEqual(params.getAll("n"), ["1", "2"]);
  params.sort();
  params.set("n", "3");
  assert.equal(u.search, "?n=3");
});

test("URLSearchParams constructors", () => {
  assert.equal(new URLSearchParams("?a=1&b=2").toString(), "a=1&b=2");
  assert.equal(new URLSearchParams("a=1&&b=&=c&d").toString(), "a=1&b=&=c&d=");
  assert.equal(new URLSearchParams([["a", "1"], ["a", "2"]]).toString(), "a=1&a=2");
  assert.equal(new URLSearchParams({ x: "1", y: 2 }).toString(), "x=1&y=2");
  assert.equal(new URLSearchParams(new URLSearchParams("k=v")).get("k"), "v");
  assert.equal(new URLSearchParams(new Map([["m", "1"]])).get("m"), "1");
  assert.throws(() => new URLSearchParams([["only-one"]]), TypeError);
  assert.throws(() => new URLSearchParams([["a", "b", "c"]]), TypeError);
  assert.equal(new URLSearchParams().size, 0);
  assert.equal(new URLSearchParams(undefined).toString(), "");
});

test("form-urlencoded parsing: +, percent escapes, bad escapes, unicode", () => {
  const p = new URLSearchParams("a+b=c+d&e=%20%2B&pct=%zz%4&u=%E2%82%AC&bad=%FF&raw=é");
  assert.equal(p.get("a b"), "c d");
  assert.equal(p.get("e"), " +");
  assert.equal(p.get("pct"), "%zz%4");
  assert.equal(p.get("u"), "€");
  assert.equal(p.get("bad"), "\ufffd");
  assert.equal(p.get("raw"), "é");
  assert.equal(new URLSearchParams("x=%EF%BB%BFy").get("x"), "\ufeffy"); // BOM kept
});

test("form-urlencoded serialization matches WHATWG", () => {
  const p = new URLSearchParams();
  p.append("sp ace", "a b");
  p.append("plus", "1+1");
  p.append("safe", "*-._");
  p.append("unsafe", "!'()~");
  p.append("euro", "€");
  p.append("emoji", "😀");
  p.append("lone", "\ud800");
  p.append("eq&", "=&%");
  p.append("nl", "a\nb");
  assert.equal(
    p.toString(),
    "sp+ace=a+b&plus=1%2B1&safe=*-._&unsafe=%21%27%28%29%7E&euro=%E2%82%AC" +
      "&emoji=%F0%9F%98%80&lone=%EF%BF%BD&eq%26=%3D%26%25&nl=a%0Ab",
  );
  // Same as Node's implementation of the standard.
  assert.equal(p.toString(), new globalThis.URLSearchParams([...p]).toString());
});

test("URLSearchParams methods", () => {
  const p = new URLSearchParams("a=1&b=2&a=3&c=4");
  assert.equal(p.size, 4);
  assert.equal(p.get("a"), "1");
  assert.equal(p.get("zz"), null);
  assert.deepEqual(p.getAll("a"), ["1", "3"]);
  assert.equal(p.has("a", "3"), true);
  assert.equal(p.has("a", "9"), false);
  p.delete("a", "3");
  assert.equal(p.toString(), "a=1&b=2&c=4");
  p.set("b", "x");
  p.append("b", "y");
  p.set("b", "z");
  assert.equal(p.toString(), "a=1&b=z&c=4");
  assert.throws(() => p.append("only-name"), TypeError);
  assert.throws(() => p.get(), TypeError);
});

test("sort is stable and by UTF-16 code units", () => {
  const p = new URLSearchParams("z=1&a=2&z=0&a=1&%F0%9F%98%80=e&%EF%AC%80=f");
  p.sort();
  // U+1F600 is a surrogate pair (0xD83D...) and sorts before U+FB00.
  assert.deepEqual([...p.keys()], ["a", "a", "z", "z", "😀", "ﬀ"]);
  assert.deepEqual([...p.values()], ["2", "1", "1", "0", "e", "f"]);
});

test("iteration, forEach and entries", () => {
  const p = new URLSearchParams("a=1&b=2");
  assert.deepEqual([...p], [["a", "1"], ["b", "2"]]);
  assert.deepEqual([...p.entries()], [["a", "1"], ["b", "2"]]);
  assert.equal(URLSearchParams.prototype[Symbol.iterator], URLSearchParams.prototype.entries);
  const seen = [];
  p.forEach(function (value, name, self) {
    seen.push([name, value, self === p, this.tag]);
  }, { tag: "t" });
  assert.deepEqual(seen, [["a", "1", true, "t"], ["b", "2", true, "t"]]);
  assert.equal(Object.prototype.toString.call(p), "[object URLSearchParams]");
  assert.equal(Object.keys(URLSearchParams.prototype).length, 0); // methods not enumerable
});

test("URL and URLSearchParams print readably", () => {
  const { inspect } = consoleModule;
  const u = new URL("https://h.test/p?a=1");
  const text = inspect(u);
  assert.match(text, /^URL \{\n {2}href: 'https:\/\/h\.test\/p\?a=1',/);
  assert.match(text, /searchParams: URLSearchParams \{ 'a' => '1' \}/);
  assert.equal(inspect(new URLSearchParams()), "URLSearchParams {}");
  assert.equal(inspect({ a: { b: { c: u } } }), "{ a: { b: { c: URL {} } } }"); // as Node, past depth
});

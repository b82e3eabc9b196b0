import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { harness, loadRuntime } from "./harness.mjs";

const { fetch: mod, events, url } = await loadRuntime();
const { fetch, Headers, Request, Response } = mod;
const { AbortController, AbortSignal, DOMException } = events;
const enc = new TextEncoder();

beforeEach(() => harness.reset());

function answer(overrides = {}) {
  return {
    status: 200,
    statusText: "OK",
    headers: [["Content-Type", "application/json"], ["Set-Cookie", "a=1"], ["set-cookie", "b=2"]],
    url: "https://api.test/data",
    redirected: false,
    body: enc.encode('{"ok":true}'),
    ...overrides,
  };
}

// --- Headers ---

test("Headers are case-insensitive and combine values", () => {
  const h = new Headers({ "Content-Type": "text/plain", "X-Multi": "a" });
  h.append("x-multi", "b");
  assert.equal(h.get("content-type"), "text/plain");
  assert.equal(h.get("CONTENT-TYPE"), "text/plain");
  assert.equal(h.get("X-MULTI"), "a, b");
  assert.equal(h.has("x-Multi"), true);
  assert.equal(h.get("missing"), null);
  h.set("X-Multi", "only");
  assert.equal(h.get("x-multi"), "only");
  h.delete("X-MULTI");
  assert.equal(h.has("x-multi"), false);
  assert.equal(new Headers([["A", " padded \t"]]).get("a"), "padded");
});

test("Headers iterate sorted, combined, with set-cookie kept apart", () => {
  const h = new Headers([["b", "2"], ["Set-Cookie", "x=1"], ["A", "1"], ["a", "3"], ["set-cookie", "y=2"]]);
  assert.deepEqual([...h], [["a", "1, 3"], ["b", "2"], ["set-cookie", "x=1"], ["set-cookie", "y=2"]]);
  assert.deepEqual([...h.keys()], ["a", "b", "set-cookie", "set-cookie"]);
  assert.deepEqual([...h.values()], ["1, 3", "2", "x=1", "y=2"]);
  assert.deepEqual(h.getSetCookie(), ["x=1", "y=2"]);
  assert.equal(h.get("set-cookie"), "x=1, y=2");
  const seen = [];
  h.forEach((value, name, self) => seen.push(`${name}=${value}:${self === h}`));
  assert.deepEqual(seen, ["a=1, 3:true", "b=2:true", "set-cookie=x=1:true", "set-cookie=y=2:true"]);
  assert.deepEqual([...new Headers(h)], [...h]);
});

test("Headers validate names and values", () => {
  assert.throws(() => new Headers({ "bad name": "x" }), TypeError);
  assert.throws(() => new Headers({ ok: "line\nbreak" }), TypeError);
  assert.throws(() => new Headers({ ok: "nul\0" }), TypeError);
  assert.throws(() => new Headers({ ok: "€" }), TypeError);
  assert.throws(() => new Headers([["one"]]), TypeError);
  assert.throws(() => new Headers("string"), TypeError);
});

// --- Response ---

test("Response basics and body readers", async () => {
  const r = new Response("héllo", { status: 201, statusText: "Created", headers: { "X-Id": "7" } });
  assert.equal(r.status, 201);
  assert.equal(r.ok, true);
  assert.equal(r.statusText, "Created");
  assert.equal(r.headers.get("x-id"), "7");
  assert.equal(r.headers.get("content-type"), "text/plain;charset=UTF-8");
  assert.equal(r.type, "default");
  assert.equal(r.url, "");
  assert.equal(r.redirected, false);
  assert.equal(r.bodyUsed, false);
  assert.equal(await r.text(), "héllo");
  assert.equal(r.bodyUsed, true);
  assert.deepEqual(await new Response("{\"a\":[1]}").json(), { a: [1] });
  const buf = await new Response(new Uint8Array([1, 2, 3])).arrayBuffer();
  assert.ok(buf instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(buf)], [1, 2, 3]);
  const bytes = await new Response(new Uint8Array([4, 5]).buffer).bytes();
  assert.ok(bytes instanceof Uint8Array);
  assert.deepEqual([...bytes], [4, 5]);
  assert.equal(await new Response().text(), "");
  assert.equal(await new Response(new Uint8Array([0xef, 0xbb, 0xbf, 0x61])).text(), "a"); // BOM stripped
  assert.equal(new Response(null, { status: 404 }).ok, false);
});

test("reading a body twice rejects with TypeError", async () => {
  const r = new Response("once");
  assert.equal(await r.text(), "once");
  await assert.rejects(r.text(), TypeError);
  await assert.rejects(r.json(), TypeError);
  await assert.rejects(r.arrayBuffer(), TypeError);
  assert.throws(() => r.clone(), TypeError);
  const empty = new Response(null);
  await empty.text();
  assert.equal(empty.bodyUsed, false); // a null body is never "used"
  await assert.rejects(new Response("{bad json").json(), SyntaxError);
});

test("Response.clone gives an independent body", async () => {
  const r = new Response("shared", { headers: { a: "1" } });
  const c = r.clone();
  assert.equal(await r.text(), "shared");
  assert.equal(await c.text(), "shared");
  c.headers.set("a", "2");
  assert.equal(r.headers.get("a"), "1");
});

test("Response constructor validation", () => {
  assert.throws(() => new Response("", { status: 99 }), RangeError);
  assert.throws(() => new Response("", { status: 600 }), RangeError);
  assert.throws(() => new Response("body", { status: 204 }), TypeError);
  assert.throws(() => new Response("", { statusText: "bad\n" }), TypeError);
  assert.equal(new Response(null, { status: 204 }).status, 204);
  assert.equal(new Response(null, { status: 200.9 }).status, 200); // WebIDL unsigned short
});

test("Response.json, Response.error and Response.redirect", async () => {
  const j = Response.json({ hello: "world" }, { status: 202, headers: { "x-a": "b" } });
  assert.equal(j.status, 202);
  assert.equal(j.headers.get("content-type"), "application/json");
  assert.equal(j.headers.get("x-a"), "b");
  assert.deepEqual(await j.json(), { hello: "world" });
  assert.equal(Response.json("s", { headers: { "content-type": "text/x" } }).headers.get("content-type"), "text/x");
  assert.throws(() => Response.json(undefined), TypeError);
  const e = Response.error();
  assert.equal(e.type, "error");
  assert.equal(e.status, 0);
  assert.equal(e.ok, false);
  assert.throws(() => e.headers.set("a", "b"), TypeError);
  const r = Response.redirect("https://next.test/path", 307);
  assert.equal(r.status, 307);
  assert.equal(r.headers.get("location"), "https://next.test/path");
  assert.throws(() => r.headers.append("x", "y"), TypeError);
  assert.throws(() => Response.redirect("https://x.test", 200), RangeError);
  assert.throws(() => Response.redirect("/relative"), TypeError);
});

test("URLSearchParams and typed-array bodies", async () => {
  const form = new Response(new url.URLSearchParams({ q: "a b", x: "€" }));
  assert.equal(form.headers.get("content-type"), "application/x-www-form-urlencoded;charset=UTF-8");
  assert.equal(await form.text(), "q=a+b&x=%E2%82%AC");
  const source = new Uint8Array([1, 2, 3]);
  const r = new Response(source.subarray(1));
  source[1] = 99; // the body is a copy
  assert.deepEqual([...(await r.bytes())], [2, 3]);
});

// --- Request ---

test("Request normalizes and validates", async () => {
  const req = new Request("https://api.test/x?y=1#frag", { method: "post", body: "data", headers: { "X-A": "1" } });
  assert.equal(req.method, "POST");
  assert.equal(req.url, "https://api.test/x?y=1#frag");
  assert.equal(req.headers.get("x-a"), "1");
  assert.equal(req.headers.get("content-type"), "text/plain;charset=UTF-8");
  assert.equal(req.redirect, "follow");
  assert.ok(req.signal instanceof AbortSignal);
  assert.equal(await req.clone().text(), "data");
  assert.equal(await req.text(), "data");
  assert.equal(new Request("https://a.test", { method: "patch" }).method, "patch"); // not normalized
  assert.throws(() => new Request("https://a.test", { method: "GET", body: "x" }), TypeError);
  assert.throws(() => new Request("https://a.test", { method: "HEAD", body: "x" }), TypeError);
  assert.throws(() => new Request("https://a.test", { method: "CONNECT" }), TypeError);
  assert.throws(() => new Request("https://a.test", { method: "bad method" }), TypeError);
  assert.throws(() => new Request("/relative"), TypeError);
  assert.throws(() => new Request("https://user:pw@a.test"), TypeError);
  assert.throws(() => new Request("https://a.test", { signal: {} }), TypeError);
});

test("a Request's signal follows init.signal", () => {
  const controller = new AbortController();
  const req = new Request("https://a.test", { signal: controller.signal });
  assert.notEqual(req.signal, controller.signal);
  controller.abort("stop");
  assert.equal(req.signal.aborted, true);
  assert.equal(req.signal.reason, "stop");
});

test("new Request(request) takes over the body", async () => {
  const first = new Request("https://a.test", { method: "PUT", body: "payload" });
  const second = new Request(first, { headers: { "x-b": "2" } });
  assert.equal(second.method, "PUT");
  assert.equal(second.headers.get("x-b"), "2");
  assert.equal(first.bodyUsed, true);
  assert.equal(await second.text(), "payload");
  assert.throws(() => new Request(first), TypeError);
});

// --- fetch ---

test("fetch sends the request to the host op and builds the Response", async () => {
  harness.fetchHandler = () => answer();
  const res = await fetch("https://api.test/data", {
    method: "POST",
    headers: { Authorization: "none", "X-Trace": "1" },
    body: JSON.stringify({ q: 1 }),
    connection: "acme-api",
  });
  const [{ request, body }] = harness.fetchCalls;
  assert.deepEqual(request, {
    method: "POST",
    url: "https://api.test/data",
    headers: [["authorization", "none"], ["x-trace", "1"], ["content-type", "text/plain;charset=UTF-8"]],
    connection: "acme-api",
    has_body: true,
    redirect: "follow",
  });
  assert.equal(new TextDecoder().decode(body), '{"q":1}');
  assert.ok(res instanceof Response);
  assert.equal(res.status, 200);
  assert.equal(res.statusText, "OK");
  assert.equal(res.ok, true);
  assert.equal(res.url, "https://api.test/data");
  assert.equal(res.type, "basic");
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.deepEqual(res.headers.getSetCookie(), ["a=1", "b=2"]);
  assert.throws(() => res.headers.set("x", "y"), TypeError); // immutable
  assert.deepEqual(await res.json(), { ok: true });
  await assert.rejects(res.text(), TypeError);
});

test("fetch without a body or connection", async () => {
  harness.fetchHandler = () => answer({ status: 204, statusText: "No Content", body: new Uint8Array(0), redirected: true });
  const res = await fetch(new URL("https://api.test/x").href);
  const [{ request, body }] = harness.fetchCalls;
  assert.deepEqual(request, { method: "GET", url: "https://api.test/x", headers: [], connection: null, has_body: false, redirect: "follow" });
  assert.equal(body.length, 0);
  assert.equal(res.status, 204);
  assert.equal(res.redirected, true);
  assert.equal(await res.text(), "");
});

test("fetch accepts a Request and a URL object", async () => {
  harness.fetchHandler = () => answer();
  await fetch(new Request("https://api.test/r", { method: "DELETE", connection: "c1" }));
  await fetch(new url.URL("https://api.test/u"));
  assert.equal(harness.fetchCalls[0].request.method, "DELETE");
  assert.equal(harness.fetchCalls[0].request.connection, "c1");
  assert.equal(harness.fetchCalls[1].request.url, "https://api.test/u");
});

test("host refusals become TypeError with cause and code", async () => {
  const hostError = new Error("fetch_host_not_allowed: host 'evil.test' is not in this agent's permissions.fetch");
  harness.fetchHandler = () => {
    throw hostError;
  };
  await assert.rejects(fetch("https://evil.test/"), (err) => {
    assert.ok(err instanceof TypeError);
    assert.equal(err.message, `fetch failed: ${hostError.message}`);
    assert.equal(err.cause, hostError);
    assert.equal(err.code, "fetch_host_not_allowed");
    return true;
  });
  harness.fetchHandler = () => {
    throw new Error("something without a code prefix");
  };
  await assert.rejects(fetch("https://a.test/"), (err) => err instanceof TypeError && err.code === undefined);
});

test("invalid input rejects instead of throwing synchronously", async () => {
  const pending = fetch("not a url");
  assert.ok(pending instanceof Promise);
  await assert.rejects(pending, TypeError);
  await assert.rejects(fetch("https://a.test", { connection: 42 }), TypeError);
  await assert.rejects(fetch(), TypeError);
  assert.equal(harness.fetchCalls.length, 0);
});

test("fetch with an aborted signal rejects before calling the host", async () => {
  await assert.rejects(fetch("https://a.test", { signal: AbortSignal.abort() }), (e) => e instanceof DOMException && e.name === "AbortError");
  await assert.rejects(fetch("https://a.test", { signal: AbortSignal.abort("custom reason") }), (e) => e === "custom reason");
  assert.equal(harness.fetchCalls.length, 0);
});

test("aborting during fetch rejects with the signal's reason", async () => {
  let release;
  harness.fetchHandler = () => new Promise((resolve) => (release = () => resolve(answer())));
  const controller = new AbortController();
  const pending = fetch("https://slow.test", { signal: controller.signal });
  await new Promise((r) => setTimeout(r, 5));
  controller.abort();
  await assert.rejects(pending, (e) => e instanceof DOMException && e.name === "AbortError");
  release(); // the host answering late changes nothing
  const withReason = new AbortController();
  const second = fetch("https://slow.test", { signal: withReason.signal });
  withReason.abort(new Error("gave up"));
  await assert.rejects(second, { message: "gave up" });
});

test("AbortSignal.timeout aborts a slow fetch with TimeoutError", async () => {
  harness.fetchHandler = () => new Promise(() => {});
  const keepAlive = setTimeout(() => {}, 1000); // the timeout timer is unrefed
  await assert.rejects(fetch("https://slow.test", { signal: AbortSignal.timeout(10) }), { name: "TimeoutError" });
  clearTimeout(keepAlive);
});

test("a response body cannot be read once its fetch's signal aborted", async () => {
  harness.fetchHandler = () => answer();
  const controller = new AbortController();
  const res = await fetch("https://a.test", { signal: controller.signal });
  controller.abort();
  await assert.rejects(res.text(), { name: "AbortError" });
});

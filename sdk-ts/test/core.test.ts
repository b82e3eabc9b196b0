// The HTTP core without a server: a scripted fetch answers each attempt, so retries,
// timeouts, error classes, SSE parsing and archive reading are checked exactly.

import assert from "node:assert/strict";
import { test } from "node:test";
import { gzipSync } from "node:zlib";

import {
  APIConnectionError,
  APIError,
  APITimeoutError,
  APIUserAbortError,
  Atoll,
  AtollError,
  AuthenticationError,
  BadRequestError,
  ConflictError,
  InternalServerError,
  manifestOfArchive,
  NotFoundError,
  parseSSE,
  PermissionDeniedError,
  RateLimitError,
  UnprocessableEntityError,
} from "@atoll/sdk";

import { tarOf, zipOf } from "./helpers/archives.js";

type Step = Response | Error | "hang" | ((init: RequestInit) => Response | Promise<Response>);

/** A fetch that plays `steps` in order, recording each request. */
function scripted(steps: Step[]) {
  const calls: Array<{ url: string; method: string; headers: Headers; body: unknown; at: number }> = [];
  const f: typeof fetch = async (input, init = {}) => {
    calls.push({ url: String(input), method: init.method ?? "GET", headers: new Headers(init.headers), body: init.body, at: Date.now() });
    const step = steps.shift();
    if (step === undefined) throw new Error("no more scripted answers");
    if (step === "hang") {
      return new Promise<Response>((_, reject) => {
        init.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
      });
    }
    if (step instanceof Error) throw step;
    if (typeof step === "function") return step(init);
    return step;
  };
  return { fetch: f, calls };
}

const problem = (status: number, detail: string, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify({ type: `https://atoll.dev/problems/x`, title: "T", status, detail }), {
    status,
    headers: { "content-type": "application/problem+json", "x-request-id": `req-${status}`, ...headers },
  });
const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

function client(steps: Step[], options: ConstructorParameters<typeof Atoll>[0] = {}) {
  const s = scripted(steps);
  return { atoll: new Atoll({ baseUrl: "http://atoll.test", apiKey: "atl_test", fetch: s.fetch, ...options }), calls: s.calls };
}

test("each status becomes its error class, with the problem fields and x-request-id", async () => {
  const cases: Array<[number, new (...a: never[]) => APIError]> = [
    [400, BadRequestError],
    [401, AuthenticationError],
    [403, PermissionDeniedError],
    [404, NotFoundError],
    [409, ConflictError],
    [422, UnprocessableEntityError],
    [429, RateLimitError],
    [500, InternalServerError],
    [503, InternalServerError],
    [418, APIError],
  ];
  for (const [status, Class] of cases) {
    const { atoll } = client([problem(status, `detail ${status}`, { "retry-after": "1" })], { maxRetries: 0 });
    const error = await atoll.agents.get("@a/b").then(
      () => assert.fail("no error"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof Class, `${status} → ${(error as Error).name}`);
    assert.ok(error instanceof APIError && error instanceof AtollError);
    assert.equal(error.status, status);
    assert.equal(error.detail, `detail ${status}`);
    assert.equal(error.title, "T");
    assert.equal(error.type, "https://atoll.dev/problems/x");
    assert.equal(error.requestId, `req-${status}`);
    assert.equal(error.message, `${status} detail ${status}`);
    if (status === 418) assert.equal(error.constructor, APIError);
  }
});

test("5xx is retried with backoff, the same Idempotency-Key on every attempt", async () => {
  const { atoll, calls } = client([problem(503, "down"), problem(500, "oops"), json({ id: "run_1", status: "queued" }, 202)]);
  const run = await atoll.runs.create("@acme/x", { input: { a: 1 } });
  assert.equal(run.id, "run_1");
  assert.equal(calls.length, 3);
  const keys = calls.map((c) => c.headers.get("idempotency-key"));
  assert.ok(keys[0] && keys.every((k) => k === keys[0]), keys.join());
  assert.deepEqual(calls.map((c) => c.headers.get("x-atoll-retry-count")), [null, "1", "2"]);
  // Exponential: the second wait is longer than the first (0.375–0.5 s, then 0.75–1 s).
  const waits = [calls[1]!.at - calls[0]!.at, calls[2]!.at - calls[1]!.at];
  assert.ok(waits[0]! >= 350 && waits[1]! >= 700 && waits[1]! > waits[0]!, waits.join());
  // A new call gets a new key; a given key is sent as is.
  const second = client([json({ id: "run_2" }, 202)]);
  await second.atoll.runs.create("@acme/x", {}, { idempotencyKey: "mine-1" });
  assert.equal(second.calls[0]!.headers.get("idempotency-key"), "mine-1");
  assert.notEqual(second.calls[0]!.headers.get("idempotency-key"), keys[0]);
});

test("maxRetries bounds the attempts; 4xx other than 408/429 is never retried", async () => {
  const { atoll, calls } = client([problem(502, "a"), problem(502, "b")], { maxRetries: 1 });
  await assert.rejects(atoll.runs.get("run_1"), InternalServerError);
  assert.equal(calls.length, 2);
  for (const status of [400, 401, 403, 404, 409, 422]) {
    const c = client([problem(status, "no")]);
    await assert.rejects(c.atoll.runs.get("run_1"), APIError);
    assert.equal(c.calls.length, 1, `${status} was not retried`);
  }
  const timeout = client([problem(408, "slow"), json({ id: "run_1" })]);
  assert.equal((await timeout.atoll.runs.get("run_1")).id, "run_1");
  assert.equal(timeout.calls.length, 2);
});

test("retry-after is honoured, as seconds and as an HTTP date", async () => {
  const seconds = client([problem(429, "slow down", { "retry-after": "1" }), json({ id: "run_1" })]);
  await seconds.atoll.runs.get("run_1");
  assert.ok(seconds.calls[1]!.at - seconds.calls[0]!.at >= 990);
  const date = new Date(Date.now() + 2_000).toUTCString();
  const dated = client([problem(503, "later", { "retry-after": date }), json({ id: "run_1" })]);
  await dated.atoll.runs.get("run_1");
  const waited = dated.calls[1]!.at - dated.calls[0]!.at;
  assert.ok(waited >= 900 && waited <= 2_100, `waited ${waited}`);
  // Over a minute: the backoff instead (the server's number is an upper bound, e.g. a slot's TTL).
  const long = client([problem(429, "much later", { "retry-after": "150" }), json({ id: "run_1" })]);
  await long.atoll.runs.get("run_1");
  assert.ok(long.calls[1]!.at - long.calls[0]!.at < 1_000);
});

test("connection errors are retried, then surface as APIConnectionError", async () => {
  const flaky = client([new TypeError("fetch failed"), json({ id: "run_1" })]);
  assert.equal((await flaky.atoll.runs.get("run_1")).id, "run_1");
  const dead = client([new TypeError("fetch failed"), new TypeError("fetch failed")], { maxRetries: 1 });
  const error = await dead.atoll.runs.get("run_1").then(
    () => assert.fail("no error"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof APIConnectionError && !(error instanceof APITimeoutError));
  assert.equal(error.status, undefined);
  assert.equal(dead.calls.length, 2);
});

test("timeout applies per attempt (APITimeoutError, retried); a caller's abort stops everything", async () => {
  const slow = client(["hang", json({ id: "run_1" })], { timeout: 100 });
  const started = Date.now();
  assert.equal((await slow.atoll.runs.get("run_1")).id, "run_1");
  assert.ok(Date.now() - started >= 100);
  const stuck = client(["hang", "hang"], { timeout: 50, maxRetries: 1 });
  await assert.rejects(stuck.atoll.runs.get("run_1"), APITimeoutError);
  assert.equal(stuck.calls.length, 2);

  const controller = new AbortController();
  const aborted = client(["hang", json({})]);
  setTimeout(() => controller.abort(), 50);
  await assert.rejects(aborted.atoll.runs.get("run_1", { signal: controller.signal }), APIUserAbortError);
  assert.equal(aborted.calls.length, 1);
});

test("requests carry the key, the end-user, JSON bodies; only POSTs get an Idempotency-Key", async () => {
  const { atoll, calls } = client([json({ key: "k", value: 1 }), json({ key: "k", value: 1 }), json({ id: "run_1" })], {
    endUser: "alice",
  });
  await atoll.memory.set("end_user", "k", 1);
  await atoll.memory.get("end_user", "k");
  await atoll.runs.cancel("run_1");
  assert.deepEqual(calls.map((c) => c.method), ["PUT", "GET", "POST"]);
  assert.equal(calls[0]!.url, "http://atoll.test/v1/memory/end_user/k");
  assert.equal(calls[0]!.body, "1");
  assert.equal(calls[0]!.headers.get("content-type"), "application/json");
  assert.equal(calls[0]!.headers.get("idempotency-key"), null);
  assert.equal(calls[1]!.headers.get("idempotency-key"), null);
  assert.ok(calls[2]!.headers.get("idempotency-key"));
  for (const c of calls) {
    assert.equal(c.headers.get("authorization"), "Bearer atl_test");
    assert.equal(c.headers.get("x-atoll-end-user"), "alice");
  }
});

test("agent names: @scope/name and scope/name give the same path; others are refused", async () => {
  const { atoll, calls } = client([json({}), json({})]);
  await atoll.agents.get("@acme/triage");
  await atoll.agents.get("acme/triage");
  assert.deepEqual(calls.map((c) => new URL(c.url).pathname), ["/v1/agents/acme/triage", "/v1/agents/acme/triage"]);
  for (const bad of ["triage", "@acme/", "/triage", "a/b/c"]) assert.throws(() => atoll.agents.get(bad), TypeError);
});

test("lists: for await walks pages by next_cursor with the same filters", async () => {
  const { atoll, calls } = client([
    json({ data: [{ id: "r3" }, { id: "r2" }], next_cursor: "c1" }),
    json({ data: [{ id: "r1" }], next_cursor: null }),
  ]);
  const ids = [];
  for await (const run of atoll.runs.list({ agent: "@a/b", limit: 2 })) ids.push(run.id);
  assert.deepEqual(ids, ["r3", "r2", "r1"]);
  const queries = calls.map((c) => Object.fromEntries(new URL(c.url).searchParams));
  assert.deepEqual(queries, [
    { agent: "@a/b", limit: "2" },
    { agent: "@a/b", limit: "2", cursor: "c1" },
  ]);
});

test("parseSSE: CRLF, CR and LF line ends, split chunks, multi-line data, comments, retry", async () => {
  const text =
    ": keep-alive\r\n\r\nid: 1\r\nevent: log\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nid: 2\revent: emit\rdata: x\r\rretry: 1500\nid: 3\nevent: end\ndata: {}\n\nid: 4\nevent: cut\ndata: never finished";
  // Feed it one byte at a time: every boundary is a chunk boundary somewhere.
  const bytes = new TextEncoder().encode(text);
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const b of bytes) controller.enqueue(new Uint8Array([b]));
      controller.close();
    },
  });
  const events = [];
  for await (const e of parseSSE(body)) events.push(e);
  assert.deepEqual(
    events.map((e) => [e.id, e.event, e.data]),
    [
      ["1", "log", '{"a":\n1}'],
      ["2", "emit", "x"],
      ["3", "end", "{}"],
    ],
  );
  assert.equal(events[2]!.retry, 1500);
});

test("manifestOfArchive reads agent.json from a .tar.gz (also in one wrapping folder) and a .zip", () => {
  const manifest = { name: "@acme/a", version: "1.2.3" };
  const flat = { "agent.json": JSON.stringify(manifest), "main.js": "export default () => 1;" };
  const wrapped = { "pkg/agent.json": JSON.stringify(manifest), "pkg/main.js": "export default () => 1;" };
  assert.deepEqual(manifestOfArchive(gzipSync(tarOf(flat))), manifest);
  assert.deepEqual(manifestOfArchive(gzipSync(tarOf(wrapped))), manifest);
  assert.deepEqual(manifestOfArchive(zipOf(flat)), manifest);
  assert.deepEqual(manifestOfArchive(zipOf(wrapped)), manifest);
  assert.throws(() => manifestOfArchive(Buffer.from("plain text")), /not a package archive/);
  assert.throws(() => manifestOfArchive(gzipSync(tarOf({ "main.js": "x" }))), /no agent.json/);
});

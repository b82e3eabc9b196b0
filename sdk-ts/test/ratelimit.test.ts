// A real 429, retried: a server that allows 4 requests a minute per API key. The fifth
// request (a run start) is refused with retry-after; the SDK waits that long and sends it
// again with the same Idempotency-Key, and the run is created once.
// (This test waits for the server's one-minute window to end: about a minute.)

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Atoll, RateLimitError } from "@atoll/sdk";

import { echo, slow } from "./helpers/agents.js";
import { recordingFetch } from "./helpers/record.js";
import { startServer, type TestServer } from "./helpers/server.js";

let server: TestServer;
let busy: TestServer;

before(async () => {
  [server, busy] = await Promise.all([
    startServer({ ATOLL_RATE_PER_MINUTE: "4" }),
    startServer({ ATOLL_CONCURRENT_RUNS: "1" }),
  ]);
});

after(async () => {
  await Promise.all([server?.stop(), busy?.stop()]);
});

test("a 429 with retry-after is retried after that wait, with the same Idempotency-Key, and succeeds once", { timeout: 150_000 }, async () => {
  const recorder = recordingFetch();
  const atoll = new Atoll({ baseUrl: server.url, apiKey: server.appKey, fetch: recorder.fetch });
  // Requests 1 to 4 of this key's minute.
  await atoll.agents.upload(echo);
  await atoll.agents.get("@sdk/echo");
  await atoll.agents.versions("@sdk/echo").then((p) => p.data);
  await atoll.runs.list().then((p) => p.data);

  // The fifth: refused, then retried once the window ends.
  const started = Date.now();
  const run = await atoll.runs.create("@sdk/echo", { input: { n: 1 } }, { wait: 30 });
  assert.equal(run.status, "succeeded");

  const attempts = recorder.sent.filter((s) => s.method === "POST" && s.url.includes("/runs"));
  assert.equal(attempts.length, 2, JSON.stringify(attempts.map((a) => a.status)));
  const [refused, retried] = attempts as [(typeof attempts)[0], (typeof attempts)[0]];
  assert.equal(refused.status, 429);
  const retryAfter = Number(refused.responseHeaders?.["retry-after"]);
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `retry-after ${retryAfter}`);
  assert.equal(retried.status, 200);
  // The same key on both attempts, and one the SDK made up (none was given).
  const key = refused.headers["idempotency-key"];
  assert.ok(key && key.length > 8);
  assert.equal(retried.headers["idempotency-key"], key);
  assert.equal(retried.headers["x-atoll-retry-count"], "1");
  // retry-after was honoured (it is whole seconds, rounded up).
  assert.ok(retried.at - refused.at >= (retryAfter - 1) * 1000, `waited ${retried.at - refused.at} ms`);
  assert.ok(Date.now() - started < 75_000);
  // One run, not two.
  const runs = await atoll.runs.list({ agent: "@sdk/echo" }).toArray();
  assert.deepEqual(runs.map((r) => r.id), [run.id]);
});

test("with maxRetries: 0 the 429 surfaces as a RateLimitError with retryAfter and the problem fields", async () => {
  const atoll = new Atoll({ baseUrl: server.url, apiKey: server.appKey, maxRetries: 0 });
  // The previous test spent this key's minute again (4 requests after the retry); make sure.
  let error: unknown;
  for (let i = 0; i < 6 && !error; i++) {
    await atoll.runs.list().then(
      () => {},
      (e: unknown) => (error = e),
    );
  }
  assert.ok(error instanceof RateLimitError, String(error));
  assert.equal(error.status, 429);
  assert.equal(error.title, "Too many requests");
  assert.match(error.detail ?? "", /requests per minute/);
  assert.ok((error.retryAfter ?? 0) >= 1);
  assert.ok(error.requestId);
});

test(
  "a run start refused for concurrency (429) is retried with the same key and succeeds once the slot is free",
  { timeout: 60_000 },
  async () => {
    const recorder = recordingFetch();
    const atoll = new Atoll({ baseUrl: busy.url, apiKey: busy.appKey, maxRetries: 4, fetch: recorder.fetch });
    await atoll.agents.upload(slow);
    await atoll.runs.create("@sdk/slow", { input: { ms: 1500 } });
    const second = await atoll.runs.create("@sdk/slow", { input: { ms: 10 } });
    const attempts = recorder.sent.filter((s) => s.method === "POST" && s.url.includes("/runs")).slice(1);
    assert.equal(attempts[0]?.status, 429);
    // Every attempt carried the same key, and the one that succeeded was not a replay.
    const keys = new Set(attempts.map((a) => a.headers["idempotency-key"]));
    assert.equal(keys.size, 1, JSON.stringify(attempts));
    const last = attempts[attempts.length - 1];
    assert.equal(last?.status, 202, JSON.stringify(attempts));
    assert.equal(last?.responseHeaders?.["idempotent-replayed"], undefined);
    assert.ok(second.id);
  },
);

// runs.stream() when the connection is cut mid-run: a TCP proxy between the SDK and the
// server destroys the first event-stream connections a few events in (halfway through
// the next event). The stream must reconnect with Last-Event-ID and deliver every event
// once, ids strictly increasing, exactly what the run's full history holds.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Atoll, type RunEvent } from "@atoll/sdk";

import { chatty } from "./helpers/agents.js";
import { cuttingProxy, type CuttingProxy } from "./helpers/proxy.js";
import { recordingFetch } from "./helpers/record.js";
import { startServer, type TestServer } from "./helpers/server.js";

let server: TestServer;

before(async () => {
  server = await startServer();
  await server.app.agents.upload(chatty);
});

after(async () => {
  await server?.stop();
});

async function collect(stream: AsyncIterable<RunEvent>): Promise<RunEvent[]> {
  const out: RunEvent[] = [];
  for await (const event of stream) out.push(event);
  return out;
}

function checkHistory(events: RunEvent[], count: number): void {
  const ids = events.map((e) => e.id);
  for (let i = 1; i < ids.length; i++) {
    const [prev, id] = [ids[i - 1], ids[i]];
    assert.ok(typeof id === "number" && typeof prev === "number" && id > prev, `ids strictly increase: ${ids.join(",")}`);
  }
  const ticks = events.flatMap((e) => (e.event === "emit" ? [(e.data.data as { i: number }).i] : []));
  assert.deepEqual(ticks, [...Array(count).keys()], "every tick once, in order");
  const logs = events.flatMap((e) => (e.event === "log" ? [e.data.message] : []));
  assert.deepEqual(logs, [...Array(count).keys()].map((i) => `tick ${i}`));
  assert.equal(events.at(-1)?.event, "end");
}

let proxy: CuttingProxy | undefined;
after(async () => {
  await proxy?.close();
});

test("a stream cut twice mid-run resumes with Last-Event-ID: nothing lost, nothing repeated", async () => {
  const count = 30;
  proxy = await cuttingProxy({ host: "127.0.0.1", port: server.port }, { cuts: 2, afterEvents: 4 });
  const recorder = recordingFetch();
  const viaProxy = new Atoll({ baseUrl: proxy.url, apiKey: server.appKey, fetch: recorder.fetch });
  const run = await viaProxy.runs.create("@sdk/chatty", { input: { count, gap_ms: 60 } });

  const stream = viaProxy.runs.stream(run.id);
  const events = await collect(stream);
  assert.equal(proxy.cut, 2, `the proxy cut two event streams: ${JSON.stringify(proxy.connections)}`);
  assert.equal(stream.connections, 3, "the SDK opened the stream three times");
  checkHistory(events, count);

  // Each reconnection asked for what followed the last event it had received.
  const opened = recorder.sent.filter((s) => s.url.includes("/events"));
  assert.equal(opened.length, 3);
  assert.equal(opened[0]?.headers["last-event-id"], undefined);
  const resumedAt = opened.slice(1).map((s) => Number(s.headers["last-event-id"]));
  assert.ok(resumedAt[0]! >= 4 && resumedAt[1]! > resumedAt[0]!, `resumed after ${resumedAt.join(", ")}`);
  for (const id of resumedAt) assert.ok(events.some((e) => e.id === id), `event ${id} was received before the cut`);

  // The cuts happened while the run was still going: the resumes were live, not a
  // replay of a finished run.
  const finished = await server.app.runs.get(run.id);
  assert.equal(finished.status, "succeeded");
  assert.ok(proxy.cutAt[1]! < finished.finished_at!, "the second cut came before the run finished");

  // Exactly what the whole stored history holds, read again without a proxy.
  const full = await collect(server.app.runs.stream(run.id));
  assert.deepEqual(
    events.map((e) => [e.id, e.event]),
    full.map((e) => [e.id, e.event]),
  );
});

test("a stream resumed from an explicit lastEventId starts right after it", async () => {
  const run = await server.app.runs.create("@sdk/chatty", { input: { count: 3, gap_ms: 1 } }, { wait: 30 });
  const full = await collect(server.app.runs.stream(run.id));
  const third = full[2];
  assert.ok(third && typeof third.id === "number");
  const rest = await collect(server.app.runs.stream(run.id, { lastEventId: third.id }));
  assert.deepEqual(
    rest.map((e) => e.id),
    full.slice(3).map((e) => e.id),
  );
});

test("a stream of an unknown run throws NotFoundError instead of reconnecting", async () => {
  const stream = server.app.runs.stream("run_00000000000000000000000000000000");
  await assert.rejects(collect(stream), (e: unknown) => (e as { status?: number }).status === 404);
  assert.equal(stream.connections, 0);
});

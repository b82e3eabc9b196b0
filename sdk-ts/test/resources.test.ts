// Every resource of the SDK against a real `atoll serve`, plus pagination, errors with
// their problem fields, impersonation and upload formats.

import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { join } from "node:path";

import {
  Atoll,
  APIError,
  AuthenticationError,
  BadRequestError,
  ConflictError,
  NotFoundError,
  PermissionDeniedError,
  UnprocessableEntityError,
  verifyWebhook,
  type Run,
} from "@atoll/sdk";
import { Webhook } from "standardwebhooks";

import { chatty, echo, slow, waiter } from "./helpers/agents.js";
import { tarOf, zipOf } from "./helpers/archives.js";
import { SDK_DIR, startServer, type TestServer } from "./helpers/server.js";

let server: TestServer;
let atoll: Atoll;

before(async () => {
  server = await startServer({ ATOLL_WEBHOOK_POLL_MS: "50", ATOLL_WEBHOOK_RETRY_DELAYS: "30s,30s" });
  atoll = server.app;
  for (const pkg of [echo, chatty, slow, waiter]) await atoll.agents.upload(pkg);
});

after(async () => {
  await server?.stop();
});

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("orgs, apps and API keys", () => {
  test("orgs.create returns the org and its first key; orgs.get reads it", async () => {
    const created = await server.admin.orgs.create({ name: "second org" });
    assert.match(created.org.id, /^org_/);
    assert.match(created.key.secret ?? "", /^atl_/);
    const org = await server.admin.orgs.get(created.org.id);
    assert.equal(org.name, "second org");
    // The org's own key sees it; another org's key gets 404.
    const own = new Atoll({ baseUrl: server.url, apiKey: created.key.secret as string });
    assert.equal((await own.orgs.get(created.org.id)).id, created.org.id);
    await assert.rejects(server.org.orgs.get(created.org.id), NotFoundError);
  });

  test("apps.create, apps.list, apps.get", async () => {
    const app = await server.org.apps.create({ name: "listed app", settings: { tier: "test" } });
    assert.match(app.id, /^app_/);
    assert.deepEqual((await server.org.apps.get(app.id)).settings, { tier: "test" });
    const ids = (await server.org.apps.list().toArray()).map((a) => a.id);
    assert.ok(ids.includes(app.id) && ids.includes(server.appId), ids.join());
  });

  test("apiKeys.create shows the secret once, list shows the prefix, revoke stops the key", async () => {
    const key = await server.org.apiKeys.create({ name: "temp", app_id: server.appId, scopes: ["runs:read"] });
    assert.match(key.secret ?? "", /^atl_/);
    const listed = (await server.org.apiKeys.list().toArray()).find((k) => k.id === key.id);
    assert.ok(listed, "the new key is listed");
    assert.equal(listed.prefix, (key.secret as string).slice(0, 12));
    assert.equal("secret" in listed, false);
    const temp = server.client({ apiKey: key.secret as string });
    await temp.runs.list().then((p) => p.data);
    // A runs:read key may not write.
    await assert.rejects(temp.runs.create("@sdk/echo", { input: { n: 1 } }), PermissionDeniedError);
    await server.org.apiKeys.revoke(key.id);
    await assert.rejects(temp.runs.list().then((p) => p.data), AuthenticationError);
  });

  test("an app key cannot revoke its app's last * key (ConflictError); an org key can", async () => {
    const app = await server.org.apps.create({ name: "one key" });
    const only = await server.org.apiKeys.create({ name: "only", app_id: app.id });
    const itself = new Atoll({ baseUrl: server.url, apiKey: only.secret as string });
    const error = await itself.apiKeys.revoke(only.id).then(
      () => assert.fail("revoked the last key"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ConflictError);
    assert.equal(error.status, 409);
    // A leaked app key is revoked at once by the org.
    await server.org.apiKeys.revoke(only.id);
    const refused = await itself.apps.list().toArray().then(
      () => assert.fail("the revoked key still works"),
      (e: unknown) => e,
    );
    assert.ok(refused instanceof AuthenticationError, String(refused));
  });
});

describe("agents", () => {
  test("list, get, versions, version", async () => {
    const names = (await atoll.agents.list().toArray()).map((a) => a.name);
    for (const n of ["@sdk/echo", "@sdk/chatty", "@sdk/slow", "@sdk/waiter"]) assert.ok(names.includes(n), n);
    const agent = await atoll.agents.get("@sdk/echo");
    assert.equal(agent.latest_version, "1.0.0");
    assert.equal(agent.description, "returns its input");
    const versions = await atoll.agents.versions("sdk/echo").toArray();
    assert.deepEqual(versions.map((v) => v.version), ["1.0.0"]);
    const detail = await atoll.agents.version("@sdk/echo", "1.0.0");
    assert.equal(detail.manifest.name, "@sdk/echo");
    assert.match(detail.digest, /^[0-9a-f]{64}$/);
  });

  test("upload from JSON: 201 new, 200 the same again, ConflictError for other content, 422 names the file", async () => {
    const pkg = {
      manifest: { name: "@sdk/json-up", version: "0.1.0", permissions: {} },
      files: { "main.js": "export default async () => 1;\n" },
    };
    const first = await atoll.agents.upload(pkg).withResponse();
    assert.equal(first.response.status, 201);
    assert.equal(first.data.version, "0.1.0");
    const again = await atoll.agents.upload(pkg).withResponse();
    assert.equal(again.response.status, 200);
    await assert.rejects(
      atoll.agents.upload({ ...pkg, files: { "main.js": "export default async () => 2;\n" } }),
      ConflictError,
    );
    const error = await atoll.agents
      .upload({ manifest: { name: "@sdk/bad", version: "1.0.0" }, files: { "main.js": 'import x from "lodash";\n' } })
      .then(
        () => assert.fail("a bare import was accepted"),
        (e: unknown) => e,
      );
    assert.ok(error instanceof UnprocessableEntityError, String(error));
    assert.equal(error.status, 422);
    assert.equal(error.title, "Invalid agent package");
    assert.match(error.detail ?? "", /main\.js/);
    assert.match(error.type ?? "", /^https:\/\/atoll\.dev\/problems\//);
  });

  test("upload a .tar.gz and a .zip buffer (path read from the archive's agent.json)", async () => {
    const files = (version: string) => ({
      "pkg/agent.json": JSON.stringify({ name: "@sdk/archived", version, permissions: {} }),
      "pkg/main.js": `export default async () => ({ v: "${version}" });\n`,
    });
    const tgz = gzipSync(tarOf(files("1.0.0")));
    const fromTar = await atoll.agents.upload(tgz).withResponse();
    assert.equal(fromTar.response.status, 201);
    assert.equal(fromTar.data.name, "@sdk/archived");
    const zip = zipOf(files("2.0.0"));
    const fromZip = await atoll.agents.upload(zip.buffer.slice(zip.byteOffset, zip.byteOffset + zip.byteLength) as ArrayBuffer);
    assert.equal(fromZip.version, "2.0.0");
    const run = await atoll.runs.create("@sdk/archived", { input: {}, version: "1.0.0" }, { wait: 30 });
    assert.deepEqual(run.output, { v: "1.0.0" });
    const latest = await atoll.runs.create("@sdk/archived", { input: {} }, { wait: 30 });
    assert.deepEqual(latest.output, { v: "2.0.0" });
  });

  test("updateVersion deprecates (latest skips it) and undeprecates; deleteVersion removes an unused version, 409 for a used one", async () => {
    const v = (version: string) => ({
      manifest: { name: "@sdk/versioned", version, permissions: {} },
      files: { "main.js": `export default async () => "${version}";\n` },
    });
    await atoll.agents.upload(v("1.0.0"));
    await atoll.agents.upload(v("2.0.0"));
    assert.equal((await atoll.agents.get("@sdk/versioned")).latest_version, "2.0.0");
    const deprecated = await atoll.agents.updateVersion("@sdk/versioned", "2.0.0", { deprecated: true });
    assert.equal(typeof deprecated.deprecated_at, "number");
    assert.equal((await atoll.agents.get("@sdk/versioned")).latest_version, "1.0.0");
    assert.equal((await atoll.runs.create("@sdk/versioned", {}, { wait: 30 })).output, "1.0.0");
    // A pinned run still runs a deprecated version.
    assert.equal((await atoll.runs.create("@sdk/versioned", { version: "2.0.0" }, { wait: 30 })).output, "2.0.0");
    await atoll.agents.updateVersion("@sdk/versioned", "2.0.0", { deprecated: false });
    assert.equal((await atoll.agents.get("@sdk/versioned")).latest_version, "2.0.0");

    const trigger = await atoll.triggers.create("@sdk/versioned", { type: "webhook", verify: "github", version: "1.0.0" });
    await assert.rejects(atoll.agents.deleteVersion("@sdk/versioned", "1.0.0"), ConflictError);
    await atoll.triggers.delete("@sdk/versioned", trigger.id);
    const deleted = await atoll.agents.deleteVersion("@sdk/versioned", "2.0.0").withResponse();
    assert.equal(deleted.response.status, 204);
    assert.deepEqual((await atoll.agents.versions("@sdk/versioned").toArray()).map((x) => x.version), ["1.0.0"]);
    await assert.rejects(atoll.agents.version("@sdk/versioned", "2.0.0"), NotFoundError);
  });

  test("uploadDir reads agents/hello, which runs, and agents/support-bot, which passes the package check", async () => {
    const bot = await atoll.agents.uploadDir(join(SDK_DIR, "..", "agents", "support-bot"));
    assert.equal(bot.name, "@atoll/support-bot");
    const uploaded = await atoll.agents.uploadDir(join(SDK_DIR, "..", "agents", "hello"));
    assert.equal(uploaded.name, "@atoll/hello");
    const run = await atoll.runs.create("@atoll/hello", { input: { name: "Ada" } }, { wait: 30 });
    assert.equal(run.status, "succeeded");
    assert.deepEqual(run.output, { greeting: "Hello, Ada!", run_id: run.id });
  });
});

describe("runs", () => {
  test("create with wait answers 200 and the finished run; without, 202 queued; get and wait", async () => {
    const done = await atoll.runs.create("@sdk/echo", { input: { n: 7 }, metadata: { from: "sdk" } }, { wait: 30 }).withResponse();
    assert.equal(done.response.status, 200);
    assert.equal(done.data.status, "succeeded");
    assert.deepEqual(done.data.output, { echoed: { n: 7 } });
    assert.deepEqual(done.data.metadata, { from: "sdk" });
    assert.equal(done.data.trigger, "api");

    const queued = await atoll.runs.create("sdk/slow", { input: { ms: 300 } }).withResponse();
    assert.equal(queued.response.status, 202);
    assert.ok(["queued", "running"].includes(queued.data.status), queued.data.status);
    const finished = await atoll.runs.wait(queued.data.id);
    assert.equal(finished.status, "succeeded");
    const got = await atoll.runs.get(queued.data.id);
    assert.equal(got.id, queued.data.id);
    assert.equal(typeof got.journal_length, "number");
  });

  test("list filters by agent and status; an org key lists an app's runs with app_id", async () => {
    const run = await atoll.runs.create("@sdk/echo", { input: { n: 11 } }, { wait: 30 });
    const mine = await atoll.runs.list({ agent: "@sdk/echo", status: "succeeded", limit: 200 }).toArray();
    assert.ok(mine.some((r) => r.id === run.id));
    assert.ok(mine.every((r) => r.agent === "@sdk/echo" && r.status === "succeeded"));
    const failed = await atoll.runs.list({ agent: "sdk/echo", status: "failed" }).toArray();
    assert.equal(failed.length, 0);
    const viaOrg = await server.org.runs.get(run.id, { app_id: server.appId });
    assert.equal(viaOrg.id, run.id);
  });

  test("cancel a running run", async () => {
    const run = await atoll.runs.create("@sdk/slow", { input: { ms: 20_000 } });
    await until("the run to start", async () => ((await atoll.runs.get(run.id)).status === "running" ? true : undefined));
    const cancelled = await atoll.runs.cancel(run.id);
    assert.equal(cancelled.status, "cancelled");
  });

  test("signal wakes a waiting run; journal lists its positions; signal after the end is a ConflictError", async () => {
    const run = await atoll.runs.create("@sdk/waiter", { input: {} });
    const waiting = await until("the run to wait", async () => {
      const r = await atoll.runs.get(run.id);
      return r.status === "waiting" ? r : undefined;
    });
    assert.equal(waiting.wait?.signal, "go");
    const journal = await atoll.runs.journal(run.id);
    assert.ok(journal.length >= 1, JSON.stringify(journal));
    assert.ok(journal.data.every((e) => typeof e.op === "string" && typeof e.seq === "number"));
    // Page by page: one entry a page gives every entry, in order, once.
    const seqs: number[] = [];
    for await (const entry of atoll.runs.journalEntries(run.id, { limit: 1 })) seqs.push(entry.seq);
    assert.deepEqual(seqs, journal.data.map((e) => e.seq));
    const signalled = await atoll.runs.signal(run.id, "go", { ok: 1 }).withResponse();
    assert.equal(signalled.response.status, 202);
    const done = await atoll.runs.wait(run.id);
    assert.equal(done.status, "succeeded");
    assert.deepEqual(done.output, { got: { ok: 1 } });
    await assert.rejects(atoll.runs.signal(run.id, "go", {}), ConflictError);
  });

  test("stream yields typed events from status to end", async () => {
    const run = await atoll.runs.create("@sdk/chatty", { input: { count: 3, gap_ms: 5 } });
    const events = [];
    for await (const event of atoll.runs.stream(run.id)) {
      events.push(event);
      if (event.event === "emit") assert.equal(event.data.type, "tick");
      if (event.event === "log") assert.match(event.data.message, /^tick \d$/);
    }
    const kinds = events.map((e) => e.event);
    assert.equal(kinds.at(-1), "end");
    assert.equal(kinds.filter((k) => k === "emit").length, 3);
    assert.equal(kinds.filter((k) => k === "log").length, 3);
    assert.ok(kinds.includes("output"));
    const output = events.find((e) => e.event === "output");
    assert.deepEqual(output?.event === "output" ? output.data.output : undefined, { count: 3 });
  });
});

describe("pagination", () => {
  test("runs.list walks every page with for await, pages(), and getNextPage()", async () => {
    const made: Run[] = [];
    for (let n = 0; n < 5; n++) made.push(await atoll.runs.create("@sdk/echo", { input: { n: 100 + n } }));
    const ids = new Set(made.map((r) => r.id));
    const params = { agent: "@sdk/echo", limit: 2 } as const;

    const all = [];
    for await (const run of atoll.runs.list(params)) all.push(run.id);
    assert.equal(new Set(all).size, all.length, "no run twice");
    for (const id of ids) assert.ok(all.includes(id), `${id} listed`);

    let pages = 0;
    for await (const page of atoll.runs.list(params).pages()) {
      pages++;
      assert.ok(page.data.length <= 2);
    }
    assert.ok(pages >= 3, `${pages} pages`);

    const first = await atoll.runs.list(params);
    assert.equal(first.data.length, 2);
    assert.ok(first.hasNextPage());
    const second = await first.getNextPage();
    assert.equal(second.data.length, 2);
    assert.notDeepEqual(second.data.map((r) => r.id), first.data.map((r) => r.id));
    // Newest first, across the page boundary.
    const created = [...first.data, ...second.data].map((r) => r.created_at);
    assert.deepEqual(created, [...created].sort((a, b) => b - a));
  });

  test("memory.list pages by key", async () => {
    for (const k of ["p-a", "p-b", "p-c", "p-d", "p-e"]) await atoll.memory.set("app", k, { k });
    const keys = [];
    for await (const entry of atoll.memory.list("app", { prefix: "p-", limit: 2 })) keys.push(entry.key);
    assert.deepEqual(keys, ["p-a", "p-b", "p-c", "p-d", "p-e"]);
  });
});

describe("memory", () => {
  test("set, get, list, delete in app and end_user scope", async () => {
    const set = await atoll.memory.set("app", "greeting", { hello: "world" });
    assert.deepEqual(set, { key: "greeting", value: { hello: "world" } });
    assert.deepEqual((await atoll.memory.get("app", "greeting")).value, { hello: "world" });
    await atoll.memory.set("end_user", "color", "blue", { end_user: "alice" });
    assert.equal((await atoll.memory.get("end_user", "color", { end_user: "alice" })).value, "blue");
    await assert.rejects(atoll.memory.get("end_user", "color", { end_user: "bob" }), NotFoundError);
    const listed = await atoll.memory.list("end_user", { end_user: "alice" }).toArray();
    assert.deepEqual(listed.map((e) => e.key), ["color"]);
    await atoll.memory.delete("end_user", "color", { end_user: "alice" });
    await assert.rejects(atoll.memory.get("end_user", "color", { end_user: "alice" }), NotFoundError);
  });

  test("a client acting for an end-user (endUser) reads its memory and may not write the app's", async () => {
    const alice = atoll.withOptions({ endUser: "alice" });
    await alice.memory.set("end_user", "note", "mine");
    assert.equal((await atoll.memory.get("end_user", "note", { end_user: "alice" })).value, "mine");
    await assert.rejects(alice.memory.set("app", "shared", 1), PermissionDeniedError);
    const run = await alice.runs.create("@sdk/echo", { input: { n: 1 } }, { wait: 30 });
    assert.equal(run.end_user, "alice");
  });
});

describe("connections and tools", () => {
  test("connections.put, get, list, delete; the secret never comes back", async () => {
    const put = await atoll.connections.put("helpdesk", {
      type: "header",
      name: "x-api-key",
      value: "hd_live_very_secret",
      hosts: ["helpdesk.example.com"],
    }).withResponse();
    assert.equal(put.response.status, 201);
    assert.equal(put.data.type, "header");
    assert.equal(put.data.header, "x-api-key");
    assert.ok(put.data.fingerprint);
    const got = await atoll.connections.get("helpdesk");
    assert.deepEqual(got.hosts, ["helpdesk.example.com"]);
    assert.equal(JSON.stringify(got).includes("hd_live_very_secret"), false);
    const names = (await atoll.connections.list().toArray()).map((c) => c.name);
    assert.ok(names.includes("helpdesk"));
    await atoll.connections.delete("helpdesk");
    await assert.rejects(atoll.connections.get("helpdesk"), NotFoundError);
  });

  test("tools.put, get, list, delete", async () => {
    const tool = await atoll.tools.put("lookup_customer", {
      description: "Looks a customer up by id",
      input_schema: { type: "object", properties: { id: { type: "string" } }, required: ["id"] },
      url: "https://crm.example.com/lookup",
    });
    assert.equal(tool.name, "lookup_customer");
    assert.equal(tool.method, "POST");
    assert.equal((await atoll.tools.get("lookup_customer")).url, "https://crm.example.com/lookup");
    assert.deepEqual((await atoll.tools.list().toArray()).map((t) => t.name), ["lookup_customer"]);
    await atoll.tools.delete("lookup_customer");
    assert.deepEqual(await atoll.tools.list().toArray(), []);
  });
});

describe("triggers", () => {
  test("a standard webhook trigger starts a run when signed, not when tampered; pause, resume, rotate, delete", async () => {
    const trigger = await atoll.triggers.create("@sdk/echo", { type: "webhook", verify: "standard", input_pointer: "/data" });
    assert.equal(trigger.type, "webhook");
    assert.match(trigger.secret ?? "", /^whsec_/);
    const url = atoll.triggers.url(trigger);
    assert.equal(url, `${server.url}/v1/hooks/${trigger.id}`);

    const send = async (secret: string, msgId: string, body: string, tamper = false) => {
      const sig = new Webhook(secret).sign(msgId, new Date(), body);
      return fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "webhook-id": msgId,
          "webhook-timestamp": String(Math.floor(Date.now() / 1000)),
          "webhook-signature": sig,
        },
        body: tamper ? body.replace("5", "6") : body,
      });
    };
    const body = JSON.stringify({ data: { n: 5 } });
    const ok = await send(trigger.secret as string, "msg_1", body);
    assert.equal(ok.status, 202);
    const { run_id } = (await ok.json()) as { run_id: string };
    const run = await atoll.runs.wait(run_id);
    assert.equal(run.trigger, `webhook:${trigger.id}`);
    assert.deepEqual(run.output, { echoed: { n: 5 } });
    assert.equal((await send(trigger.secret as string, "msg_2", body, true)).status, 401);

    const listed = await atoll.triggers.list("@sdk/echo").toArray();
    assert.ok(listed.some((t) => t.id === trigger.id));
    assert.equal((await atoll.triggers.get("sdk/echo", trigger.id)).id, trigger.id);
    assert.equal((await atoll.triggers.pause("@sdk/echo", trigger.id)).paused, true);
    assert.equal((await send(trigger.secret as string, "msg_3", body)).status, 409);
    assert.equal((await atoll.triggers.resume("@sdk/echo", trigger.id)).paused, false);
    const rotated = await atoll.triggers.rotateSecret("@sdk/echo", trigger.id);
    assert.match(rotated.secret ?? "", /^whsec_/);
    assert.notEqual(rotated.secret, trigger.secret);
    assert.equal((await send(trigger.secret as string, "msg_4", body)).status, 401);
    assert.equal((await send(rotated.secret as string, "msg_5", body)).status, 202);
    await atoll.triggers.delete("@sdk/echo", trigger.id);
    await assert.rejects(atoll.triggers.get("@sdk/echo", trigger.id), NotFoundError);
  });

  test("a cron trigger shows next_fire_at", async () => {
    const cron = await atoll.triggers.create("@sdk/echo", {
      type: "cron",
      schedule: "0 3 * * *",
      timezone: "Europe/Paris",
      input: { n: 3 },
    });
    assert.equal(cron.type, "cron");
    assert.ok(cron.type === "cron" && typeof cron.next_fire_at === "number" && cron.next_fire_at > Date.now());
    await atoll.triggers.delete("@sdk/echo", cron.id);
  });
});

describe("webhooks", () => {
  let receiver: Server;
  let receiverUrl: string;
  const received: Array<{ body: string; headers: IncomingMessage["headers"] }> = [];
  let failNext = 0;

  before(async () => {
    receiver = createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString("utf8")));
      req.on("end", () => {
        received.push({ body, headers: req.headers });
        if (failNext > 0) {
          failNext--;
          res.writeHead(500).end("not now");
        } else res.writeHead(204).end();
      });
    });
    receiver.listen(0, "127.0.0.1");
    await once(receiver, "listening");
    const address = receiver.address();
    receiverUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/hook`;
  });

  after(() => receiver?.close());

  test("create, get, list; deliveries arrive signed and verify; retry; rotateSecret; delete", async () => {
    failNext = 1;
    const endpoint = await atoll.webhooks.create({
      url: receiverUrl,
      events: ["run.succeeded"],
      agents: ["@sdk/echo"],
      description: "sdk test",
    });
    assert.match(endpoint.id, /^wh_/);
    assert.match(endpoint.secret ?? "", /^whsec_/);
    assert.equal((await atoll.webhooks.get(endpoint.id)).url, receiverUrl);
    assert.ok((await atoll.webhooks.list().toArray()).some((w) => w.id === endpoint.id));

    const run = await atoll.runs.create("@sdk/echo", { input: { n: 42 } }, { wait: 30 });
    // The first attempt is answered 500; it is pending until retried.
    const delivery = await until("a failed first attempt", async () => {
      const d = (await atoll.webhooks.deliveries(endpoint.id).toArray()).find((x) => x.run_id === run.id);
      return d && d.attempts.length >= 1 && d.status === "pending" ? d : undefined;
    });
    assert.equal(delivery.event, "run.succeeded");
    assert.equal(delivery.attempts[0]?.status_code, 500);
    const retried = await atoll.webhooks.retry(endpoint.id, delivery.id);
    assert.equal(retried.status, "pending");
    const ok = await until("the retried delivery", async () => {
      const d = (await atoll.webhooks.deliveries(endpoint.id).toArray()).find((x) => x.id === delivery.id);
      return d?.status === "succeeded" ? d : undefined;
    });
    assert.equal(ok.attempts.length, 2);

    // What arrived verifies with the secret shown at creation, with the SDK's verify.
    const last = received.at(-1);
    assert.ok(last);
    const event = atoll.webhooks.verify(last.body, last.headers, endpoint.secret as string);
    assert.equal(event.type, "run.succeeded");
    assert.equal(event.data.id, run.id);
    assert.equal(last.headers["webhook-id"], delivery.id);
    assert.throws(() => verifyWebhook(last.body + " ", last.headers, endpoint.secret as string));

    const rotated = await atoll.webhooks.rotateSecret(endpoint.id);
    assert.match(rotated.secret ?? "", /^whsec_/);
    const after = await atoll.webhooks.get(endpoint.id);
    assert.ok(typeof after.previous_secret_expires_at === "number");
    // During the overlap both secrets sign: a new delivery verifies with either.
    const before = received.length;
    await atoll.runs.create("@sdk/echo", { input: { n: 43 } }, { wait: 30 });
    const next = await until("a delivery after rotation", async () => received[before]);
    assert.equal(atoll.webhooks.verify(next.body, next.headers, rotated.secret as string).type, "run.succeeded");
    assert.equal(atoll.webhooks.verify(next.body, next.headers, endpoint.secret as string).type, "run.succeeded");

    await atoll.webhooks.delete(endpoint.id);
    await assert.rejects(atoll.webhooks.get(endpoint.id), NotFoundError);
  });
});

describe("audit and usage", () => {
  test("audit.list shows this test's changes", async () => {
    await atoll.memory.set("app", "audited", 1);
    const actions = [];
    for await (const e of atoll.audit.list({ limit: 50 })) {
      actions.push(e.action);
      if (actions.length >= 200) break;
    }
    assert.ok(actions.includes("memory.set"), actions.join());
    assert.ok(actions.includes("agent_version.create"));
    // The org key sees the org's events across pages, the app's creation among them.
    const orgWide = (await server.org.audit.list({ limit: 20 }).toArray()).map((e) => e.action);
    assert.ok(orgWide.includes("app.create") && orgWide.includes("memory.set"), orgWide.join());
  });

  test("usage.get counts runs for the app and the org", async () => {
    const usage = await atoll.usage.get({ period: "day" });
    assert.equal(usage.period, "day");
    assert.equal(usage.app_id, server.appId);
    assert.ok(usage.usage.runs >= 1, JSON.stringify(usage));
    const org = await server.org.usage.get();
    assert.equal(org.app_id, null);
    assert.ok(org.usage.runs >= usage.usage.runs);
  });
});

describe("errors", () => {
  test("NotFoundError carries type, title, status, detail and x-request-id", async () => {
    const error = await atoll.runs.get("run_does_not_exist").then(
      () => assert.fail("found a run that does not exist"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof NotFoundError);
    assert.ok(error instanceof APIError);
    assert.equal(error.status, 404);
    assert.equal(error.type, "https://atoll.dev/problems/not-found");
    assert.equal(error.title, "Not found");
    assert.equal(error.detail, "run not found");
    assert.match(error.requestId ?? "", /^[0-9a-f-]{36}$/);
  });

  test("AuthenticationError for a bad key, BadRequestError for an unknown field, 422 for bad input", async () => {
    const bad = server.client({ apiKey: "atl_not_a_real_key_at_all_000000000" });
    await assert.rejects(bad.agents.list().then((p) => p.data), (e: unknown) => e instanceof AuthenticationError && e.status === 401);
    await assert.rejects(
      atoll.runs.create("@sdk/echo", { input: { n: 1 }, surprise: true } as never),
      (e: unknown) => e instanceof BadRequestError && e.status === 400 && /surprise/.test(e.detail ?? ""),
    );
    await assert.rejects(
      atoll.runs.create("@sdk/echo", { input: {} }),
      (e: unknown) => e instanceof UnprocessableEntityError && e.title === "Invalid input",
    );
    // An app key may not create orgs.
    await assert.rejects(atoll.orgs.create({ name: "nope" }), PermissionDeniedError);
  });

  test("an idempotent POST replays: same key, same body → the same run", async () => {
    const key = `test-${Date.now()}`;
    const a = await atoll.runs.create("@sdk/echo", { input: { n: 9 } }, { idempotencyKey: key }).withResponse();
    const b = await atoll.runs.create("@sdk/echo", { input: { n: 9 } }, { idempotencyKey: key }).withResponse();
    assert.equal(a.data.id, b.data.id);
    assert.equal(b.response.headers.get("idempotent-replayed"), "true");
    await assert.rejects(
      atoll.runs.create("@sdk/echo", { input: { n: 10 } }, { idempotencyKey: key }),
      UnprocessableEntityError,
    );
  });
});

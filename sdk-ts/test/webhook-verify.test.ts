// webhooks.verify against signatures made by the independent `standardwebhooks` package.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";

import { Atoll, signWebhook, verifyWebhook, WebhookVerificationError } from "@atoll/sdk";
import { Webhook } from "standardwebhooks";

const secret = `whsec_${randomBytes(32).toString("base64")}`;
const body = JSON.stringify({
  type: "run.succeeded",
  timestamp: "2026-12-04T10:00:00.000Z",
  data: { id: "run_1", status: "succeeded" },
});

function signed(at: Date, id = "msg_2Lh9", payload = body, key = secret): Record<string, string> {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": new Webhook(key).sign(id, at, payload),
  };
}

test("a delivery signed by standardwebhooks verifies and returns the parsed body", () => {
  const headers = signed(new Date());
  const event = verifyWebhook<{ type: string; data: { id: string } }>(body, headers, secret);
  assert.equal(event.type, "run.succeeded");
  assert.equal(event.data.id, "run_1");
  // The same through the client, with fetch's Headers and a Buffer body.
  const atoll = new Atoll({ baseUrl: "http://127.0.0.1:1", apiKey: "atl_x" });
  assert.equal(atoll.webhooks.verify(Buffer.from(body), new Headers(headers), secret).data.id, "run_1");
  // Node's IncomingHttpHeaders-style object with other letter case works too.
  const upper = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]));
  assert.equal(verifyWebhook<{ type: string }>(body, upper, secret).type, "run.succeeded");
});

test("a tampered body, another secret or a forged signature is rejected", () => {
  const headers = signed(new Date());
  assert.throws(() => verifyWebhook(body.replace("run_1", "run_2"), headers, secret), WebhookVerificationError);
  assert.throws(() => verifyWebhook(body + "\n", headers, secret), WebhookVerificationError);
  const other = `whsec_${randomBytes(32).toString("base64")}`;
  assert.throws(() => verifyWebhook(body, headers, other), /no matching signature/);
  const forged = { ...headers, "webhook-signature": `v1,${randomBytes(32).toString("base64")}` };
  assert.throws(() => verifyWebhook(body, forged, secret), WebhookVerificationError);
  // The id is signed too.
  assert.throws(() => verifyWebhook(body, { ...headers, "webhook-id": "msg_other" }, secret), WebhookVerificationError);
  // A signature of another scheme version is not accepted.
  const v2 = { ...headers, "webhook-signature": headers["webhook-signature"]!.replace(/^v1,/, "v2,") };
  assert.throws(() => verifyWebhook(body, v2, secret), WebhookVerificationError);
});

test("timestamps more than 5 minutes old or ahead are rejected, inside the tolerance accepted", () => {
  const now = Date.now();
  assert.throws(() => verifyWebhook(body, signed(new Date(now - 6 * 60_000)), secret), /too old/);
  assert.throws(() => verifyWebhook(body, signed(new Date(now + 6 * 60_000)), secret), /future/);
  assert.equal(verifyWebhook<{ type: string }>(body, signed(new Date(now - 4 * 60_000)), secret).type, "run.succeeded");
  // The timestamp is signed: moving it into the window breaks the signature.
  const old = signed(new Date(now - 10 * 60_000));
  const moved = { ...old, "webhook-timestamp": String(Math.floor(now / 1000)) };
  assert.throws(() => verifyWebhook(body, moved, secret), /no matching signature/);
  // A custom tolerance.
  assert.throws(() => verifyWebhook(body, signed(new Date(now - 90_000)), secret, { toleranceSeconds: 60 }), /too old/);
});

test("during a rotation, either of two space-separated signatures verifies", () => {
  const previous = `whsec_${randomBytes(32).toString("base64")}`;
  const at = new Date();
  const a = signed(at, "msg_rot", body, previous);
  const b = signed(at, "msg_rot", body, secret);
  const both = { ...a, "webhook-signature": `${a["webhook-signature"]} ${b["webhook-signature"]}` };
  assert.equal(verifyWebhook<{ type: string }>(body, both, secret).type, "run.succeeded");
  assert.equal(verifyWebhook<{ type: string }>(body, both, previous).type, "run.succeeded");
  assert.throws(() => verifyWebhook(body, both, `whsec_${randomBytes(32).toString("base64")}`));
});

test("missing headers and a malformed secret are WebhookVerificationErrors", () => {
  const headers = signed(new Date());
  for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
    const without = { ...headers };
    delete without[name];
    assert.throws(() => verifyWebhook(body, without, secret), WebhookVerificationError, name);
  }
  assert.throws(() => verifyWebhook(body, { ...headers, "webhook-timestamp": "soon" }, secret), WebhookVerificationError);
  assert.throws(() => verifyWebhook(body, headers, "whsec_not base64!"), WebhookVerificationError);
});

test("signWebhook makes what standardwebhooks verifies", () => {
  const at = new Date();
  const ts = Math.floor(at.getTime() / 1000);
  const signature = signWebhook("msg_sdk", ts, body, secret);
  const verified = new Webhook(secret).verify(body, {
    "webhook-id": "msg_sdk",
    "webhook-timestamp": String(ts),
    "webhook-signature": signature,
  }) as { type: string };
  assert.equal(verified.type, "run.succeeded");
});

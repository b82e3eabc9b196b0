// Verifying atoll's webhook deliveries (Standard Webhooks): `webhook-id`,
// `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
// keyed with the base64-decoded secret after `whsec_`; several space-separated signatures
// during a secret rotation; compared in constant time; timestamps within ±5 minutes.

import { createHmac, timingSafeEqual } from "node:crypto";

import { WebhookVerificationError } from "./errors.js";
import type { WebhookPayload } from "./types.js";

/** Request headers as Node (`IncomingHttpHeaders`), fetch (`Headers`) or a plain object give them. */
export type WebhookHeaders =
  | Headers
  | { get(name: string): string | null }
  | Record<string, string | string[] | undefined>;

export interface VerifyOptions {
  /** Seconds a timestamp may be off from now, either way (default 300). */
  toleranceSeconds?: number | undefined;
  /** "Now" in Unix milliseconds (tests). */
  now?: number | undefined;
}

/** The secret's key bytes: base64 after `whsec_` (a bare base64 string is taken too). */
function secretKey(secret: string | Uint8Array): Buffer {
  if (typeof secret !== "string") return Buffer.from(secret);
  const b64 = secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) {
    throw new WebhookVerificationError("the secret is not whsec_ followed by base64");
  }
  const key = Buffer.from(b64, "base64");
  if (key.length === 0) throw new WebhookVerificationError("the secret is empty");
  return key;
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined;
  }
  const record = headers as Record<string, string | string[] | undefined>;
  let value = record[name];
  if (value === undefined) {
    const wanted = name.toLowerCase();
    for (const [k, v] of Object.entries(record)) {
      if (k.toLowerCase() === wanted) {
        value = v;
        break;
      }
    }
  }
  return Array.isArray(value) ? value.join(" ") : value;
}

function bodyBytes(body: string | Uint8Array): Buffer {
  return typeof body === "string" ? Buffer.from(body, "utf8") : Buffer.from(body);
}

/** `v1,<base64>` for this delivery: what atoll puts in `webhook-signature`. */
export function signWebhook(
  id: string,
  timestampSeconds: number,
  body: string | Uint8Array,
  secret: string | Uint8Array,
): string {
  const mac = createHmac("sha256", secretKey(secret))
    .update(`${id}.${timestampSeconds}.`)
    .update(bodyBytes(body))
    .digest("base64");
  return `v1,${mac}`;
}

/**
 * Checks a delivery's signature and timestamp, and returns its parsed JSON body
 * (`{ type, timestamp, data }`). `body` must be the raw body as received (not a
 * re-serialised object). Throws {@link WebhookVerificationError} otherwise.
 */
export function verifyWebhook<T = WebhookPayload>(
  body: string | Uint8Array,
  headers: WebhookHeaders,
  secret: string | Uint8Array,
  options: VerifyOptions = {},
): T {
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !timestamp || !signatures) {
    throw new WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature");
  }
  const tsText = timestamp.trim();
  if (!/^\d{1,15}$/.test(tsText)) {
    throw new WebhookVerificationError("webhook-timestamp is not a Unix time in seconds");
  }
  const ts = Number(tsText);
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  const tolerance = options.toleranceSeconds ?? 300;
  if (now - ts > tolerance) throw new WebhookVerificationError("the timestamp is too old");
  if (ts - now > tolerance) throw new WebhookVerificationError("the timestamp is too far in the future");

  const key = secretKey(secret);
  const expected = createHmac("sha256", key).update(`${id}.${tsText}.`).update(bodyBytes(body)).digest();
  let matched = false;
  for (const part of signatures.split(" ")) {
    const comma = part.indexOf(",");
    if (comma === -1 || part.slice(0, comma) !== "v1") continue;
    const given = Buffer.from(part.slice(comma + 1), "base64");
    // Keep looking through all of them: no early exit that timing could reveal.
    if (given.length === expected.length && timingSafeEqual(given, expected)) matched = true;
  }
  if (!matched) throw new WebhookVerificationError("no matching signature");
  const text = typeof body === "string" ? body : Buffer.from(body).toString("utf8");
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new WebhookVerificationError("the signed body is not JSON");
  }
}

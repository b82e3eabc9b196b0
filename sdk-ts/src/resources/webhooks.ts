import type { APIPromise, RequestOptions } from "../core.js";
import type { PagePromise } from "../pagination.js";
import type {
  CreatedWebhook,
  Delivery,
  PageParams,
  RetriedDelivery,
  RotatedWebhookSecret,
  Webhook,
  WebhookCreateParams,
  WebhookPayload,
} from "../types.js";
import { verifyWebhook, type VerifyOptions, type WebhookHeaders } from "../webhook-verify.js";
import { Resource, seg } from "./shared.js";

/** Outbound webhook endpoints, their delivery log, and verifying what they receive. */
export class Webhooks extends Resource {
  /** Registers an endpoint; the answer's `secret` (`whsec_...`) is shown this once. */
  create(body: WebhookCreateParams, options?: RequestOptions): APIPromise<CreatedWebhook> {
    return this.call({ method: "post", path: "/v1/webhooks", body, options });
  }

  list(params?: PageParams, options?: RequestOptions): PagePromise<Webhook> {
    return this.paged<Webhook>("/v1/webhooks", { ...params }, options);
  }

  get(id: string, options?: RequestOptions): APIPromise<Webhook> {
    return this.call({ method: "get", path: `/v1/webhooks/${seg(id)}`, options });
  }

  /** Deletes the endpoint and its delivery log. */
  delete(id: string, options?: RequestOptions): APIPromise<void> {
    return this.call({ method: "delete", path: `/v1/webhooks/${seg(id)}`, options });
  }

  /** A new secret; the old one keeps signing beside it for 24 hours. */
  rotateSecret(id: string, options?: RequestOptions): APIPromise<RotatedWebhookSecret> {
    return this.call({ method: "post", path: `/v1/webhooks/${seg(id)}/rotate-secret`, options });
  }

  /** The delivery log, newest first: each delivery with every attempt. */
  deliveries(id: string, params?: PageParams, options?: RequestOptions): PagePromise<Delivery> {
    return this.paged<Delivery>(`/v1/webhooks/${seg(id)}/deliveries`, { ...params }, options);
  }

  /** Sends a delivery again now (ConflictError while an attempt is under way or the endpoint is disabled). */
  retry(id: string, deliveryId: string, options?: RequestOptions): APIPromise<RetriedDelivery> {
    return this.call({
      method: "post",
      path: `/v1/webhooks/${seg(id)}/deliveries/${seg(deliveryId)}/retry`,
      options,
    });
  }

  /**
   * Checks a received delivery (raw body, its headers, the endpoint's secret) and
   * returns its payload; throws WebhookVerificationError. Same as the standalone
   * `verifyWebhook`.
   */
  verify<T = WebhookPayload>(
    body: string | Uint8Array,
    headers: WebhookHeaders,
    secret: string | Uint8Array,
    options?: VerifyOptions,
  ): T {
    return verifyWebhook<T>(body, headers, secret, options);
  }
}

import type { APIPromise, RequestOptions } from "../core.js";
import type { PagePromise } from "../pagination.js";
import type { ApiKey, ApiKeyCreateParams, CreatedApiKey, PageParams } from "../types.js";
import { Resource, seg } from "./shared.js";

/** API keys: the secret is in the create answer only. */
export class ApiKeys extends Resource {
  /**
   * Creates a key: an app key with `app_id` (or when an app key asks), an org key with
   * `kind: "org"`. `secret` is shown this once.
   */
  create(body: ApiKeyCreateParams, options?: RequestOptions): APIPromise<CreatedApiKey> {
    return this.call({ method: "post", path: "/v1/api-keys", body, options });
  }

  list(params?: PageParams, options?: RequestOptions): PagePromise<ApiKey> {
    return this.paged<ApiKey>("/v1/api-keys", { ...params }, options);
  }

  /** Revokes a key (an app's last key cannot be revoked: 409). */
  revoke(id: string, options?: RequestOptions): APIPromise<void> {
    return this.call({ method: "delete", path: `/v1/api-keys/${seg(id)}`, options });
  }
}

import type { APIPromise, RequestOptions } from "../core.js";
import type { PagePromise } from "../pagination.js";
import type { App, AppCreateParams, PageParams } from "../types.js";
import { Resource, seg } from "./shared.js";

/** Apps of an org (created with an org key). */
export class Apps extends Resource {
  create(body: AppCreateParams, options?: RequestOptions): APIPromise<App> {
    return this.call({ method: "post", path: "/v1/apps", body, options });
  }

  list(params?: PageParams, options?: RequestOptions): PagePromise<App> {
    return this.paged<App>("/v1/apps", { ...params }, options);
  }

  get(id: string, options?: RequestOptions): APIPromise<App> {
    return this.call({ method: "get", path: `/v1/apps/${seg(id)}`, options });
  }
}

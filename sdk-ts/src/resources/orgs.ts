import type { APIPromise, RequestOptions } from "../core.js";
import type { CreatedOrg, Org, OrgCreateParams } from "../types.js";
import { Resource, seg } from "./shared.js";

/** Orgs: created with the operator's admin key. */
export class Orgs extends Resource {
  /** Creates an org; the answer holds its first org key (`key.secret`, shown once). */
  create(body: OrgCreateParams, options?: RequestOptions): APIPromise<CreatedOrg> {
    return this.call({ method: "post", path: "/v1/orgs", body, options });
  }

  get(id: string, options?: RequestOptions): APIPromise<Org> {
    return this.call({ method: "get", path: `/v1/orgs/${seg(id)}`, options });
  }
}

import type { RequestOptions } from "../core.js";
import type { PagePromise } from "../pagination.js";
import type { AuditEvent, PageParams } from "../types.js";
import { Resource } from "./shared.js";

/** The audit log of the caller's org (org key) or app (app key), newest first. */
export class Audit extends Resource {
  list(params?: PageParams, options?: RequestOptions): PagePromise<AuditEvent> {
    return this.paged<AuditEvent>("/v1/audit", { ...params }, options);
  }
}

import type { APIPromise, RequestOptions } from "../core.js";
import type { PagePromise } from "../pagination.js";
import type { MemoryEntry, MemoryListParams, MemoryScope } from "../types.js";
import { Resource, seg } from "./shared.js";

export interface MemoryOptions extends RequestOptions {
  /** For `end_user` scope: whose memory (not needed when the client acts for an end-user). */
  end_user?: string | undefined;
}

/** The key-value memory agents reach with `ctx.memory`, from outside. */
export class Memory extends Resource {
  get(scope: MemoryScope, key: string, options: MemoryOptions = {}): APIPromise<MemoryEntry> {
    const { end_user, ...request } = options;
    return this.call({ method: "get", path: path(scope, key), query: { end_user }, options: request });
  }

  /** Sets a key to any JSON value (at most 1 MiB). */
  set(scope: MemoryScope, key: string, value: unknown, options: MemoryOptions = {}): APIPromise<MemoryEntry> {
    const { end_user, ...request } = options;
    return this.call({
      method: "put",
      path: path(scope, key),
      query: { end_user },
      body: value === undefined ? null : value,
      options: request,
    });
  }

  delete(scope: MemoryScope, key: string, options: MemoryOptions = {}): APIPromise<void> {
    const { end_user, ...request } = options;
    return this.call({ method: "delete", path: path(scope, key), query: { end_user }, options: request });
  }

  /** Keys with their values, in key order. */
  list(scope: MemoryScope, params?: MemoryListParams, options?: RequestOptions): PagePromise<MemoryEntry> {
    return this.paged<MemoryEntry>(`/v1/memory/${seg(scope)}`, { ...params }, options);
  }
}

function path(scope: MemoryScope, key: string): string {
  return `/v1/memory/${seg(scope)}/${seg(key)}`;
}

// What every resource shares: the transport, agent-name paths, list helpers.

import type { APIPromise, Call, HttpClient, RequestOptions } from "../core.js";
import { PagePromise, type ListAnswer } from "../pagination.js";

export abstract class Resource {
  protected readonly http: HttpClient;

  constructor(http: HttpClient) {
    this.http = http;
  }

  protected call<T>(call: Call): APIPromise<T> {
    return this.http.request<T>(call);
  }

  /** A paginated GET: `?limit=&cursor=` plus `query`. */
  protected paged<T>(path: string, query: Record<string, unknown> | undefined, options?: RequestOptions): PagePromise<T> {
    const base = { ...(query ?? {}) } as Record<string, string | number | boolean | undefined>;
    const first = base.cursor;
    return new PagePromise<T>((cursor) =>
      this.http.request<ListAnswer<T>>({
        method: "get",
        path,
        query: { ...base, cursor: cursor ?? (first as string | undefined) },
        options,
      }),
    );
  }

  /** A GET answering `{ data, next_cursor: null }` that takes no paging parameters. */
  protected unpaged<T>(path: string, options?: RequestOptions): PagePromise<T> {
    return new PagePromise<T>((cursor) =>
      this.http.request<ListAnswer<T>>({ method: "get", path, query: cursor ? { cursor } : undefined, options }),
    );
  }
}

/** `@scope/name` or `scope/name` → `scope/name` for paths (each part URL-encoded). */
export function agentPath(agent: string): string {
  const bare = agent.startsWith("@") ? agent.slice(1) : agent;
  const slash = bare.indexOf("/");
  if (slash <= 0 || slash === bare.length - 1 || bare.indexOf("/", slash + 1) !== -1) {
    throw new TypeError(`"${agent}" is not an agent name: @scope/name or scope/name`);
  }
  return `${encodeURIComponent(bare.slice(0, slash))}/${encodeURIComponent(bare.slice(slash + 1))}`;
}

export function seg(value: string): string {
  if (typeof value !== "string" || value === "") throw new TypeError("an id or name is a non-empty string");
  return encodeURIComponent(value);
}

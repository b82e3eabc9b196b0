import type { APIPromise, RequestOptions } from "../core.js";
import type { PagePromise } from "../pagination.js";
import type { Connection, ConnectionInput } from "../types.js";
import { Resource, seg } from "./shared.js";

export interface EndUserOptions extends RequestOptions {
  /** An end-user's own connection (overrides the app's for their runs). */
  end_user?: string | undefined;
}

/** Named credentials the broker adds to agents' requests; secrets are write-only. */
export class Connections extends Resource {
  /** Creates or replaces a connection (201 new, 200 replaced). Needs the server's ATOLL_MASTER_KEY. */
  put(name: string, body: ConnectionInput, options: EndUserOptions = {}): APIPromise<Connection> {
    const { end_user, ...request } = options;
    return this.call({ method: "put", path: `/v1/connections/${seg(name)}`, query: { end_user }, body, options: request });
  }

  /** Type, hosts, non-secret fields and a fingerprint; never the secret. */
  get(name: string, options: EndUserOptions = {}): APIPromise<Connection> {
    const { end_user, ...request } = options;
    return this.call({ method: "get", path: `/v1/connections/${seg(name)}`, query: { end_user }, options: request });
  }

  list(options?: RequestOptions): PagePromise<Connection> {
    return this.unpaged<Connection>("/v1/connections", options);
  }

  delete(name: string, options: EndUserOptions = {}): APIPromise<void> {
    const { end_user, ...request } = options;
    return this.call({ method: "delete", path: `/v1/connections/${seg(name)}`, query: { end_user }, options: request });
  }
}

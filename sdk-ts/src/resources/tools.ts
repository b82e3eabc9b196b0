import type { APIPromise, RequestOptions } from "../core.js";
import type { PagePromise } from "../pagination.js";
import type { Tool, ToolInput } from "../types.js";
import { Resource, seg } from "./shared.js";

/** HTTP tools of the app (`ctx.tools.call(name, args)` and LLM tool calls). */
export class Tools extends Resource {
  /** Creates or replaces a tool (201 new, 200 replaced). */
  put(name: string, body: ToolInput, options?: RequestOptions): APIPromise<Tool> {
    return this.call({ method: "put", path: `/v1/tools/${seg(name)}`, body, options });
  }

  get(name: string, options?: RequestOptions): APIPromise<Tool> {
    return this.call({ method: "get", path: `/v1/tools/${seg(name)}`, options });
  }

  list(options?: RequestOptions): PagePromise<Tool> {
    return this.unpaged<Tool>("/v1/tools", options);
  }

  delete(name: string, options?: RequestOptions): APIPromise<void> {
    return this.call({ method: "delete", path: `/v1/tools/${seg(name)}`, options });
  }
}

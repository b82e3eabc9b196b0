import type { APIPromise, RequestOptions } from "../core.js";
import type { Usage as UsageAnswer, UsageParams } from "../types.js";
import { Resource } from "./shared.js";

/** Runs, CPU ms, LLM tokens and fetches over a period ending now. */
export class Usage extends Resource {
  get(params?: UsageParams, options?: RequestOptions): APIPromise<UsageAnswer> {
    return this.call({ method: "get", path: "/v1/usage", query: { ...params }, options });
  }
}

// Types for agent authors: the `ctx` an agent's default export receives inside atoll's
// sandbox (runtime-js/10_ctx.js; SPEC §3, README "Inside the sandbox"), and
// `defineAgent`, which only gives a function those types.
//
//   import { defineAgent } from "@atoll/sdk/agent";         // with a bundler
//   export default defineAgent<{ name: string }, { greeting: string }>(async (input, ctx) => ...);
//
// or, in plain JavaScript that uploads as is (the sandbox refuses bare imports):
//
//   /** @type {import("@atoll/sdk/agent").Agent<{ name: string }, { greeting: string }>} */
//   export default async (input, ctx) => ...;

/** Who and what this run is. */
export interface RunInfo {
  /** `run_...` */
  readonly id: string;
  /** `@scope/name` */
  readonly agent: string;
  /** The package version this run executes. */
  readonly version: string;
  /** The end-user's `external_id`, or null for a run of the app itself. */
  readonly end_user: string | null;
  /** `api`, `webhook:{trigger id}` or `cron:{trigger id}`. */
  readonly trigger: string;
  /** 1, or more when the run was retried after its node was lost. */
  readonly attempt: number;
}

/** Where a memory key lives; `end_user` (the default) needs a run with an end-user. */
export type MemoryScope = "end_user" | "app" | "org";

export interface MemoryOptions {
  /** Default `end_user`; must be in the manifest's `permissions.memory`. */
  scope?: MemoryScope;
}

export interface MemoryListOptions extends MemoryOptions {
  /** At most this many keys (and never more than 1,000). */
  limit?: number;
}

/** Key-value memory (`permissions.memory`), shared across runs. Values are JSON. */
export interface CtxMemory {
  /** The value, or null when the key is not set. */
  get<T = unknown>(key: string, options?: MemoryOptions): Promise<T | null>;
  /** Sets a key (a value is at most 1 MiB of JSON). */
  set(key: string, value: unknown, options?: MemoryOptions): Promise<true>;
  /** Whether there was a value to delete. */
  delete(key: string, options?: MemoryOptions): Promise<boolean>;
  /** The keys that start with `prefix` (default: all), in order. */
  list(prefix?: string, options?: MemoryListOptions): Promise<string[]>;
}

/** The app's HTTP tools (`permissions.tools`). */
export interface CtxTools {
  /**
   * Calls a tool: `args` are checked against its `input_schema`, the answer against its
   * `output_schema`. Emits `tool.call` and `tool.result` events.
   */
  call<T = unknown>(name: string, args?: unknown): Promise<T>;
}

/** A chat message in OpenAI's format. */
export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string | null;
  /** On an assistant message that called tools: the calls, as `chat` returned them. */
  tool_calls?: ToolCall[];
  /** On a `tool` message: the id of the call it answers. */
  tool_call_id?: string;
  [key: string]: unknown;
}

/** A tool call the model asked for. */
export interface ToolCall {
  id: string;
  name: string;
  /** The arguments, parsed. */
  arguments: unknown;
}

export interface ChatRequest {
  /** `provider/model`, e.g. `openai/gpt-4o-mini`; must match `permissions.llm`. */
  model: string;
  messages: ChatMessage[];
  /** Names of the app's tools to offer the model (each in `permissions.tools`). */
  tools?: string[];
  /** As the provider takes it, e.g. `{ type: "json_object" }`. */
  response_format?: unknown;
  /** Cap on the answer's tokens. */
  max_tokens?: number;
}

export interface ChatResponse {
  /** The assistant's message (`content` null when it only called tools). */
  message: ChatMessage;
  /** Empty when the model answered without calling a tool. */
  tool_calls: ToolCall[];
  usage: { input_tokens: number; output_tokens: number };
}

/** LLM providers (connections with a `provider`), through the broker. */
export interface CtxLlm {
  /** One chat completion; token deltas stream as `llm.delta` run events. */
  chat(request: ChatRequest): Promise<ChatResponse>;
}

export interface WaitForOptions {
  /** Give up after this many milliseconds (the wait throws with code `wait_timeout`); 0 or absent: no limit. */
  timeout_ms?: number;
  /** A JSON Schema the payload must match (a signal that does not is refused with 422). */
  schema?: Record<string, unknown>;
}

/** The second argument of an agent: the run's capabilities, each checked by the host. */
export interface Ctx<State = unknown> {
  readonly run: RunInfo;
  /** The state the last successful run of this agent for this end-user returned, or null. */
  readonly state: State | null;
  /** Sets the state the next run of this agent for this end-user sees (at most 1 MiB of JSON). */
  setState(value: State): void;
  /** Aborts when the run is cancelled (the isolate is terminated 50 ms later). */
  readonly signal: AbortSignal;
  readonly memory: CtxMemory;
  readonly tools: CtxTools;
  readonly llm: CtxLlm;
  /** A custom progress event (`emit` in the run's events): `{ type, data }`. */
  emit(type: string, data?: unknown): void;
  /**
   * A durable sleep: from 1 s on, the run parks (`waiting`, no isolate held) and
   * resumes by replaying its journal.
   */
  sleep(ms: number): Promise<void>;
  /**
   * Waits for the signal `name` (`POST /v1/runs/{id}/signals/{name}`) and returns its
   * payload; a signal sent earlier is kept and returned at once.
   */
  waitFor<T = unknown>(name: string, options?: WaitForOptions): Promise<T>;
}

/** An agent: the default export of its entry module. */
export type Agent<Input = unknown, Output = unknown, State = unknown> = (
  input: Input,
  ctx: Ctx<State>,
) => Output | Promise<Output>;

/** Gives an agent function its types; returns it unchanged. */
export function defineAgent<Input = unknown, Output = unknown, State = unknown>(
  agent: Agent<Input, Output, State>,
): Agent<Input, Output, State> {
  return agent;
}

/** Codes a refused or failed host call carries as `error.code` (besides others to come). */
export type HostErrorCode =
  | "permission_denied"
  | "fetch_host_not_allowed"
  | "fetch_address_refused"
  | "fetch_limit"
  | "capability_unavailable"
  | "wait_timeout"
  | "too_many_calls"
  | "value_too_large"
  | "bad_key"
  | "no_end_user"
  | "llm_unavailable"
  | "llm_rate_limited"
  | "llm_refused"
  | "llm_bad_response"
  | "llm_timeout";

/** What `ctx.*` and `fetch` throw when the host refuses: an Error with a `code`. */
export interface HostError extends Error {
  code?: HostErrorCode | (string & {});
}

declare global {
  interface RequestInit {
    /**
     * atoll's sandbox only: the name of a connection (`permissions.connections`) whose
     * credential the broker adds on the host side.
     */
    connection?: string;
  }
}

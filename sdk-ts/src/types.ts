// Request and response types, taken from the generated `paths` of the server's OpenAPI
// document (src/generated/openapi.ts) by path and method — never by schema name, so
// they follow the document as it grows. Where the document does not (yet) describe an
// operation's body, the type falls back to the shape the server answers today, written
// down here from its source (`Fallback*`); as soon as the document has a schema for it,
// the generated type wins.

import type { paths } from "./generated/openapi.js";

type Method = "get" | "put" | "post" | "delete";

/** The generated operation object for a path and method (never when absent). */
export type Operation<P extends string, M extends Method> = P extends keyof paths
  ? M extends keyof paths[P]
    ? NonNullable<paths[P][M]>
    : never
  : never;

/** `T` when it says something, else `F`: never, unknown, `{}` and bare index signatures fall back. */
export type Prefer<T, F> = [T] extends [never]
  ? F
  : unknown extends T
    ? F
    : T extends object
      ? [keyof T] extends [never]
        ? F
        : string extends keyof T
          ? F
          : T
      : T;

type SuccessCode = 200 | 201 | 202 | 204 | "2XX";
type JsonOf<R> = R extends { content: { "application/json": infer T } } ? T : never;
type Responses<O> = O extends { responses: infer R } ? R : never;
type SuccessJson<R> = [R] extends [never] ? never : JsonOf<R[Extract<keyof R, SuccessCode>]>;

/** The JSON a successful call answers, per the document. */
export type ResponseBody<P extends string, M extends Method> = SuccessJson<Responses<Operation<P, M>>>;

/** The JSON request body, per the document. */
export type RequestBody<P extends string, M extends Method> =
  Operation<P, M> extends { requestBody?: infer B }
    ? NonNullable<B> extends { content: { "application/json": infer T } }
      ? T
      : never
    : never;

/** The query parameters, per the document. */
export type QueryParams<P extends string, M extends Method> =
  Operation<P, M> extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;

/** A response body: the document's, else the fallback. */
export type Res<P extends string, M extends Method, F> = Prefer<ResponseBody<P, M>, F>;
/** A request body: the document's, else the fallback. */
export type Req<P extends string, M extends Method, F> = Prefer<RequestBody<P, M>, F>;
/** Query parameters: the document's, else the fallback. */
export type Query<P extends string, M extends Method, F> = Prefer<QueryParams<P, M>, F>;
/** The item type of a list answer `{ data: T[] }`. */
export type Item<L, F> = [L] extends [never] ? F : L extends { data: Array<infer T> } ? Prefer<T, F> : F;

/** Unix milliseconds, as every timestamp of the API. */
export type Millis = number;

export type RunStatus = "queued" | "running" | "waiting" | "succeeded" | "failed" | "timed_out" | "cancelled";

export type WebhookEventType =
  | "run.started"
  | "run.waiting"
  | "run.succeeded"
  | "run.failed"
  | "run.timed_out"
  | "run.cancelled";

export interface PageParams {
  /** 1 to 200 (default 50). */
  limit?: number;
  /** `next_cursor` of the previous page. */
  cursor?: string;
}

// ---- Fallbacks: today's answers, from the server's source (src/api/*.rs) ----

export interface FallbackOrg {
  id: string;
  name: string;
  created_at: Millis;
}

export interface FallbackCreatedOrg {
  org: FallbackOrg;
  /** The org's first key; `secret` is shown once (null in an idempotent replay). */
  key: { id: string; secret: string | null; secret_redacted?: boolean; kind: "org"; scopes: string[] };
}

export interface FallbackApp {
  id: string;
  org_id: string;
  name: string;
  settings: Record<string, unknown>;
  created_at: Millis;
}

export interface FallbackApiKey {
  id: string;
  org_id: string;
  app_id: string | null;
  kind: "org" | "app";
  name: string;
  /** The first characters of the secret (`atl_ab12...`). */
  prefix: string;
  scopes: string[];
  created_at: Millis;
  revoked_at: Millis | null;
}

export interface FallbackCreatedApiKey extends FallbackApiKey {
  /** Shown once (null in an idempotent replay). */
  secret: string | null;
  secret_redacted?: boolean;
}

export interface FallbackNewApiKey {
  name: string;
  /** `org` must be asked for by name; otherwise an app key. */
  kind?: "org" | "app";
  app_id?: string;
  /** Default `["*"]`; never more than the creating key has. */
  scopes?: string[];
}

export interface FallbackAgentListItem {
  app_id: string;
  /** `@scope/name`. */
  name: string;
  created_at: Millis;
}

export interface FallbackAgent {
  name: string;
  created_at: Millis;
  latest_version: string | null;
  description: string | null;
}

export interface FallbackAgentVersion {
  name: string;
  version: string;
  digest: string;
  description: string | null;
  created_at: Millis;
}

export interface FallbackAgentVersionDetail extends FallbackAgentVersion {
  manifest: Manifest;
}

/** `agent.json` (SPEC §2). */
export interface Manifest {
  name: string;
  version: string;
  description?: string;
  entry?: string;
  input?: Record<string, unknown>;
  output?: Record<string, unknown>;
  permissions?: {
    fetch?: string[];
    connections?: string[];
    tools?: string[];
    llm?: string[];
    memory?: Array<"end_user" | "app" | "org">;
  };
  limits?: { timeout_ms?: number; cpu_ms?: number; memory_mb?: number };
  durable?: boolean;
  retry_on_node_lost?: boolean;
  [key: string]: unknown;
}

export interface FallbackRunUsage {
  cpu_ms: number;
  wall_ms: number;
  heap_peak_bytes: number;
  llm_tokens_in: number;
  llm_tokens_out: number;
  fetches: number;
  [key: string]: unknown;
}

export interface FallbackRun {
  id: string;
  org_id: string;
  app_id: string;
  /** `@scope/name`. */
  agent: string;
  version: string;
  end_user: string | null;
  /** `api`, `webhook:{id}` or `cron:{id}`. */
  trigger: string;
  status: RunStatus;
  input: unknown;
  output: unknown;
  error: { code: string; message: string; stack?: string; [key: string]: unknown } | null;
  metadata: unknown;
  usage: FallbackRunUsage | null;
  attempt: number;
  created_at: Millis;
  started_at: Millis | null;
  finished_at: Millis | null;
  /** What a `waiting` run waits for (`runs.get` only). */
  wait?: { signal: string | null; wake_at: Millis | null };
  /** Entries in its journal (`runs.get` only). */
  journal_length?: number;
}

export interface FallbackStartRun {
  input?: unknown;
  /** Default: the latest version. */
  version?: string;
  /** The end-user the run is for (an app key acting for one may leave it out). */
  end_user?: string;
  metadata?: unknown;
}

export interface FallbackRunsQuery extends PageParams {
  /** `@scope/name` or `scope/name`. */
  agent?: string;
  status?: RunStatus;
  end_user?: string;
  /** For org keys: which app. */
  app_id?: string;
}

export interface FallbackJournal {
  data: Array<{ seq: number; op: string; created_at: Millis; bytes: number }>;
  length: number;
  truncated: boolean;
}

export interface FallbackMemoryEntry {
  key: string;
  value: unknown;
}

export type MemoryScope = "end_user" | "app" | "org";

export interface FallbackConnection {
  name: string;
  type: "bearer" | "header" | "basic" | "query" | "oauth2_client_credentials";
  hosts: string[];
  /** A digest of the secret: tells two secrets apart, never shows them. */
  fingerprint: string;
  allow_http?: boolean;
  header?: string;
  username?: string;
  param?: string;
  token_url?: string | null;
  client_id?: string;
  scopes?: string[];
  audience?: string | null;
  provider?: { kind: "openai" | "anthropic"; base_url: string };
  end_user?: string;
  created_at: Millis;
  updated_at: Millis;
}

interface ConnectionCommon {
  /** Where the credential may go: `api.example.com`, `*.example.com`, `127.0.0.1:11434`. */
  hosts: string[];
  allow_http?: boolean;
  /** Makes the connection an LLM provider (its name is the provider part of model names). */
  provider?: { kind: "openai" | "anthropic"; base_url: string };
}

export type FallbackConnectionInput = ConnectionCommon &
  (
    | { type: "bearer"; token: string }
    | { type: "header"; name: string; value: string }
    | { type: "basic"; username: string; password: string }
    | { type: "query"; param: string; value: string }
    | {
        type: "oauth2_client_credentials";
        token_url: string;
        client_id: string;
        client_secret: string;
        scopes?: string[];
        audience?: string;
      }
  );

export interface FallbackToolInput {
  description: string;
  input_schema: Record<string, unknown>;
  output_schema?: Record<string, unknown>;
  /** Default `POST` (arguments as JSON); GET/DELETE send them as query parameters. */
  method?: string;
  url: string;
  connection?: string;
  timeout_ms?: number;
}

export interface FallbackTool extends FallbackToolInput {
  name: string;
  method: string;
  created_at: Millis;
  updated_at: Millis;
}

export interface FallbackWebhookInput {
  url: string;
  /** Default: all. */
  events?: WebhookEventType[];
  /** `@scope/name` of the agents whose runs are announced (default: all). */
  agents?: string[];
  description?: string;
}

export interface FallbackWebhook {
  id: string;
  url: string;
  description: string | null;
  events: WebhookEventType[] | null;
  agents: string[] | null;
  created_at: Millis;
  disabled_at: Millis | null;
  disabled_reason: string | null;
  previous_secret_expires_at: Millis | null;
}

export interface FallbackCreatedWebhook extends FallbackWebhook {
  /** `whsec_...`, shown once. */
  secret: string | null;
  secret_redacted?: boolean;
}

export interface FallbackRotatedSecret {
  id: string;
  secret: string | null;
  secret_redacted?: boolean;
  previous_secret_expires_at?: Millis;
}

export interface FallbackDelivery {
  /** The `webhook-id`, the same on every attempt. */
  id: string;
  event: WebhookEventType;
  run_id: string;
  status: "pending" | "succeeded" | "failed";
  created_at: Millis;
  next_attempt_at: Millis | null;
  attempts: Array<{
    attempt: number;
    at: Millis;
    status_code: number | null;
    latency_ms: number;
    response: string | null;
    error: string | null;
  }>;
}

export interface FallbackRetriedDelivery {
  id: string;
  status: "pending";
}

export type TriggerVerify = "standard" | "github" | "stripe" | { hmac_header: string; prefix?: string };

export type FallbackTriggerInput =
  | {
      type: "webhook";
      verify: TriggerVerify;
      /** A JSON Pointer into the body (default: the whole body). */
      input_pointer?: string;
      version?: string;
      /** The sender's own secret (Stripe); else one is made. */
      secret?: string;
    }
  | {
      type: "cron";
      /** 5 fields: minute hour day-of-month month day-of-week. */
      schedule: string;
      /** IANA time zone (default UTC). */
      timezone?: string;
      input?: unknown;
      version?: string;
    };

export type FallbackTrigger = {
  id: string;
  agent: string;
  created_at: Millis;
  paused: boolean;
  paused_at: Millis | null;
} & (
  | { type: "webhook"; verify: TriggerVerify; input_pointer?: string; version?: string; url: string }
  | { type: "cron"; schedule: string; timezone: string; input: unknown; version?: string; next_fire_at: Millis | null }
);

export type FallbackCreatedTrigger = FallbackTrigger & { secret?: string | null; secret_redacted?: boolean };

export interface FallbackAuditEvent {
  id: string;
  org_id: string;
  app_id: string | null;
  key_id: string | null;
  action: string;
  target: string;
  detail: unknown;
  created_at: Millis;
}

export interface FallbackUsage {
  period: "day" | "week" | "month";
  since: Millis;
  org_id: string;
  app_id: string | null;
  usage: { runs: number; cpu_ms: number; llm_tokens_in: number; llm_tokens_out: number; fetches: number };
}

export interface FallbackUsageQuery {
  /** For org keys: one app instead of the whole org. */
  app_id?: string;
  period?: "day" | "week" | "month";
}

// ---- The public types: document first, fallback second ----

export type Org = Res<"/v1/orgs/{id}", "get", FallbackOrg>;
export type CreatedOrg = Res<"/v1/orgs", "post", FallbackCreatedOrg>;
export type OrgCreateParams = Req<"/v1/orgs", "post", { name: string }>;

export type App = Res<"/v1/apps/{id}", "get", FallbackApp>;
export type AppCreateParams = Req<"/v1/apps", "post", { name: string; settings?: Record<string, unknown> }>;

export type ApiKey = Item<ResponseBody<"/v1/api-keys", "get">, FallbackApiKey>;
export type CreatedApiKey = Res<"/v1/api-keys", "post", FallbackCreatedApiKey>;
export type ApiKeyCreateParams = Req<"/v1/api-keys", "post", FallbackNewApiKey>;

export type AgentListItem = Item<ResponseBody<"/v1/agents", "get">, FallbackAgentListItem>;
export type Agent = Res<"/v1/agents/{scope}/{name}", "get", FallbackAgent>;
export type AgentVersion = Item<ResponseBody<"/v1/agents/{scope}/{name}/versions", "get">, FallbackAgentVersion>;
export type AgentVersionDetail = Res<"/v1/agents/{scope}/{name}/versions/{version}", "get", FallbackAgentVersionDetail>;
export type UploadedVersion = Res<"/v1/agents/{scope}/{name}/versions/{version}", "put", FallbackAgentVersion>;

export type Run = Res<"/v1/runs/{id}", "get", FallbackRun>;
export type RunCreateParams = Req<"/v1/agents/{scope}/{name}/runs", "post", FallbackStartRun>;
export type RunListParams = Query<"/v1/runs", "get", FallbackRunsQuery>;
export type Journal = Res<"/v1/runs/{id}/journal", "get", FallbackJournal>;

export type MemoryEntry = Res<"/v1/memory/{scope}/{key}", "get", FallbackMemoryEntry>;

export type Connection = Res<"/v1/connections/{name}", "get", FallbackConnection>;
export type ConnectionInput = Req<"/v1/connections/{name}", "put", FallbackConnectionInput>;

export type Tool = Res<"/v1/tools/{name}", "get", FallbackTool>;
export type ToolInput = Req<"/v1/tools/{name}", "put", FallbackToolInput>;

export type Webhook = Res<"/v1/webhooks/{id}", "get", FallbackWebhook>;
export type CreatedWebhook = Res<"/v1/webhooks", "post", FallbackCreatedWebhook>;
export type WebhookCreateParams = Req<"/v1/webhooks", "post", FallbackWebhookInput>;
export type RotatedWebhookSecret = Res<"/v1/webhooks/{id}/rotate-secret", "post", FallbackRotatedSecret>;
export type Delivery = Item<ResponseBody<"/v1/webhooks/{id}/deliveries", "get">, FallbackDelivery>;
export type RetriedDelivery = Res<"/v1/webhooks/{id}/deliveries/{delivery_id}/retry", "post", FallbackRetriedDelivery>;

export type Trigger = Res<"/v1/agents/{scope}/{name}/triggers/{id}", "get", FallbackTrigger>;
export type CreatedTrigger = Res<"/v1/agents/{scope}/{name}/triggers", "post", FallbackCreatedTrigger>;
export type TriggerCreateParams = Req<"/v1/agents/{scope}/{name}/triggers", "post", FallbackTriggerInput>;
export type RotatedTriggerSecret = Res<"/v1/agents/{scope}/{name}/triggers/{id}/rotate-secret", "post", FallbackRotatedSecret>;

export type AuditEvent = Item<ResponseBody<"/v1/audit", "get">, FallbackAuditEvent>;
export type Usage = Res<"/v1/usage", "get", FallbackUsage>;
export type UsageParams = Query<"/v1/usage", "get", FallbackUsageQuery>;

/** The body of a webhook delivery (`verify` returns it). */
export interface WebhookPayload {
  type: WebhookEventType;
  /** RFC 3339. */
  timestamp: string;
  /** The run, as `runs.get` shows it. */
  data: Run;
}

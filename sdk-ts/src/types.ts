// Request and response types, picked from the generated `paths` of the server's OpenAPI
// document (src/generated/openapi.ts) by path, method and status — never by schema
// name — so they follow the document as it changes. An operation the document stops
// describing turns its type into `never`, and the SDK's own build fails: regenerate,
// look, fix.

import type { paths } from "./generated/openapi.js";

type Method = "get" | "put" | "post" | "patch" | "delete";

/** The generated operation object for a path and method (never when absent). */
export type Operation<P extends keyof paths, M extends Method> = M extends keyof paths[P]
  ? NonNullable<paths[P][M]>
  : never;

type SuccessCode = 200 | 201 | 202;
type JsonOf<R> = R extends { content: { "application/json": infer T } } ? T : never;
type Responses<O> = O extends { responses: infer R } ? R : never;

/** The JSON a successful call answers (the union over its 200/201/202 answers). */
export type ResponseBody<P extends keyof paths, M extends Method> =
  Responses<Operation<P, M>> extends infer R ? JsonOf<R[Extract<keyof R, SuccessCode>]> : never;

/** The JSON request body. */
export type RequestBody<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { requestBody?: infer B }
    ? NonNullable<B> extends { content: { "application/json": infer T } }
      ? T
      : never
    : never;

/** The query parameters. */
export type QueryParams<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;

/** The item type of a list answer `{ data: T[] }`. */
export type ItemOf<L> = L extends { data: Array<infer T> } ? T : never;

// ---- The API's types ----

export type Org = ResponseBody<"/v1/orgs/{id}", "get">;
export type CreatedOrg = ResponseBody<"/v1/orgs", "post">;
export type OrgCreateParams = RequestBody<"/v1/orgs", "post">;

export type App = ResponseBody<"/v1/apps/{id}", "get">;
export type AppCreateParams = RequestBody<"/v1/apps", "post">;

export type ApiKey = ItemOf<ResponseBody<"/v1/api-keys", "get">>;
export type CreatedApiKey = ResponseBody<"/v1/api-keys", "post">;
export type ApiKeyCreateParams = RequestBody<"/v1/api-keys", "post">;

export type AgentListItem = ItemOf<ResponseBody<"/v1/agents", "get">>;
export type Agent = ResponseBody<"/v1/agents/{scope}/{name}", "get">;
export type AgentVersion = ItemOf<ResponseBody<"/v1/agents/{scope}/{name}/versions", "get">>;
export type AgentVersionDetail = ResponseBody<"/v1/agents/{scope}/{name}/versions/{version}", "get">;
export type UploadedVersion = ResponseBody<"/v1/agents/{scope}/{name}/versions/{version}", "put">;
export type VersionUpdateParams = RequestBody<"/v1/agents/{scope}/{name}/versions/{version}", "patch">;
export type UpdatedVersion = ResponseBody<"/v1/agents/{scope}/{name}/versions/{version}", "patch">;
/** The JSON upload: `agent.json`'s content and every other file as text. */
export type JsonPackage = RequestBody<"/v1/agents/{scope}/{name}/versions/{version}", "put">;

export type Run = ResponseBody<"/v1/runs/{id}", "get">;
export type RunStatus = Run["status"];
export type RunCreateParams = RequestBody<"/v1/agents/{scope}/{name}/runs", "post">;
export type RunListParams = QueryParams<"/v1/runs", "get">;
export type SignalParams = RequestBody<"/v1/runs/{id}/signals/{name}", "post">;
export type Journal = ResponseBody<"/v1/runs/{id}/journal", "get">;
export type JournalEntry = Journal["data"][number];

export type MemoryEntry = ResponseBody<"/v1/memory/{scope}/{key}", "get">;
export type MemoryListParams = QueryParams<"/v1/memory/{scope}", "get">;
/** Where memory lives (`/v1/memory/{scope}`). */
export type MemoryScope = "end_user" | "app" | "org";

export type Connection = ResponseBody<"/v1/connections/{name}", "get">;
export type ConnectionInput = RequestBody<"/v1/connections/{name}", "put">;

export type Tool = ResponseBody<"/v1/tools/{name}", "get">;
export type ToolInput = RequestBody<"/v1/tools/{name}", "put">;

export type Webhook = ResponseBody<"/v1/webhooks/{id}", "get">;
export type CreatedWebhook = ResponseBody<"/v1/webhooks", "post">;
export type WebhookCreateParams = RequestBody<"/v1/webhooks", "post">;
export type RotatedWebhookSecret = ResponseBody<"/v1/webhooks/{id}/rotate-secret", "post">;
export type Delivery = ItemOf<ResponseBody<"/v1/webhooks/{id}/deliveries", "get">>;
export type RetriedDelivery = ResponseBody<"/v1/webhooks/{id}/deliveries/{delivery_id}/retry", "post">;
export type WebhookEventType = Delivery["event"];

export type Trigger = ResponseBody<"/v1/agents/{scope}/{name}/triggers/{id}", "get">;
export type CreatedTrigger = ResponseBody<"/v1/agents/{scope}/{name}/triggers", "post">;
export type TriggerCreateParams = RequestBody<"/v1/agents/{scope}/{name}/triggers", "post">;
export type TriggerRotateParams = RequestBody<"/v1/agents/{scope}/{name}/triggers/{id}/rotate-secret", "post">;
export type RotatedTriggerSecret = ResponseBody<"/v1/agents/{scope}/{name}/triggers/{id}/rotate-secret", "post">;
/** What `POST /v1/hooks/{id}` answers a signed inbound webhook. */
export type HookAccepted = ResponseBody<"/v1/hooks/{id}", "post">;

export type AuditEvent = ItemOf<ResponseBody<"/v1/audit", "get">>;
export type Usage = ResponseBody<"/v1/usage", "get">;
export type UsageParams = QueryParams<"/v1/usage", "get">;

/** `?limit=&cursor=` of the plain lists. */
export type PageParams = Pick<QueryParams<"/v1/apps", "get">, "limit" | "cursor">;

// ---- What the document does not describe ----

/** The body of a webhook delivery (SPEC §5 "Webhooks out"); `verify` returns it. */
export interface WebhookPayload {
  type: WebhookEventType;
  /** RFC 3339. */
  timestamp: string;
  /** The run, as `runs.get` shows it. */
  data: Run;
}

/** `agent.json` (SPEC §2), for building packages. */
export interface AgentManifest {
  /** `@scope/name` */
  name: string;
  /** semver */
  version: string;
  description?: string;
  /** Default `main.js`. */
  entry?: string;
  /** JSON Schema 2020-12 of the input. */
  input?: Record<string, unknown>;
  /** JSON Schema 2020-12 of the output. */
  output?: Record<string, unknown>;
  permissions?: {
    fetch?: string[];
    connections?: string[];
    tools?: string[];
    llm?: string[];
    memory?: MemoryScope[];
  };
  limits?: { timeout_ms?: number; cpu_ms?: number; memory_mb?: number };
  durable?: boolean;
  retry_on_node_lost?: boolean;
  [key: string]: unknown;
}

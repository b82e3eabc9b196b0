// @atoll/sdk: the client of atoll's HTTP API (`new Atoll(...)`), its errors, pages and
// run event streams, webhook verification, and the API's types. Agent authors' types
// are in "@atoll/sdk/agent".

export { Atoll, Atoll as default } from "./client.js";
export { APIPromise, VERSION, type ClientOptions, type RequestOptions, type WithResponse } from "./core.js";
export {
  APIConnectionError,
  APIError,
  APITimeoutError,
  APIUserAbortError,
  AtollError,
  AuthenticationError,
  BadRequestError,
  ConflictError,
  InternalServerError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  UnprocessableEntityError,
  WebhookVerificationError,
  type Problem,
} from "./errors.js";
export { Page, PagePromise, type ListAnswer } from "./pagination.js";
export {
  RunEventStream,
  parseSSE,
  type RunEvent,
  type RunEventData,
  type RunEventType,
  type ServerSentEvent,
  type StreamOptions,
} from "./streaming.js";
export { signWebhook, verifyWebhook, type VerifyOptions, type WebhookHeaders } from "./webhook-verify.js";
export { manifestOfArchive } from "./archive.js";
export { readPackageDir, type PackageFiles, type UploadOptions } from "./resources/agents.js";
export type { RunCreateOptions, AppScoped, JournalPageOptions } from "./resources/runs.js";
export type { MemoryOptions } from "./resources/memory.js";
export type { EndUserOptions } from "./resources/connections.js";
export type * from "./types.js";
export type { paths as OpenAPIPaths } from "./generated/openapi.js";

// Errors: one class per HTTP status the API answers with, all carrying the RFC 9457
// problem fields (`type`, `title`, `status`, `detail`) and the response's `x-request-id`.

/** The base of every error this package throws. */
export class AtollError extends Error {
  override name = "AtollError";
}

/** The problem+json body of an error answer (extension members included, e.g. `file`). */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  [extension: string]: unknown;
}

/** An answer other than 2xx, or no answer at all (see {@link APIConnectionError}). */
export class APIError extends AtollError {
  override name = "APIError";
  /** The HTTP status; undefined when no answer came. */
  readonly status: number | undefined;
  /** The response headers (empty when no answer came). */
  readonly headers: Headers;
  /** `x-request-id` of the answer: quote it when asking the operator about a failure. */
  readonly requestId: string | undefined;
  /** The problem's `type` URI, e.g. `https://atoll.dev/problems/not-found`. */
  readonly type: string | undefined;
  /** The problem's short `title`, e.g. `Not found`. */
  readonly title: string | undefined;
  /** The problem's `detail`: what went wrong with this request. */
  readonly detail: string | undefined;
  /** The whole decoded body (problem+json with its extension members, or raw text). */
  readonly body: Problem | string | undefined;

  constructor(
    status: number | undefined,
    body: Problem | string | undefined,
    message: string | undefined,
    headers: Headers | undefined,
  ) {
    super(APIError.makeMessage(status, body, message));
    this.status = status;
    this.headers = headers ?? new Headers();
    this.requestId = this.headers.get("x-request-id") ?? undefined;
    this.body = body;
    const problem = typeof body === "object" && body !== null ? body : undefined;
    this.type = typeof problem?.type === "string" ? problem.type : undefined;
    this.title = typeof problem?.title === "string" ? problem.title : undefined;
    this.detail = typeof problem?.detail === "string" ? problem.detail : undefined;
  }

  private static makeMessage(
    status: number | undefined,
    body: Problem | string | undefined,
    message: string | undefined,
  ): string {
    if (message) return message;
    const problem = typeof body === "object" && body !== null ? body : undefined;
    const what = problem?.detail ?? problem?.title ?? (typeof body === "string" ? body : undefined);
    const text = what ? String(what).slice(0, 500) : "(no body)";
    return status === undefined ? text : `${status} ${text}`;
  }

  /** The error class for an answer with this status. */
  static generate(status: number, body: Problem | string | undefined, headers: Headers): APIError {
    const Class = classFor(status);
    return new Class(status, body, undefined, headers);
  }
}

/** 400: a malformed request (bad JSON, unknown fields, bad query parameters). */
export class BadRequestError extends APIError {
  override name = "BadRequestError";
}
/** 401: missing, invalid or revoked API key. */
export class AuthenticationError extends APIError {
  override name = "AuthenticationError";
}
/** 403: the key lacks the scope, or acts for an end-user where that is refused. */
export class PermissionDeniedError extends APIError {
  override name = "PermissionDeniedError";
}
/** 404: no such resource for this tenant (another tenant's ids answer 404 too). */
export class NotFoundError extends APIError {
  override name = "NotFoundError";
}
/** 409: a conflict (immutable version, ended run, request with this key in flight...). */
export class ConflictError extends APIError {
  override name = "ConflictError";
}
/** 422: the request is well-formed but invalid (input schema, package, names...). */
export class UnprocessableEntityError extends APIError {
  override name = "UnprocessableEntityError";
}
/** 429: a rate limit or quota; `retryAfter` says how long to wait, when the server said. */
export class RateLimitError extends APIError {
  override name = "RateLimitError";
  /** Seconds the server asked to wait (`retry-after`), if it said. */
  get retryAfter(): number | undefined {
    const ms = parseRetryAfter(this.headers.get("retry-after"), Date.now());
    return ms === undefined ? undefined : ms / 1000;
  }
}
/** 5xx: the server failed (or is unavailable). */
export class InternalServerError extends APIError {
  override name = "InternalServerError";
}

/** No answer: the connection failed or was cut before a response came. */
export class APIConnectionError extends APIError {
  override name = "APIConnectionError";
  constructor(message = "Connection error.", cause?: unknown) {
    super(undefined, undefined, message, undefined);
    if (cause !== undefined) (this as { cause?: unknown }).cause = cause;
  }
}

/** No answer within the client's `timeout` (per attempt). */
export class APITimeoutError extends APIConnectionError {
  override name = "APITimeoutError";
  constructor(message = "Request timed out.") {
    super(message);
  }
}

/** The caller's AbortSignal fired. */
export class APIUserAbortError extends AtollError {
  override name = "APIUserAbortError";
  constructor(message = "Request was aborted.") {
    super(message);
  }
}

/** A webhook delivery whose signature, timestamp or headers do not check out. */
export class WebhookVerificationError extends AtollError {
  override name = "WebhookVerificationError";
}

function classFor(status: number): new (
  status: number | undefined,
  body: Problem | string | undefined,
  message: string | undefined,
  headers: Headers | undefined,
) => APIError {
  switch (status) {
    case 400:
      return BadRequestError;
    case 401:
      return AuthenticationError;
    case 403:
      return PermissionDeniedError;
    case 404:
      return NotFoundError;
    case 409:
      return ConflictError;
    case 422:
      return UnprocessableEntityError;
    case 429:
      return RateLimitError;
    default:
      return status >= 500 ? InternalServerError : APIError;
  }
}

/**
 * `retry-after` as milliseconds from `now`: delta-seconds (integer or decimal) or an
 * HTTP date. Undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

// The HTTP layer every resource goes through: base URL and key, per-attempt timeouts,
// retries with exponential backoff and jitter (connection errors, 408, 429, 5xx),
// `retry-after`, one `Idempotency-Key` per POST reused by every attempt, and the error
// classes of `errors.ts`.

import { randomUUID } from "node:crypto";

import {
  APIConnectionError,
  APIError,
  APITimeoutError,
  APIUserAbortError,
  parseRetryAfter,
  type Problem,
} from "./errors.js";

export const VERSION = "0.1.0";

export type HttpMethod = "get" | "post" | "put" | "patch" | "delete";

/** Options of `new Atoll(...)`. */
export interface ClientOptions {
  /** The server, e.g. `https://atoll.example.com` (default `ATOLL_URL`, else `http://127.0.0.1:7070`). */
  baseUrl?: string | undefined;
  /** An `atl_...` key (default `ATOLL_API_KEY`). */
  apiKey?: string | undefined;
  /** Retries after the first attempt of a retryable failure (default 2). */
  maxRetries?: number | undefined;
  /** Milliseconds one attempt may take before it is abandoned (default 60 000). */
  timeout?: number | undefined;
  /** Act for this end-user of the app (`x-atoll-end-user`; app keys only). */
  endUser?: string | undefined;
  /** Headers sent with every request. */
  defaultHeaders?: Record<string, string> | undefined;
  /** A `fetch` to use instead of the global one (tests, proxies, instrumentation). */
  fetch?: typeof fetch | undefined;
}

/** Options every call takes as its last argument. */
export interface RequestOptions {
  /** Overrides the client's `maxRetries` for this call. */
  maxRetries?: number | undefined;
  /** Overrides the client's `timeout` (ms per attempt) for this call. */
  timeout?: number | undefined;
  /** Aborts the call (and its retries) when it fires. */
  signal?: AbortSignal | undefined;
  /** Extra headers for this call. */
  headers?: Record<string, string> | undefined;
  /** For POSTs: the `Idempotency-Key` (default: a new one per call, kept across retries). */
  idempotencyKey?: string | undefined;
}

/** What a resource hands to {@link HttpClient.request}. */
export interface Call {
  method: HttpMethod;
  path: string;
  query?: Record<string, string | number | boolean | null | undefined> | undefined;
  /** A JSON body (serialised here). */
  body?: unknown;
  /** A raw body with its content type (package archives). */
  raw?: { bytes: Uint8Array; contentType: string } | undefined;
  options?: RequestOptions | undefined;
  /** Resolve with the response once the headers are in, body unread (SSE). */
  stream?: boolean | undefined;
}

/** A decoded answer with the response it came from. */
export interface WithResponse<T> {
  data: T;
  response: Response;
}

/**
 * The promise of one API call. Await it for the decoded body, or call
 * `.withResponse()` for the `Response` too (headers: `x-request-id`, `ratelimit-*`,
 * `idempotent-replayed`, and the status, e.g. 200 vs 202 for `runs.create`).
 */
export class APIPromise<T> extends Promise<T> {
  readonly #inner: Promise<WithResponse<T>>;
  #data: Promise<T> | undefined;

  // Derived promises (`.then()` results) are plain promises.
  static override get [Symbol.species]() {
    return Promise;
  }

  constructor(inner: Promise<WithResponse<T>>) {
    super((resolve) => resolve(undefined as T));
    this.#inner = inner;
    // The caller may use only `withResponse()`: never leave a rejection unhandled on a
    // derived promise nobody awaits.
    inner.catch(() => {});
  }

  withResponse(): Promise<WithResponse<T>> {
    return this.#inner;
  }

  #value(): Promise<T> {
    this.#data ??= this.#inner.then((r) => r.data);
    return this.#data;
  }

  override then<A = T, B = never>(
    onfulfilled?: ((value: T) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.#value().then(onfulfilled, onrejected);
  }

  override catch<B = never>(onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<T | B> {
    return this.#value().catch(onrejected);
  }

  override finally(onfinally?: (() => void) | null): Promise<T> {
    return this.#value().finally(onfinally);
  }
}

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_RETRIES = 2;
/** Backoff: 0.5 s, 1 s, 2 s, ... capped at 8 s, each shortened by up to 25 % at random. */
const INITIAL_RETRY_DELAY_MS = 500;
const MAX_RETRY_DELAY_MS = 8_000;
/** A `retry-after` up to this long is honoured as given; a longer one falls back to the backoff. */
const MAX_RETRY_AFTER_MS = 60_000;

function env(name: string): string | undefined {
  const value = typeof process !== "undefined" ? process.env?.[name] : undefined;
  return value === "" ? undefined : value;
}

/** The transport shared by every resource of one client. */
export class HttpClient {
  readonly baseUrl: string;
  readonly apiKey: string | undefined;
  readonly maxRetries: number;
  readonly timeout: number;
  readonly endUser: string | undefined;
  readonly defaultHeaders: Record<string, string>;
  readonly fetch: typeof fetch;

  constructor(options: ClientOptions = {}) {
    const baseUrl = options.baseUrl ?? env("ATOLL_URL") ?? "http://127.0.0.1:7070";
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey ?? env("ATOLL_API_KEY");
    this.maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
    this.timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
    this.endUser = options.endUser;
    this.defaultHeaders = { ...(options.defaultHeaders ?? {}) };
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== "function") {
      throw new TypeError("no fetch: run on Node 18 or later, or pass `fetch` in the options");
    }
    this.fetch = f;
    if (!Number.isInteger(this.maxRetries) || this.maxRetries < 0) {
      throw new TypeError("maxRetries is a whole number, 0 or more");
    }
    if (!(this.timeout > 0)) throw new TypeError("timeout is a number of milliseconds above 0");
  }

  /** The full URL of an API path with its query (undefined and null values left out). */
  url(path: string, query?: Call["query"]): string {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
    }
    return url.toString();
  }

  /** Sends a call and decodes its JSON answer (undefined for 204). */
  request<T>(call: Call): APIPromise<T> {
    return new APIPromise(this.send(call).then(async (response) => ({ data: (await decode(response)) as T, response })));
  }

  /** Sends a call with retries; resolves with a 2xx response, or throws an APIError. */
  async send(call: Call): Promise<Response> {
    const options = call.options ?? {};
    const maxRetries = options.maxRetries ?? this.maxRetries;
    const timeout = options.timeout ?? this.timeout;
    const headers = this.headersFor(call);
    const body = call.raw ? call.raw.bytes : call.body === undefined ? undefined : JSON.stringify(call.body);
    const url = this.url(call.path, call.query);

    for (let attempt = 0; ; attempt++) {
      const retriesLeft = maxRetries - attempt;
      if (attempt > 0) headers.set("x-atoll-retry-count", String(attempt));
      let response: Response;
      try {
        response = await this.attempt(url, call.method, headers, body, timeout, options.signal, call.stream === true);
      } catch (error) {
        if (error instanceof APIUserAbortError || retriesLeft <= 0) throw error;
        await sleep(backoff(attempt), options.signal);
        continue;
      }
      if (response.ok) return response;
      if (retriesLeft > 0 && shouldRetry(response.status)) {
        const wait = retryDelay(response.headers, attempt);
        // Free the connection before waiting.
        await response.body?.cancel().catch(() => {});
        await sleep(wait, options.signal);
        continue;
      }
      throw await errorFrom(response);
    }
  }

  private headersFor(call: Call): Headers {
    const options = call.options ?? {};
    const headers = new Headers({
      accept: call.stream ? "text/event-stream" : "application/json",
      "user-agent": `atoll-sdk-ts/${VERSION}`,
      ...this.defaultHeaders,
    });
    if (this.apiKey) headers.set("authorization", `Bearer ${this.apiKey}`);
    if (this.endUser !== undefined) headers.set("x-atoll-end-user", this.endUser);
    if (call.raw) headers.set("content-type", call.raw.contentType);
    else if (call.body !== undefined) headers.set("content-type", "application/json");
    if (call.method === "post") {
      // One key per call, the same on every attempt: a retry never does the work twice.
      headers.set("idempotency-key", options.idempotencyKey ?? `sdk-${randomUUID()}`);
    }
    for (const [k, v] of Object.entries(options.headers ?? {})) headers.set(k, v);
    return headers;
  }

  /** One attempt under its own timeout; rejects with APIConnectionError/APITimeoutError/APIUserAbortError. */
  private async attempt(
    url: string,
    method: HttpMethod,
    headers: Headers,
    body: string | Uint8Array | undefined,
    timeout: number,
    signal: AbortSignal | undefined,
    stream: boolean,
  ): Promise<Response> {
    if (signal?.aborted) throw new APIUserAbortError();
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeout);
    const onAbort = () => controller.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    let response: Response;
    try {
      response = await this.fetch(url, {
        method: method.toUpperCase(),
        headers,
        body: body as RequestInit["body"],
        signal: controller.signal,
      });
    } catch (error) {
      done();
      if (signal?.aborted) throw new APIUserAbortError();
      if (timedOut) throw new APITimeoutError(`Request timed out after ${timeout} ms.`);
      throw new APIConnectionError(`Connection error: ${describe(error)}`, error);
    }
    if (stream || !response.ok) {
      // A stream lives past the timeout (it applies until the headers are in); so does
      // reading an error body, which is small.
      done();
      if (stream && response.ok) {
        // The caller's signal still aborts the body.
        signal?.addEventListener("abort", onAbort, { once: true });
      }
      return response;
    }
    // Read the body within the attempt's timeout, so a stalled body is retried too.
    try {
      const bytes = new Uint8Array(await response.arrayBuffer());
      done();
      return new Response(response.status === 204 || response.status === 304 ? null : bytes, {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
      });
    } catch (error) {
      done();
      if (signal?.aborted) throw new APIUserAbortError();
      if (timedOut) throw new APITimeoutError(`Request timed out after ${timeout} ms.`);
      throw new APIConnectionError(`Connection error while reading the answer: ${describe(error)}`, error);
    }
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}

/** 408, 429 and 5xx are worth another attempt. */
export function shouldRetry(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Exponential backoff with jitter for retry number `attempt` (0-based). */
export function backoff(attempt: number): number {
  const base = Math.min(INITIAL_RETRY_DELAY_MS * 2 ** attempt, MAX_RETRY_DELAY_MS);
  return base * (1 - Math.random() * 0.25);
}

/** How long to wait before the next attempt: `retry-after` when reasonable, else the backoff. */
export function retryDelay(headers: Headers, attempt: number): number {
  const asked = parseRetryAfter(headers.get("retry-after"), Date.now());
  if (asked !== undefined && asked >= 0 && asked <= MAX_RETRY_AFTER_MS) return asked;
  return backoff(attempt);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new APIUserAbortError());
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new APIUserAbortError());
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The JSON of a 2xx answer (undefined when there is no body). */
async function decode(response: Response): Promise<unknown> {
  if (response.status === 204) return undefined;
  const text = await response.text();
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new APIError(response.status, text, `${response.status}: the answer is not JSON`, response.headers);
  }
}

/** The APIError subclass for a non-2xx answer, with its problem+json body. */
export async function errorFrom(response: Response): Promise<APIError> {
  let body: Problem | string | undefined;
  try {
    const text = await response.text();
    try {
      const parsed: unknown = JSON.parse(text);
      body = typeof parsed === "object" && parsed !== null ? (parsed as Problem) : text;
    } catch {
      body = text === "" ? undefined : text;
    }
  } catch {
    body = undefined;
  }
  return APIError.generate(response.status, body, response.headers);
}

// `GET /v1/runs/{id}/events` as an async iterable of typed run events: a small
// text/event-stream parser, and a loop that reconnects with `Last-Event-ID` when the
// connection drops (backoff with jitter), skips nothing and repeats nothing, and ends
// after the `end` event.

import { backoff, retryDelay, shouldRetry, sleep, type HttpClient } from "./core.js";
import { APIConnectionError, APIError, APIUserAbortError } from "./errors.js";
import type { RunStatus } from "./types.js";

/** The `data` of each run event type (SPEC §5 "Runs"; see README "Inside the sandbox"). */
export interface RunEventData {
  /** The run's status changed. */
  status: { status: RunStatus };
  /** A `console.*` line of the agent. */
  log: { level: "debug" | "info" | "log" | "warn" | "error"; message: string };
  /** `ctx.emit(type, data)`. */
  emit: { type: string; data: unknown };
  /** A streamed token delta of `ctx.llm.chat`. */
  "llm.delta": { model: string; delta: string };
  /** `ctx.tools.call(name, args)` was made. */
  "tool.call": { name: string; args: unknown };
  /** ... and its answer. */
  "tool.result": { name: string; ok: boolean; result?: unknown; error?: { code: string; message: string } };
  /** A brokered `fetch` (never its headers or body). */
  fetch: { method: string; host: string; path: string; ms: number; status?: number; bytes?: number; error?: string };
  /** The run parked on `ctx.sleep` / `ctx.waitFor`. */
  waiting: { signal: string | null; wake_at: number | null };
  /** A parked run started again. */
  resumed: Record<string, never>;
  /** The run's output. */
  output: { output: unknown };
  /** The run failed: `{ code, message, stack? }`. */
  error: { code: string; message: string; stack?: string; [k: string]: unknown };
  /** Events were dropped past the run's event volume (or the pipeline's) limit. */
  log_truncated: { limit_bytes?: number; message?: string; reason?: string; dropped?: number };
  /** The last event; the stream closes after it. */
  end: { status: RunStatus };
}

export type RunEventType = keyof RunEventData;

/**
 * One run event. `id` is the event's number in the run (strictly increasing); only a
 * closing `end` the server adds for an already finished run has no id (`null`).
 * Servers newer than this SDK may send other `event` types; they come through as-is.
 */
export type RunEvent = {
  [K in RunEventType]: { id: number | null; event: K; data: RunEventData[K] };
}[RunEventType];

export interface StreamOptions {
  /** Resume after this event id (events up to it are not sent again). */
  lastEventId?: number | undefined;
  /** For org keys: the app the run belongs to. */
  app_id?: string | undefined;
  /** Stops the stream (the loop ends quietly). */
  signal?: AbortSignal | undefined;
  /** Reconnections in a row without receiving an event before giving up (default 10). */
  maxReconnects?: number | undefined;
  /**
   * Milliseconds without a byte (the server sends a keep-alive every 15 s) after which
   * the connection counts as dead and is reopened (default 45 000).
   */
  idleTimeout?: number | undefined;
}

/** A parsed server-sent event. */
export interface ServerSentEvent {
  id: string | undefined;
  event: string;
  data: string;
  retry: number | undefined;
}

/**
 * Parses a text/event-stream body (WHATWG rules: `\n`, `\r\n` or `\r` line ends,
 * multi-line `data`, comments, `retry`), dispatching at each blank line. Throws when
 * no byte arrives for `idleTimeout` ms.
 */
export async function* parseSSE(
  body: ReadableStream<Uint8Array>,
  idleTimeout = Infinity,
): AsyncGenerator<ServerSentEvent, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let id: string | undefined;
  let event = "";
  let data: string[] = [];
  let retry: number | undefined;
  let dataSeen = false;

  const line = (text: string): ServerSentEvent | undefined => {
    if (text === "") {
      if (!dataSeen && event === "") return undefined;
      const out: ServerSentEvent = { id, event: event || "message", data: data.join("\n"), retry };
      event = "";
      data = [];
      dataSeen = false;
      return out;
    }
    if (text.startsWith(":")) return undefined;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        event = value;
        break;
      case "data":
        data.push(value);
        dataSeen = true;
        break;
      case "id":
        if (!value.includes("\0")) id = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) retry = Number(value);
        break;
    }
    return undefined;
  };

  try {
    for (;;) {
      const { done, value } = await readWithin(reader, idleTimeout);
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      // Take every complete line; a trailing `\r` may be the first half of `\r\n`.
      const ends = /\r\n|\r|\n/g;
      let start = 0;
      for (;;) {
        ends.lastIndex = start;
        const m = ends.exec(buffer);
        if (!m) break;
        if (m[0] === "\r" && m.index === buffer.length - 1 && !done) break;
        const out = line(buffer.slice(start, m.index));
        start = m.index + m[0].length;
        if (out) yield out;
      }
      buffer = buffer.slice(start);
      if (done) return; // an event not closed by a blank line is dropped, as browsers do
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

class IdleTimeout extends Error {}

async function readWithin(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  ms: number,
): Promise<Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]>>> {
  if (!Number.isFinite(ms)) return reader.read();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      reader.read(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new IdleTimeout(`no data for ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A run's events, live. Iterate it once with `for await`; it ends after the `end`
 * event (or quietly when `signal` fires or {@link close} is called), and throws when
 * the server refuses the stream (e.g. `NotFoundError`) or it cannot be reopened.
 */
export class RunEventStream implements AsyncIterable<RunEvent> {
  readonly runId: string;
  /** The id of the last event received: where a reconnection resumes. */
  lastEventId: number | undefined;
  /** Connections opened so far (1 when nothing dropped). */
  connections = 0;
  readonly #http: HttpClient;
  readonly #options: StreamOptions;
  readonly #controller = new AbortController();
  #used = false;

  constructor(http: HttpClient, runId: string, options: StreamOptions = {}) {
    this.#http = http;
    this.runId = runId;
    this.#options = options;
    this.lastEventId = options.lastEventId;
    const signal = options.signal;
    if (signal) {
      if (signal.aborted) this.#controller.abort();
      else signal.addEventListener("abort", () => this.#controller.abort(), { once: true });
    }
  }

  /** Stops the stream; a loop over it ends. */
  close(): void {
    this.#controller.abort();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<RunEvent, void, undefined> {
    if (this.#used) throw new Error("a RunEventStream is iterated once; call runs.stream() again");
    this.#used = true;
    const signal = this.#controller.signal;
    const maxReconnects = this.#options.maxReconnects ?? 10;
    const idleTimeout = this.#options.idleTimeout ?? 45_000;
    let failures = 0;
    let serverRetry: number | undefined;
    let lastError: unknown;
    try {
      for (;;) {
        if (signal.aborted) return;
        let response: Response | undefined;
        let delay: number | undefined;
        try {
          const headers: Record<string, string> = {};
          if (this.lastEventId !== undefined) headers["last-event-id"] = String(this.lastEventId);
          response = await this.#http.send({
            method: "get",
            path: `/v1/runs/${encodeURIComponent(this.runId)}/events`,
            query: { app_id: this.#options.app_id },
            stream: true,
            options: { headers, signal, maxRetries: 0 },
          });
          this.connections++;
        } catch (error) {
          if (error instanceof APIUserAbortError || signal.aborted) return;
          // A refusal (404, 401, 400 ...) is final; 408, 429, 5xx and no answer are not.
          if (error instanceof APIError && error.status !== undefined) {
            if (!shouldRetry(error.status)) throw error;
            delay = retryDelay(error.headers, failures);
          }
          lastError = error;
        }
        if (response?.body) {
          try {
            for await (const sse of parseSSE(response.body, idleTimeout)) {
              if (sse.retry !== undefined) serverRetry = sse.retry;
              const id = sse.id === undefined || sse.id === "" ? null : Number(sse.id);
              if (id !== null) {
                if (!Number.isFinite(id)) continue;
                // Never twice: a resumed stream starts after Last-Event-ID, but be sure.
                if (this.lastEventId !== undefined && id <= this.lastEventId) continue;
                this.lastEventId = id;
              }
              failures = 0;
              yield { id, event: sse.event, data: parseData(sse.data) } as RunEvent;
              if (sse.event === "end") return;
            }
            lastError = new APIConnectionError("the event stream closed before its end event");
          } catch (error) {
            if (signal.aborted) return;
            lastError = error;
          }
        }
        failures++;
        if (failures > maxReconnects) {
          throw new APIConnectionError(
            `the event stream of ${this.runId} could not be resumed after ${maxReconnects} attempts`,
            lastError,
          );
        }
        try {
          await sleep(Math.max(delay ?? backoff(failures - 1), serverRetry ?? 0), signal);
        } catch {
          return;
        }
      }
    } finally {
      this.#controller.abort();
    }
  }
}

function parseData(text: string): unknown {
  if (text === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

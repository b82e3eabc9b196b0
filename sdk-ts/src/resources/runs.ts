import type { APIPromise, RequestOptions } from "../core.js";
import type { PagePromise } from "../pagination.js";
import { RunEventStream, type StreamOptions } from "../streaming.js";
import type { Journal, JournalEntry, Run, RunCreateParams, RunListParams } from "../types.js";
import { Resource, agentPath, seg } from "./shared.js";

export interface RunCreateOptions extends RequestOptions {
  /**
   * Seconds (1–60) the server waits for the run to finish before answering: 200 with
   * the finished run, or 202 with the run still going. The call's timeout is raised
   * to cover the wait.
   */
  wait?: number | undefined;
}

export interface AppScoped extends RequestOptions {
  /** For org keys: the app the run belongs to. */
  app_id?: string | undefined;
}

export interface JournalPageOptions extends AppScoped {
  /** Entries per page, 1 to 1000 (default 200). */
  limit?: number | undefined;
  /** The `next_cursor` of the previous page. */
  cursor?: string | undefined;
}

const FINAL = new Set(["succeeded", "failed", "timed_out", "cancelled"]);

/** Runs: start, read, list, cancel, signal, their journal and their event stream. */
export class Runs extends Resource {
  /** Starts a run of `agent` (`@scope/name` or `scope/name`); 202 queued, or with `wait`, 200 finished. */
  create(agent: string, body: RunCreateParams = {}, options: RunCreateOptions = {}): APIPromise<Run> {
    const { wait, ...request } = options;
    if (wait !== undefined && !(Number.isInteger(wait) && wait >= 0 && wait <= 60)) {
      throw new TypeError("wait is a whole number of seconds, 0 to 60");
    }
    const timeout = request.timeout ?? this.http.timeout;
    return this.call({
      method: "post",
      path: `/v1/agents/${agentPath(agent)}/runs`,
      query: wait ? { wait } : undefined,
      body,
      options: wait ? { ...request, timeout: Math.max(timeout, wait * 1000 + 15_000) } : request,
    });
  }

  get(id: string, options: AppScoped = {}): APIPromise<Run> {
    const { app_id, ...request } = options;
    return this.call({ method: "get", path: `/v1/runs/${seg(id)}`, query: { app_id }, options: request });
  }

  /** Runs, newest first; filter by `agent`, `status`, `end_user` (and `app_id` for org keys). */
  list(params?: RunListParams, options?: RequestOptions): PagePromise<Run> {
    return this.paged<Run>("/v1/runs", { ...params }, options);
  }

  /** Cancels a run (queued, running or waiting); answers the run, final when it ended in time. */
  cancel(id: string, options?: RequestOptions): APIPromise<Run> {
    return this.call({ method: "post", path: `/v1/runs/${seg(id)}/cancel`, options });
  }

  /**
   * Delivers `payload` to the run's `ctx.waitFor(name)` (kept until the run asks for it).
   * ConflictError once the run has ended; UnprocessableEntityError when it fails the
   * wait's schema.
   */
  signal(id: string, name: string, payload?: unknown, options?: RequestOptions): APIPromise<Run> {
    return this.call({
      method: "post",
      path: `/v1/runs/${seg(id)}/signals/${seg(name)}`,
      body: { payload: payload ?? null },
      options,
    });
  }

  /**
   * One page of a run's journal positions (kind, time, size; never the answers), with
   * the journal's `length` and the `next_cursor` of the next page.
   */
  journal(id: string, options: JournalPageOptions = {}): APIPromise<Journal> {
    const { app_id, limit, cursor, ...request } = options;
    return this.call({
      method: "get",
      path: `/v1/runs/${seg(id)}/journal`,
      query: { app_id, limit, cursor },
      options: request,
    });
  }

  /** Every position of a run's journal, across pages: `for await (const e of ...)`. */
  journalEntries(id: string, options: JournalPageOptions = {}): PagePromise<JournalEntry> {
    const { app_id, limit, cursor, ...request } = options;
    return this.paged<JournalEntry>(`/v1/runs/${seg(id)}/journal`, { app_id, limit, cursor }, request);
  }

  /**
   * The run's events as an async iterable: its history, then live, ending after `end`.
   * A dropped connection is reopened with `Last-Event-ID`, so no event is lost or
   * repeated.
   */
  stream(id: string, options?: StreamOptions): RunEventStream {
    return new RunEventStream(this.http, id, options);
  }

  /** Follows the run's events to its end, then answers the finished run. */
  async wait(id: string, options: AppScoped & { signal?: AbortSignal | undefined } = {}): Promise<Run> {
    const current = await this.get(id, options);
    if (FINAL.has(String((current as { status?: unknown }).status))) return current;
    for await (const event of this.stream(id, { app_id: options.app_id, signal: options.signal })) {
      if (event.event === "end") break;
    }
    return this.get(id, options);
  }
}

import type { APIPromise, RequestOptions } from "../core.js";
import type { PagePromise } from "../pagination.js";
import type {
  CreatedTrigger,
  PageParams,
  RotatedTriggerSecret,
  Trigger,
  TriggerCreateParams,
  TriggerRotateParams,
} from "../types.js";
import { Resource, agentPath, seg } from "./shared.js";

/** Webhook and cron triggers of an agent (`@scope/name` or `scope/name`). */
export class Triggers extends Resource {
  /**
   * Creates a trigger. A webhook trigger answers its `url` (`/v1/hooks/{id}`, relative
   * to the server) and `secret` (shown once); a cron trigger its `next_fire_at`.
   */
  create(agent: string, body: TriggerCreateParams, options?: RequestOptions): APIPromise<CreatedTrigger> {
    return this.call({ method: "post", path: `/v1/agents/${agentPath(agent)}/triggers`, body, options });
  }

  list(agent: string, params?: PageParams, options?: RequestOptions): PagePromise<Trigger> {
    return this.paged<Trigger>(`/v1/agents/${agentPath(agent)}/triggers`, { ...params }, options);
  }

  get(agent: string, id: string, options?: RequestOptions): APIPromise<Trigger> {
    return this.call({ method: "get", path: triggerPath(agent, id), options });
  }

  delete(agent: string, id: string, options?: RequestOptions): APIPromise<void> {
    return this.call({ method: "delete", path: triggerPath(agent, id), options });
  }

  /** Stops firings (inbound requests then answer 409). */
  pause(agent: string, id: string, options?: RequestOptions): APIPromise<Trigger> {
    return this.call({ method: "post", path: `${triggerPath(agent, id)}/pause`, options });
  }

  /** Resumes firings (a cron trigger goes on from its next time after now). */
  resume(agent: string, id: string, options?: RequestOptions): APIPromise<Trigger> {
    return this.call({ method: "post", path: `${triggerPath(agent, id)}/resume`, options });
  }

  /**
   * Replaces a webhook trigger's secret at once: with `secret` the sender's own (Stripe),
   * else a new one.
   */
  rotateSecret(
    agent: string,
    id: string,
    body?: TriggerRotateParams,
    options?: RequestOptions,
  ): APIPromise<RotatedTriggerSecret> {
    return this.call({ method: "post", path: `${triggerPath(agent, id)}/rotate-secret`, body: body ?? {}, options });
  }

  /** The full URL of a webhook trigger on this client's server. */
  url(trigger: { url?: string | null | undefined; id: string }): string {
    return this.http.url(trigger.url ?? `/v1/hooks/${seg(trigger.id)}`);
  }
}

function triggerPath(agent: string, id: string): string {
  return `/v1/agents/${agentPath(agent)}/triggers/${seg(id)}`;
}

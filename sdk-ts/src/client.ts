import { HttpClient, type ClientOptions } from "./core.js";
import { Agents } from "./resources/agents.js";
import { ApiKeys } from "./resources/api-keys.js";
import { Apps } from "./resources/apps.js";
import { Audit } from "./resources/audit.js";
import { Connections } from "./resources/connections.js";
import { Memory } from "./resources/memory.js";
import { Orgs } from "./resources/orgs.js";
import { Runs } from "./resources/runs.js";
import { Tools } from "./resources/tools.js";
import { Triggers } from "./resources/triggers.js";
import { Usage } from "./resources/usage.js";
import { Webhooks } from "./resources/webhooks.js";

/**
 * A client of one atoll server with one API key.
 *
 * ```ts
 * const atoll = new Atoll({ baseUrl: "http://127.0.0.1:7070", apiKey: process.env.ATOLL_API_KEY });
 * const run = await atoll.runs.create("@acme/triage", { input: { invoice_id: "inv_1" } }, { wait: 30 });
 * ```
 */
export class Atoll {
  readonly agents: Agents;
  readonly runs: Runs;
  readonly memory: Memory;
  readonly connections: Connections;
  readonly tools: Tools;
  readonly triggers: Triggers;
  readonly webhooks: Webhooks;
  readonly apps: Apps;
  readonly apiKeys: ApiKeys;
  readonly audit: Audit;
  readonly usage: Usage;
  /** Orgs (the operator's admin key). */
  readonly orgs: Orgs;
  readonly #options: ClientOptions;
  readonly #http: HttpClient;

  constructor(options: ClientOptions = {}) {
    this.#options = { ...options };
    const http = new HttpClient(options);
    this.#http = http;
    this.agents = new Agents(http);
    this.runs = new Runs(http);
    this.memory = new Memory(http);
    this.connections = new Connections(http);
    this.tools = new Tools(http);
    this.triggers = new Triggers(http);
    this.webhooks = new Webhooks(http);
    this.apps = new Apps(http);
    this.apiKeys = new ApiKeys(http);
    this.audit = new Audit(http);
    this.usage = new Usage(http);
    this.orgs = new Orgs(http);
  }

  get baseUrl(): string {
    return this.#http.baseUrl;
  }

  /** A copy of this client with some options changed, e.g. `withOptions({ endUser: "alice" })`. */
  withOptions(options: ClientOptions): Atoll {
    return new Atoll({ ...this.#options, ...options });
  }
}

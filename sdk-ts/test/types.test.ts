// Compile-time checks (this file does not build if they fail): every public type the SDK
// picks out of the generated OpenAPI types resolves to a real type, neither `never` (the
// document lost the operation or its schema) nor `unknown`; and a few shapes users rely on.

import assert from "node:assert/strict";
import { test } from "node:test";

import type * as T from "@atoll/sdk";

type Public = {
  Org: T.Org; CreatedOrg: T.CreatedOrg; OrgCreateParams: T.OrgCreateParams; App: T.App; AppCreateParams: T.AppCreateParams;
  ApiKey: T.ApiKey; CreatedApiKey: T.CreatedApiKey; ApiKeyCreateParams: T.ApiKeyCreateParams; AgentListItem: T.AgentListItem;
  Agent: T.Agent; AgentVersion: T.AgentVersion; AgentVersionDetail: T.AgentVersionDetail; UploadedVersion: T.UploadedVersion;
  JsonPackage: T.JsonPackage; Run: T.Run; RunStatus: T.RunStatus; RunCreateParams: T.RunCreateParams; RunListParams: T.RunListParams;
  SignalParams: T.SignalParams; Journal: T.Journal; MemoryEntry: T.MemoryEntry; MemoryListParams: T.MemoryListParams;
  Connection: T.Connection; ConnectionInput: T.ConnectionInput; Tool: T.Tool; ToolInput: T.ToolInput; Webhook: T.Webhook;
  CreatedWebhook: T.CreatedWebhook; WebhookCreateParams: T.WebhookCreateParams; RotatedWebhookSecret: T.RotatedWebhookSecret;
  Delivery: T.Delivery; RetriedDelivery: T.RetriedDelivery; WebhookEventType: T.WebhookEventType; Trigger: T.Trigger;
  CreatedTrigger: T.CreatedTrigger; TriggerCreateParams: T.TriggerCreateParams; TriggerRotateParams: T.TriggerRotateParams;
  RotatedTriggerSecret: T.RotatedTriggerSecret; HookAccepted: T.HookAccepted; AuditEvent: T.AuditEvent; Usage: T.Usage;
  UsageParams: T.UsageParams; PageParams: T.PageParams; VersionUpdateParams: T.VersionUpdateParams; UpdatedVersion: T.UpdatedVersion;
};
type Unresolved = { [K in keyof Public]: [Public[K]] extends [never] ? K : unknown extends Public[K] ? K : never }[keyof Public];
type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;

const none: [Unresolved] extends [never] ? true : Unresolved = true;
const statuses: Equal<T.RunStatus, "queued" | "running" | "waiting" | "succeeded" | "failed" | "timed_out" | "cancelled"> = true;
const events: Equal<
  T.WebhookEventType,
  "run.started" | "run.waiting" | "run.succeeded" | "run.failed" | "run.timed_out" | "run.cancelled"
> = true;
// Bodies written the way the README shows them type-check.
const start: T.RunCreateParams = { input: { name: "Ada" }, end_user: "alice", metadata: { ticket: "T-1" } };
const connection: T.ConnectionInput = { type: "bearer", token: "sk-...", hosts: ["api.example.com"] };
const cron: T.TriggerCreateParams = { type: "cron", schedule: "*/5 * * * *", timezone: "Europe/Paris", input: {} };
const hook: T.TriggerCreateParams = { type: "webhook", verify: { hmac_header: "x-signature", prefix: "sha256=" } };

test("the API's types resolve from the generated OpenAPI types (checked when this file compiles)", () => {
  assert.deepEqual([none, statuses, events], [true, true, true]);
  assert.ok(start && connection && cron && hook);
});

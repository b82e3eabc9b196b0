// The checked-in src/generated/openapi.ts is exactly what `npm run gen` makes from the
// live server's /v1/openapi.json (so the two cannot drift), and every route the SDK
// calls is in that document.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, test } from "node:test";

import type * as Gen from "../scripts/gen.mjs";

import { SDK_DIR, startServer, type TestServer } from "./helpers/server.js";

let server: TestServer;
let document: { paths: Record<string, Record<string, unknown>> };

before(async () => {
  server = await startServer();
  const response = await fetch(`${server.url}/v1/openapi.json`);
  assert.equal(response.status, 200);
  document = (await response.json()) as typeof document;
});

after(async () => {
  await server?.stop();
});

test("src/generated/openapi.ts equals openapi-typescript's output for the live /v1/openapi.json", async () => {
  const gen = (await import(pathToFileURL(join(SDK_DIR, "scripts", "gen.mjs")).href)) as typeof Gen;
  const expected = await gen.render(document);
  const checkedIn = await readFile(join(SDK_DIR, "src", "generated", "openapi.ts"), "utf8");
  assert.ok(
    checkedIn === expected,
    "src/generated/openapi.ts is out of date: run `npm run gen -- http://<server>/v1/openapi.json` and commit it",
  );
});

/** Every route the SDK's resources call (method, path as the document writes it). */
const USED: Array<[string, string]> = [
  ["post", "/v1/orgs"],
  ["get", "/v1/orgs/{id}"],
  ["post", "/v1/apps"],
  ["get", "/v1/apps"],
  ["get", "/v1/apps/{id}"],
  ["post", "/v1/api-keys"],
  ["get", "/v1/api-keys"],
  ["delete", "/v1/api-keys/{id}"],
  ["get", "/v1/agents"],
  ["get", "/v1/agents/{scope}/{name}"],
  ["get", "/v1/agents/{scope}/{name}/versions"],
  ["get", "/v1/agents/{scope}/{name}/versions/{version}"],
  ["put", "/v1/agents/{scope}/{name}/versions/{version}"],
  ["patch", "/v1/agents/{scope}/{name}/versions/{version}"],
  ["delete", "/v1/agents/{scope}/{name}/versions/{version}"],
  ["post", "/v1/agents/{scope}/{name}/runs"],
  ["get", "/v1/runs"],
  ["get", "/v1/runs/{id}"],
  ["post", "/v1/runs/{id}/cancel"],
  ["get", "/v1/runs/{id}/events"],
  ["post", "/v1/runs/{id}/signals/{name}"],
  ["get", "/v1/runs/{id}/journal"],
  ["get", "/v1/memory/{scope}"],
  ["get", "/v1/memory/{scope}/{key}"],
  ["put", "/v1/memory/{scope}/{key}"],
  ["delete", "/v1/memory/{scope}/{key}"],
  ["get", "/v1/connections"],
  ["get", "/v1/connections/{name}"],
  ["put", "/v1/connections/{name}"],
  ["delete", "/v1/connections/{name}"],
  ["get", "/v1/tools"],
  ["get", "/v1/tools/{name}"],
  ["put", "/v1/tools/{name}"],
  ["delete", "/v1/tools/{name}"],
  ["post", "/v1/agents/{scope}/{name}/triggers"],
  ["get", "/v1/agents/{scope}/{name}/triggers"],
  ["get", "/v1/agents/{scope}/{name}/triggers/{id}"],
  ["delete", "/v1/agents/{scope}/{name}/triggers/{id}"],
  ["post", "/v1/agents/{scope}/{name}/triggers/{id}/pause"],
  ["post", "/v1/agents/{scope}/{name}/triggers/{id}/resume"],
  ["post", "/v1/agents/{scope}/{name}/triggers/{id}/rotate-secret"],
  ["post", "/v1/webhooks"],
  ["get", "/v1/webhooks"],
  ["get", "/v1/webhooks/{id}"],
  ["delete", "/v1/webhooks/{id}"],
  ["post", "/v1/webhooks/{id}/rotate-secret"],
  ["get", "/v1/webhooks/{id}/deliveries"],
  ["post", "/v1/webhooks/{id}/deliveries/{delivery_id}/retry"],
  ["get", "/v1/audit"],
  ["get", "/v1/usage"],
];

for (const [method, path] of USED) {
  const name = `${method} ${path}`;
  test(`the document has ${name}`, () => {
    assert.ok(document.paths[path]?.[method], `${name} is not in /v1/openapi.json`);
  });
}

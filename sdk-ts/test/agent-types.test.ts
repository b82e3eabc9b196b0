// The authoring types: agents/hello and agents/support-bot (plain JavaScript with JSDoc
// types) type-check against "@atoll/sdk/agent" with `tsc --checkJs` (tsconfig.agents.json);
// and the check is live: copies with a wrong type in them fail it.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

import { defineAgent, type Agent, type Ctx } from "@atoll/sdk/agent";

import { SDK_DIR } from "./helpers/server.js";

const run = promisify(execFile);
const TSC = join(SDK_DIR, "node_modules", "typescript", "bin", "tsc");

async function tsc(project: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [TSC, "-p", project], { cwd: SDK_DIR });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, output: (e.stdout ?? "") + (e.stderr ?? "") };
  }
}

test("agents/hello and agents/support-bot type-check with tsc --checkJs", async () => {
  const { code, output } = await tsc(join(SDK_DIR, "tsconfig.agents.json"));
  assert.equal(code, 0, output);
});

test("a wrong type in those agents fails the check (the check is live)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "atoll-agent-types-"));
  try {
    const mutations: Array<[string, string, string]> = [
      // hello's output type says greeting is a string.
      ["hello", "greeting: `Hello, ${name}!`", "greeting: name.length"],
      // ctx.emit takes a string type.
      ["hello", 'ctx.emit("greeted", { name })', "ctx.emit(42, { name })"],
      // there is no ctx.tools.invoke.
      ["support-bot", "const customer = await ctx.tools.call(", "const customer = await ctx.tools.invoke("],
      // fetch's connection is a name.
      ["support-bot", 'fetch(input.ticket_url, { connection: "helpdesk" })', "fetch(input.ticket_url, { connection: 7 })"],
    ];
    const files = [];
    for (const [i, [agent, from, to]] of mutations.entries()) {
      const source = await readFile(join(SDK_DIR, "..", "agents", agent, "main.js"), "utf8");
      assert.ok(source.includes(from), `${agent}/main.js contains ${from}`);
      await mkdir(join(dir, String(i)), { recursive: true });
      const file = join(dir, String(i), "main.js");
      await writeFile(file, source.replace(from, to));
      files.push(file);
    }
    const base = JSON.parse(
      (await readFile(join(SDK_DIR, "tsconfig.agents.json"), "utf8")).replace(/^\s*\/\/.*$/gm, ""),
    ) as { compilerOptions: Record<string, unknown> };
    // One project with every mutated copy: each must have an error of its own.
    const project = join(dir, "tsconfig.json");
    await writeFile(
      project,
      JSON.stringify({
        compilerOptions: {
          ...base.compilerOptions,
          baseUrl: SDK_DIR,
          paths: { "@atoll/sdk/agent": [join(SDK_DIR, "dist", "agent.d.ts")] },
        },
        files,
      }),
    );
    const { code, output } = await tsc(project);
    assert.notEqual(code, 0, output);
    for (const [i, file] of files.entries()) {
      const errors = output.split("\n").filter((l) => l.includes(`${i}/main.js`) && /error TS\d+/.test(l));
      assert.equal(errors.length, 1, `mutation ${i} (${mutations[i]![2]}): ${errors.join("\n") || "no error"}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("defineAgent returns the function and gives it Ctx", async () => {
  const agent = defineAgent<{ name: string }, { greeting: string }, { count: number }>(async (input, ctx) => {
    ctx.setState({ count: (ctx.state?.count ?? 0) + 1 });
    return { greeting: `Hello, ${input.name} (${ctx.run.id})` };
  });
  const typed: Agent<{ name: string }, { greeting: string }, { count: number }> = agent;
  let state: unknown;
  const ctx = { run: { id: "run_1" }, state: null, setState: (s: unknown) => (state = s) } as unknown as Ctx<{ count: number }>;
  assert.deepEqual(await typed({ name: "Ada" }, ctx), { greeting: "Hello, Ada (run_1)" });
  assert.deepEqual(state, { count: 1 });
});

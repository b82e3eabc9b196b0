// The README's TypeScript examples type-check against the SDK (so they cannot rot): each
// ```ts block becomes the body of a function in one file, compiled with tsc --strict.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

import { SDK_DIR } from "./helpers/server.js";

test("every ```ts example of README.md type-checks", async () => {
  const readme = await readFile(join(SDK_DIR, "README.md"), "utf8");
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
  assert.ok(blocks.length >= 10, `${blocks.length} examples`);
  const imports = new Set<string>(['import { readFile } from "node:fs/promises";']);
  const bodies: string[] = [];
  for (const block of blocks) {
    const lines = block.split("\n");
    for (const line of lines.filter((l) => l.startsWith("import "))) {
      imports.add(line.replace('"@atoll/sdk/agent"', '"../dist/agent.js"').replace('"@atoll/sdk"', '"../dist/index.js"'));
    }
    bodies.push(lines.filter((l) => !l.startsWith("import ")).join("\n"));
  }
  const source = [
    ...imports,
    'import type { Atoll as AtollClient, PackageFiles, Run } from "../dist/index.js";',
    // What the examples take from earlier ones.
    "declare const atoll: AtollClient; declare const key: { secret: string }; declare const run: Run; declare const pkg: PackageFiles;",
    ...bodies.map((body, i) =>
      body.includes("export default ")
        ? `export const example${i} = ${body.replace("export default ", "")}`
        : `export async function example${i}() {\n${body}\n}`,
    ),
  ].join("\n");
  const dir = await mkdtemp(join(SDK_DIR, ".readme-check-"));
  try {
    const file = join(dir, "examples.ts");
    await writeFile(file, source);
    const tsc = join(SDK_DIR, "node_modules", "typescript", "bin", "tsc");
    const args = [tsc, "--noEmit", "--strict", "--module", "NodeNext", "--moduleResolution", "NodeNext", "--target", "ES2022", "--types", "node", "--skipLibCheck", file];
    const result = await promisify(execFile)(process.execPath, args, { cwd: SDK_DIR }).then(
      () => "",
      (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ""}${e.stderr ?? ""}` || "tsc failed",
    );
    assert.equal(result, "", `${result}\n--- examples.ts ---\n${source}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

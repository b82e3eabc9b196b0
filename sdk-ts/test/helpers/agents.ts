// Small agent packages the tests upload (JSON `{ manifest, files }`).

import type { PackageFiles } from "@atoll/sdk";

/** Returns its input; input `{ n: number }` required. */
export const echo: PackageFiles = {
  manifest: {
    name: "@sdk/echo",
    version: "1.0.0",
    description: "returns its input",
    input: { type: "object", properties: { n: { type: "integer" } }, required: ["n"] },
    permissions: {},
  },
  files: { "main.js": "export default async (input) => ({ echoed: input });\n" },
};

/** Logs and emits `count` ticks, `gap_ms` apart, then returns the count. */
export const chatty: PackageFiles = {
  manifest: { name: "@sdk/chatty", version: "1.0.0", permissions: {} },
  files: {
    "main.js": `export default async (input, ctx) => {
  const count = input.count ?? 10;
  for (let i = 0; i < count; i++) {
    console.log("tick " + i);
    ctx.emit("tick", { i });
    await new Promise((r) => setTimeout(r, input.gap_ms ?? 20));
  }
  return { count };
};
`,
  },
};

/** Holds its slot for `ms` (a plain timer, so the run stays running), then answers. */
export const slow: PackageFiles = {
  manifest: { name: "@sdk/slow", version: "1.0.0", permissions: {} },
  files: {
    "main.js": "export default async (input) => { await new Promise((r) => setTimeout(r, input.ms ?? 1000)); return { slept: input.ms ?? 1000 }; };\n",
  },
};

/** Waits for the signal "go" and returns its payload; reads and writes memory first. */
export const waiter: PackageFiles = {
  manifest: {
    name: "@sdk/waiter",
    version: "1.0.0",
    permissions: { memory: ["app"] },
  },
  files: {
    "main.js": `export default async (input, ctx) => {
  await ctx.memory.set("waiter-seen", true, { scope: "app" });
  const payload = await ctx.waitFor("go", { timeout_ms: 60000 });
  return { got: payload };
};
`,
  },
};

export const allAgents = [echo, chatty, slow, waiter];

import { test } from "node:test";
import assert from "node:assert/strict";
import { loadRuntime, webGlobals } from "./harness.mjs";

const EXPECTED = [
  "setTimeout", "clearTimeout", "setInterval", "clearInterval",
  "TextEncoder", "TextDecoder", "URL", "URLSearchParams",
  "Event", "EventTarget", "AbortController", "AbortSignal", "DOMException",
  "crypto", "structuredClone", "Headers", "Request", "Response", "fetch", "console",
];

test("installWebGlobals defines exactly the listed globals, like browsers", async () => {
  const g = await webGlobals();
  assert.deepEqual(Reflect.ownKeys(g).sort(), [...EXPECTED].sort());
  for (const name of EXPECTED) {
    const desc = Object.getOwnPropertyDescriptor(g, name);
    assert.equal(desc.enumerable, false, name);
    assert.equal(desc.writable, true, name);
    assert.equal(desc.configurable, true, name);
  }
  assert.deepEqual(Object.keys(g), []);
});

test("installed globals are the modules' own objects", async () => {
  const rt = await loadRuntime();
  const g = await webGlobals();
  assert.equal(g.URL, rt.url.URL);
  assert.equal(g.fetch, rt.fetch.fetch);
  assert.equal(g.crypto, rt.crypto.crypto);
  assert.equal(g.console, rt.console.console);
  assert.equal(new g.URL("https://x.test").host, "x.test");
});

test("class methods are not enumerable and toStringTags are set", async () => {
  const g = await webGlobals();
  for (const name of ["URL", "URLSearchParams", "Headers", "Request", "Response", "EventTarget", "AbortSignal", "TextDecoder"]) {
    assert.deepEqual(Object.keys(g[name].prototype), [], name);
  }
  assert.equal(Object.prototype.toString.call(new g.Headers()), "[object Headers]");
  assert.equal(Object.prototype.toString.call(new g.AbortController().signal), "[object AbortSignal]");
});

test("every primordial a module destructures exists", async () => {
  const { readFileSync, readdirSync } = await import("node:fs");
  const { harness } = await import("./harness.mjs");
  const dir = new URL("../", import.meta.url);
  const files = readdirSync(dir).filter((f) => /^0\d_.*\.js$/.test(f));
  assert.equal(files.length, 11);
  for (const file of files) {
    const source = readFileSync(new URL(file, dir), "utf8");
    for (const match of source.matchAll(/const \{([^}]*)\} = primordials;/g)) {
      for (const entry of match[1].split(",")) {
        const name = entry.split(":")[0].trim();
        if (name) assert.ok(name in harness.primordials, `${file}: primordials.${name}`);
      }
    }
  }
});

test("runtime files are ASCII (deno_core loads extension code as one-byte strings)", async () => {
  const { readFileSync, readdirSync } = await import("node:fs");
  const dir = new URL("../", import.meta.url);
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".js"))) {
    const lines = readFileSync(new URL(file, dir), "utf8").split("\n");
    lines.forEach((line, i) => assert.ok(/^[\x00-\x7f]*$/.test(line), `${file}:${i + 1} is not ASCII`));
  }
});

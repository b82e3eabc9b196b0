// Test harness: loads runtime-js's ES modules in Node (v20+) with stand-ins
// for what deno_core gives them in the isolate.
//
// - `ext:core/mod.js` -> { core, primordials }: the real primordials (deno_core
//   0.413.0's 00_primordials.js, vendored in ./vendor as .txt so that
//   `node --test` does not run it) and a stub `core` (timers on Node's timers,
//   encode/decode on Node's TextEncoder/TextDecoder with op_decode's BOM
//   stripping, Node's structuredClone, reportUnhandledException recorded).
// - `ext:core/ops` -> the six atoll ops: URL ops on Node's own WHATWG URL,
//   random bytes from node:crypto, op_atoll_log recorded, op_atoll_fetch
//   delegating to a handler each test scripts (`harness.fetchHandler`).
// - `ext:atoll/<file>` -> the file in runtime-js/.
//
// A module importing any other op fails to link, so a missing op shows up.
// Run from the repository root: `node --test runtime-js/test/`.

import { register } from "node:module";
import { randomFillSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { runInThisContext } from "node:vm";
import { fileURLToPath, pathToFileURL } from "node:url";

const OPS = [
  "op_atoll_url_parse",
  "op_atoll_url_set",
  "op_atoll_random_fill",
  "op_atoll_fetch",
  "op_atoll_fetch_body",
  "op_atoll_log",
  "op_atoll_timer",
  "op_atoll_clear_timer",
];

// --- the loader hooks (they run on Node's loader thread) ---------------------------

const HOOKS = `
let runtimeDir;
const STUBS = {
  "atoll-stub:core/mod.js":
    "const h = globalThis.__atollHarness;" +
    "export const core = h.core; export const primordials = h.primordials; export const internals = {};",
  "atoll-stub:core/ops":
    "const ops = globalThis.__atollHarness.ops;" +
    ${JSON.stringify(OPS)}.map((n) => "export const " + n + " = (...a) => ops." + n + "(...a);").join(""),
};
export function initialize(data) {
  runtimeDir = data.runtimeDir;
}
export async function resolve(specifier, context, next) {
  if (specifier === "ext:core/mod.js") return { url: "atoll-stub:core/mod.js", shortCircuit: true };
  if (specifier === "ext:core/ops") return { url: "atoll-stub:core/ops", shortCircuit: true };
  if (specifier.startsWith("ext:atoll/")) {
    return { url: new URL(specifier.slice("ext:atoll/".length), runtimeDir).href, shortCircuit: true };
  }
  if (specifier.startsWith("ext:")) throw new Error("no such extension module: " + specifier);
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (url in STUBS) return { format: "module", source: STUBS[url], shortCircuit: true };
  return next(url, context);
}
`;

// --- the stand-ins ---------------------------------------------------------------------

const primordialsSource = readFileSync(
  fileURLToPath(new URL("./vendor/deno_core-0.413.0-00_primordials.js.txt", import.meta.url)),
  "utf8",
);

const nodeTextEncoder = new TextEncoder();
const nodeTextDecoder = new TextDecoder("utf-8"); // strips a BOM, like op_decode
const nodeURL = URL;
const nodeStructuredClone = structuredClone;
const TIMEOUT_MAX = 2 ** 31 - 1;

function urlParts(url) {
  const { href, origin, protocol, username, password, host, hostname, port, pathname, search, hash } = url;
  return JSON.stringify({ href, origin, protocol, username, password, host, hostname, port, pathname, search, hash });
}

const harness = {
  /** Every op_atoll_log call: { level, message }. */
  logs: [],
  /** Errors given to core.reportUnhandledException. */
  reportedErrors: [],
  /** Every op_atoll_timer call: { id, ms }; ids given to op_atoll_clear_timer. */
  timerCalls: [],
  clearedTimers: [],
  /** Pending host timers: id -> clear. */
  hostTimers: new Map(),
  /** Every op_atoll_fetch call: { request (parsed JSON), body }. */
  fetchCalls: [],
  /** Response bodies op_atoll_fetch left for op_atoll_fetch_body, by id. */
  heldBodies: new Map(),
  nextBodyId: 0,
  /** (request, body) => answer | Promise<answer>; tests replace it. */
  fetchHandler: () => {
    throw new Error("test_error: no fetch handler scripted");
  },
  ops: {
    op_atoll_url_parse(href, base) {
      return urlParts(base === null ? new nodeURL(href) : new nodeURL(href, base));
    },
    op_atoll_url_set(href, component, value) {
      if (component === "href") return urlParts(new nodeURL(value));
      const url = new nodeURL(href);
      url[component] = value;
      return urlParts(url);
    },
    op_atoll_random_fill(buf) {
      randomFillSync(buf);
    },
    // Like the host: the answer's body stays behind until op_atoll_fetch_body copies it.
    async op_atoll_fetch(requestJson, body) {
      const request = JSON.parse(requestJson);
      harness.fetchCalls.push({ request, body });
      const { body: held, ...answer } = await harness.fetchHandler(request, body);
      const bytes = held ?? new Uint8Array(0);
      const bodyId = ++harness.nextBodyId;
      harness.heldBodies.set(bodyId, bytes);
      return { ...answer, bodyId, bodyLength: bytes.length };
    },
    op_atoll_fetch_body(id, into) {
      const bytes = harness.heldBodies.get(id);
      harness.heldBodies.delete(id);
      if (bytes === undefined) throw new TypeError("this response body was already taken");
      if (bytes.length !== into.length) throw new TypeError("body and buffer lengths differ");
      into.set(bytes);
    },
    op_atoll_log(level, message) {
      harness.logs.push({ level, message });
    },
    // Like the host: due after `ms`, refused `cleared: ...` once cleared.
    op_atoll_timer(id, ms) {
      harness.timerCalls.push({ id, ms });
      return new Promise((resolve, reject) => {
        const handle = setTimeout(() => {
          harness.hostTimers.delete(id);
          resolve();
        }, ms);
        harness.hostTimers.set(id, () => {
          clearTimeout(handle);
          reject(new Error("cleared: the timer was cleared"));
        });
      });
    },
    op_atoll_clear_timer(id) {
      harness.clearedTimers.push(id);
      const clear = harness.hostTimers.get(id);
      harness.hostTimers.delete(id);
      if (clear) clear();
    },
  },
  core: {
    createTimer(callback, after, args, repeat, refed) {
      after = after === undefined ? 1 : after * 1;
      if (!(after >= 1 && after <= TIMEOUT_MAX)) after = 1;
      const run = () => (args === undefined ? callback() : callback(...args));
      const handle = repeat ? setInterval(run, after) : setTimeout(run, after);
      if (!refed) handle.unref();
      return { handle, repeat };
    },
    cancelTimer(timer) {
      (timer.repeat ? clearInterval : clearTimeout)(timer.handle);
    },
    encode: (text) => nodeTextEncoder.encode(text),
    decode: (bytes) => nodeTextDecoder.decode(bytes),
    structuredClone: (value) => nodeStructuredClone(value),
    reportUnhandledException(error) {
      harness.reportedErrors.push(error);
    },
  },
  primordials: null,
  /** Forget recorded calls and scripted behaviour between tests. */
  reset() {
    harness.logs.length = 0;
    harness.reportedErrors.length = 0;
    harness.fetchCalls.length = 0;
    harness.timerCalls.length = 0;
    harness.clearedTimers.length = 0;
    harness.heldBodies.clear();
    harness.fetchHandler = () => {
      throw new Error("test_error: no fetch handler scripted");
    };
  },
};

let runtime;

/** Loads every runtime-js web module once; resolves to their namespaces. */
async function loadRuntime() {
  if (runtime !== undefined) return runtime;
  if (globalThis.__atollHarness === undefined) {
    const saved = globalThis.__bootstrap;
    runInThisContext(primordialsSource, { filename: "00_primordials.js" });
    harness.primordials = globalThis.__bootstrap.primordials;
    if (saved === undefined) delete globalThis.__bootstrap;
    globalThis.__atollHarness = harness;
    const runtimeDir = new URL("../", import.meta.url).href;
    register(`data:text/javascript,${encodeURIComponent(HOOKS)}`, {
      parentURL: import.meta.url,
      data: { runtimeDir },
    });
  }
  const load = (name) => import(`ext:atoll/${name}`);
  runtime = {
    timers: await load("01_timers.js"),
    encoding: await load("02_encoding.js"),
    url: await load("03_url.js"),
    events: await load("04_events.js"),
    crypto: await load("05_crypto.js"),
    console: await load("06_console.js"),
    fetch: await load("07_fetch.js"),
    globals: await load("08_web_globals.js"),
  };
  return runtime;
}

/** A fresh object with the web globals installed, as bootstrap does on globalThis. */
async function webGlobals() {
  const { globals } = await loadRuntime();
  const target = {};
  globals.installWebGlobals(target);
  return target;
}

export { harness, loadRuntime, webGlobals };

// Run directly by `node --test`: check that everything loads and links.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { test } = await import("node:test");
  const assert = await import("node:assert/strict");
  test("the harness loads every runtime-js web module", async () => {
    const g = await webGlobals();
    assert.equal(typeof g.fetch, "function");
    assert.equal(typeof g.console.log, "function");
  });
}

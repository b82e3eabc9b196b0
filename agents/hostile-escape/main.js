// @hostile/hostile-escape — tries every way it knows to reach host capabilities it was not granted.
//
// Permissions: memory ["end_user"], tools ["lookup_customer"], llm ["test/*"],
//              fetch ["example.com"] (no connections). Limits: defaults.
// Input:  {} (ignored). Run it with an end_user (some probes write end_user memory keys
//         starting with "escape_probe_", and delete them again at the end).
// Expected: the run SUCCEEDS (every attempt is caught here) with an object whose entries are
//   * for every key except the four listed below: a string starting with "blocked: " (the
//     attempt failed; the rest is the error message or what was seen). "reached: ..." means
//     the sandbox leaked something — each is a bug in the runtime;
//   * four informational lists a test checks on its own:
//       global_names           Reflect.ownKeys(globalThis) as strings, sorted — must contain no
//                              Deno, __bootstrap, Bun, process, require, primordials, op_*;
//       global_prototype_names names on globalThis's prototype chain (above Object.prototype);
//       ctx_member_names       every own member of ctx, ctx.run, ctx.memory, ctx.tools, ctx.llm
//                              (symbols and non-enumerables included) as "ctx.x" paths — must be
//                              within the documented API (ctx.run/state/setState/memory/tools/
//                              llm/emit/signal, run.id/agent/version/end_user/trigger/attempt,
//                              memory.get/set/delete/list, tools.call, llm.chat);
//       import_meta            ["url=<import.meta.url>", "keys=<its keys>"] — must reveal no host
//                              file-system path.
// No attempt needs the network: every fetch/import probe must be refused before any connection
// (each is also cut off after 5 s and then reported as "reached: no refusal within 5000 ms").
//
// Attempts (key → what it tries; "blocked" is the expected outcome):
//   deno_namespace            globalThis.Deno / Deno.core.ops
//   bootstrap                 globalThis.__bootstrap
//   registry_symbols          globalThis[Symbol.for("Deno.internal" | "Deno.core" | ...)]
//   object_graph_walk         breadth-first walk of everything reachable from globalThis, ctx and
//                             import.meta (own keys, symbols, accessors, prototypes) looking for
//                             op_* functions or members named Deno/ops/__bootstrap/primordials
//   ctx_prototype             ctx.__proto__ / Object.getPrototypeOf(ctx) and its members
//   memory_get_prototype      Object.getPrototypeOf(ctx.memory.get) and the function's own members
//   cross_realm_constructor   x.constructor.constructor of ctx objects, methods and op errors must
//                             be this realm's Function (another realm's would give its global)
//   ctx_method_source         Function.prototype.toString of ctx methods; every host-looking name
//                             in them (Deno, __bootstrap, primordials, op_*) must be unreachable
//                             from agent code (global scope, globalThis)
//   function_this             new Function("return this")(), indirect eval, module `this`
//   caller_from_glue          sloppy getters/toString/toJSON hooks passed to ctx methods, reading
//                             their .caller and Error.prepareStackTrace call sites
//   import_<name>             dynamic import() of node:fs, https://, /etc/passwd, file:, ../,
//                             encoded and backslash traversal, bare, npm:, jsr:, data:, ext:core/*
//   override_promise_then / override_json_parse / override_array_push
//                             intrinsics replaced (by spies that delegate) around ctx.memory and
//                             ctx.emit calls: the runtime's glue must not call them, and the
//                             calls must still work
//   memory_scope_org/app, memory_set_org, memory_list_org, memory_scope_object, memory_scope_upper
//                             memory outside the granted end_user scope
//   memory_scope_toctou       a scope getter answering "end_user" first and "org" afterwards
//   ctx_run_tamper            rewrite ctx.run.end_user / ctx.run, then read end_user memory:
//                             the host must keep using the run's real end-user
//   tools_not_granted         ctx.tools.call("not_granted", {})
//   llm_not_granted           ctx.llm.chat({ model: "openai/gpt-4o", ... })
//   fetch_metadata            fetch("http://169.254.169.254/latest/meta-data/")
//   fetch_metadata_userinfo   fetch("http://example.com@169.254.169.254/latest/meta-data/")
//   fetch_connection_not_granted  fetch("https://example.com/", { connection: "acme-api" })

// Captured before anything else can change them.
const moduleThis = this;
const intrinsics = {
  then: Promise.prototype.then,
  parse: JSON.parse,
  push: Array.prototype.push,
};
const OurFunction = Function;
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
const TIMEOUT_MS = 5000;

const errText = (err) => {
  if (err === null || typeof err !== "object") return String(err);
  const code = typeof err.code === "string" ? ` [${err.code}]` : "";
  return `${err.name ?? "Error"}: ${err.message ?? String(err)}${code}`;
};

const short = (value, max = 300) => {
  let text;
  try {
    text = typeof value === "string" ? value : JSON.stringify(value);
  } catch {
    text = String(value);
  }
  if (text === undefined) text = String(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
};

// Resolves to the promise's value, or throws a marker after TIMEOUT_MS. The promise's own later
// rejection is always handled, so nothing is left unhandled.
class TimedOut extends Error {}
const withTimeout = (promise) => {
  let timer;
  const guarded = Promise.resolve(promise);
  guarded.catch(() => {});
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new TimedOut(`no refusal within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  });
  return Promise.race([guarded, timeout]).finally(() => clearTimeout(timer));
};

// Runs one attempt. The attempt returns its own verdict string (or a list); a thrown error is a
// refusal ("blocked"), except a TimedOut, which means nothing refused it.
const attempt = async (results, name, fn) => {
  try {
    results[name] = await fn();
  } catch (err) {
    results[name] = err instanceof TimedOut ? `reached: ${err.message}` : `blocked: ${errText(err)}`;
  }
};

const SUSPICIOUS_KEY = /^(Deno|__bootstrap|primordials|ops|internals|Bun|process|require)$/;
const OP_NAME = /^op_/;
const SOURCE_NAMES = /\b(?:Deno|__bootstrap|primordials|op_[A-Za-z0-9_]+)\b/g;

const keyName = (key) => (typeof key === "symbol" ? key.toString() : String(key));

const ownKeysSafe = (obj) => {
  try {
    return Reflect.ownKeys(obj);
  } catch {
    return [];
  }
};

const protoSafe = (obj) => {
  try {
    return Object.getPrototypeOf(obj);
  } catch {
    return null;
  }
};

// Breadth-first walk of the object graph without invoking getters.
const walkGraph = (roots, maxNodes = 20000) => {
  const seen = new Set();
  const queue = [...roots];
  let head = 0;
  const findings = [];
  let visited = 0;
  while (head < queue.length && visited < maxNodes) {
    const [path, value] = queue[head];
    queue[head] = undefined;
    head += 1;
    if (value === null || (typeof value !== "object" && typeof value !== "function")) continue;
    if (seen.has(value)) continue;
    seen.add(value);
    visited += 1;
    if (typeof value === "function") {
      let fnName = "";
      try {
        fnName = String(Reflect.getOwnPropertyDescriptor(value, "name")?.value ?? "");
      } catch {}
      if (OP_NAME.test(fnName)) findings.push(`${path} is function ${fnName}`);
    }
    for (const key of ownKeysSafe(value)) {
      const name = keyName(key);
      if (SUSPICIOUS_KEY.test(name) || OP_NAME.test(name)) findings.push(`${path}.${name}`);
      let desc;
      try {
        desc = Reflect.getOwnPropertyDescriptor(value, key);
      } catch {
        continue;
      }
      if (!desc) continue;
      if ("value" in desc) queue.push([`${path}.${name}`, desc.value]);
      if (desc.get) queue.push([`${path}.get ${name}`, desc.get]);
      if (desc.set) queue.push([`${path}.set ${name}`, desc.set]);
    }
    queue.push([`${path}.[[Prototype]]`, protoSafe(value)]);
  }
  return { visited, findings, exhausted: head >= queue.length };
};

const DOCUMENTED = {
  ctx: ["run", "state", "setState", "memory", "tools", "llm", "emit", "signal"],
  "ctx.run": ["id", "agent", "version", "end_user", "trigger", "attempt"],
  "ctx.memory": ["get", "set", "delete", "list"],
  "ctx.tools": ["call"],
  "ctx.llm": ["chat"],
};

const ctxMethods = (ctx) => [
  ["ctx.setState", ctx.setState],
  ["ctx.emit", ctx.emit],
  ["ctx.memory.get", ctx.memory?.get],
  ["ctx.memory.set", ctx.memory?.set],
  ["ctx.memory.delete", ctx.memory?.delete],
  ["ctx.memory.list", ctx.memory?.list],
  ["ctx.tools.call", ctx.tools?.call],
  ["ctx.llm.chat", ctx.llm?.chat],
];

// An error produced by a host op (a refused tool call), for cross-realm checks.
const opError = async (ctx) => {
  try {
    await withTimeout(ctx.tools.call("not_granted", {}));
  } catch (err) {
    return err;
  }
  return undefined;
};

const IMPORTS = [
  ["import_node_fs", "node:fs"],
  ["import_https_url", "https://example.com/x.js"],
  ["import_absolute_path", "/etc/passwd"],
  ["import_absolute_package_root", "/main.js"],
  ["import_file_url", "file:///etc/passwd"],
  ["import_parent_dir", "../outside.js"],
  ["import_nested_parent_dir", "./nested/../../outside.js"],
  ["import_encoded_parent_dir", "./%2e%2e/outside.js"],
  ["import_backslash_parent_dir", ".\\..\\outside.js"],
  ["import_meta_relative_parent", "META_PARENT"],
  ["import_bare", "fs"],
  ["import_npm", "npm:left-pad"],
  ["import_jsr", "jsr:@std/fs"],
  ["import_data_url", "data:text/javascript,export default typeof globalThis;"],
  ["import_ext_core_ops", "ext:core/ops"],
  ["import_ext_core_mod", "ext:core/mod.js"],
];

export default async (_input, ctx) => {
  const results = {};

  // ---- globals ----------------------------------------------------------------------------
  await attempt(results, "deno_namespace", () => {
    const D = globalThis["De" + "no"];
    if (D === undefined) return "blocked: globalThis.Deno is undefined";
    const ops = D?.core?.ops;
    return `reached: Deno has ${Object.keys(D).slice(0, 20)}; core.ops has ${ops ? Object.keys(ops).slice(0, 20) : "nothing"}`;
  });

  await attempt(results, "bootstrap", () => {
    const b = globalThis["__boot" + "strap"];
    return b === undefined
      ? "blocked: globalThis.__bootstrap is undefined"
      : `reached: __bootstrap has ${ownKeysSafe(b).map(keyName).slice(0, 20)}`;
  });

  await attempt(results, "registry_symbols", () => {
    const names = ["Deno.internal", "Deno.core", "deno.core", "Deno.ops", "Deno.bootstrap", "__bootstrap", "primordials", "atoll", "atoll.internal"];
    const found = names.filter((n) => globalThis[Symbol.for(n)] !== undefined);
    return found.length === 0
      ? `blocked: none of ${names.length} registry symbols is set on globalThis`
      : `reached: ${found.join(", ")}`;
  });

  results.global_names = ownKeysSafe(globalThis).map(keyName).sort();

  results.global_prototype_names = (() => {
    const names = [];
    for (let p = protoSafe(globalThis); p !== null && p !== Object.prototype; p = protoSafe(p)) {
      for (const k of ownKeysSafe(p)) names.push(keyName(k));
    }
    return names.sort();
  })();

  await attempt(results, "object_graph_walk", () => {
    const { visited, findings, exhausted } = walkGraph([
      ["globalThis", globalThis],
      ["ctx", ctx],
      ["import.meta", import.meta],
    ]);
    return findings.length === 0
      ? `blocked: walked ${visited} objects${exhausted ? "" : " (capped)"}, found no op or host namespace`
      : `reached: ${findings.slice(0, 20).join("; ")}`;
  });

  // ---- ctx introspection -----------------------------------------------------------------------
  results.ctx_member_names = (() => {
    const paths = [];
    for (const [path, obj] of [["ctx", ctx], ["ctx.run", ctx.run], ["ctx.memory", ctx.memory], ["ctx.tools", ctx.tools], ["ctx.llm", ctx.llm]]) {
      if (obj === null || typeof obj !== "object") continue;
      for (const k of ownKeysSafe(obj)) paths.push(`${path}.${keyName(k)}`);
    }
    return paths.sort();
  })();

  await attempt(results, "ctx_prototype", () => {
    const proto = Object.getPrototypeOf(ctx);
    const viaDunder = ctx.__proto__;
    if (viaDunder !== proto) return `reached: ctx.__proto__ differs from Object.getPrototypeOf(ctx)`;
    if (proto === null) return "blocked: ctx has a null prototype";
    if (proto === Object.prototype) return "blocked: ctx's prototype is Object.prototype";
    const extra = [];
    for (let p = proto; p !== null && p !== Object.prototype; p = protoSafe(p)) {
      for (const k of ownKeysSafe(p)) {
        const name = keyName(k);
        if (name !== "constructor" && !DOCUMENTED.ctx.includes(name)) extra.push(name);
      }
    }
    return extra.length === 0
      ? "blocked: ctx's prototype chain holds only documented members"
      : `reached: ctx's prototype chain holds undocumented members ${extra.join(", ")}`;
  });

  await attempt(results, "memory_get_prototype", () => {
    const fn = ctx.memory.get;
    const proto = Object.getPrototypeOf(fn);
    const allowedProtos = [Function.prototype, AsyncFunction.prototype];
    if (!allowedProtos.includes(proto)) {
      return `reached: prototype is not this realm's Function.prototype (has ${ownKeysSafe(proto).map(keyName).slice(0, 20)})`;
    }
    const extra = ownKeysSafe(fn).map(keyName).filter((k) => !["length", "name", "prototype"].includes(k));
    return extra.length === 0
      ? "blocked: a plain function of this realm with no extra members"
      : `reached: ctx.memory.get carries members ${extra.join(", ")}`;
  });

  await attempt(results, "cross_realm_constructor", async () => {
    const candidates = [["ctx", ctx], ["ctx.run", ctx.run], ["ctx.memory", ctx.memory], ...ctxMethods(ctx)];
    const err = await opError(ctx);
    if (err && typeof err === "object") candidates.push(["op error", err]);
    const foreign = [];
    for (const [path, value] of candidates) {
      if (value === null || value === undefined) continue;
      const ctor = value.constructor;
      const FunctionCtor = ctor?.constructor;
      if (FunctionCtor === undefined || FunctionCtor === OurFunction) continue;
      let seen = "?";
      try {
        seen = String(FunctionCtor("return typeof Deno")());
      } catch (e) {
        seen = errText(e);
      }
      foreign.push(`${path}: foreign Function constructor (typeof Deno there: ${seen})`);
    }
    return foreign.length === 0
      ? "blocked: every ctx object, method and op error belongs to this realm"
      : `reached: ${foreign.join("; ")}`;
  });

  await attempt(results, "ctx_method_source", () => {
    // Reading the glue's source is allowed; what must not work is using what it names. Every
    // host-looking identifier found in a ctx method's source is looked up from agent code.
    const named = new Set();
    for (const [, fn] of ctxMethods(ctx)) {
      if (typeof fn !== "function") continue;
      const source = Function.prototype.toString.call(fn);
      for (const m of source.matchAll(SOURCE_NAMES)) named.add(m[0]);
    }
    const reachable = [];
    for (const id of named) {
      let kind = "undefined";
      try {
        kind = (0, eval)(`typeof ${id}`);
      } catch {}
      if (kind === "undefined" && globalThis[id] !== undefined) kind = typeof globalThis[id];
      if (kind !== "undefined") reachable.push(`${id} (${kind})`);
    }
    if (reachable.length > 0) return `reached: ${reachable.join(", ")}`;
    return named.size === 0
      ? "blocked: no ctx method's source names a host internal"
      : `blocked: the sources name ${[...named].sort().join(", ")}, none reachable from agent code`;
  });

  await attempt(results, "function_this", () => {
    const viaFunction = new Function("return this")();
    const viaEval = (0, eval)("this");
    const viaCtor = ctx.memory.get.constructor("return this")();
    const typeofs = (0, eval)("[typeof Deno, typeof __bootstrap, typeof process, typeof require].join()");
    const sameGlobal = viaFunction === globalThis && viaEval === globalThis;
    const ctorOk = viaCtor === globalThis || viaCtor instanceof Promise;
    if (sameGlobal && ctorOk && moduleThis === undefined && typeofs === "undefined,undefined,undefined,undefined") {
      return "blocked: they give this sandbox's own globalThis, which has no Deno/__bootstrap/process/require";
    }
    return `reached: sameGlobal=${sameGlobal} ctorOk=${ctorOk} moduleThis=${typeof moduleThis} typeofs=${typeofs}`;
  });

  await attempt(results, "caller_from_glue", async () => {
    const captured = [];
    const record = (what, value) => {
      if (value !== null && value !== undefined) captured.push(`${what}: ${typeof value} ${value?.name ?? ""}`);
    };
    // Sloppy functions (ES modules are strict), so that `.caller` is defined for them.
    const makeHook = new Function(
      "record",
      "result",
      "return function hook() { var c = null; try { c = hook.caller; } catch (e) {} record('caller', c); return result; };",
    );
    const framesSeen = [];
    const previousPrepare = Error.prepareStackTrace;
    Error.prepareStackTrace = (_e, frames) => {
      for (const f of frames ?? []) {
        let fn, self;
        try { fn = f.getFunction?.(); } catch {}
        try { self = f.getThis?.(); } catch {}
        const fnName = typeof fn === "function" ? String(fn.name) : "";
        if (OP_NAME.test(fnName)) framesSeen.push(`frame function ${fnName}`);
        if (self && typeof self === "object" && self !== globalThis) {
          const keys = ownKeysSafe(self).map(keyName);
          if (keys.some((k) => SUSPICIOUS_KEY.test(k) || OP_NAME.test(k))) framesSeen.push(`frame this with ${keys.slice(0, 10)}`);
        }
      }
      return "";
    };
    const stackHook = new Function(
      "record",
      "result",
      "return function () { try { void new Error('probe').stack; } catch (e) {} return result; };",
    );
    try {
      const scopeHook = makeHook(record, "end_user");
      const opts = {};
      Object.defineProperty(opts, "scope", { get: scopeHook, enumerable: true });
      const opts2 = {};
      Object.defineProperty(opts2, "scope", { get: stackHook(record, "end_user"), enumerable: true });
      const key = { toString: makeHook(record, "escape_probe_caller") };
      const value = { toJSON: makeHook(record, { v: 1 }) };
      await withTimeout(ctx.memory.set("escape_probe_caller", value, opts)).catch(() => {});
      await withTimeout(ctx.memory.get(key, opts2)).catch(() => {});
      await withTimeout(ctx.emit("escape_probe", { get data() { return makeHook(record, 1)(); } })).catch(() => {});
    } finally {
      Error.prepareStackTrace = previousPrepare;
    }
    const found = [...captured, ...framesSeen];
    return found.length === 0
      ? "blocked: hooks called by the glue saw no caller and no host frames"
      : `reached: ${found.slice(0, 10).join("; ")}`;
  });

  // ---- imports -------------------------------------------------------------------------------
  for (const [name, raw] of IMPORTS) {
    await attempt(results, name, async () => {
      const specifier = raw === "META_PARENT" ? new URL("../outside.js", import.meta.url).href : raw;
      const mod = await withTimeout(import(specifier));
      return `reached: ${specifier} loaded with exports ${Object.keys(mod).slice(0, 20)}`;
    });
  }

  results.import_meta = [`url=${import.meta.url}`, `keys=${Object.keys(import.meta).join(",")}`];

  // ---- intrinsics replaced around ctx calls ------------------------------------------------------
  {
    const counts = { then: 0, parse: 0, push: 0 };
    let armed = false;
    let outcome = "not run";
    Promise.prototype.then = function (...args) {
      if (armed) counts.then += 1;
      return intrinsics.then.apply(this, args);
    };
    JSON.parse = function (...args) {
      if (armed) counts.parse += 1;
      return intrinsics.parse.apply(this, args);
    };
    Array.prototype.push = function (...args) {
      if (armed) counts.push += 1;
      return intrinsics.push.apply(this, args);
    };
    try {
      armed = true;
      await ctx.memory.set("escape_probe_intrinsics", { n: 1, list: [1, 2] }, { scope: "end_user" });
      const back = await ctx.memory.get("escape_probe_intrinsics", { scope: "end_user" });
      await ctx.emit("escape_probe", { step: "intrinsics" });
      armed = false;
      outcome = back?.n === 1 && back?.list?.length === 2 && back.list[1] === 2
        ? "ctx calls worked"
        : `ctx.memory returned ${short(back)} instead of {n:1,list:[1,2]}`;
    } catch (err) {
      armed = false;
      outcome = `ctx call threw ${errText(err)}`;
    } finally {
      armed = false;
      Promise.prototype.then = intrinsics.then;
      JSON.parse = intrinsics.parse;
      Array.prototype.push = intrinsics.push;
    }
    const verdict = (label, n) => {
      if (n > 0) return `reached: the runtime's glue called the overridden ${label} ${n} time(s) (${outcome})`;
      if (outcome !== "ctx calls worked") return `reached: ${outcome}`;
      return `blocked: the runtime's glue never called the overridden ${label} and ${outcome}`;
    };
    results.override_promise_then = verdict("Promise.prototype.then", counts.then);
    results.override_json_parse = verdict("JSON.parse", counts.parse);
    results.override_array_push = verdict("Array.prototype.push", counts.push);
  }

  // ---- memory outside the grant ----------------------------------------------------------------
  const refusedOrReached = async (promise) => `reached: returned ${short(await withTimeout(promise))}`;
  await attempt(results, "memory_scope_org", () => refusedOrReached(ctx.memory.get("x", { scope: "org" })));
  await attempt(results, "memory_scope_app", () => refusedOrReached(ctx.memory.get("x", { scope: "app" })));
  await attempt(results, "memory_set_org", () => refusedOrReached(ctx.memory.set("x", 1, { scope: "org" })));
  await attempt(results, "memory_list_org", () => refusedOrReached(ctx.memory.list("", { scope: "org" })));
  await attempt(results, "memory_scope_object", () =>
    refusedOrReached(ctx.memory.get("x", { scope: { toString: () => "org", valueOf: () => "org" } })));
  await attempt(results, "memory_scope_upper", () => refusedOrReached(ctx.memory.get("x", { scope: "ORG" })));

  await attempt(results, "memory_scope_toctou", async () => {
    await ctx.memory.set("escape_probe_toctou", "end_user value", { scope: "end_user" });
    let reads = 0;
    const opts = {};
    Object.defineProperty(opts, "scope", {
      enumerable: true,
      get() {
        reads += 1;
        return reads === 1 ? "end_user" : "org";
      },
    });
    let value;
    try {
      value = await withTimeout(ctx.memory.get("escape_probe_toctou", opts));
    } catch (err) {
      if (err instanceof TimedOut) throw err;
      return `blocked: ${errText(err)} (scope read ${reads} time(s))`;
    }
    return value === "end_user value"
      ? `blocked: the host used the end_user scope it checked (scope read ${reads} time(s))`
      : `reached: got ${short(value)} — the host read a different scope than the one it checked`;
  });

  await attempt(results, "ctx_run_tamper", async () => {
    await ctx.memory.set("escape_probe_identity", "mine", { scope: "end_user" });
    const notes = [];
    try {
      ctx.run.end_user = "victim";
      notes.push("assignment accepted");
    } catch (err) {
      notes.push(`assignment refused (${errText(err)})`);
    }
    try {
      Object.defineProperty(ctx.run, "end_user", { value: "victim" });
      notes.push("defineProperty accepted");
    } catch (err) {
      notes.push(`defineProperty refused (${errText(err)})`);
    }
    try {
      ctx.run = { ...ctx.run, end_user: "victim" };
      notes.push("ctx.run replaced");
    } catch (err) {
      notes.push(`ctx.run replace refused (${errText(err)})`);
    }
    const value = await withTimeout(ctx.memory.get("escape_probe_identity", { scope: "end_user" }));
    return value === "mine"
      ? `blocked: the host kept the run's own end-user (${notes.join("; ")})`
      : `reached: end_user memory answered ${short(value)} after tampering (${notes.join("; ")})`;
  });

  // ---- tools, llm, fetch outside the grant ---------------------------------------------------------
  await attempt(results, "tools_not_granted", () => refusedOrReached(ctx.tools.call("not_granted", {})));
  await attempt(results, "llm_not_granted", () =>
    refusedOrReached(ctx.llm.chat({ model: "openai/gpt-4o", messages: [{ role: "user", content: "hi" }] })));

  const fetchReached = async (url, init) => {
    const res = await withTimeout(fetch(url, init));
    return `reached: ${url} answered ${res.status}`;
  };
  await attempt(results, "fetch_metadata", () => fetchReached("http://169.254.169.254/latest/meta-data/"));
  await attempt(results, "fetch_metadata_userinfo", () =>
    fetchReached("http://example.com@169.254.169.254/latest/meta-data/"));
  await attempt(results, "fetch_connection_not_granted", () =>
    fetchReached("https://example.com/", { connection: "acme-api" }));

  // ---- clean up the probe keys (best effort) ---------------------------------------------------------
  for (const key of ["escape_probe_caller", "escape_probe_intrinsics", "escape_probe_toctou", "escape_probe_identity"]) {
    try {
      await ctx.memory.delete(key, { scope: "end_user" });
    } catch {}
  }

  return results;
};

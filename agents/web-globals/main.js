// @atoll/web-globals — the web APIs SPEC §3 promises, and the host globals it forbids.
//
// Input:  {} (ignored). Makes no network request. Permissions: none.
// Output: one entry per check. A check that throws unexpectedly yields "error: <name>: <message>"
// instead of its value, so a test sees which one broke. Every "..._throws" check is true only if
// the error has exactly the named type, so a missing API (ReferenceError) never passes.
// Expected output, exactly:
//   url_href                     "https://user:pw@example.com:8080/b/c?x=1#frag"
//   url_parts                    "https:|example.com|8080|/b/c|?x=1|#frag"
//   url_relative                 "https://example.com/a/d?e=1"
//   url_invalid_throws           true   (new URL("not a url") throws a TypeError)
//   url_search_params            "a=1&b=2"
//   url_search_params_encoding   "q=a+b%26c%3Dd%2F%C3%A9"
//   url_search_params_get_all    "1,3"
//   url_search_params_from_url   "x=1&y=%C3%A9"
//   text_encoder                 [104,195,169,108,108,111,32,226,130,172]
//   text_decoder                 "héllo €"
//   text_roundtrip               true   (non-BMP characters included)
//   text_decoder_replacement     true   (0xFF decodes to U+FFFD)
//   text_decoder_fatal_throws    true   ({ fatal: true } throws TypeError on 0xFF)
//   btoa                         "aGVsbG8sIHdvcmxk"
//   atob                         "hello, world"
//   atob_invalid_throws          true   (DOMException named "InvalidCharacterError")
//   btoa_non_latin1_throws       true   (DOMException named "InvalidCharacterError")
//   crypto_get_random_values     true   (fills and returns the same array; not all zeros)
//   crypto_get_random_values_quota_throws true (more than 65,536 bytes: "QuotaExceededError")
//   crypto_random_uuid           true   (RFC 4122 v4 form, two calls differ)
//   structured_clone             true   (deep copy of objects, arrays, Date, Map, Set, Uint8Array)
//   structured_clone_cycle       true
//   structured_clone_function_throws true (a function cannot be cloned: "DataCloneError")
//   set_timeout_order            "t0,t10,t20"
//   set_timeout_args             "a,b"
//   clear_timeout                true   (a cleared timer never fires)
//   event_loop_order             "sync,microtask,promise,timeout"
//   abort_controller             true   (aborted flips, "abort" listener and onabort run once each)
//   abort_signal_reason          "why"
//   abort_signal_static_abort    true   (AbortSignal.abort() is already aborted)
//   ctx_signal                   true   (ctx.signal is an AbortSignal, not aborted)
//   headers                      "content-type: text/plain; x-a: 1, 2"
//   headers_invalid_throws       true   (an invalid header name throws a TypeError)
//   request                      "POST https://example.com/p?q=1 x-b=2 body=hi"
//   response                     "201 true application/json {\"a\":1}"
//   response_json_static         "200 application/json 2"
//   response_body_used_throws    true   (reading a body twice throws TypeError)
//   response_array_buffer        [1,2,3]
//   fetch_is_function            true
//   console_methods              true   (log, info, warn, error, debug are functions)
//   typeof_Deno                  "undefined"
//   typeof_process               "undefined"
//   typeof_require              "undefined"
//   typeof___bootstrap           "undefined"
//   typeof_Bun                   "undefined"

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// True only if fn throws an error with exactly this name (so a missing API, which throws a
// ReferenceError, never passes for the check of another error).
const throwsNamed = (fn, name) => {
  try {
    fn();
    return false;
  } catch (err) {
    return err?.name === name;
  }
};

const checks = {
  url_href: () => new URL("https://user:pw@example.com:8080/a/../b/./c?x=1#frag").href,
  url_parts: () => {
    const u = new URL("https://example.com:8080/b/c?x=1#frag");
    return [u.protocol, u.hostname, u.port, u.pathname, u.search, u.hash].join("|");
  },
  url_relative: () => new URL("../d?e=1", "https://example.com/a/b/c").href,
  url_invalid_throws: () => throwsNamed(() => new URL("not a url"), "TypeError"),
  url_search_params: () => {
    const sp = new URLSearchParams({ a: "1" });
    sp.append("b", "2");
    return sp.toString();
  },
  url_search_params_encoding: () => new URLSearchParams({ q: "a b&c=d/é" }).toString(),
  url_search_params_get_all: () => new URLSearchParams("k=1&j=2&k=3").getAll("k").join(","),
  url_search_params_from_url: () => {
    const u = new URL("https://example.com/?x=1");
    u.searchParams.append("y", "é");
    return u.search.slice(1);
  },

  text_encoder: () => Array.from(new TextEncoder().encode("héllo €")),
  text_decoder: () =>
    new TextDecoder().decode(new Uint8Array([104, 195, 169, 108, 108, 111, 32, 226, 130, 172])),
  text_roundtrip: () => {
    const s = "naïve ☃ 𝄞 🦀";
    return new TextDecoder().decode(new TextEncoder().encode(s)) === s;
  },
  text_decoder_replacement: () => new TextDecoder().decode(new Uint8Array([0xff])) === "\uFFFD",
  text_decoder_fatal_throws: () =>
    throwsNamed(() => new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array([0xff])), "TypeError"),

  btoa: () => btoa("hello, world"),
  atob: () => atob("aGVsbG8sIHdvcmxk"),
  atob_invalid_throws: () => throwsNamed(() => atob("***not base64***"), "InvalidCharacterError"),
  btoa_non_latin1_throws: () => throwsNamed(() => btoa("☃"), "InvalidCharacterError"),

  crypto_get_random_values: () => {
    const buf = new Uint8Array(32);
    const same = crypto.getRandomValues(buf) === buf;
    return same && buf.some((b) => b !== 0);
  },
  crypto_get_random_values_quota_throws: () =>
    throwsNamed(() => crypto.getRandomValues(new Uint8Array(65537)), "QuotaExceededError"),
  crypto_random_uuid: () => {
    const v4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    const a = crypto.randomUUID();
    const b = crypto.randomUUID();
    return v4.test(a) && v4.test(b) && a !== b;
  },

  structured_clone: () => {
    const original = {
      n: 1,
      s: "two",
      a: [1, { b: 2 }],
      d: new Date(0),
      m: new Map([["k", { v: 1 }]]),
      set: new Set([3, 4]),
      u8: new Uint8Array([5, 6]),
    };
    const copy = structuredClone(original);
    return (
      copy !== original &&
      copy.a !== original.a &&
      copy.a[1] !== original.a[1] &&
      copy.a[1].b === 2 &&
      copy.s === "two" &&
      copy.d instanceof Date &&
      copy.d.getTime() === 0 &&
      copy.m instanceof Map &&
      copy.m.get("k").v === 1 &&
      copy.m.get("k") !== original.m.get("k") &&
      copy.set instanceof Set &&
      copy.set.has(4) &&
      copy.u8 instanceof Uint8Array &&
      copy.u8 !== original.u8 &&
      copy.u8[1] === 6
    );
  },
  structured_clone_cycle: () => {
    const node = { name: "loop" };
    node.self = node;
    const copy = structuredClone(node);
    return copy !== node && copy.self === copy;
  },
  structured_clone_function_throws: () => throwsNamed(() => structuredClone({ f() {} }), "DataCloneError"),

  set_timeout_order: async () => {
    const fired = [];
    await Promise.all(
      [20, 0, 10].map(
        (ms) => new Promise((resolve) => setTimeout(() => { fired.push(`t${ms}`); resolve(); }, ms)),
      ),
    );
    return fired.join(",");
  },
  set_timeout_args: () =>
    new Promise((resolve) => setTimeout((a, b) => resolve(`${a},${b}`), 0, "a", "b")),
  clear_timeout: async () => {
    let fired = false;
    const id = setTimeout(() => { fired = true; }, 5);
    clearTimeout(id);
    await sleep(30);
    return fired === false;
  },
  event_loop_order: async () => {
    const order = [];
    const done = new Promise((resolve) => setTimeout(() => { order.push("timeout"); resolve(); }, 0));
    queueMicrotask(() => order.push("microtask"));
    Promise.resolve().then(() => order.push("promise"));
    order.push("sync");
    await done;
    return order.join(",");
  },

  abort_controller: () => {
    const controller = new AbortController();
    const signal = controller.signal;
    let listener = 0;
    let handler = 0;
    signal.addEventListener("abort", () => { listener += 1; });
    signal.onabort = () => { handler += 1; };
    const before = signal.aborted;
    controller.abort("why");
    controller.abort("again");
    return before === false && signal.aborted === true && listener === 1 && handler === 1;
  },
  abort_signal_reason: () => {
    const controller = new AbortController();
    controller.abort("why");
    return controller.signal.reason;
  },
  abort_signal_static_abort: () => AbortSignal.abort().aborted === true,
  ctx_signal: (ctx) =>
    ctx.signal instanceof AbortSignal && ctx.signal.aborted === false,

  headers: () => {
    const h = new Headers({ "Content-Type": "text/plain" });
    h.append("X-A", "1");
    h.append("x-a", "2");
    return [...h].map(([k, v]) => `${k}: ${v}`).join("; ");
  },
  headers_invalid_throws: () => throwsNamed(() => new Headers({ "bad header": "x" }), "TypeError"),
  request: async () => {
    const req = new Request("https://example.com/p?q=1", {
      method: "POST",
      body: "hi",
      headers: { "x-b": "2" },
    });
    return `${req.method} ${req.url} x-b=${req.headers.get("x-b")} body=${await req.text()}`;
  },
  response: async () => {
    const res = new Response('{"a":1}', { status: 201, headers: { "content-type": "application/json" } });
    const body = await res.json();
    return `${res.status} ${res.ok} ${res.headers.get("content-type")} ${JSON.stringify(body)}`;
  },
  response_json_static: async () => {
    const res = Response.json({ b: 2 });
    const body = await res.json();
    return `${res.status} ${res.headers.get("content-type")} ${body.b}`;
  },
  response_body_used_throws: async () => {
    const res = new Response("once");
    await res.text();
    if (res.bodyUsed !== true) return false;
    try {
      await res.text();
      return false;
    } catch (err) {
      return err?.name === "TypeError";
    }
  },
  response_array_buffer: async () =>
    Array.from(new Uint8Array(await new Response(new Uint8Array([1, 2, 3])).arrayBuffer())),
  fetch_is_function: () => typeof fetch === "function",
  console_methods: () =>
    ["log", "info", "warn", "error", "debug"].every((m) => typeof console[m] === "function"),

  typeof_Deno: () => typeof Deno,
  typeof_process: () => typeof process,
  typeof_require: () => typeof require,
  typeof___bootstrap: () => typeof __bootstrap,
  typeof_Bun: () => typeof Bun,
};

export default async (_input, ctx) => {
  const out = {};
  for (const [name, check] of Object.entries(checks)) {
    try {
      out[name] = await check(ctx);
    } catch (err) {
      out[name] = `error: ${err?.name ?? "Error"}: ${err?.message ?? String(err)}`;
    }
  }
  return out;
};

// Copyright atoll authors. The `ctx` object an agent receives (SPEC section 3).
//
// Everything here is a thin, frozen veneer over host ops: the grant checks happen in
// Rust at every call, so nothing an agent does to these objects widens what it may do.

import { primordials } from "ext:core/mod.js";
import {
  op_atoll_cancel_wait,
  op_atoll_emit,
  op_atoll_llm_chat,
  op_atoll_memory,
  op_atoll_state_set,
  op_atoll_tool_call,
  op_atoll_wait,
} from "ext:core/ops";

const {
  Error,
  JSONParse,
  JSONStringify,
  MathFloor,
  ObjectFreeze,
  TypeError,
  ObjectDefineProperty,
} = primordials;

const CODE_PATTERN = /^([a-z_]+): /;

/** Gives a host refusal ("permission_denied: ...") its code as `err.code`. */
export function withCode(err) {
  try {
    if (err instanceof Error && typeof err.message === "string") {
      const m = CODE_PATTERN.exec(err.message);
      if (m) {
        ObjectDefineProperty(err, "code", {
          value: m[1],
          enumerable: false,
          configurable: true,
          writable: true,
        });
      }
    }
  } catch {
    // A frozen or exotic error keeps its message; the code is a convenience.
  }
  return err;
}

function toJson(value, what) {
  let json;
  try {
    json = JSONStringify(value === undefined ? null : value);
  } catch (e) {
    throw new TypeError(`${what} must be JSON-serialisable: ${e?.message ?? e}`);
  }
  return json === undefined ? "null" : json;
}

function scopeOf(options) {
  if (options === undefined || options === null) return undefined;
  if (typeof options !== "object") {
    throw new TypeError("memory options must be an object like { scope: 'app' }");
  }
  return options.scope;
}

async function memoryCall(call) {
  try {
    return JSONParse(await op_atoll_memory(JSONStringify(call)));
  } catch (e) {
    throw withCode(e);
  }
}

function checkKey(key) {
  if (typeof key !== "string") {
    throw new TypeError("memory keys are strings");
  }
  return key;
}

const memory = ObjectFreeze({
  get: (key, options) =>
    memoryCall({ action: "get", key: checkKey(key), scope: scopeOf(options) }),
  set: (key, value, options) =>
    memoryCall({
      action: "set",
      key: checkKey(key),
      value: JSONParse(toJson(value, "a memory value")),
      scope: scopeOf(options),
    }),
  delete: (key, options) =>
    memoryCall({ action: "delete", key: checkKey(key), scope: scopeOf(options) }),
  list: (prefix, options) =>
    memoryCall({
      action: "list",
      key: prefix === undefined ? "" : checkKey(prefix),
      scope: scopeOf(options),
      limit: options?.limit,
    }),
});

const tools = ObjectFreeze({
  call: async (name, args) => {
    if (typeof name !== "string") throw new TypeError("a tool name is a string");
    try {
      return JSONParse(await op_atoll_tool_call(name, toJson(args ?? {}, "tool arguments")));
    } catch (e) {
      throw withCode(e);
    }
  },
});

const llm = ObjectFreeze({
  chat: async (request) => {
    if (request === null || typeof request !== "object") {
      throw new TypeError("ctx.llm.chat takes { model, messages, tools?, response_format? }");
    }
    try {
      return JSONParse(await op_atoll_llm_chat(toJson(request, "a chat request")));
    } catch (e) {
      throw withCode(e);
    }
  },
});

async function waitCall(request) {
  try {
    return JSONParse(await op_atoll_wait(JSONStringify(request)));
  } catch (e) {
    throw withCode(e);
  }
}

/** `ctx.sleep(ms)`: a durable sleep (from 1 s on, the run waits without an isolate). */
async function sleep(ms) {
  const n = +ms;
  if (!(n >= 0) || n === Infinity) {
    throw new TypeError("ctx.sleep takes a number of milliseconds, 0 or more");
  }
  await waitCall({ ms: MathFloor(n) });
}

/**
 * `ctx.waitFor(name, { timeout_ms, schema })`: the payload of the signal `name`
 * (`POST /v1/runs/{id}/signals/{name}`); past `timeout_ms` it throws with code
 * `wait_timeout`.
 */
async function waitFor(name, options) {
  if (typeof name !== "string") throw new TypeError("a signal name is a string");
  if (options !== undefined && (options === null || typeof options !== "object")) {
    throw new TypeError("ctx.waitFor options are { timeout_ms?, schema? }");
  }
  const timeout = options?.timeout_ms ?? 0;
  if (typeof timeout !== "number" || !(timeout >= 0)) {
    throw new TypeError("timeout_ms is a number of milliseconds");
  }
  const request = { name, ms: MathFloor(timeout) };
  if (options?.schema !== undefined) request.schema = JSONParse(toJson(options.schema, "a schema"));
  return waitCall(request);
}

/** Builds the frozen `ctx` for one run from the host's start record. */
export function makeContext(start, unrefOpPromise) {
  const signal = makeSignalWith(unrefOpPromise);
  return ObjectFreeze({
    run: ObjectFreeze({ ...start.run }),
    state: start.state ?? null,
    signal,
    setState(value) {
      try {
        op_atoll_state_set(toJson(value, "state"));
      } catch (e) {
        throw withCode(e);
      }
    },
    memory,
    tools,
    llm,
    sleep,
    waitFor,
    emit(type, data) {
      if (typeof type !== "string") throw new TypeError("an event type is a string");
      try {
        op_atoll_emit(type, toJson(data, "event data"));
      } catch (e) {
        throw withCode(e);
      }
    },
  });
}

function makeSignalWith(unrefOpPromise) {
  if (typeof globalThis.AbortController !== "function") return undefined;
  const controller = new globalThis.AbortController();
  const wait = op_atoll_cancel_wait();
  unrefOpPromise(wait);
  wait.then(
    () => controller.abort(new Error("the run was cancelled")),
    () => {},
  );
  return controller.signal;
}

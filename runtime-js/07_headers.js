// atoll runtime: Headers (WHATWG Fetch) and the Body mixin that Request and
// Response share, with bodies held as whole byte arrays (no streams, no
// Blob/FormData). 07_fetch.js builds Request, Response and fetch on these.

import { core, primordials } from "ext:core/mod.js";
import { decodeUtf8, isAnyArrayBuffer, toBytes, toUSVString } from "ext:atoll/02_encoding.js";
import { isURLSearchParams, URLSearchParams } from "ext:atoll/03_url.js";

const {
  ArrayBufferIsView,
  ArrayBufferPrototypeGetByteLength,
  ArrayPrototypeJoin,
  ArrayPrototypePush,
  ArrayPrototypeSort,
  ArrayPrototypeSplice,
  JSONParse,
  ObjectDefineProperty,
  ObjectGetOwnPropertyDescriptor,
  ReflectApply,
  ReflectOwnKeys,
  RegExpPrototypeExec,
  SafeRegExp,
  String,
  StringPrototypeCharCodeAt,
  StringPrototypeReplace,
  StringPrototypeSlice,
  StringPrototypeToLowerCase,
  SymbolFor,
  SymbolIterator,
  SymbolToStringTag,
  TypeError,
  TypedArrayPrototypeGetBuffer,
  TypedArrayPrototypeGetByteLength,
  TypedArrayPrototypeGetByteOffset,
  TypedArrayPrototypeSlice,
  Uint8Array,
} = primordials;

const inspectSymbol = SymbolFor("nodejs.util.inspect.custom");
const TOKEN = new SafeRegExp("^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$");
const HTTP_WHITESPACE_EDGES = new SafeRegExp("^[\\t\\n\\r ]+|[\\t\\n\\r ]+$", "g");
const INVALID_HEADER_VALUE = new SafeRegExp("[\\0\\r\\n]|[^\\x00-\\xff]");
const EMPTY = new Uint8Array(0);
const searchParamsToString = URLSearchParams.prototype.toString;

function requireArgs(count, needed, where) {
  if (count < needed) {
    throw new TypeError(`${where}: ${needed} argument(s) required, but only ${count} present`);
  }
}

function includes(list, value) {
  for (let i = 0; i < list.length; i++) if (list[i] === value) return true;
  return false;
}

// --- Headers ------------------------------------------------------------------------

function headerName(name) {
  name = String(name);
  if (RegExpPrototypeExec(TOKEN, name) === null) {
    throw new TypeError(`Header name is not valid: '${name}'`);
  }
  return StringPrototypeToLowerCase(name);
}

function headerValue(value) {
  value = StringPrototypeReplace(String(value), HTTP_WHITESPACE_EDGES, "");
  if (RegExpPrototypeExec(INVALID_HEADER_VALUE, value) !== null) {
    throw new TypeError(`Header value is not valid: '${value}'`);
  }
  return value;
}

let headersList; // (headers) => [[lowercase name, value], ...]
let headersGuard; // (headers) => "none" | "request" | "response" | "immutable"
let setHeadersGuard; // (headers, guard) => void

class Headers {
  #list = [];
  #guard = "none";

  static {
    headersList = (headers) => headers.#list;
    headersGuard = (headers) => headers.#guard;
    setHeadersGuard = (headers, guard) => {
      headers.#guard = guard;
    };
  }

  constructor(init = undefined) {
    if (init === undefined) return;
    if (typeof init !== "object" || init === null) {
      throw new TypeError("Headers: init must be an object, an array of pairs or a Headers");
    }
    if (typeof init[SymbolIterator] === "function") {
      for (const pair of init) {
        const entry = [...pair];
        if (entry.length !== 2) throw new TypeError("Headers: each init pair must have exactly two items");
        this.append(entry[0], entry[1]);
      }
      return;
    }
    const keys = ReflectOwnKeys(init);
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      const desc = ObjectGetOwnPropertyDescriptor(init, key);
      if (typeof key === "string" && desc?.enumerable) this.append(key, init[key]);
    }
  }

  #checkMutable() {
    if (this.#guard === "immutable") throw new TypeError("Headers are immutable");
  }

  append(name, value) {
    requireArgs(arguments.length, 2, "Headers.append");
    const lower = headerName(name);
    const normalized = headerValue(value);
    this.#checkMutable();
    ArrayPrototypePush(this.#list, [lower, normalized]);
  }

  delete(name) {
    requireArgs(arguments.length, 1, "Headers.delete");
    const lower = headerName(name);
    this.#checkMutable();
    for (let i = this.#list.length - 1; i >= 0; i--) {
      if (this.#list[i][0] === lower) ArrayPrototypeSplice(this.#list, i, 1);
    }
  }

  get(name) {
    requireArgs(arguments.length, 1, "Headers.get");
    const lower = headerName(name);
    const values = [];
    for (let i = 0; i < this.#list.length; i++) {
      if (this.#list[i][0] === lower) ArrayPrototypePush(values, this.#list[i][1]);
    }
    return values.length === 0 ? null : ArrayPrototypeJoin(values, ", ");
  }

  getSetCookie() {
    const values = [];
    for (let i = 0; i < this.#list.length; i++) {
      if (this.#list[i][0] === "set-cookie") ArrayPrototypePush(values, this.#list[i][1]);
    }
    return values;
  }

  has(name) {
    requireArgs(arguments.length, 1, "Headers.has");
    const lower = headerName(name);
    for (let i = 0; i < this.#list.length; i++) {
      if (this.#list[i][0] === lower) return true;
    }
    return false;
  }

  set(name, value) {
    requireArgs(arguments.length, 2, "Headers.set");
    const lower = headerName(name);
    const normalized = headerValue(value);
    this.#checkMutable();
    let found = false;
    for (let i = 0; i < this.#list.length; i++) {
      if (this.#list[i][0] !== lower) continue;
      if (!found) {
        this.#list[i] = [lower, normalized];
        found = true;
      } else {
        ArrayPrototypeSplice(this.#list, i--, 1);
      }
    }
    if (!found) ArrayPrototypePush(this.#list, [lower, normalized]);
  }

  /** "Sort and combine": by name; values joined by ", " except set-cookie. */
  #sortedAndCombined() {
    const names = [];
    for (let i = 0; i < this.#list.length; i++) {
      if (!includes(names, this.#list[i][0])) ArrayPrototypePush(names, this.#list[i][0]);
    }
    ArrayPrototypeSort(names, (a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const pairs = [];
    for (let i = 0; i < names.length; i++) {
      if (names[i] === "set-cookie") {
        const cookies = this.getSetCookie();
        for (let j = 0; j < cookies.length; j++) ArrayPrototypePush(pairs, ["set-cookie", cookies[j]]);
      } else {
        ArrayPrototypePush(pairs, [names[i], this.get(names[i])]);
      }
    }
    return pairs;
  }

  forEach(callback, thisArg = undefined) {
    if (typeof callback !== "function") throw new TypeError("Headers.forEach: callback must be a function");
    const pairs = this.#sortedAndCombined();
    for (let i = 0; i < pairs.length; i++) ReflectApply(callback, thisArg, [pairs[i][1], pairs[i][0], this]);
  }

  *entries() {
    const pairs = this.#sortedAndCombined();
    for (let i = 0; i < pairs.length; i++) yield pairs[i];
  }

  *keys() {
    const pairs = this.#sortedAndCombined();
    for (let i = 0; i < pairs.length; i++) yield pairs[i][0];
  }

  *values() {
    const pairs = this.#sortedAndCombined();
    for (let i = 0; i < pairs.length; i++) yield pairs[i][1];
  }

  get [SymbolToStringTag]() {
    return "Headers";
  }

  [inspectSymbol](depth, options, inspect) {
    if (depth < 0) return this; // printed as [Name] past the depth limit
    const view = {};
    const pairs = this.#sortedAndCombined();
    for (let i = 0; i < pairs.length; i++) view[pairs[i][0]] = pairs[i][1];
    return `Headers ${inspect(view, options)}`;
  }
}
ObjectDefineProperty(Headers.prototype, SymbolIterator, {
  __proto__: null,
  value: Headers.prototype.entries,
  writable: true,
  configurable: true,
});

/** Headers from trusted pairs (the host's response), in their order. */
function headersFromPairs(pairs, guard) {
  const headers = new Headers();
  const list = headersList(headers);
  for (let i = 0; i < pairs.length; i++) {
    ArrayPrototypePush(list, [StringPrototypeToLowerCase(pairs[i][0]), pairs[i][1]]);
  }
  setHeadersGuard(headers, guard);
  return headers;
}

function copyHeaders(headers, guard = headersGuard(headers)) {
  return headersFromPairs(headersList(headers), guard);
}

// --- bodies -------------------------------------------------------------------------

/** BodyInit -> { bytes, type } with a private copy of the bytes. */
function extractBody(body) {
  if (typeof body === "string") {
    return { bytes: core.encode(toUSVString(body)), type: "text/plain;charset=UTF-8" };
  }
  if (isURLSearchParams(body)) {
    return {
      bytes: core.encode(ReflectApply(searchParamsToString, body, [])),
      type: "application/x-www-form-urlencoded;charset=UTF-8",
    };
  }
  if (ArrayBufferIsView(body) || isAnyArrayBuffer(body)) {
    return { bytes: TypedArrayPrototypeSlice(toBytes(body, "body")), type: null };
  }
  // Anything else converts to a string, as WebIDL's union conversion does.
  return { bytes: core.encode(toUSVString(body)), type: "text/plain;charset=UTF-8" };
}

/** A body's state: bytes (null: no body), whether read, an abort signal. */
function bodyState(bytes, signal = null) {
  return { __proto__: null, bytes, used: false, signal };
}

function cloneBodyState(state) {
  if (state.used) throw new TypeError("Body has already been consumed");
  const bytes = state.bytes === null ? null : TypedArrayPrototypeSlice(state.bytes);
  return bodyState(bytes, state.signal);
}

function takeBytes(state) {
  if (state.used) throw new TypeError("Body has already been consumed");
  if (state.signal?.aborted) throw state.signal.reason;
  const bytes = state.bytes;
  if (bytes === null) return EMPTY;
  state.used = true;
  state.bytes = null;
  return bytes;
}

function exactArrayBuffer(bytes) {
  const buffer = TypedArrayPrototypeGetBuffer(bytes);
  if (TypedArrayPrototypeGetByteOffset(bytes) === 0 &&
    TypedArrayPrototypeGetByteLength(bytes) === ArrayBufferPrototypeGetByteLength(buffer) &&
    bytes !== EMPTY) {
    return buffer;
  }
  return TypedArrayPrototypeGetBuffer(TypedArrayPrototypeSlice(bytes));
}

function bytesToText(bytes) {
  const text = decodeUtf8(bytes);
  return StringPrototypeCharCodeAt(text, 0) === 0xfeff ? StringPrototypeSlice(text, 1) : text;
}

/** Adds the Body mixin (text/json/arrayBuffer/bytes/bodyUsed) to a class. */
function installBodyMixin(Class, getState) {
  const methods = {
    async arrayBuffer() {
      return exactArrayBuffer(takeBytes(getState(this)));
    },
    async bytes() {
      const bytes = takeBytes(getState(this));
      return bytes === EMPTY ? new Uint8Array(0) : bytes;
    },
    async text() {
      return bytesToText(takeBytes(getState(this)));
    },
    async json() {
      return JSONParse(bytesToText(takeBytes(getState(this))));
    },
  };
  const names = ["arrayBuffer", "bytes", "text", "json"];
  for (let i = 0; i < names.length; i++) {
    ObjectDefineProperty(Class.prototype, names[i], {
      __proto__: null,
      value: methods[names[i]],
      writable: true,
      configurable: true,
    });
  }
  ObjectDefineProperty(Class.prototype, "bodyUsed", {
    __proto__: null,
    get() {
      return getState(this).used;
    },
    configurable: true,
  });
}


export {
  bodyState,
  cloneBodyState,
  copyHeaders,
  EMPTY,
  extractBody,
  Headers,
  headersFromPairs,
  headersList,
  includes,
  INVALID_HEADER_VALUE,
  installBodyMixin,
  requireArgs,
  setHeadersGuard,
  TOKEN,
};

// atoll runtime: Headers, Request, Response and fetch (WHATWG Fetch), with
// bodies held as whole byte arrays (no streams, no Blob/FormData).
//
// The request goes to the host as one op call, `op_atoll_fetch(json, body)`;
// the host checks the grant (hosts, connections, counts, sizes) and answers
// with the complete response. `init.connection` (not standard) names a
// host-side credential the broker adds to the request.

import { core, primordials } from "ext:core/mod.js";
import { op_atoll_fetch } from "ext:core/ops";
import { decodeUtf8, isAnyArrayBuffer, toBytes, toUSVString } from "ext:atoll/02_encoding.js";
import { isURLSearchParams, URL, URLSearchParams } from "ext:atoll/03_url.js";
import { AbortSignal, addAbortAlgorithm, isAbortSignal } from "ext:atoll/04_events.js";

const {
  ArrayBufferIsView,
  ArrayBufferPrototypeGetByteLength,
  ArrayPrototypeJoin,
  ArrayPrototypeMap,
  ArrayPrototypePush,
  ArrayPrototypeSort,
  ArrayPrototypeSplice,
  JSONParse,
  JSONStringify,
  MathTrunc,
  NumberIsFinite,
  ObjectDefineProperty,
  ObjectGetOwnPropertyDescriptor,
  Promise,
  Symbol,
  PromisePrototypeThen,
  RangeError,
  ReflectApply,
  ReflectOwnKeys,
  RegExpPrototypeExec,
  SafeRegExp,
  String,
  StringPrototypeCharCodeAt,
  StringPrototypeIndexOf,
  StringPrototypeReplace,
  StringPrototypeSlice,
  StringPrototypeToLowerCase,
  StringPrototypeToUpperCase,
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
const NULL_BODY_STATUSES = [101, 103, 204, 205, 304];
const REDIRECT_STATUSES = [301, 302, 303, 307, 308];
const NORMALIZED_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"];
const FORBIDDEN_METHODS = ["CONNECT", "TRACE", "TRACK"];
const EMPTY = new Uint8Array(0);
// Captured: the global AbortSignal's statics are writable by agent code.
const abortSignalAny = AbortSignal.any;
const followSignals = (signals) => ReflectApply(abortSignalAny, AbortSignal, [signals]);
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

// --- Request ------------------------------------------------------------------------

function normalizeMethod(method) {
  method = String(method);
  if (RegExpPrototypeExec(TOKEN, method) === null) throw new TypeError(`Invalid method: '${method}'`);
  const upper = StringPrototypeToUpperCase(method);
  if (includes(FORBIDDEN_METHODS, upper)) throw new TypeError(`Method is forbidden: '${method}'`);
  return includes(NORMALIZED_METHODS, upper) ? upper : method;
}

let requestRecord; // (request) => its internal record

/**
 * The request a Request constructor or fetch() describes, validated:
 * { method, url, headers (Headers), body (state), signal, redirect, connection }.
 */
function buildRequest(input, init) {
  let record;
  let inputBody = null;
  if (typeof input === "object" && input !== null && isRequest(input)) {
    const source = requestRecord(input);
    inputBody = source.body;
    record = { ...source, headers: copyHeaders(source.headers, "request") };
  } else {
    const url = new URL(String(input));
    if (url.username !== "" || url.password !== "") {
      throw new TypeError(`Request URL must not include credentials: '${url.href}'`);
    }
    record = {
      method: "GET",
      url: url.href,
      headers: new Headers(),
      body: bodyState(null),
      signal: null,
      redirect: "follow",
      connection: null,
    };
  }
  init = init ?? {};
  if (init.method !== undefined) record.method = normalizeMethod(init.method);
  if (init.signal !== undefined) {
    if (init.signal !== null && !isAbortSignal(init.signal)) {
      throw new TypeError("Request: 'signal' must be an AbortSignal");
    }
    record.signal = init.signal;
  }
  if (init.redirect !== undefined) {
    const redirect = String(init.redirect);
    if (!includes(["follow", "error", "manual"], redirect)) {
      throw new TypeError(`Request: invalid redirect mode '${redirect}'`);
    }
    record.redirect = redirect;
  }
  if (init.connection !== undefined && init.connection !== null) {
    if (typeof init.connection !== "string") {
      throw new TypeError("fetch: 'connection' must be the name of a connection (a string)");
    }
    record.connection = init.connection;
  }
  if (init.headers !== undefined) {
    record.headers = new Headers(init.headers);
    setHeadersGuard(record.headers, "request");
  }
  const hasInitBody = init.body !== undefined && init.body !== null;
  if ((hasInitBody || (inputBody !== null && inputBody.bytes !== null)) &&
    (record.method === "GET" || record.method === "HEAD")) {
    throw new TypeError("Request with GET/HEAD method cannot have body");
  }
  if (hasInitBody) {
    const { bytes, type } = extractBody(init.body);
    record.body = bodyState(bytes);
    if (type !== null && !record.headers.has("content-type")) {
      ArrayPrototypePush(headersList(record.headers), ["content-type", type]);
    }
  } else if (inputBody !== null) {
    // The input Request's body moves to the new request.
    if (inputBody.used) throw new TypeError("Request body has already been consumed");
    record.body = bodyState(inputBody.bytes);
    if (inputBody.bytes !== null) {
      inputBody.used = true;
      inputBody.bytes = null;
    }
  }
  return record;
}

let isRequest; // (value) => boolean
let requestBody; // (request) => its body state
const fromRecordKey = Symbol("Request.fromRecord");

class Request {
  #record;
  #signal;

  static {
    isRequest = (value) => #record in value;
    requestRecord = (request) => ({ ...request.#record, signal: request.#signal });
    requestBody = (request) => request.#record.body;
  }

  constructor(input, init = undefined) {
    requireArgs(arguments.length, 1, "Request constructor");
    if (input === fromRecordKey) {
      this.#record = init.record;
      this.#signal = init.signal;
      return;
    }
    const record = buildRequest(input, init);
    // A request's signal follows the given one (AbortSignal.any of one signal).
    this.#signal = followSignals(record.signal === null ? [] : [record.signal]);
    this.#record = record;
  }

  get method() { return this.#record.method; }
  get url() { return this.#record.url; }
  get headers() { return this.#record.headers; }
  get signal() { return this.#signal; }
  get redirect() { return this.#record.redirect; }
  get credentials() { return "same-origin"; }
  get mode() { return "cors"; }
  get cache() { return "default"; }
  get referrer() { return "about:client"; }
  get referrerPolicy() { return ""; }
  get integrity() { return ""; }
  get keepalive() { return false; }
  get destination() { return ""; }
  get duplex() { return "half"; }

  clone() {
    const record = {
      ...this.#record,
      headers: copyHeaders(this.#record.headers),
      body: cloneBodyState(this.#record.body),
    };
    return new Request(fromRecordKey, { record, signal: followSignals([this.#signal]) });
  }

  get [SymbolToStringTag]() {
    return "Request";
  }

  [inspectSymbol](depth, options, inspect) {
    if (depth < 0) return this; // printed as [Name] past the depth limit
    const { method, url, headers, redirect, bodyUsed } = this;
    return `Request ${inspect({ method, url, headers, redirect, bodyUsed }, options)}`;
  }
}
installBodyMixin(Request, (request) => requestBody(request));

// --- Response -----------------------------------------------------------------------

let responseState; // (response) => its internal state

/** WebIDL `unsigned short`: truncate, wrap modulo 2^16; NaN is 0. */
function toUnsignedShort(value) {
  const n = MathTrunc(+value);
  return NumberIsFinite(n) ? ((n % 65536) + 65536) % 65536 : 0;
}

function validateStatus(status, allowed) {
  status = +status;
  if (!includes(allowed, status)) throw new RangeError(`Invalid status: ${status}`);
  return status;
}

class Response {
  #state;

  static {
    responseState = (response) => response.#state;
  }

  constructor(body = null, init = undefined) {
    const status = init?.status === undefined ? 200 : toUnsignedShort(init.status);
    if (!(status >= 200 && status <= 599)) {
      throw new RangeError(`Response: status must be from 200 to 599, got ${status}`);
    }
    const statusText = init?.statusText === undefined ? "" : String(init.statusText);
    if (RegExpPrototypeExec(INVALID_HEADER_VALUE, statusText) !== null) {
      throw new TypeError("Response: statusText is not a valid reason phrase");
    }
    const headers = new Headers(init?.headers);
    setHeadersGuard(headers, "response");
    let bytes = null;
    if (body !== null && body !== undefined) {
      if (includes(NULL_BODY_STATUSES, status)) {
        throw new TypeError(`Response with status ${status} cannot have a body`);
      }
      const extracted = extractBody(body);
      bytes = extracted.bytes;
      if (extracted.type !== null && !headers.has("content-type")) {
        ArrayPrototypePush(headersList(headers), ["content-type", extracted.type]);
      }
    }
    this.#state = {
      type: "default",
      status,
      statusText,
      headers,
      url: "",
      redirected: false,
      body: bodyState(bytes),
    };
  }

  static error() {
    const response = new Response(null, { status: 200 });
    const state = responseState(response);
    state.type = "error";
    state.status = 0;
    setHeadersGuard(state.headers, "immutable");
    return response;
  }

  static json(data, init = undefined) {
    const text = JSONStringify(data);
    if (text === undefined) throw new TypeError("Response.json: the data is not JSON-serializable");
    const response = new Response(null, init);
    const state = responseState(response);
    if (includes(NULL_BODY_STATUSES, state.status)) {
      throw new TypeError(`Response with status ${state.status} cannot have a body`);
    }
    state.body = bodyState(core.encode(text));
    if (!state.headers.has("content-type")) {
      ArrayPrototypePush(headersList(state.headers), ["content-type", "application/json"]);
    }
    return response;
  }

  static redirect(url, status = 302) {
    const href = new URL(String(url)).href;
    const response = new Response(null, { status: validateStatus(status, REDIRECT_STATUSES) });
    const headers = responseState(response).headers;
    ArrayPrototypePush(headersList(headers), ["location", href]);
    setHeadersGuard(headers, "immutable");
    return response;
  }

  get type() { return this.#state.type; }
  get url() { return this.#state.url; }
  get redirected() { return this.#state.redirected; }
  get status() { return this.#state.status; }
  get ok() { return this.#state.status >= 200 && this.#state.status <= 299; }
  get statusText() { return this.#state.statusText; }
  get headers() { return this.#state.headers; }

  clone() {
    const state = this.#state;
    const body = cloneBodyState(state.body);
    const copy = new Response(null);
    copy.#state = { ...state, headers: copyHeaders(state.headers), body };
    return copy;
  }

  get [SymbolToStringTag]() {
    return "Response";
  }

  [inspectSymbol](depth, options, inspect) {
    if (depth < 0) return this; // printed as [Name] past the depth limit
    const { type, url, redirected, status, ok, statusText, headers, bodyUsed } = this;
    const view = { status, statusText, ok, url, redirected, type, headers, bodyUsed };
    return `Response ${inspect(view, options)}`;
  }
}
installBodyMixin(Response, (response) => responseState(response).body);

// --- fetch --------------------------------------------------------------------------

const HOST_CODE = new SafeRegExp("^[A-Za-z0-9_]+$");

/** A host refusal or network error, as fetch's TypeError with `code` and `cause`. */
function fetchError(error) {
  const message = typeof error?.message === "string" ? error.message : String(error);
  const wrapped = new TypeError(`fetch failed: ${message}`, { cause: error });
  const colon = StringPrototypeIndexOf(message, ":");
  const code = colon > 0 ? StringPrototypeSlice(message, 0, colon) : "";
  if (RegExpPrototypeExec(HOST_CODE, code) !== null) wrapped.code = code;
  return wrapped;
}

function responseFromAnswer(answer, record) {
  const response = new Response(null);
  const state = responseState(response);
  const nullBody = record.method === "HEAD" || includes(NULL_BODY_STATUSES, answer.status);
  state.type = "basic";
  state.status = answer.status;
  state.statusText = answer.statusText ?? "";
  state.headers = headersFromPairs(answer.headers ?? [], "immutable");
  state.url = answer.url ?? record.url;
  state.redirected = !!answer.redirected;
  state.body = bodyState(nullBody ? null : answer.body ?? EMPTY, record.signal);
  return response;
}

async function fetch(input, init = undefined) {
  if (arguments.length < 1) throw new TypeError("fetch: 1 argument required, but only 0 present");
  const record = buildRequest(input, init);
  const signal = record.signal;
  if (signal !== null && signal.aborted) throw signal.reason;
  const call = JSONStringify({
    method: record.method,
    url: record.url,
    headers: ArrayPrototypeMap(headersList(record.headers), (pair) => [pair[0], pair[1]]),
    connection: record.connection,
    has_body: record.body.bytes !== null,
  });
  const pending = op_atoll_fetch(call, record.body.bytes ?? EMPTY);
  const answer = await new Promise((resolve, reject) => {
    // Abort rejects at once; the host request itself runs to its end.
    const removeAlgorithm = signal === null
      ? () => {}
      : addAbortAlgorithm(signal, () => reject(signal.reason));
    PromisePrototypeThen(
      pending,
      (value) => {
        removeAlgorithm();
        resolve(value);
      },
      (error) => {
        removeAlgorithm();
        reject(fetchError(error));
      },
    );
  });
  return responseFromAnswer(answer, record);
}

export { fetch, Headers, Request, Response };

// atoll runtime: Request, Response and fetch (WHATWG Fetch), over Headers
// and the Body mixin of 07_headers.js (whole byte arrays, no streams).
//
// The request goes to the host as one op call, `op_atoll_fetch(json, body)`;
// the host checks the grant (hosts, connections, counts, sizes) and answers
// with the complete response. `init.connection` (not standard) names a
// host-side credential the broker adds to the request.

import { core, primordials } from "ext:core/mod.js";
import { op_atoll_fetch, op_atoll_fetch_body } from "ext:core/ops";
import { URL } from "ext:atoll/03_url.js";
import { AbortSignal, addAbortAlgorithm, isAbortSignal } from "ext:atoll/04_events.js";
import {
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
} from "ext:atoll/07_headers.js";

const {
  ArrayPrototypeMap,
  ArrayPrototypePush,
  JSONStringify,
  MathTrunc,
  NumberIsFinite,
  Promise,
  Symbol,
  PromisePrototypeThen,
  RangeError,
  ReflectApply,
  RegExpPrototypeExec,
  SafeRegExp,
  String,
  StringPrototypeIndexOf,
  StringPrototypeSlice,
  StringPrototypeToUpperCase,
  SymbolFor,
  SymbolToStringTag,
  TypeError,
} = primordials;

const inspectSymbol = SymbolFor("nodejs.util.inspect.custom");
const NULL_BODY_STATUSES = [101, 103, 204, 205, 304];
const REDIRECT_STATUSES = [301, 302, 303, 307, 308];
const NORMALIZED_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"];
const FORBIDDEN_METHODS = ["CONNECT", "TRACE", "TRACK"];
// Captured: the global AbortSignal's statics are writable by agent code.
const abortSignalAny = AbortSignal.any;
const followSignals = (signals) => ReflectApply(abortSignalAny, AbortSignal, [signals]);

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
  // The host keeps the body until it is copied into memory this isolate allocates, so
  // the heap limit governs it like any other allocation.
  const bytes = answer.bodyLength > 0 ? new Uint8Array(answer.bodyLength) : EMPTY;
  if (answer.bodyLength > 0) op_atoll_fetch_body(answer.bodyId, bytes);
  state.body = bodyState(nullBody ? null : bytes, record.signal);
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
    redirect: record.redirect,
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

// atoll runtime: URL and URLSearchParams, per the WHATWG URL Standard.
//
// Parsing and the URL setters are done on the host by the Rust `url` crate
// (`op_atoll_url_parse`, `op_atoll_url_set`, both returning the components as
// JSON); URLSearchParams and the application/x-www-form-urlencoded parser and
// serializer are plain JavaScript here.

import { core, primordials } from "ext:core/mod.js";
import { op_atoll_url_parse, op_atoll_url_set } from "ext:core/ops";
import { decodeUtf8, toUSVString } from "ext:atoll/02_encoding.js";

const {
  ArrayIsArray,
  ArrayPrototypeJoin,
  ArrayPrototypeMap,
  ArrayPrototypePush,
  ArrayPrototypeSort,
  ArrayPrototypeSplice,
  JSONParse,
  ObjectDefineProperty,
  ObjectGetOwnPropertyDescriptor,
  ReflectApply,
  ReflectOwnKeys,
  SafeRegExp,
  StringPrototypeCharCodeAt,
  StringPrototypeIndexOf,
  StringPrototypeReplace,
  StringPrototypeSlice,
  StringPrototypeSplit,
  SymbolFor,
  SymbolIterator,
  SymbolToStringTag,
  TypeError,
  TypedArrayPrototypeSubarray,
  Uint8Array,
  encodeURIComponent,
} = primordials;

const inspectSymbol = SymbolFor("nodejs.util.inspect.custom");

function requireArgs(count, needed, where) {
  if (count < needed) {
    throw new TypeError(
      `${where}: ${needed} argument${needed > 1 ? "s" : ""} required, but only ${count} present`,
    );
  }
}

// --- application/x-www-form-urlencoded -----------------------------------------

const PLUS = new SafeRegExp("\\+", "g");
const FORM_ESCAPES = new SafeRegExp("%20|[!'()~]", "g");
const FORM_ESCAPE_TABLE = {
  __proto__: null,
  "%20": "+",
  "!": "%21",
  "'": "%27",
  "(": "%28",
  ")": "%29",
  "~": "%7E",
};

function hexValue(byte) {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}

/** '+' to space, then percent-decode the UTF-8 bytes (lenient, as the spec). */
function decodeFormComponent(text) {
  text = StringPrototypeReplace(text, PLUS, " ");
  if (StringPrototypeIndexOf(text, "%") === -1) return text;
  const bytes = core.encode(text);
  const out = new Uint8Array(bytes.length);
  let length = 0;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (byte === 0x25 && i + 2 < bytes.length) {
      const high = hexValue(bytes[i + 1]);
      const low = hexValue(bytes[i + 2]);
      if (high !== -1 && low !== -1) {
        out[length++] = high * 16 + low;
        i += 2;
        continue;
      }
    }
    out[length++] = byte;
  }
  return decodeUtf8(TypedArrayPrototypeSubarray(out, 0, length));
}

/** The application/x-www-form-urlencoded parser, on an already-USV string. */
function parseFormUrlencoded(input) {
  const list = [];
  const sequences = StringPrototypeSplit(input, "&");
  for (let i = 0; i < sequences.length; i++) {
    const sequence = sequences[i];
    if (sequence === "") continue;
    const eq = StringPrototypeIndexOf(sequence, "=");
    const name = eq === -1 ? sequence : StringPrototypeSlice(sequence, 0, eq);
    const value = eq === -1 ? "" : StringPrototypeSlice(sequence, eq + 1);
    ArrayPrototypePush(list, [decodeFormComponent(name), decodeFormComponent(value)]);
  }
  return list;
}

/**
 * The urlencoded byte serializer: encodeURIComponent leaves
 * `A-Z a-z 0-9 - _ . ! ~ * ' ( )` alone; the form encoding keeps only
 * `* - . _` and writes a space as '+'.
 */
function serializeFormComponent(text) {
  return StringPrototypeReplace(
    encodeURIComponent(text),
    FORM_ESCAPES,
    (match) => FORM_ESCAPE_TABLE[match],
  );
}

function serializeFormUrlencoded(list) {
  const pairs = ArrayPrototypeMap(
    list,
    (entry) => `${serializeFormComponent(entry[0])}=${serializeFormComponent(entry[1])}`,
  );
  return ArrayPrototypeJoin(pairs, "&");
}

// --- URLSearchParams -----------------------------------------------------------

// Friend functions, set from the class bodies below.
let setParamsList; // (params, list) => void
let linkParamsToURL; // (params, url) => void
let setQueryFromParams; // (url, serializedQuery) => void
let isURLSearchParams; // (value) => boolean

class URLSearchParams {
  /** [[name, value], ...], all USV strings. */
  #list = [];
  /** The URL whose query this object mirrors, or null. */
  #url = null;

  static {
    setParamsList = (params, list) => {
      params.#list = list;
    };
    linkParamsToURL = (params, url) => {
      params.#url = url;
    };
    isURLSearchParams = (value) =>
      typeof value === "object" && value !== null && #list in value;
  }

  constructor(init = "") {
    if (typeof init === "object" && init !== null) {
      if (typeof init[SymbolIterator] === "function") {
        for (const pair of init) {
          const entry = ArrayIsArray(pair) ? pair : [...pair];
          if (entry.length !== 2) {
            throw new TypeError(
              "URLSearchParams: each init pair must have exactly two items",
            );
          }
          ArrayPrototypePush(this.#list, [toUSVString(entry[0]), toUSVString(entry[1])]);
        }
      } else {
        const keys = ReflectOwnKeys(init);
        for (let i = 0; i < keys.length; i++) {
          const key = keys[i];
          if (typeof key !== "string") continue;
          const desc = ObjectGetOwnPropertyDescriptor(init, key);
          if (desc === undefined || !desc.enumerable) continue;
          ArrayPrototypePush(this.#list, [toUSVString(key), toUSVString(init[key])]);
        }
      }
    } else {
      let text = toUSVString(init);
      if (StringPrototypeCharCodeAt(text, 0) === 0x3f /* ? */) {
        text = StringPrototypeSlice(text, 1);
      }
      this.#list = parseFormUrlencoded(text);
    }
  }

  #update() {
    if (this.#url !== null) {
      setQueryFromParams(this.#url, serializeFormUrlencoded(this.#list));
    }
  }

  get size() {
    return this.#list.length;
  }

  append(name, value) {
    requireArgs(arguments.length, 2, "URLSearchParams.append");
    ArrayPrototypePush(this.#list, [toUSVString(name), toUSVString(value)]);
    this.#update();
  }

  delete(name, value = undefined) {
    requireArgs(arguments.length, 1, "URLSearchParams.delete");
    name = toUSVString(name);
    if (value !== undefined) value = toUSVString(value);
    const list = this.#list;
    for (let i = list.length - 1; i >= 0; i--) {
      if (list[i][0] === name && (value === undefined || list[i][1] === value)) {
        ArrayPrototypeSplice(list, i, 1);
      }
    }
    this.#update();
  }

  get(name) {
    requireArgs(arguments.length, 1, "URLSearchParams.get");
    name = toUSVString(name);
    const list = this.#list;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] === name) return list[i][1];
    }
    return null;
  }

  getAll(name) {
    requireArgs(arguments.length, 1, "URLSearchParams.getAll");
    name = toUSVString(name);
    const values = [];
    const list = this.#list;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] === name) ArrayPrototypePush(values, list[i][1]);
    }
    return values;
  }

  has(name, value = undefined) {
    requireArgs(arguments.length, 1, "URLSearchParams.has");
    name = toUSVString(name);
    if (value !== undefined) value = toUSVString(value);
    const list = this.#list;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] === name && (value === undefined || list[i][1] === value)) {
        return true;
      }
    }
    return false;
  }

  set(name, value) {
    requireArgs(arguments.length, 2, "URLSearchParams.set");
    name = toUSVString(name);
    value = toUSVString(value);
    const list = this.#list;
    let found = false;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] !== name) continue;
      if (!found) {
        list[i] = [name, value];
        found = true;
      } else {
        ArrayPrototypeSplice(list, i--, 1);
      }
    }
    if (!found) ArrayPrototypePush(list, [name, value]);
    this.#update();
  }

  /** Stable sort by name, comparing UTF-16 code units. */
  sort() {
    const decorated = ArrayPrototypeMap(this.#list, (entry, index) => [entry, index]);
    ArrayPrototypeSort(decorated, (a, b) => {
      if (a[0][0] < b[0][0]) return -1;
      if (a[0][0] > b[0][0]) return 1;
      return a[1] - b[1];
    });
    this.#list = ArrayPrototypeMap(decorated, (item) => item[0]);
    this.#update();
  }

  forEach(callback, thisArg = undefined) {
    if (typeof callback !== "function") {
      throw new TypeError("URLSearchParams.forEach: callback must be a function");
    }
    // Live: entries added during the walk are visited, as in browsers.
    for (let i = 0; i < this.#list.length; i++) {
      const entry = this.#list[i];
      ReflectApply(callback, thisArg, [entry[1], entry[0], this]);
    }
  }

  *entries() {
    for (let i = 0; i < this.#list.length; i++) {
      yield [this.#list[i][0], this.#list[i][1]];
    }
  }

  *keys() {
    for (let i = 0; i < this.#list.length; i++) yield this.#list[i][0];
  }

  *values() {
    for (let i = 0; i < this.#list.length; i++) yield this.#list[i][1];
  }

  toString() {
    return serializeFormUrlencoded(this.#list);
  }

  get [SymbolToStringTag]() {
    return "URLSearchParams";
  }

  [inspectSymbol](depth, options, inspect) {
    if (depth < 0) return this; // printed as [Name] past the depth limit
    const parts = ArrayPrototypeMap(
      this.#list,
      (entry) => `${inspect(entry[0], options)} => ${inspect(entry[1], options)}`,
    );
    return parts.length === 0
      ? "URLSearchParams {}"
      : `URLSearchParams { ${ArrayPrototypeJoin(parts, ", ")} }`;
  }
}
ObjectDefineProperty(URLSearchParams.prototype, SymbolIterator, {
  __proto__: null,
  value: URLSearchParams.prototype.entries,
  writable: true,
  configurable: true,
});

// --- URL ----------------------------------------------------------------------

function parseURL(url, base) {
  try {
    return JSONParse(op_atoll_url_parse(url, base));
  } catch {
    const where = base === null ? "" : ` against base '${base}'`;
    throw new TypeError(`Invalid URL: '${url}'${where}`);
  }
}

class URL {
  /** The components from the host: { href, origin, protocol, ... }. */
  #parts;
  #searchParams;

  static {
    setQueryFromParams = (url, query) => {
      url.#parts = JSONParse(op_atoll_url_set(url.#parts.href, "search", query));
    };
  }

  constructor(url, base = undefined) {
    requireArgs(arguments.length, 1, "URL constructor");
    const input = toUSVString(url);
    this.#parts = parseURL(input, base === undefined ? null : toUSVString(base));
    this.#searchParams = new URLSearchParams(this.#parts.search);
    linkParamsToURL(this.#searchParams, this);
  }

  static canParse(url, base = undefined) {
    requireArgs(arguments.length, 1, "URL.canParse");
    try {
      parseURL(toUSVString(url), base === undefined ? null : toUSVString(base));
      return true;
    } catch {
      return false;
    }
  }

  static parse(url, base = undefined) {
    requireArgs(arguments.length, 1, "URL.parse");
    try {
      return new URL(url, base);
    } catch {
      return null;
    }
  }

  #set(component, value) {
    this.#parts = JSONParse(
      op_atoll_url_set(this.#parts.href, component, toUSVString(value)),
    );
  }

  /** After a change of the query from the URL side, re-read the params. */
  #refreshParams() {
    let query = this.#parts.search;
    if (StringPrototypeCharCodeAt(query, 0) === 0x3f) query = StringPrototypeSlice(query, 1);
    setParamsList(this.#searchParams, parseFormUrlencoded(query));
  }

  get href() {
    return this.#parts.href;
  }
  set href(value) {
    const input = toUSVString(value);
    try {
      this.#set("href", input);
    } catch {
      throw new TypeError(`Invalid URL: '${input}'`);
    }
    this.#refreshParams();
  }

  get origin() {
    return this.#parts.origin;
  }

  get protocol() {
    return this.#parts.protocol;
  }
  set protocol(value) {
    this.#set("protocol", value);
  }

  get username() {
    return this.#parts.username;
  }
  set username(value) {
    this.#set("username", value);
  }

  get password() {
    return this.#parts.password;
  }
  set password(value) {
    this.#set("password", value);
  }

  get host() {
    return this.#parts.host;
  }
  set host(value) {
    this.#set("host", value);
  }

  get hostname() {
    return this.#parts.hostname;
  }
  set hostname(value) {
    this.#set("hostname", value);
  }

  get port() {
    return this.#parts.port;
  }
  set port(value) {
    this.#set("port", value);
  }

  get pathname() {
    return this.#parts.pathname;
  }
  set pathname(value) {
    this.#set("pathname", value);
  }

  get search() {
    return this.#parts.search;
  }
  set search(value) {
    this.#set("search", value);
    this.#refreshParams();
  }

  get searchParams() {
    return this.#searchParams;
  }

  get hash() {
    return this.#parts.hash;
  }
  set hash(value) {
    this.#set("hash", value);
  }

  toString() {
    return this.#parts.href;
  }

  toJSON() {
    return this.#parts.href;
  }

  get [SymbolToStringTag]() {
    return "URL";
  }

  [inspectSymbol](depth, options, inspect) {
    if (depth < 0) return this; // printed as [Name] past the depth limit
    const p = this.#parts;
    const view = {
      href: p.href,
      origin: p.origin,
      protocol: p.protocol,
      username: p.username,
      password: p.password,
      host: p.host,
      hostname: p.hostname,
      port: p.port,
      pathname: p.pathname,
      search: p.search,
      searchParams: this.#searchParams,
      hash: p.hash,
    };
    return `URL ${inspect(view, options)}`;
  }
}

export {
  isURLSearchParams,
  parseFormUrlencoded,
  serializeFormUrlencoded,
  URL,
  URLSearchParams,
};

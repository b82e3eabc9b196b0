// atoll runtime: puts the web globals of SPEC section 3 on the global object.
// Bootstrap calls installWebGlobals(globalThis) once, before any agent code.

import { core, primordials } from "ext:core/mod.js";
import { clearInterval, clearTimeout, setInterval, setTimeout } from "ext:atoll/01_timers.js";
import { TextDecoder, TextEncoder } from "ext:atoll/02_encoding.js";
import { URL, URLSearchParams } from "ext:atoll/03_url.js";
import {
  AbortController,
  AbortSignal,
  DOMException,
  Event,
  EventTarget,
} from "ext:atoll/04_events.js";
import { crypto } from "ext:atoll/05_crypto.js";
import { console } from "ext:atoll/06_console.js";
import { fetch, Headers, Request, Response } from "ext:atoll/07_fetch.js";

const { ObjectDefineProperty, String, TypeError } = primordials;

/** structuredClone(value) on deno_core's serializer; no `transfer` support. */
function structuredClone(value, options = undefined) {
  if (arguments.length < 1) {
    throw new TypeError("structuredClone: 1 argument required, but only 0 present");
  }
  if (options?.transfer !== undefined && options.transfer.length > 0) {
    throw new DOMException("structuredClone: 'transfer' is not supported", "DataCloneError");
  }
  try {
    return core.structuredClone(value);
  } catch (error) {
    throw new DOMException(error?.message ?? String(error), "DataCloneError");
  }
}

const WEB_GLOBALS = {
  __proto__: null,
  setTimeout,
  clearTimeout,
  setInterval,
  clearInterval,
  TextEncoder,
  TextDecoder,
  URL,
  URLSearchParams,
  Event,
  EventTarget,
  AbortController,
  AbortSignal,
  DOMException,
  crypto,
  structuredClone,
  Headers,
  Request,
  Response,
  fetch,
  console,
};

/** Defines every web global as browsers do: writable, configurable, not enumerable. */
function installWebGlobals(global) {
  for (const name in WEB_GLOBALS) {
    ObjectDefineProperty(global, name, {
      __proto__: null,
      value: WEB_GLOBALS[name],
      writable: true,
      enumerable: false,
      configurable: true,
    });
  }
}

export { installWebGlobals };

// atoll runtime: DOMException, Event, EventTarget, AbortController and
// AbortSignal (DOM Standard), without a DOM tree: an event is only ever
// dispatched to its target.
//
// Other modules (fetch) use the internal helpers exported at the end:
// `addAbortAlgorithm` to react to an abort without a visible listener.

import { core, primordials } from "ext:core/mod.js";

const {
  ArrayPrototypePush,
  ArrayPrototypeSlice,
  ArrayPrototypeSplice,
  DateNow,
  ErrorCaptureStackTrace,
  ErrorPrototype,
  FunctionPrototypeBind,
  MapPrototypeGet,
  MapPrototypeSet,
  NumberIsFinite,
  NumberMAX_SAFE_INTEGER,
  MathTrunc,
  ObjectDefineProperty,
  ObjectSetPrototypeOf,
  ReflectApply,
  SafeMap,
  SafeSet,
  SafeWeakRef,
  SetPrototypeAdd,
  SetPrototypeDelete,
  SetPrototypeHas,
  String,
  Symbol,
  SymbolFor,
  SymbolIterator,
  SymbolToStringTag,
  TypeError,
  WeakRefPrototypeDeref,
  globalThis: realGlobalThis,
} = primordials;

const inspectSymbol = SymbolFor("nodejs.util.inspect.custom");
const performanceNow = typeof realGlobalThis.performance?.now === "function"
  ? FunctionPrototypeBind(realGlobalThis.performance.now, realGlobalThis.performance)
  : DateNow;

function requireArgs(count, needed, where) {
  if (count < needed) {
    throw new TypeError(`${where}: ${needed} argument(s) required, but only ${count} present`);
  }
}

// --- DOMException -------------------------------------------------------------

// The legacy codes (names not listed have code 0).
const LEGACY_CODES = {
  __proto__: null,
  IndexSizeError: 1,
  HierarchyRequestError: 3,
  WrongDocumentError: 4,
  InvalidCharacterError: 5,
  NoModificationAllowedError: 7,
  NotFoundError: 8,
  NotSupportedError: 9,
  InUseAttributeError: 10,
  InvalidStateError: 11,
  SyntaxError: 12,
  InvalidModificationError: 13,
  NamespaceError: 14,
  InvalidAccessError: 15,
  TypeMismatchError: 17,
  SecurityError: 18,
  NetworkError: 19,
  AbortError: 20,
  URLMismatchError: 21,
  QuotaExceededError: 22,
  TimeoutError: 23,
  InvalidNodeTypeError: 24,
  DataCloneError: 25,
};

const CODE_CONSTANTS = [
  "INDEX_SIZE_ERR", "DOMSTRING_SIZE_ERR", "HIERARCHY_REQUEST_ERR",
  "WRONG_DOCUMENT_ERR", "INVALID_CHARACTER_ERR", "NO_DATA_ALLOWED_ERR",
  "NO_MODIFICATION_ALLOWED_ERR", "NOT_FOUND_ERR", "NOT_SUPPORTED_ERR",
  "INUSE_ATTRIBUTE_ERR", "INVALID_STATE_ERR", "SYNTAX_ERR",
  "INVALID_MODIFICATION_ERR", "NAMESPACE_ERR", "INVALID_ACCESS_ERR",
  "VALIDATION_ERR", "TYPE_MISMATCH_ERR", "SECURITY_ERR", "NETWORK_ERR",
  "ABORT_ERR", "URL_MISMATCH_ERR", "QUOTA_EXCEEDED_ERR", "TIMEOUT_ERR",
  "INVALID_NODE_TYPE_ERR", "DATA_CLONE_ERR",
];

// Not `extends Error`: the stack must be captured after name and message are
// set, so that it starts with "AbortError: ..." (what Deno does too).
class DOMException {
  #message;
  #name;
  #code;

  constructor(message = "", options = "Error") {
    this.#message = String(message);
    if (typeof options === "object" && options !== null) {
      this.#name = "name" in options ? String(options.name) : "Error";
      if ("cause" in options) {
        ObjectDefineProperty(this, "cause", {
          __proto__: null,
          value: options.cause,
          writable: true,
          configurable: true,
        });
      }
    } else {
      this.#name = String(options);
    }
    this.#code = LEGACY_CODES[this.#name] ?? 0;
    ErrorCaptureStackTrace(this, DOMException);
  }

  get message() {
    return this.#message;
  }

  get name() {
    return this.#name;
  }

  get code() {
    return this.#code;
  }
}
ObjectSetPrototypeOf(DOMException.prototype, ErrorPrototype);
for (let i = 0; i < CODE_CONSTANTS.length; i++) {
  const desc = { __proto__: null, value: i + 1, enumerable: true };
  ObjectDefineProperty(DOMException, CODE_CONSTANTS[i], desc);
  ObjectDefineProperty(DOMException.prototype, CODE_CONSTANTS[i], desc);
}

// --- Event ----------------------------------------------------------------------

const NONE = 0;
const AT_TARGET = 2;

let eventState; // (event) => its internal state record; throws if not an Event

class Event {
  #state;

  static {
    eventState = (event) => event.#state;
  }

  constructor(type, eventInitDict = undefined) {
    requireArgs(arguments.length, 1, "Event constructor");
    this.#state = {
      __proto__: null,
      type: String(type),
      bubbles: !!eventInitDict?.bubbles,
      cancelable: !!eventInitDict?.cancelable,
      composed: !!eventInitDict?.composed,
      timeStamp: performanceNow(),
      target: null,
      currentTarget: null,
      phase: NONE,
      canceled: false,
      inPassiveListener: false,
      dispatching: false,
      stopPropagation: false,
      stopImmediatePropagation: false,
      isTrusted: false,
    };
  }

  get type() { return this.#state.type; }
  get bubbles() { return this.#state.bubbles; }
  get cancelable() { return this.#state.cancelable; }
  get composed() { return this.#state.composed; }
  get timeStamp() { return this.#state.timeStamp; }
  get target() { return this.#state.target; }
  get srcElement() { return this.#state.target; }
  get currentTarget() { return this.#state.currentTarget; }
  get eventPhase() { return this.#state.phase; }
  get isTrusted() { return this.#state.isTrusted; }
  get defaultPrevented() { return this.#state.canceled; }

  get returnValue() {
    return !this.#state.canceled;
  }
  set returnValue(value) {
    if (!value) this.preventDefault();
  }

  get cancelBubble() {
    return this.#state.stopPropagation;
  }
  set cancelBubble(value) {
    if (value) this.#state.stopPropagation = true;
  }

  composedPath() {
    const state = this.#state;
    return state.dispatching && state.currentTarget !== null ? [state.currentTarget] : [];
  }

  stopPropagation() {
    this.#state.stopPropagation = true;
  }

  stopImmediatePropagation() {
    this.#state.stopPropagation = true;
    this.#state.stopImmediatePropagation = true;
  }

  preventDefault() {
    const state = this.#state;
    if (state.cancelable && !state.inPassiveListener) state.canceled = true;
  }

  get [SymbolToStringTag]() {
    return "Event";
  }

  [inspectSymbol](depth, options, inspect) {
    if (depth < 0) return this; // printed as [Name] past the depth limit
    const { type, defaultPrevented, cancelable, timeStamp } = this;
    const name = this.constructor?.name ?? "Event";
    return `${name} ${inspect({ type, defaultPrevented, cancelable, timeStamp }, options)}`;
  }
}
for (const [name, value] of [["NONE", 0], ["CAPTURING_PHASE", 1], ["AT_TARGET", 2], ["BUBBLING_PHASE", 3]]) {
  const desc = { __proto__: null, value, enumerable: true };
  ObjectDefineProperty(Event, name, desc);
  ObjectDefineProperty(Event.prototype, name, desc);
}

// --- EventTarget ---------------------------------------------------------------

let listenersOf; // (target) => SafeMap<type, listener[]>

function flattenOptions(options) {
  if (typeof options === "object" && options !== null) {
    return {
      capture: !!options.capture,
      once: !!options.once,
      passive: !!options.passive,
      signal: options.signal,
    };
  }
  return { capture: !!options, once: false, passive: false, signal: undefined };
}

class EventTarget {
  #listeners = new SafeMap();

  static {
    listenersOf = (target) => target.#listeners;
  }

  addEventListener(type, callback, options = undefined) {
    requireArgs(arguments.length, 2, "EventTarget.addEventListener");
    if (callback === null || callback === undefined) return;
    if (typeof callback !== "function" && typeof callback !== "object") {
      throw new TypeError("EventTarget.addEventListener: the listener must be an object or a function");
    }
    const { capture, once, passive, signal } = flattenOptions(options);
    if (signal !== undefined && !isAbortSignal(signal)) {
      throw new TypeError("EventTarget.addEventListener: 'signal' must be an AbortSignal");
    }
    if (signal?.aborted) return;
    type = String(type);
    let list = MapPrototypeGet(this.#listeners, type);
    if (list === undefined) {
      list = [];
      MapPrototypeSet(this.#listeners, type, list);
    }
    for (let i = 0; i < list.length; i++) {
      if (list[i].callback === callback && list[i].capture === capture) return;
    }
    ArrayPrototypePush(list, { callback, capture, once, passive, removed: false });
    if (signal !== undefined) {
      addAbortAlgorithm(signal, () => this.removeEventListener(type, callback, { capture }));
    }
    listenersChanged(this);
  }

  removeEventListener(type, callback, options = undefined) {
    requireArgs(arguments.length, 2, "EventTarget.removeEventListener");
    const capture = typeof options === "object" && options !== null
      ? !!options.capture
      : !!options;
    const list = MapPrototypeGet(this.#listeners, String(type));
    if (list === undefined) return;
    for (let i = 0; i < list.length; i++) {
      if (list[i].callback === callback && list[i].capture === capture) {
        list[i].removed = true;
        ArrayPrototypeSplice(list, i, 1);
        listenersChanged(this);
        return;
      }
    }
  }

  dispatchEvent(event) {
    requireArgs(arguments.length, 1, "EventTarget.dispatchEvent");
    let state;
    try {
      state = eventState(event);
    } catch {
      throw new TypeError("EventTarget.dispatchEvent: argument is not an Event");
    }
    if (state.dispatching) {
      throw new DOMException("The event is already being dispatched.", "InvalidStateError");
    }
    return dispatch(this, event, false);
  }

  get [SymbolToStringTag]() {
    return "EventTarget";
  }
}

function reportListenerError(error) {
  // Like an exception thrown by a timer callback: the run sees it as uncaught.
  core.reportUnhandledException(error);
}

function dispatch(target, event, isTrusted) {
  const state = eventState(event);
  state.isTrusted = isTrusted;
  state.dispatching = true;
  state.target = target;
  state.currentTarget = target;
  state.phase = AT_TARGET;
  const map = listenersOf(target);
  const current = MapPrototypeGet(map, state.type);
  const listeners = current === undefined ? [] : ArrayPrototypeSlice(current);
  for (let i = 0; i < listeners.length; i++) {
    const listener = listeners[i];
    if (listener.removed) continue;
    if (state.stopImmediatePropagation) break;
    if (listener.once) {
      target.removeEventListener(state.type, listener.callback, { capture: listener.capture });
    }
    state.inPassiveListener = listener.passive;
    try {
      const callback = listener.callback;
      if (typeof callback === "function") {
        ReflectApply(callback, target, [event]);
      } else {
        const handleEvent = callback.handleEvent;
        if (typeof handleEvent !== "function") {
          throw new TypeError("The event listener has no handleEvent method");
        }
        ReflectApply(handleEvent, callback, [event]);
      }
    } catch (error) {
      reportListenerError(error);
    }
    state.inPassiveListener = false;
  }
  state.dispatching = false;
  state.phase = NONE;
  state.currentTarget = null;
  state.stopPropagation = false;
  state.stopImmediatePropagation = false;
  return !state.canceled;
}

// --- AbortSignal ---------------------------------------------------------------

const illegalConstructorKey = Symbol("AbortSignal.internal");
// Dependent signals (from AbortSignal.any) are only weakly held by their
// sources; one that still has something listening is kept alive here until it
// aborts, so that its listeners are not lost to garbage collection.
const liveDependentSignals = new SafeSet();

let isAbortSignal; // (value) => boolean
let signalAbort; // (signal, reason) => void
let addAbortAlgorithm; // (signal, fn) => remove function
let listenersChanged; // (eventTarget) => void

const TIMEOUT_MAX = 2 ** 31 - 1;

class AbortSignal extends EventTarget {
  #aborted = false;
  #reason = undefined;
  #algorithms = new SafeSet();
  #sources = null; // SafeSet<AbortSignal> when dependent
  #dependents = null; // SafeSet<WeakRef<AbortSignal>>
  #onabort = null;
  #onabortListener = null;

  static {
    isAbortSignal = (value) => typeof value === "object" && value !== null && #aborted in value;

    signalAbort = (signal, reason) => {
      if (signal.#aborted) return;
      signal.#aborted = true;
      signal.#reason = reason !== undefined
        ? reason
        : new DOMException("This operation was aborted", "AbortError");
      const toNotify = [signal];
      if (signal.#dependents !== null) {
        for (const ref of signal.#dependents) {
          const dependent = WeakRefPrototypeDeref(ref);
          if (dependent === undefined || dependent.#aborted) continue;
          dependent.#aborted = true;
          dependent.#reason = signal.#reason;
          ArrayPrototypePush(toNotify, dependent);
        }
        signal.#dependents = null;
      }
      for (let i = 0; i < toNotify.length; i++) toNotify[i].#runAbortSteps();
    };

    addAbortAlgorithm = (signal, algorithm) => {
      if (signal.#aborted) return () => {};
      SetPrototypeAdd(signal.#algorithms, algorithm);
      listenersChanged(signal);
      return () => {
        SetPrototypeDelete(signal.#algorithms, algorithm);
        listenersChanged(signal);
      };
    };

    listenersChanged = (target) => {
      if (!isAbortSignal(target) || target.#sources === null) return;
      const listening = target.#algorithms.size > 0 ||
        (MapPrototypeGet(listenersOf(target), "abort")?.length ?? 0) > 0;
      if (listening && !target.#aborted) {
        SetPrototypeAdd(liveDependentSignals, target);
      } else {
        SetPrototypeDelete(liveDependentSignals, target);
      }
    };
  }

  constructor(key = undefined) {
    if (key !== illegalConstructorKey) throw new TypeError("Illegal constructor");
    super();
  }

  static abort(reason = undefined) {
    const signal = new AbortSignal(illegalConstructorKey);
    signalAbort(signal, reason);
    return signal;
  }

  static timeout(milliseconds) {
    requireArgs(arguments.length, 1, "AbortSignal.timeout");
    const ms = +milliseconds;
    if (!NumberIsFinite(ms) || ms < 0 || ms > NumberMAX_SAFE_INTEGER) {
      throw new TypeError("AbortSignal.timeout: milliseconds must be a non-negative number");
    }
    const signal = new AbortSignal(illegalConstructorKey);
    const delay = MathTrunc(ms) > TIMEOUT_MAX ? TIMEOUT_MAX : MathTrunc(ms);
    const onTimeout = () => {
      signalAbort(signal, new DOMException("The signal timed out.", "TimeoutError"));
    };
    // Unrefed, as in browsers and Deno: the timer alone keeps no run alive.
    core.createTimer(onTimeout, delay, undefined, false, false);
    return signal;
  }

  static any(signals) {
    requireArgs(arguments.length, 1, "AbortSignal.any");
    if (typeof signals?.[SymbolIterator] !== "function") {
      throw new TypeError("AbortSignal.any: argument must be an iterable of AbortSignal");
    }
    const inputs = [...signals];
    for (let i = 0; i < inputs.length; i++) {
      if (!isAbortSignal(inputs[i])) {
        throw new TypeError("AbortSignal.any: every item must be an AbortSignal");
      }
    }
    const result = new AbortSignal(illegalConstructorKey);
    for (let i = 0; i < inputs.length; i++) {
      if (inputs[i].#aborted) {
        result.#aborted = true;
        result.#reason = inputs[i].#reason;
        return result;
      }
    }
    result.#sources = new SafeSet();
    const ref = new SafeWeakRef(result);
    const addSource = (source) => {
      if (SetPrototypeHas(result.#sources, source)) return;
      SetPrototypeAdd(result.#sources, source);
      source.#dependents ??= new SafeSet();
      SetPrototypeAdd(source.#dependents, ref);
    };
    for (let i = 0; i < inputs.length; i++) {
      const signal = inputs[i];
      if (signal.#sources === null) {
        addSource(signal);
      } else {
        for (const source of signal.#sources) addSource(source);
      }
    }
    return result;
  }

  get aborted() {
    return this.#aborted;
  }

  get reason() {
    return this.#reason;
  }

  throwIfAborted() {
    if (this.#aborted) throw this.#reason;
  }

  get onabort() {
    return this.#onabort;
  }
  set onabort(handler) {
    this.#onabort = typeof handler === "function" ? handler : null;
    if (this.#onabort !== null && this.#onabortListener === null) {
      this.#onabortListener = (event) => {
        const current = this.#onabort;
        if (current !== null) ReflectApply(current, this, [event]);
      };
      this.addEventListener("abort", this.#onabortListener);
    } else if (this.#onabort === null && this.#onabortListener !== null) {
      this.removeEventListener("abort", this.#onabortListener);
      this.#onabortListener = null;
    }
  }

  #runAbortSteps() {
    const algorithms = [...this.#algorithms];
    this.#algorithms = new SafeSet();
    for (let i = 0; i < algorithms.length; i++) {
      try {
        algorithms[i]();
      } catch (error) {
        reportListenerError(error);
      }
    }
    dispatch(this, new Event("abort"), true);
    if (this.#sources !== null) {
      for (const source of this.#sources) {
        // Drop dead weak references and this one from the source's set.
        if (source.#dependents === null) continue;
        for (const ref of source.#dependents) {
          const dependent = WeakRefPrototypeDeref(ref);
          if (dependent === undefined || dependent === this) {
            SetPrototypeDelete(source.#dependents, ref);
          }
        }
      }
    }
    SetPrototypeDelete(liveDependentSignals, this);
  }

  get [SymbolToStringTag]() {
    return "AbortSignal";
  }

  [inspectSymbol](depth, options, inspect) {
    if (depth < 0) return this; // printed as [Name] past the depth limit
    return `AbortSignal ${inspect({ aborted: this.#aborted }, options)}`;
  }
}

// --- AbortController -------------------------------------------------------------

class AbortController {
  #signal = new AbortSignal(illegalConstructorKey);

  get signal() {
    return this.#signal;
  }

  abort(reason = undefined) {
    signalAbort(this.#signal, reason);
  }

  get [SymbolToStringTag]() {
    return "AbortController";
  }

  [inspectSymbol](depth, options, inspect) {
    if (depth < 0) return this; // printed as [Name] past the depth limit
    return `AbortController ${inspect({ signal: this.#signal }, options)}`;
  }
}

export {
  AbortController,
  AbortSignal,
  addAbortAlgorithm,
  DOMException,
  Event,
  EventTarget,
  isAbortSignal,
};

// atoll runtime: setTimeout / setInterval and their clear functions.
//
// deno_core owns the timer queue (`core.createTimer` / `core.cancelTimer`);
// this module only maps the numeric ids the web API hands out to deno_core's
// timer objects. Timers are "refed": a pending timer keeps the event loop
// (and therefore the run) alive, as in browsers and Deno.

import { core, primordials } from "ext:core/mod.js";

const {
  MapPrototypeDelete,
  MapPrototypeGet,
  MapPrototypeSet,
  NumberIsFinite,
  ReflectApply,
  SafeMap,
  TypeError,
  globalThis: realGlobalThis,
} = primordials;

/** id -> deno_core timer object, for timers that have not finished yet. */
const activeTimers = new SafeMap();
let nextTimerId = 1;

/** WebIDL `long` conversion of a delay, clamped at 0 (what browsers do). */
function toDelay(timeout) {
  const n = +timeout; // may throw for Symbols, like WebIDL does
  if (!NumberIsFinite(n)) return 0;
  const int32 = n | 0; // ToInt32: 2 ** 31 wraps to a negative number
  return int32 < 0 ? 0 : int32;
}

function toCallback(handler, name) {
  if (typeof handler !== "function") {
    // Browsers compile a string handler; atoll has no eval for agents.
    throw new TypeError(`${name}: the callback must be a function`);
  }
  return handler;
}

function schedule(handler, timeout, args, repeat, name) {
  const callback = toCallback(handler, name);
  const delay = toDelay(timeout);
  const id = nextTimerId++;
  const fire = () => {
    if (!repeat) MapPrototypeDelete(activeTimers, id);
    ReflectApply(callback, realGlobalThis, args);
  };
  const timer = core.createTimer(fire, delay, undefined, repeat, true);
  MapPrototypeSet(activeTimers, id, timer);
  return id;
}

function clear(id) {
  // WebIDL `long` conversion of the id; unknown ids are ignored.
  const key = toDelay(id);
  const timer = MapPrototypeGet(activeTimers, key);
  if (timer === undefined) return;
  MapPrototypeDelete(activeTimers, key);
  core.cancelTimer(timer);
}

function setTimeout(handler, timeout = 0, ...args) {
  return schedule(handler, timeout, args, false, "setTimeout");
}

function setInterval(handler, timeout = 0, ...args) {
  return schedule(handler, timeout, args, true, "setInterval");
}

// clearTimeout and clearInterval are interchangeable, per the HTML spec.
function clearTimeout(id = 0) {
  clear(id);
}

function clearInterval(id = 0) {
  clear(id);
}

export { clearInterval, clearTimeout, setInterval, setTimeout };

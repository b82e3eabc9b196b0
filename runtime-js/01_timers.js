// atoll runtime: setTimeout / setInterval and their clear functions.
//
// In a journaled run (every run of a server) each timer is a host call,
// `op_atoll_timer`, answered when it is due: its firing is journaled, so a
// replay fires it in the same order against the run's other answers, without
// waiting again. Elsewhere (`atoll exec`, the in-process pool) deno_core owns
// the timer queue (`core.createTimer` / `core.cancelTimer`). Either way this
// module maps the numeric ids the web API hands out to the timers behind them.
// Timers are "refed": a pending timer keeps the event loop (and therefore the
// run) alive, as in browsers and Deno.

import { core, primordials } from "ext:core/mod.js";
import { op_atoll_clear_timer, op_atoll_timer } from "ext:core/ops";

const {
  MapPrototypeDelete,
  MapPrototypeGet,
  MapPrototypeHas,
  MapPrototypeSet,
  NumberIsFinite,
  PromisePrototypeThen,
  RangeError,
  ReflectApply,
  SafeMap,
  StringPrototypeStartsWith,
  TypeError,
  globalThis: realGlobalThis,
} = primordials;

/** id -> deno_core timer object (or HOST_TIMER), for timers that have not finished yet. */
const activeTimers = new SafeMap();
let nextTimerId = 1;

/** Marks a timer served by the host (it has no deno_core timer object). */
const HOST_TIMER = 0;
/** Host timers one run may have pending (the host refuses more). */
const MAX_HOST_TIMERS = 1000;
let onHost = false;

/** Called once per run, before its modules load: whether its timers are host calls. */
function useHostTimers(yes) {
  onHost = yes === true;
}

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

/** Arms one host timer (a `setInterval` arms one per tick). */
function armOnHost(id, callback, delay, args, repeat) {
  PromisePrototypeThen(
    op_atoll_timer(id, delay),
    () => {
      if (!MapPrototypeHas(activeTimers, id)) return; // cleared as it fired
      if (repeat) armOnHost(id, callback, delay, args, repeat);
      else MapPrototypeDelete(activeTimers, id);
      try {
        ReflectApply(callback, realGlobalThis, args);
      } catch (e) {
        // As an exception in a deno_core timer: the run fails with it.
        core.reportUnhandledException(e);
      }
    },
    (e) => {
      const active = MapPrototypeHas(activeTimers, id);
      MapPrototypeDelete(activeTimers, id);
      if (!active) return; // cleared by the run
      const message = e?.message ?? "";
      // Cleared on the host (a replay of a timer the run cleared as it fired), or the
      // run is ending or parked: the timer does not fire.
      if (
        !StringPrototypeStartsWith(message, "cleared: ") &&
        !StringPrototypeStartsWith(message, "suspended: ")
      ) {
        core.reportUnhandledException(e);
      }
    },
  );
}

function schedule(handler, timeout, args, repeat, name) {
  const callback = toCallback(handler, name);
  const delay = toDelay(timeout);
  if (onHost) {
    if (activeTimers.size >= MAX_HOST_TIMERS) {
      throw new RangeError(
        `too_many_timers: a run has at most ${MAX_HOST_TIMERS} timers pending; clear some first`,
      );
    }
    const id = nextTimerId++;
    MapPrototypeSet(activeTimers, id, HOST_TIMER);
    armOnHost(id, callback, delay, args, repeat);
    return id;
  }
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
  if (timer === HOST_TIMER) op_atoll_clear_timer(key);
  else core.cancelTimer(timer);
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

export { clearInterval, clearTimeout, setInterval, setTimeout, useHostTimers };

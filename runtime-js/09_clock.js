// atoll runtime: the clock and the randomness a run sees.
//
// In a journaled run (sandbox processes) both come from the host and are replayed with
// the journal: the clock reads the time of the run's last host answer (it stands still
// between host calls, as in Cloudflare Workers) and Math.random draws from the run's
// seeded stream, so a resumed run sees the values it saw before. Elsewhere the ops answer
// NaN and the real clock is used; Math.random then draws from the host's CSPRNG.

import { primordials } from "ext:core/mod.js";
import { op_atoll_elapsed, op_atoll_now, op_atoll_random_fill } from "ext:core/ops";

const {
  Date: RealDate,
  DateNow,
  DatePrototypeToString,
  FunctionPrototypeBind,
  ObjectCreate,
  ObjectDefineProperty,
  ObjectGetOwnPropertyDescriptor,
  ObjectGetPrototypeOf,
  ReflectConstruct,
  ReflectOwnKeys,
  Uint8Array,
} = primordials;

function now() {
  const virtual = op_atoll_now();
  return virtual === virtual ? virtual : DateNow();
}

const POOL_BYTES = 512;
const pool = new Uint8Array(POOL_BYTES);
let next = POOL_BYTES;

/** A double in [0, 1) from 53 random bits. */
function random() {
  if (next + 7 > POOL_BYTES) {
    op_atoll_random_fill(pool);
    next = 0;
  }
  let high = 0;
  for (let i = 0; i < 3; i++) high = high * 256 + pool[next++];
  let low = 0;
  for (let i = 0; i < 4; i++) low = low * 256 + pool[next++];
  // 21 bits of the first three bytes, 32 of the next four.
  return ((high % 2097152) * 4294967296 + low) / 9007199254740992;
}

function define(target, name, value) {
  ObjectDefineProperty(target, name, {
    __proto__: null,
    value,
    writable: true,
    enumerable: false,
    configurable: true,
  });
}

/** `Date` whose "now" (no arguments, `Date()`, `Date.now()`) is the run's clock. */
function makeDate() {
  function Date(...args) {
    if (new.target === undefined) {
      return DatePrototypeToString(ReflectConstruct(RealDate, [now()]));
    }
    return ReflectConstruct(RealDate, args.length === 0 ? [now()] : args, new.target);
  }
  Date.prototype = RealDate.prototype;
  define(RealDate.prototype, "constructor", Date);
  define(Date, "now", now);
  define(Date, "parse", RealDate.parse);
  define(Date, "UTC", RealDate.UTC);
  ObjectDefineProperty(Date, "length", { __proto__: null, value: 7, configurable: true });
  return Date;
}

/** A copy of `object` whose `name` is `value`: the engine's Math.random and
 *  performance.now cannot be redefined in place (the quickjs build makes them
 *  non-configurable), so a copy takes the global's place. */
function withOverride(object, name, value) {
  const copy = ObjectCreate(ObjectGetPrototypeOf(object));
  for (const key of ReflectOwnKeys(object)) {
    const descriptor = ObjectGetOwnPropertyDescriptor(object, key);
    ObjectDefineProperty(copy, key, { ...descriptor, configurable: true });
  }
  define(copy, name, value);
  return copy;
}

export function installClock(global) {
  define(global, "Date", makeDate());
  define(global, "Math", withOverride(global.Math, "random", random));
  const performance = global.performance;
  if (performance !== undefined && typeof performance.now === "function") {
    const realNow = FunctionPrototypeBind(performance.now, performance);
    const now = () => {
      const virtual = op_atoll_elapsed();
      return virtual === virtual ? virtual : realNow();
    };
    define(global, "performance", withOverride(performance, "now", now));
  }
}

// Copyright atoll authors. Bootstrap: installs the globals of SPEC section 3 and prepares
// the per-isolate finalize step that hands the runner to the host.

import { core, primordials } from "ext:core/mod.js";
import {
  op_atoll_register_runner,
  op_atoll_run_error,
  op_atoll_run_output,
  op_atoll_run_start,
} from "ext:core/ops";
import { makeContext } from "ext:atoll/10_ctx.js";
import { installWebGlobals } from "ext:atoll/08_web_globals.js";
import { installClock } from "ext:atoll/09_clock.js";
import { useHostTimers } from "ext:atoll/01_timers.js";

const { JSONParse, JSONStringify, String, TypeError } = primordials;
const unrefOpPromise = (promise) => core.unrefOpPromise(promise);

function describe(value, key) {
  try {
    const v = value?.[key];
    return v === undefined || v === null ? "" : String(v);
  } catch {
    return "";
  }
}

function report(phase, err) {
  let name = describe(err, "name");
  let message = describe(err, "message");
  const stack = describe(err, "stack");
  if (!name && !message) {
    // A thrown non-Error: show what it was.
    name = "Error";
    try {
      message = typeof err === "string" ? err : `thrown value: ${JSONStringify(err)}`;
    } catch {
      message = "thrown value (not printable)";
    }
  }
  op_atoll_run_error(phase, name, message, stack);
}

async function runAgent() {
  const start = JSONParse(op_atoll_run_start());
  // Before the agent's modules run: their top-level timers are journaled too.
  useHostTimers(start.journaled);
  let ns;
  try {
    ns = await import(start.entry);
  } catch (e) {
    report("load", e);
    return;
  }
  const main = ns.default;
  if (typeof main !== "function") {
    report(
      "load",
      new TypeError(`the entry module must export a default async function (input, ctx) => output`),
    );
    return;
  }
  let output;
  try {
    output = await main(start.input, makeContext(start, unrefOpPromise));
  } catch (e) {
    report("run", e);
    return;
  }
  let json;
  try {
    json = JSONStringify(output === undefined ? null : output);
  } catch (e) {
    report("output", e);
    return;
  }
  try {
    op_atoll_run_output(json === undefined ? "null" : json);
  } catch (e) {
    report("output", e);
  }
}

installWebGlobals(globalThis);
installClock(globalThis);

// Per-isolate last step, run by the host right after creation (and after restoring a
// startup snapshot, whose OpState is fresh): hand the runner to the host, then remove
// every host handle from the global scope before any tenant code can run.
Object.defineProperty(globalThis, "__atollFinalize", {
  value: () => {
    op_atoll_register_runner(runAgent);
    delete globalThis.Deno;
    delete globalThis.__bootstrap;
    delete globalThis.__atollFinalize;
    // Nothing that can block the worker thread or allocate outside the run's memory
    // budget: SharedArrayBuffer (the only thing `Atomics.wait` can wait on; its memory is
    // not counted) and WebAssembly (its memories live outside the heap limit). The host
    // also forbids `Atomics.wait` in the engine itself.
    delete globalThis.SharedArrayBuffer;
    delete globalThis.WebAssembly;
    delete globalThis.Atomics.wait;
    delete globalThis.Atomics.waitAsync;
    // The quickjs engine leaves helpers of its own on the global object. The intrinsics
    // array of its startup snapshot holds SharedArrayBuffer, Atomics.wait and every
    // WebAssembly constructor; the foreground-task poster queues a host allocation per
    // call; the waiter registry serves only waitAsync. Kept: the two helpers the engine's
    // Atomics.notify and Intl/Temporal shims call (harmless without waiters).
    for (const name of [
      "__v8x_snapshot_intrinsics",
      "__v8x_import_source",
      "__v8xPostForegroundTask",
      "__v8xAtomicsRegisterWaiter",
      "__v8xAtomicsCancelWaiter",
      "__v8xAtomicsNumWaitersForTesting",
      "__v8xAtomicsNumUnresolvedAsyncPromisesForTesting",
    ]) {
      delete globalThis[name];
    }
  },
  configurable: true,
  enumerable: false,
  writable: false,
});

import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { harness, loadRuntime } from "./harness.mjs";

const { events } = await loadRuntime();
const { AbortController, AbortSignal, DOMException, Event, EventTarget } = events;

beforeEach(() => harness.reset());

test("DOMException has name, message, code and a stack", () => {
  const e = new DOMException("stopped", "AbortError");
  assert.equal(e.name, "AbortError");
  assert.equal(e.message, "stopped");
  assert.equal(e.code, 20);
  assert.ok(e instanceof Error);
  assert.match(e.stack, /^AbortError: stopped\n/);
  assert.equal(String(e), "AbortError: stopped");
  const codes = { TimeoutError: 23, QuotaExceededError: 22, TypeMismatchError: 17, DataCloneError: 25, InvalidStateError: 11, NotSupportedError: 9 };
  for (const [name, code] of Object.entries(codes)) assert.equal(new DOMException("", name).code, code);
  assert.equal(new DOMException("x", "SomethingNew").code, 0);
  const plain = new DOMException();
  assert.equal(plain.name, "Error");
  assert.equal(plain.message, "");
  const withCause = new DOMException("m", { name: "DataCloneError", cause: "why" });
  assert.equal(withCause.name, "DataCloneError");
  assert.equal(withCause.cause, "why");
  assert.equal(DOMException.ABORT_ERR, 20);
  assert.equal(e.TIMEOUT_ERR, 23);
});

test("Event properties and preventDefault", () => {
  const plain = new Event("ping");
  assert.equal(plain.type, "ping");
  assert.equal(plain.cancelable, false);
  plain.preventDefault();
  assert.equal(plain.defaultPrevented, false);
  const ev = new Event("go", { cancelable: true, bubbles: true });
  assert.equal(ev.bubbles, true);
  assert.equal(ev.eventPhase, Event.NONE);
  assert.equal(ev.isTrusted, false);
  assert.equal(typeof ev.timeStamp, "number");
  ev.preventDefault();
  assert.equal(ev.defaultPrevented, true);
  assert.equal(ev.returnValue, false);
  assert.throws(() => new Event(), TypeError);
});

test("EventTarget dispatches in order with once, handleEvent and dedup", () => {
  const target = new EventTarget();
  const calls = [];
  const fn = (e) => calls.push(["fn", e.type, e.target === target, e.currentTarget === target, e.eventPhase]);
  target.addEventListener("x", fn);
  target.addEventListener("x", fn); // duplicate: ignored
  target.addEventListener("x", { handleEvent: () => calls.push(["object"]) });
  target.addEventListener("x", () => calls.push(["once"]), { once: true });
  target.addEventListener("x", fn, true); // capture flag makes it distinct
  target.addEventListener("y", () => calls.push(["other type"]));
  const ev = new Event("x");
  assert.equal(target.dispatchEvent(ev), true);
  assert.deepEqual(calls, [
    ["fn", "x", true, true, Event.AT_TARGET],
    ["object"],
    ["once"],
    ["fn", "x", true, true, Event.AT_TARGET],
  ]);
  assert.equal(ev.eventPhase, Event.NONE);
  assert.equal(ev.currentTarget, null);
  calls.length = 0;
  target.removeEventListener("x", fn);
  target.dispatchEvent(new Event("x"));
  assert.deepEqual(calls, [["object"], ["fn", "x", true, true, Event.AT_TARGET]]);
});

test("stopImmediatePropagation, passive and cancelable dispatch", () => {
  const target = new EventTarget();
  const calls = [];
  target.addEventListener("c", (e) => e.preventDefault(), { passive: true });
  target.addEventListener("c", (e) => {
    calls.push(1);
    e.stopImmediatePropagation();
  });
  target.addEventListener("c", () => calls.push(2));
  const passiveOnly = new Event("c", { cancelable: true });
  assert.equal(target.dispatchEvent(passiveOnly), true); // passive cannot cancel
  assert.deepEqual(calls, [1]);
  const t2 = new EventTarget();
  t2.addEventListener("c", (e) => e.preventDefault());
  assert.equal(t2.dispatchEvent(new Event("c", { cancelable: true })), false);
});

test("a listener that throws is reported and does not stop the others", () => {
  const target = new EventTarget();
  const calls = [];
  target.addEventListener("e", () => {
    throw new Error("listener failed");
  });
  target.addEventListener("e", () => calls.push("second"));
  target.dispatchEvent(new Event("e"));
  assert.deepEqual(calls, ["second"]);
  assert.equal(harness.reportedErrors.length, 1);
  assert.equal(harness.reportedErrors[0].message, "listener failed");
});

test("a listener's signal removes it", () => {
  const target = new EventTarget();
  const controller = new AbortController();
  let count = 0;
  target.addEventListener("t", () => count++, { signal: controller.signal });
  target.dispatchEvent(new Event("t"));
  controller.abort();
  target.dispatchEvent(new Event("t"));
  assert.equal(count, 1);
  target.addEventListener("t", () => count++, { signal: AbortSignal.abort() });
  target.dispatchEvent(new Event("t"));
  assert.equal(count, 1);
});

test("AbortController aborts with the default AbortError or a reason", () => {
  const controller = new AbortController();
  const { signal } = controller;
  assert.equal(signal.aborted, false);
  assert.equal(signal.reason, undefined);
  signal.throwIfAborted();
  const events = [];
  signal.onabort = function (e) {
    events.push(["onabort", e.type, e.isTrusted, this === signal]);
  };
  signal.addEventListener("abort", (e) => events.push(["listener", e.target === signal]));
  controller.abort();
  controller.abort("again"); // no effect
  assert.equal(signal.aborted, true);
  assert.ok(signal.reason instanceof DOMException);
  assert.equal(signal.reason.name, "AbortError");
  assert.throws(() => signal.throwIfAborted(), (e) => e === signal.reason);
  assert.deepEqual(events, [["onabort", "abort", true, true], ["listener", true]]);
  const custom = new AbortController();
  custom.abort(new Error("mine"));
  assert.equal(custom.signal.reason.message, "mine");
  assert.throws(() => new AbortSignal(), TypeError);
});

test("onabort can be replaced and cleared", () => {
  const controller = new AbortController();
  const calls = [];
  controller.signal.onabort = () => calls.push("first");
  controller.signal.onabort = () => calls.push("second");
  assert.equal(typeof controller.signal.onabort, "function");
  const cleared = new AbortController();
  cleared.signal.onabort = () => calls.push("never");
  cleared.signal.onabort = null;
  assert.equal(cleared.signal.onabort, null);
  controller.abort();
  cleared.abort();
  assert.deepEqual(calls, ["second"]);
});

test("AbortSignal.abort() is already aborted", () => {
  const signal = AbortSignal.abort();
  assert.equal(signal.aborted, true);
  assert.equal(signal.reason.name, "AbortError");
  assert.equal(AbortSignal.abort("why").reason, "why");
});

test("AbortSignal.timeout aborts with a TimeoutError", async () => {
  const signal = AbortSignal.timeout(10);
  assert.equal(signal.aborted, false);
  const fired = new Promise((resolve) => signal.addEventListener("abort", resolve));
  // The timeout timer is unrefed, so keep Node's loop alive while waiting.
  const keepAlive = setTimeout(() => {}, 1000);
  await fired;
  clearTimeout(keepAlive);
  assert.equal(signal.reason.name, "TimeoutError");
  assert.equal(signal.reason.code, 23);
  assert.throws(() => AbortSignal.timeout(-1), TypeError);
  assert.throws(() => AbortSignal.timeout(NaN), TypeError);
});

test("AbortSignal.any follows the first source to abort", async () => {
  const a = new AbortController();
  const b = new AbortController();
  const any = AbortSignal.any([a.signal, b.signal]);
  const nested = AbortSignal.any([any]);
  assert.equal(any.aborted, false);
  const order = [];
  any.addEventListener("abort", () => order.push("any"));
  nested.addEventListener("abort", () => order.push("nested"));
  b.abort("b first");
  a.abort("a later");
  assert.equal(any.aborted, true);
  assert.equal(any.reason, "b first");
  assert.equal(nested.reason, "b first");
  assert.deepEqual(order, ["any", "nested"]);

  const already = AbortSignal.any([new AbortController().signal, AbortSignal.abort("pre")]);
  assert.equal(already.aborted, true);
  assert.equal(already.reason, "pre");
  assert.equal(AbortSignal.any([]).aborted, false);
  assert.throws(() => AbortSignal.any([{}]), TypeError);

  const timed = AbortSignal.any([new AbortController().signal, AbortSignal.timeout(5)]);
  const keepAlive = setTimeout(() => {}, 1000);
  await new Promise((resolve) => timed.addEventListener("abort", resolve));
  clearTimeout(keepAlive);
  assert.equal(timed.reason.name, "TimeoutError");
});

test("a dependent signal with listeners survives garbage collection", async () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc");
  const controller = new AbortController();
  let fired = false;
  AbortSignal.any([controller.signal]).addEventListener("abort", () => {
    fired = true;
  });
  await sleep(0);
  gc();
  controller.abort();
  assert.equal(fired, true);
});

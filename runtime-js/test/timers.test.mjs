import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { harness, loadRuntime } from "./harness.mjs";

const { timers } = await loadRuntime();
const { clearInterval, clearTimeout, setInterval, setTimeout, useHostTimers } = timers;

beforeEach(() => harness.reset());

test("setTimeout returns increasing positive integer ids and passes arguments", async () => {
  const calls = [];
  const a = setTimeout((x, y) => calls.push(["a", x, y]), 5, 1, 2);
  const b = setTimeout(() => calls.push(["b"]));
  assert.ok(Number.isInteger(a) && a > 0);
  assert.ok(b > a);
  await sleep(30);
  assert.deepEqual(calls, [["b"], ["a", 1, 2]]);
});

test("callbacks run with globalThis as this", async () => {
  let self;
  setTimeout(function () {
    self = this;
  }, 0);
  await sleep(10);
  assert.equal(self, globalThis);
});

test("clearTimeout cancels; unknown ids are ignored", async () => {
  let fired = false;
  const id = setTimeout(() => {
    fired = true;
  }, 5);
  clearTimeout(id);
  clearTimeout(id);
  clearTimeout(123456);
  clearTimeout(undefined);
  clearTimeout("not an id");
  await sleep(20);
  assert.equal(fired, false);
});

test("setInterval repeats until cleared, also from its own callback", async () => {
  let count = 0;
  const id = setInterval(() => {
    count++;
    if (count === 3) clearInterval(id);
  }, 2);
  await sleep(60);
  assert.equal(count, 3);
});

test("clearTimeout and clearInterval are interchangeable", async () => {
  let count = 0;
  const interval = setInterval(() => count++, 2);
  clearTimeout(interval);
  const timeout = setTimeout(() => count++, 2);
  clearInterval(timeout);
  await sleep(20);
  assert.equal(count, 0);
});

test("delays are converted like WebIDL long: negative and NaN become 0, huge ones wrap", async () => {
  const order = [];
  setTimeout(() => order.push("later"), 15);
  setTimeout(() => order.push("negative"), -100);
  setTimeout(() => order.push("nan"), NaN);
  setTimeout(() => order.push("string"), "1");
  setTimeout(() => order.push("overflow"), 2 ** 32 + 1); // ToInt32 -> 1
  await sleep(40);
  assert.deepEqual(order.slice(-1), ["later"]);
  assert.equal(order.length, 5);
});

test("a non-function callback is a TypeError (no string eval)", () => {
  assert.throws(() => setTimeout("alert(1)", 0), TypeError);
  assert.throws(() => setInterval(null, 0), TypeError);
});

// --- a journaled run: every timer is a host call (op_atoll_timer) ---------------------

async function onHost(body) {
  useHostTimers(true);
  try {
    await body();
  } finally {
    useHostTimers(false);
  }
}

test("on the host, a timeout is one op_atoll_timer call with its delay and arguments", () =>
  onHost(async () => {
    const calls = [];
    const id = setTimeout((x) => calls.push(x), 5, "a");
    setTimeout(() => calls.push("b"), -3);
    assert.deepEqual(harness.timerCalls, [
      { id, ms: 5 },
      { id: id + 1, ms: 0 },
    ]);
    await sleep(30);
    assert.deepEqual(calls, ["b", "a"]);
  }));

test("on the host, clearTimeout clears the host's timer and its callback never runs", () =>
  onHost(async () => {
    let fired = false;
    const id = setTimeout(() => {
      fired = true;
    }, 5);
    clearTimeout(id);
    clearTimeout(id); // once only
    await sleep(20);
    assert.equal(fired, false);
    assert.deepEqual(harness.clearedTimers, [id]);
    assert.deepEqual(harness.reportedErrors, []);
  }));

test("on the host, setInterval asks one timer per tick until cleared from its callback", () =>
  onHost(async () => {
    let count = 0;
    const id = setInterval(() => {
      count++;
      if (count === 3) clearInterval(id);
    }, 2);
    await sleep(60);
    assert.equal(count, 3);
    assert.equal(harness.timerCalls.filter((c) => c.id === id).length, 4);
    assert.deepEqual(harness.clearedTimers, [id]);
  }));

test("on the host, a timer cleared as it fired does not run; a host refusal is reported", () =>
  onHost(async () => {
    const saved = harness.ops.op_atoll_timer;
    let fired = 0;
    try {
      // The host answers "cleared" (a replay of a timer the run cleared as it fired).
      harness.ops.op_atoll_timer = () => Promise.reject(new Error("cleared: the timer was cleared"));
      setTimeout(() => fired++, 1);
      // ... or refuses for another reason: the run sees the error.
      harness.ops.op_atoll_timer = () => Promise.reject(new Error("too_many_timers: at most 1000"));
      setTimeout(() => fired++, 1);
      await sleep(10);
    } finally {
      harness.ops.op_atoll_timer = saved;
    }
    assert.equal(fired, 0);
    assert.equal(harness.reportedErrors.length, 1);
    assert.match(harness.reportedErrors[0].message, /^too_many_timers/);
  }));

test("on the host, an exception in a callback is reported like an uncaught one", () =>
  onHost(async () => {
    setTimeout(() => {
      throw new Error("boom");
    }, 0);
    await sleep(10);
    assert.equal(harness.reportedErrors.length, 1);
    assert.equal(harness.reportedErrors[0].message, "boom");
  }));

test("on the host, a run has at most 1000 timers pending", () =>
  onHost(async () => {
    const ids = [];
    for (let i = 0; i < 1000; i++) ids.push(setTimeout(() => {}, 60_000));
    assert.throws(() => setTimeout(() => {}, 1), (e) => e instanceof RangeError && /^too_many_timers/.test(e.message));
    clearTimeout(ids[0]);
    ids.push(setTimeout(() => {}, 60_000)); // room again
    for (const id of ids) clearTimeout(id);
    await sleep(5);
    assert.deepEqual(harness.reportedErrors, []);
  }));

import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { harness, loadRuntime } from "./harness.mjs";

const { timers } = await loadRuntime();
const { clearInterval, clearTimeout, setInterval, setTimeout } = timers;

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

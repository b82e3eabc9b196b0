import { test } from "node:test";
import assert from "node:assert/strict";
import { loadRuntime, webGlobals } from "./harness.mjs";

const { crypto: cryptoModule, events } = await loadRuntime();
const { crypto } = cryptoModule;
const { DOMException } = events;

test("getRandomValues fills integer typed arrays in place and returns them", () => {
  for (const Type of [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, BigUint64Array]) {
    const array = new Type(64);
    assert.equal(crypto.getRandomValues(array), array);
    assert.ok(array.some((v) => v != 0), Type.name);
  }
  // Only the view's own bytes are written.
  const backing = new Uint8Array(12);
  crypto.getRandomValues(new Uint32Array(backing.buffer, 4, 1));
  assert.deepEqual([...backing.subarray(0, 4)], [0, 0, 0, 0]);
  assert.deepEqual([...backing.subarray(8)], [0, 0, 0, 0]);
  assert.equal(crypto.getRandomValues(new Uint8Array(0)).length, 0);
});

test("getRandomValues rejects float arrays and non-views", () => {
  for (const value of [new Float32Array(4), new Float64Array(4), new DataView(new ArrayBuffer(4))]) {
    assert.throws(() => crypto.getRandomValues(value), (e) => e instanceof DOMException && e.name === "TypeMismatchError" && e.code === 17);
  }
  for (const value of [new ArrayBuffer(4), [1, 2], "str", undefined]) {
    assert.throws(() => crypto.getRandomValues(value), TypeError);
  }
  assert.throws(() => crypto.getRandomValues(), TypeError);
});

test("more than 65536 bytes is a QuotaExceededError", () => {
  assert.equal(crypto.getRandomValues(new Uint8Array(65536)).length, 65536);
  assert.throws(
    () => crypto.getRandomValues(new Uint8Array(65537)),
    (e) => e instanceof DOMException && e.name === "QuotaExceededError" && e.code === 22,
  );
  assert.throws(() => crypto.getRandomValues(new Uint32Array(16385)), { name: "QuotaExceededError" });
});

test("randomUUID is a version 4 UUID", () => {
  const seen = new Set();
  for (let i = 0; i < 200; i++) {
    const id = crypto.randomUUID();
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    seen.add(id);
  }
  assert.equal(seen.size, 200);
});

test("methods need the crypto object; there is no constructor", () => {
  const { getRandomValues, randomUUID } = crypto;
  assert.throws(() => getRandomValues(new Uint8Array(1)), TypeError);
  assert.throws(() => randomUUID(), TypeError);
  assert.throws(() => new crypto.constructor(), TypeError);
  assert.equal(Object.prototype.toString.call(crypto), "[object Crypto]");
  assert.equal(crypto.subtle, undefined);
});

test("structuredClone deep-copies and reports DataCloneError", async () => {
  const { structuredClone } = await webGlobals();
  const original = { a: [1, { b: new Date(0) }], m: new Map([["k", new Set([1])]]) };
  original.self = original;
  const copy = structuredClone(original);
  assert.notEqual(copy, original);
  assert.equal(copy.self, copy);
  assert.deepEqual(copy.a, original.a);
  assert.ok(copy.m.get("k").has(1));
  assert.throws(() => structuredClone(() => {}), (e) => e instanceof DOMException && e.name === "DataCloneError");
  assert.throws(() => structuredClone(), TypeError);
  assert.throws(() => structuredClone(new ArrayBuffer(1), { transfer: [new ArrayBuffer(1)] }), { name: "DataCloneError" });
});

import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import util from "node:util";
import { Console } from "node:console";
import { Writable } from "node:stream";
import { harness, loadRuntime } from "./harness.mjs";

const { console: mod } = await loadRuntime();
const { console: atollConsole, format, inspect } = mod;

beforeEach(() => harness.reset());

/** What Node's own console writes for one call, without the final newline. */
function nodeConsoleOutput(method, ...args) {
  let out = "";
  const sink = new Writable({
    write(chunk, _enc, done) {
      out += chunk;
      done();
    },
  });
  new Console({ stdout: sink, stderr: sink, colorMode: false })[method](...args);
  return out.replace(/\n$/, "");
}

class Point {
  constructor() {
    this.x = 1;
    this.y = 2;
  }
}
class Empty {}
class Tagged {
  get [Symbol.toStringTag]() {
    return "Tag";
  }
}

function sample() {
  const circular = { name: "root", nested: { list: [] } };
  circular.nested.list.push(circular, { back: circular.nested });
  const sparse = [1, , , 4]; // eslint-disable-line no-sparse-arrays
  const withProps = [1, 2];
  withProps.extra = "x";
  const nullProto = Object.create(null);
  nullProto.k = 1;
  const accessors = {
    get g() {
      return 1;
    },
    set s(v) {},
    get gs() {
      return 1;
    },
    set gs(v) {},
  };
  return {
    undefined: undefined,
    null: null,
    numbers: [0, -0, 1.5, NaN, -Infinity, 12345678901234567890],
    bigint: 10n,
    symbol: Symbol("s"),
    strings: ["plain", "it's", `both ' and "`, "all ' \" `", "tab\tnew\nline\u0001\u007f", "\ud800"],
    longString: "x".repeat(30) + "\n" + "y".repeat(60) + "\n" + "z",
    empty: [{}, [], new Map(), new Set(), "", new Empty()],
    nested: { a: { b: { c: { d: { e: 1 } } } } },
    arrayOfObjects: [{ a: 1, b: "two" }, { a: 3, b: "four" }],
    numbersArray: Array.from({ length: 30 }, (_, i) => i * 3),
    stringsArray: Array.from({ length: 26 }, (_, i) => String.fromCharCode(97 + i).repeat(i % 5 + 1)),
    longArray: Array.from({ length: 120 }, (_, i) => i),
    sparse,
    withProps,
    map: new Map([["k", { v: [1, 2] }], [{ o: 1 }, "object key"]]),
    set: new Set([1, "two", [3]]),
    circular,
    date: new Date(0),
    invalidDate: new Date(NaN),
    regexp: /ab+c/gi,
    functions: [function named() {}, () => {}, async function af() {}, function* gen() {}, Point, class extends Point {}],
    boxed: [new Number(3), new String("str"), new Boolean(false), Object(Symbol("b")), Object(5n)],
    classInstances: [new Point(), new Tagged()],
    nullProto,
    accessors,
    symbolKey: { [Symbol("k")]: 1, "needs-quote": 2, valid_id: 3, 1: 4 },
    typed: [new Uint8Array([1, 2, 3]), new Float64Array(2), new Uint8Array(0)],
    buffer: new Uint8Array([1, 2, 255]).buffer,
    weak: [new WeakMap(), new WeakSet()],
  };
}

test("inspect matches Node's util.inspect", () => {
  const values = sample();
  for (const [name, value] of Object.entries(values)) {
    assert.equal(inspect(value), util.inspect(value), `value: ${name}`);
  }
  assert.equal(inspect(values), util.inspect(values), "everything at once");
  for (const depth of [0, 1, 4, null]) {
    assert.equal(inspect(values.nested, { depth }), util.inspect(values.nested, { depth }), `depth ${depth}`);
  }
});

test("errors print with their stack, extra keys and cause", () => {
  const plain = new Error("boom");
  const coded = new TypeError("bad", { cause: new Error("root cause") });
  coded.code = "E_BAD";
  const noStack = new RangeError("quiet");
  noStack.stack = "RangeError: quiet";
  const aggregate = new AggregateError([new Error("one")], "many");
  for (const value of [plain, coded, noStack, { wrapped: coded }, [plain], aggregate]) {
    assert.equal(inspect(value), util.inspect(value));
  }
  assert.match(inspect(plain), /^Error: boom\n {4}at /);
});

test("cycles print as [Circular *n] with a <ref *n> marker", () => {
  const a = { name: "a" };
  a.self = a;
  assert.equal(inspect(a), "<ref *1> { name: 'a', self: [Circular *1] }");
  const list = [];
  list.push(list);
  assert.equal(inspect(list), "<ref *1> [ [Circular *1] ]");
  atollConsole.log("cycle:", a);
  assert.deepEqual(harness.logs, [{ level: "log", message: "cycle: <ref *1> { name: 'a', self: [Circular *1] }" }]);
});

test("custom inspect hooks are honoured", () => {
  const custom = { [Symbol.for("nodejs.util.inspect.custom")]: () => "CUSTOM" };
  assert.equal(inspect({ custom }), "{ custom: CUSTOM }");
  const returnsObject = { [Symbol.for("nodejs.util.inspect.custom")]: () => ({ replaced: true }) };
  assert.equal(inspect(returnsObject), "{ replaced: true }");
});

test("format specifiers match Node's util.format", () => {
  const obj = { a: { b: { c: {} } } };
  const withToString = { toString: () => "custom!" };
  const cases = [
    ["%s|%s|%s|%s", "str", 42, -0, 5n],
    ["%s", obj],
    ["%s", withToString],
    ["%s", [1, [2, [3]]]],
    ["%s", null],
    ["%s", undefined],
    ["%s", Symbol("x")],
    ["%d %d %d %d", "42", 1.5, 10n, {}],
    ["%i %i %i", "42.9px", -1.9, 7n],
    ["%f %f", "1.25e2", "x"],
    ["%j", { a: [1, "b"] }],
    ["%o", { deep: { er: { est: { x: 1 } } } }],
    ["%O", { deep: { er: { est: { x: 1 } } } }],
    ["%c styled", "color: red"],
    ["100%% sure %s", "yes"],
    ["%s missing %s", "one"],
    ["%x unknown", 1],
    ["no specifiers", 1, "two", { three: 3 }],
    [5, "not a format", { x: 1 }],
    ["trailing %"],
    ["%s", "a", "extra", 2],
  ];
  for (const args of cases) {
    assert.equal(format(args), util.format(...args), `format(${util.inspect(args)})`);
  }
  const circular = { x: 1 };
  circular.self = circular;
  assert.equal(format(["%j", circular]), "[Circular]");
});

test("each console method makes exactly one op_atoll_log call at its level", () => {
  atollConsole.log("a", 1);
  atollConsole.info("i");
  atollConsole.debug("d");
  atollConsole.warn("w");
  atollConsole.error("e", { x: 1 });
  atollConsole.dir({ s: "quoted" });
  atollConsole.dir("top-level string", { depth: 0 });
  atollConsole.assert(true, "never");
  atollConsole.assert(false, "failed %s", "here");
  atollConsole.assert(0, { o: 1 });
  assert.deepEqual(harness.logs, [
    { level: "log", message: "a 1" },
    { level: "info", message: "i" },
    { level: "debug", message: "d" },
    { level: "warn", message: "w" },
    { level: "error", message: "e { x: 1 }" },
    { level: "log", message: "{ s: 'quoted' }" },
    { level: "log", message: "'top-level string'" },
    { level: "error", message: "Assertion failed: failed here" },
    { level: "error", message: "Assertion failed { o: 1 }" },
  ]);
});

test("console methods work when detached from console", () => {
  const { log } = atollConsole;
  log("detached");
  assert.equal(harness.logs[0].message, "detached");
});

test("console.trace includes the call stack", () => {
  (function callerOfTrace() {
    atollConsole.trace("where %s", "here");
  })();
  const [entry] = harness.logs;
  assert.equal(entry.level, "debug");
  assert.match(entry.message, /^Trace: where here\n {4}at callerOfTrace /);
});

test("count, time and group", () => {
  atollConsole.count();
  atollConsole.count("x");
  atollConsole.count();
  atollConsole.countReset();
  atollConsole.count();
  atollConsole.time("t");
  atollConsole.timeLog("t", "mid");
  atollConsole.timeEnd("t");
  atollConsole.timeEnd("t");
  atollConsole.group("Group");
  atollConsole.log("inner\nlines");
  atollConsole.groupEnd();
  atollConsole.log("outer");
  const messages = harness.logs.map((l) => l.message);
  assert.deepEqual(messages.slice(0, 4), ["default: 1", "x: 1", "default: 2", "default: 1"]);
  assert.match(messages[4], /^t: \d+\.\d{3}ms mid$/);
  assert.match(messages[5], /^t: \d+\.\d{3}ms$/);
  assert.equal(messages[6], "Warning: No such label 't' for console.timeEnd()");
  assert.deepEqual(messages.slice(7), ["Group", "  inner\n  lines", "outer"]);
});

test("console.table matches Node's rendering", () => {
  const tables = [
    [[{ a: 1, b: "Y" }, { a: "Z", b: 2 }]],
    [[1, "two", { three: 3 }]],
    [{ first: { x: 1 }, second: { y: [1, 2, 3, 4] } }],
    [[{ a: 1, b: 2, c: 3 }], ["c", "a"]],
    [new Map([["k", 1], ["j", { z: 1 }]])],
    [new Set(["s", 2])],
    [[[1, 2], [3, 4, 5]]],
  ];
  for (const args of tables) {
    harness.reset();
    atollConsole.table(...args);
    assert.equal(harness.logs[0].message, nodeConsoleOutput("table", ...args), util.inspect(args));
  }
  harness.reset();
  atollConsole.table("not tabular");
  assert.equal(harness.logs[0].message, "not tabular");
});

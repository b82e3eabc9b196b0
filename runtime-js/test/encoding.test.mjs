import { test } from "node:test";
import assert from "node:assert/strict";
import { loadRuntime } from "./harness.mjs";

const { encoding } = await loadRuntime();
const { TextDecoder, TextEncoder } = encoding;
const bytes = (...b) => new Uint8Array(b);

test("TextEncoder encodes UTF-8 and replaces lone surrogates", () => {
  const enc = new TextEncoder();
  assert.equal(enc.encoding, "utf-8");
  assert.deepEqual([...enc.encode("aé€😀")], [0x61, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80]);
  assert.deepEqual([...enc.encode("\ud800x")], [0xef, 0xbf, 0xbd, 0x78]);
  assert.deepEqual([...enc.encode()], []);
  assert.ok(enc.encode("x") instanceof Uint8Array);
});

test("TextEncoder.encodeInto writes whole code points only", () => {
  const enc = new TextEncoder();
  const dest = new Uint8Array(5);
  assert.deepEqual(enc.encodeInto("a€😀", dest), { read: 2, written: 4 });
  assert.deepEqual([...dest], [0x61, 0xe2, 0x82, 0xac, 0]);
  const big = new Uint8Array(16);
  assert.deepEqual(enc.encodeInto("a😀", big), { read: 3, written: 5 });
  assert.deepEqual(enc.encodeInto("😀", new Uint8Array(3)), { read: 0, written: 0 });
  assert.deepEqual(enc.encodeInto("\udc00", new Uint8Array(3)), { read: 1, written: 3 });
  assert.throws(() => enc.encodeInto("a", [0]), TypeError);
});

test("TextDecoder accepts the UTF-8 labels only", () => {
  for (const label of ["utf-8", "UTF8", " unicode-1-1-utf-8\n", "x-unicode20utf8", "unicode11utf8"]) {
    assert.equal(new TextDecoder(label).encoding, "utf-8");
  }
  assert.throws(() => new TextDecoder("latin1"), RangeError);
  assert.throws(() => new TextDecoder("utf-16le"), RangeError);
  const d = new TextDecoder(undefined, { fatal: 1, ignoreBOM: "yes" });
  assert.equal(d.fatal, true);
  assert.equal(d.ignoreBOM, true);
});

test("TextDecoder decodes every BufferSource", () => {
  const d = new TextDecoder();
  const u8 = bytes(0x68, 0x69, 0xe2, 0x82, 0xac);
  assert.equal(d.decode(u8), "hi€");
  assert.equal(d.decode(u8.buffer), "hi€");
  assert.equal(d.decode(new DataView(u8.buffer, 1, 1)), "i");
  assert.equal(d.decode(new Uint16Array([0x6968])), "hi");
  assert.equal(d.decode(u8.subarray(2)), "€");
  assert.equal(d.decode(), "");
  assert.throws(() => d.decode("text"), TypeError);
  assert.throws(() => d.decode(5), TypeError);
});

test("TextDecoder replaces invalid sequences like the Encoding Standard", () => {
  const d = new TextDecoder();
  const cases = [
    [[0xff], "\ufffd"],
    [[0xc0, 0x80], "\ufffd\ufffd"], // overlong
    [[0xe0, 0x80, 0x80], "\ufffd\ufffd\ufffd"],
    [[0xed, 0xa0, 0x80], "\ufffd\ufffd\ufffd"], // surrogate
    [[0xe2, 0x82, 0x41], "\ufffdA"], // truncated, then ASCII
    [[0xf0, 0x9f, 0x98], "\ufffd"], // truncated at the end
    [[0xf4, 0x90, 0x80, 0x80], "\ufffd\ufffd\ufffd\ufffd"], // above U+10FFFF
    [[0x61, 0xef, 0xbf, 0xbd, 0x62], "a\ufffdb"], // a real U+FFFD
  ];
  for (const [input, expected] of cases) {
    assert.equal(d.decode(new Uint8Array(input)), expected, `bytes ${input}`);
    // Same answers as Node's decoder.
    assert.equal(new globalThis.TextDecoder().decode(new Uint8Array(input)), expected);
  }
});

test("fatal TextDecoder throws a TypeError on invalid input", () => {
  const d = new TextDecoder("utf-8", { fatal: true });
  assert.throws(() => d.decode(bytes(0x61, 0xff)), TypeError);
  assert.throws(() => d.decode(bytes(0xe2, 0x82)), TypeError);
  assert.equal(d.decode(bytes(0xef, 0xbf, 0xbd)), "\ufffd"); // valid U+FFFD is fine
  assert.equal(d.decode(bytes(0x61)), "a"); // usable again afterwards
});

test("BOM is stripped once per stream unless ignoreBOM", () => {
  const bom = [0xef, 0xbb, 0xbf];
  assert.equal(new TextDecoder().decode(bytes(...bom, 0x61)), "a");
  assert.equal(new TextDecoder().decode(bytes(...bom, ...bom, 0x61)), "\ufeffa");
  assert.equal(new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes(...bom, 0x61)), "\ufeffa");
  const d = new TextDecoder();
  assert.equal(d.decode(bytes(...bom, 0x61), { stream: true }), "a");
  assert.equal(d.decode(bytes(...bom, 0x62), { stream: true }), "\ufeffb"); // mid-stream: kept
  assert.equal(d.decode(), "");
  assert.equal(d.decode(bytes(...bom, 0x63)), "c"); // new stream: stripped again
  // A BOM split across chunks.
  const split = new TextDecoder();
  assert.equal(split.decode(bytes(0xef, 0xbb), { stream: true }), "");
  assert.equal(split.decode(bytes(0xbf, 0x78)), "x");
});

test("{ stream: true } holds back an unfinished sequence", () => {
  const d = new TextDecoder();
  const euro = [0xe2, 0x82, 0xac];
  assert.equal(d.decode(bytes(0x61, euro[0]), { stream: true }), "a");
  assert.equal(d.decode(bytes(euro[1]), { stream: true }), "");
  assert.equal(d.decode(bytes(euro[2], 0x62), { stream: true }), "€b");
  assert.equal(d.decode(bytes(0xf0, 0x9f), { stream: true }), "");
  assert.equal(d.decode(), "\ufffd"); // flushed incomplete sequence
  // An invalid prefix is not held back.
  assert.equal(new TextDecoder().decode(bytes(0xe0, 0x80), { stream: true }), "\ufffd\ufffd");
  // Byte by byte gives the same text as all at once.
  const text = "héllo €uro 😀 ok";
  const all = new globalThis.TextEncoder().encode(text);
  const s = new TextDecoder();
  let out = "";
  for (const b of all) out += s.decode(bytes(b), { stream: true });
  out += s.decode();
  assert.equal(out, text);
  const fatal = new TextDecoder("utf-8", { fatal: true });
  assert.equal(fatal.decode(bytes(0xe2, 0x82), { stream: true }), "");
  assert.throws(() => fatal.decode(), TypeError);
});

// atoll runtime: the `crypto` object with getRandomValues and randomUUID (no
// `crypto.subtle`). Random bytes come from the host's CSPRNG.

import { primordials } from "ext:core/mod.js";
import { op_atoll_random_fill } from "ext:core/ops";
import { DOMException } from "ext:atoll/04_events.js";

const {
  ArrayBufferIsView,
  ArrayPrototypeJoin,
  SafeSet,
  SetPrototypeHas,
  StringPrototypePadStart,
  NumberPrototypeToString,
  Symbol,
  SymbolToStringTag,
  TypeError,
  TypedArrayPrototypeGetBuffer,
  TypedArrayPrototypeGetByteLength,
  TypedArrayPrototypeGetByteOffset,
  TypedArrayPrototypeGetSymbolToStringTag,
  Uint8Array,
} = primordials;

const MAX_RANDOM_BYTES = 65536;
const INTEGER_ARRAY_TYPES = new SafeSet([
  "Int8Array",
  "Uint8Array",
  "Uint8ClampedArray",
  "Int16Array",
  "Uint16Array",
  "Int32Array",
  "Uint32Array",
  "BigInt64Array",
  "BigUint64Array",
]);
const illegalConstructorKey = Symbol("Crypto.internal");

const HEX = [];
for (let i = 0; i < 256; i++) {
  HEX[i] = StringPrototypePadStart(NumberPrototypeToString(i, 16), 2, "0");
}

function getRandomValues(array) {
  if (!ArrayBufferIsView(array)) {
    throw new TypeError("crypto.getRandomValues: argument must be an integer TypedArray");
  }
  const type = TypedArrayPrototypeGetSymbolToStringTag(array);
  if (type === undefined || !SetPrototypeHas(INTEGER_ARRAY_TYPES, type)) {
    throw new DOMException(
      "The provided ArrayBufferView is not an integer-type TypedArray",
      "TypeMismatchError",
    );
  }
  const byteLength = TypedArrayPrototypeGetByteLength(array);
  if (byteLength > MAX_RANDOM_BYTES) {
    throw new DOMException(
      `The ArrayBufferView's byte length (${byteLength}) exceeds the number of bytes of entropy available via this API (${MAX_RANDOM_BYTES})`,
      "QuotaExceededError",
    );
  }
  const bytes = new Uint8Array(
    TypedArrayPrototypeGetBuffer(array),
    TypedArrayPrototypeGetByteOffset(array),
    byteLength,
  );
  op_atoll_random_fill(bytes);
  return array;
}

class Crypto {
  #brand;

  constructor(key = undefined) {
    if (key !== illegalConstructorKey) throw new TypeError("Illegal constructor");
  }

  getRandomValues(array) {
    if (!(#brand in this)) throw new TypeError("Illegal invocation");
    if (arguments.length < 1) {
      throw new TypeError("crypto.getRandomValues: 1 argument required, but only 0 present");
    }
    return getRandomValues(array);
  }

  /** A version 4 UUID from 16 random bytes (RFC 9562). */
  randomUUID() {
    if (!(#brand in this)) throw new TypeError("Illegal invocation");
    const bytes = getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // variant 10
    const hex = [];
    for (let i = 0; i < 16; i++) {
      hex[i] = HEX[bytes[i]];
      if (i === 3 || i === 5 || i === 7 || i === 9) hex[i] += "-";
    }
    return ArrayPrototypeJoin(hex, "");
  }

  get [SymbolToStringTag]() {
    return "Crypto";
  }
}

const crypto = new Crypto(illegalConstructorKey);

export { crypto };

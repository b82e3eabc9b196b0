// atoll runtime: TextEncoder and TextDecoder (UTF-8 only), per the WHATWG
// Encoding Standard.
//
// Decoding takes deno_core's native `core.decode` whenever its result has no
// U+FFFD in it (then the input was valid UTF-8, whatever the engine's own
// replacement rules are); otherwise it falls back to the spec's decoder
// written out below, which gives exact replacement and `fatal` behaviour.

import { core, primordials } from "ext:core/mod.js";

const {
  ArrayBufferIsView,
  ArrayBufferPrototypeGetByteLength,
  ArrayPrototypePush,
  ArrayPrototypeSlice,
  ObjectPrototypeIsPrototypeOf,
  ObjectPrototypeToString,
  RangeError,
  ReflectApply,
  StringFromCharCode,
  StringPrototypeCharCodeAt,
  StringPrototypeIndexOf,
  StringPrototypeReplace,
  StringPrototypeSlice,
  StringPrototypeToLowerCase,
  StringPrototypeToWellFormed,
  SymbolFor,
  SymbolToStringTag,
  TypeError,
  TypedArrayPrototypeGetSymbolToStringTag,
  TypedArrayPrototypeSet,
  TypedArrayPrototypeSlice,
  TypedArrayPrototypeSubarray,
  Uint8Array,
  Uint8ArrayPrototype,
  SafeRegExp,
  String,
} = primordials;

const inspectSymbol = SymbolFor("nodejs.util.inspect.custom");

// The labels the Encoding Standard maps to UTF-8.
const UTF8_LABELS = [
  "unicode-1-1-utf-8",
  "unicode11utf8",
  "unicode20utf8",
  "utf-8",
  "utf8",
  "x-unicode20utf8",
];
const ASCII_WHITESPACE = new SafeRegExp("^[\\t\\n\\f\\r ]+|[\\t\\n\\f\\r ]+$", "g");

/** USVString conversion: lone surrogates become U+FFFD. */
function toUSVString(value) {
  return StringPrototypeToWellFormed(String(value));
}

/** Any BufferSource as a Uint8Array over the same memory (no copy). */
function toBytes(input, context) {
  if (ArrayBufferIsView(input)) {
    if (TypedArrayPrototypeGetSymbolToStringTag(input) === "Uint8Array") {
      return input;
    }
    return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  }
  if (isAnyArrayBuffer(input)) return new Uint8Array(input);
  throw new TypeError(`${context}: expected an ArrayBuffer or a view on one`);
}

function isAnyArrayBuffer(value) {
  if (typeof value !== "object" || value === null) return false;
  try {
    ArrayBufferPrototypeGetByteLength(value); // throws unless an ArrayBuffer
    return true;
  } catch {
    return ObjectPrototypeToString(value) === "[object SharedArrayBuffer]";
  }
}

function hasBOM(bytes) {
  return bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb &&
    bytes[2] === 0xbf;
}

// --- the Encoding Standard's UTF-8 decoder ---------------------------------

function unitsToString(units) {
  if (units.length <= 8192) return ReflectApply(StringFromCharCode, null, units);
  let out = "";
  for (let i = 0; i < units.length; i += 8192) {
    const chunk = ArrayPrototypeSlice(units, i, i + 8192);
    out += ReflectApply(StringFromCharCode, null, chunk);
  }
  return out;
}

/**
 * Decodes `bytes` completely (an unfinished sequence at the end is an error).
 * Keeps a leading BOM. Throws a TypeError on the first error when `fatal`.
 */
function decodeUtf8Slow(bytes, fatal) {
  const units = [];
  let codePoint = 0;
  let needed = 0;
  let seen = 0;
  let lower = 0x80;
  let upper = 0xbf;
  const error = () => {
    if (fatal) throw new TypeError("The encoded data is not valid UTF-8.");
    ArrayPrototypePush(units, 0xfffd);
  };
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (needed === 0) {
      if (byte <= 0x7f) {
        ArrayPrototypePush(units, byte);
      } else if (byte >= 0xc2 && byte <= 0xdf) {
        needed = 1;
        codePoint = byte & 0x1f;
      } else if (byte >= 0xe0 && byte <= 0xef) {
        if (byte === 0xe0) lower = 0xa0;
        if (byte === 0xed) upper = 0x9f;
        needed = 2;
        codePoint = byte & 0xf;
      } else if (byte >= 0xf0 && byte <= 0xf4) {
        if (byte === 0xf0) lower = 0x90;
        if (byte === 0xf4) upper = 0x8f;
        needed = 3;
        codePoint = byte & 0x7;
      } else {
        error();
      }
      continue;
    }
    if (byte < lower || byte > upper) {
      codePoint = needed = seen = 0;
      lower = 0x80;
      upper = 0xbf;
      error();
      i--; // the byte starts over as the first of a new sequence
      continue;
    }
    lower = 0x80;
    upper = 0xbf;
    codePoint = (codePoint << 6) | (byte & 0x3f);
    if (++seen === needed) {
      if (codePoint > 0xffff) {
        codePoint -= 0x10000;
        ArrayPrototypePush(units, 0xd800 + (codePoint >> 10));
        ArrayPrototypePush(units, 0xdc00 + (codePoint & 0x3ff));
      } else {
        ArrayPrototypePush(units, codePoint);
      }
      codePoint = needed = seen = 0;
    }
  }
  if (needed !== 0) error();
  return unitsToString(units);
}

/** Decodes complete UTF-8 input, keeping a leading BOM as U+FEFF. */
function decodeUtf8(bytes, fatal = false) {
  if (bytes.length === 0) return "";
  let text = null;
  try {
    text = core.decode(bytes); // strips a leading BOM itself
  } catch {
    // fall through to the exact decoder
  }
  if (text !== null && StringPrototypeIndexOf(text, "\ufffd") === -1) {
    return hasBOM(bytes) ? "\ufeff" + text : text;
  }
  return decodeUtf8Slow(bytes, fatal);
}

/**
 * Where a valid but unfinished UTF-8 sequence starts at the end of `bytes`
 * (`bytes.length` if there is none): the part a streaming decode holds back.
 */
function unfinishedTailStart(bytes) {
  const end = bytes.length;
  for (let i = end - 1; i >= 0 && i >= end - 3; i--) {
    const byte = bytes[i];
    if (byte >= 0x80 && byte <= 0xbf) continue; // continuation byte
    const needed = byte >= 0xf0 && byte <= 0xf4
      ? 3
      : byte >= 0xe0 && byte <= 0xef
      ? 2
      : byte >= 0xc2 && byte <= 0xdf
      ? 1
      : 0;
    const have = end - i - 1;
    if (needed === 0 || have >= needed) return end;
    if (have >= 1) {
      const second = bytes[i + 1];
      if (byte === 0xe0 && second < 0xa0) return end;
      if (byte === 0xed && second > 0x9f) return end;
      if (byte === 0xf0 && second < 0x90) return end;
      if (byte === 0xf4 && second > 0x8f) return end;
    }
    return i;
  }
  return end;
}

// --- TextDecoder --------------------------------------------------------------

class TextDecoder {
  #fatal;
  #ignoreBOM;
  #bomSeen = false;
  /** Bytes of an unfinished sequence held back by a `{ stream: true }` call. */
  #pending = null;

  constructor(label = "utf-8", options = undefined) {
    const name = StringPrototypeToLowerCase(
      StringPrototypeReplace(String(label), ASCII_WHITESPACE, ""),
    );
    let known = false;
    for (let i = 0; i < UTF8_LABELS.length; i++) {
      if (UTF8_LABELS[i] === name) known = true;
    }
    if (!known) {
      throw new RangeError(
        `TextDecoder: the encoding '${label}' is not supported (only UTF-8 is)`,
      );
    }
    this.#fatal = !!options?.fatal;
    this.#ignoreBOM = !!options?.ignoreBOM;
  }

  get encoding() {
    return "utf-8";
  }

  get fatal() {
    return this.#fatal;
  }

  get ignoreBOM() {
    return this.#ignoreBOM;
  }

  decode(input = new Uint8Array(0), options = undefined) {
    const stream = !!options?.stream;
    let bytes = toBytes(input, "TextDecoder.decode");
    if (this.#pending !== null) {
      const joined = new Uint8Array(this.#pending.length + bytes.length);
      TypedArrayPrototypeSet(joined, this.#pending);
      TypedArrayPrototypeSet(joined, bytes, this.#pending.length);
      bytes = joined;
      this.#pending = null;
    }
    let end = bytes.length;
    if (stream) {
      end = unfinishedTailStart(bytes);
      if (end < bytes.length) {
        this.#pending = TypedArrayPrototypeSlice(bytes, end);
        bytes = TypedArrayPrototypeSubarray(bytes, 0, end);
      }
    }
    let text;
    try {
      text = decodeUtf8(bytes, this.#fatal);
    } catch (error) {
      this.#pending = null;
      this.#bomSeen = false;
      throw error;
    }
    if (!this.#ignoreBOM && !this.#bomSeen && text.length > 0 &&
      StringPrototypeCharCodeAt(text, 0) === 0xfeff) {
      text = StringPrototypeSlice(text, 1);
    }
    if (end > 0) this.#bomSeen = true;
    if (!stream) this.#bomSeen = false;
    return text;
  }

  get [SymbolToStringTag]() {
    return "TextDecoder";
  }

  [inspectSymbol](depth, options, inspect) {
    if (depth < 0) return this; // printed as [Name] past the depth limit
    const { fatal, ignoreBOM } = this;
    return `TextDecoder ${inspect({ encoding: "utf-8", fatal, ignoreBOM }, options)}`;
  }
}

// --- TextEncoder --------------------------------------------------------------

class TextEncoder {
  get encoding() {
    return "utf-8";
  }

  encode(input = "") {
    return core.encode(toUSVString(input));
  }

  encodeInto(source, destination) {
    const text = toUSVString(source);
    if (!ObjectPrototypeIsPrototypeOf(Uint8ArrayPrototype, destination)) {
      throw new TypeError("TextEncoder.encodeInto: destination must be a Uint8Array");
    }
    if (text.length <= destination.length) {
      const bytes = core.encode(text);
      if (bytes.length <= destination.length) {
        TypedArrayPrototypeSet(destination, bytes);
        return { read: text.length, written: bytes.length };
      }
    }
    return encodeIntoSlow(text, destination);
  }

  get [SymbolToStringTag]() {
    return "TextEncoder";
  }
}

/** Writes whole code points of (well-formed) `text` while they fit. */
function encodeIntoSlow(text, dest) {
  let read = 0;
  let written = 0;
  const capacity = dest.length;
  while (read < text.length) {
    let cp = StringPrototypeCharCodeAt(text, read);
    let units = 1;
    if (cp >= 0xd800 && cp <= 0xdbff) {
      const low = StringPrototypeCharCodeAt(text, read + 1);
      cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
      units = 2;
    }
    const size = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (written + size > capacity) break;
    if (size === 1) {
      dest[written] = cp;
    } else if (size === 2) {
      dest[written] = 0xc0 | (cp >> 6);
      dest[written + 1] = 0x80 | (cp & 0x3f);
    } else if (size === 3) {
      dest[written] = 0xe0 | (cp >> 12);
      dest[written + 1] = 0x80 | ((cp >> 6) & 0x3f);
      dest[written + 2] = 0x80 | (cp & 0x3f);
    } else {
      dest[written] = 0xf0 | (cp >> 18);
      dest[written + 1] = 0x80 | ((cp >> 12) & 0x3f);
      dest[written + 2] = 0x80 | ((cp >> 6) & 0x3f);
      dest[written + 3] = 0x80 | (cp & 0x3f);
    }
    written += size;
    read += units;
  }
  return { read, written };
}

export {
  decodeUtf8,
  isAnyArrayBuffer,
  TextDecoder,
  TextEncoder,
  toBytes,
  toUSVString,
};

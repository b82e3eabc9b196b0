// atoll runtime: `inspect`, the value formatter behind `console`. Values
// are formatted like Node's `util.inspect` without colours.
//
// Layout: inspect() (objects, arrays, Map/Set, errors, `[Circular *n]`,
// depth limit, Node's array grouping). 06_console.js builds the printf-style
// formatter, the table renderer and the console object on top of it.

import { core, primordials } from "ext:core/mod.js";

const {
  ArrayBufferPrototypeGetByteLength,
  ArrayIsArray,
  ArrayPrototypeIncludes,
  ArrayPrototypeIndexOf,
  ArrayPrototypeJoin,
  ArrayPrototypeMap,
  ArrayPrototypePop,
  ArrayPrototypePush,
  ArrayPrototypeSplice,
  BigIntPrototypeValueOf,
  BooleanPrototypeValueOf,
  DatePrototypeGetTime,
  DatePrototypeToISOString,
  ErrorPrototype,
  ErrorPrototypeToString,
  FunctionPrototypeToString,
  MapPrototypeGet,
  MapPrototypeGetSize,
  MapPrototypeSet,
  MathFloor,
  MathMax,
  MathMin,
  MathRound,
  MathSqrt,
  NumberPrototypeToString,
  NumberPrototypeValueOf,
  ObjectGetOwnPropertyDescriptor,
  ObjectGetOwnPropertySymbols,
  ObjectGetPrototypeOf,
  ObjectKeys,
  ObjectPrototypeHasOwnProperty,
  ObjectPrototypeIsPrototypeOf,
  ObjectPrototypePropertyIsEnumerable,
  ObjectPrototypeToString,
  ReflectApply,
  RegExpPrototypeExec,
  RegExpPrototypeToString,
  SafeMap,
  SafeMapIterator,
  SafeRegExp,
  SafeSetIterator,
  SetPrototypeGetSize,
  String,
  StringPrototypeCharCodeAt,
  StringPrototypeIncludes,
  StringPrototypeIndexOf,
  StringPrototypePadEnd,
  StringPrototypePadStart,
  StringPrototypeRepeat,
  StringPrototypeReplace,
  StringPrototypeSlice,
  StringPrototypeSplit,
  StringPrototypeStartsWith,
  StringPrototypeToUpperCase,
  StringPrototypeTrimEnd,
  StringPrototypeValueOf,
  SymbolFor,
  SymbolPrototypeToString,
  SymbolPrototypeValueOf,
  SymbolToStringTag,
  TypedArrayPrototypeGetLength,
  TypedArrayPrototypeGetSymbolToStringTag,
  Uint8Array,
} = primordials;

const customInspect = SymbolFor("nodejs.util.inspect.custom");

const DEFAULTS = {
  depth: 2,
  maxArrayLength: 100,
  maxStringLength: 10000,
  breakLength: 80,
  compact: 3,
};

// --- inspect --------------------------------------------------------------------

function inspect(value, options = undefined) {
  const depth = options?.depth === null ? Infinity : options?.depth ?? DEFAULTS.depth;
  const ctx = {
    depth,
    maxArrayLength: options?.maxArrayLength ?? DEFAULTS.maxArrayLength,
    maxStringLength: options?.maxStringLength ?? DEFAULTS.maxStringLength,
    breakLength: options?.breakLength ?? DEFAULTS.breakLength,
    compact: DEFAULTS.compact,
    customInspect: options?.customInspect ?? true,
    seen: [],
    circular: undefined,
    indentationLvl: 0,
    currentDepth: 0,
  };
  return formatValue(ctx, value, 0);
}

// Control characters, quote, backslash and lone surrogates get escaped.
const STR_ESCAPE = new SafeRegExp(
  "[\\x00-\\x1f\\x27\\x5c\\x7f-\\x9f]|[\\ud800-\\udbff](?![\\udc00-\\udfff])|(?<![\\ud800-\\udbff])[\\udc00-\\udfff]",
  "g",
);
const IDENTIFIER = new SafeRegExp("^[a-zA-Z_][a-zA-Z_0-9]*$");
const ESCAPES = [];
for (let i = 0; i < 0xa0; i++) {
  ESCAPES[i] = `\\x${StringPrototypePadStart(hex(i), 2, "0")}`;
}
ESCAPES[8] = "\\b";
ESCAPES[9] = "\\t";
ESCAPES[10] = "\\n";
ESCAPES[12] = "\\f";
ESCAPES[13] = "\\r";
ESCAPES[0x5c] = "\\\\";

function hex(n) {
  return StringPrototypeToUpperCase(NumberPrototypeToString(n, 16));
}

function quote(str) {
  let q = "'";
  if (StringPrototypeIncludes(str, "'")) {
    if (!StringPrototypeIncludes(str, '"')) q = '"';
    else if (!StringPrototypeIncludes(str, "`") && !StringPrototypeIncludes(str, "${")) q = "`";
  }
  const escaped = StringPrototypeReplace(str, STR_ESCAPE, (c) => {
    const code = StringPrototypeCharCodeAt(c, 0);
    if (code === 0x27) return q === "'" ? "\\'" : "'";
    return code < 0xa0 ? ESCAPES[code] : `\\u${NumberPrototypeToString(code, 16)}`;
  });
  return `${q}${escaped}${q}`;
}

function formatNumber(n) {
  return n === 0 && 1 / n < 0 ? "-0" : `${n}`;
}

function formatPrimitive(ctx, value) {
  switch (typeof value) {
    case "string": {
      let trailer = "";
      if (value.length > ctx.maxStringLength) {
        const remaining = value.length - ctx.maxStringLength;
        value = StringPrototypeSlice(value, 0, ctx.maxStringLength);
        trailer = `... ${remaining} more character${remaining > 1 ? "s" : ""}`;
      }
      // Long strings are split after each newline, as Node does.
      if (value.length > 16 && value.length > ctx.breakLength - ctx.indentationLvl - 4) {
        const lines = StringPrototypeSplit(value, "\n");
        for (let i = 0; i < lines.length - 1; i++) lines[i] += "\n";
        if (lines[lines.length - 1] === "") ArrayPrototypePop(lines);
        const indent = StringPrototypeRepeat(" ", ctx.indentationLvl + 2);
        return ArrayPrototypeJoin(ArrayPrototypeMap(lines, quote), ` +\n${indent}`) + trailer;
      }
      return quote(value) + trailer;
    }
    case "number":
      return formatNumber(value);
    case "bigint":
      return `${value}n`;
    case "boolean":
      return `${value}`;
    case "undefined":
      return "undefined";
    case "symbol":
      return SymbolPrototypeToString(value);
  }
  return String(value);
}

function formatValue(ctx, value, recurseTimes) {
  if (typeof value !== "object" && typeof value !== "function") {
    return formatPrimitive(ctx, value);
  }
  if (value === null) return "null";
  if (ctx.customInspect) {
    const custom = value[customInspect];
    if (typeof custom === "function" && custom !== inspect) {
      const depth = ctx.depth - recurseTimes;
      const options = {
        depth,
        breakLength: ctx.breakLength,
        maxArrayLength: ctx.maxArrayLength,
        stylize: (text) => text,
      };
      const result = ReflectApply(custom, value, [depth, options, inspect]);
      if (result !== value) {
        if (typeof result !== "string") return formatValue(ctx, result, recurseTimes);
        const indent = `\n${StringPrototypeRepeat(" ", ctx.indentationLvl)}`;
        return StringPrototypeReplace(result, new SafeRegExp("\n", "g"), indent);
      }
    }
  }
  if (ArrayPrototypeIncludes(ctx.seen, value)) {
    ctx.circular ??= new SafeMap();
    let index = MapPrototypeGet(ctx.circular, value);
    if (index === undefined) {
      index = ctx.circular.size + 1;
      MapPrototypeSet(ctx.circular, value, index);
    }
    return `[Circular *${index}]`;
  }
  return formatRaw(ctx, value, recurseTimes);
}

function getConstructorName(obj) {
  let proto = obj;
  while (proto !== null) {
    const desc = ObjectGetOwnPropertyDescriptor(proto, "constructor");
    if (desc !== undefined && typeof desc.value === "function" && desc.value.name !== "" &&
      isInstance(obj, desc.value)) {
      return desc.value.name;
    }
    proto = ObjectGetPrototypeOf(proto);
  }
  return null;
}

function isInstance(obj, constructor) {
  const prototype = constructor.prototype;
  return (typeof prototype === "object" || typeof prototype === "function") &&
    prototype !== null && ObjectPrototypeIsPrototypeOf(prototype, obj);
}

function getPrefix(constructor, tag, fallback, size = "") {
  if (constructor === null) {
    if (tag !== "" && fallback !== tag) return `[${fallback}${size}: null prototype] [${tag}] `;
    return `[${fallback}${size}: null prototype] `;
  }
  if (tag !== "" && constructor !== tag) return `${constructor}${size} [${tag}] `;
  return `${constructor}${size} `;
}

/** Own enumerable keys, without array indices for array-likes. */
function getKeys(value, skipIndices) {
  let keys = ObjectKeys(value);
  if (skipIndices) {
    const named = [];
    for (let i = 0; i < keys.length; i++) {
      if (RegExpPrototypeExec(INDEX_KEY, keys[i]) === null) ArrayPrototypePush(named, keys[i]);
    }
    keys = named;
  }
  const symbols = ObjectGetOwnPropertySymbols(value);
  for (let i = 0; i < symbols.length; i++) {
    if (ObjectPrototypePropertyIsEnumerable(value, symbols[i])) ArrayPrototypePush(keys, symbols[i]);
  }
  return keys;
}
const INDEX_KEY = new SafeRegExp("^(0|[1-9][0-9]*)$");

/** Which built-in a value is, by its tag and confirmed with a brand check. */
function builtinKind(value) {
  const tag = ObjectPrototypeToString(value);
  try {
    switch (tag) {
      case "[object Map]": MapPrototypeGetSize(value); return "Map";
      case "[object Set]": SetPrototypeGetSize(value); return "Set";
      case "[object Date]": DatePrototypeGetTime(value); return "Date";
      case "[object RegExp]": RegExpPrototypeToString(value); return "RegExp";
      case "[object ArrayBuffer]": ArrayBufferPrototypeGetByteLength(value); return "ArrayBuffer";
      case "[object Number]": NumberPrototypeValueOf(value); return "Number";
      case "[object String]": StringPrototypeValueOf(value); return "String";
      case "[object Boolean]": BooleanPrototypeValueOf(value); return "Boolean";
      case "[object Symbol]": SymbolPrototypeValueOf(value); return "Symbol";
      case "[object BigInt]": BigIntPrototypeValueOf(value); return "BigInt";
      case "[object Promise]": return "Promise";
      case "[object WeakMap]": return "WeakMap";
      case "[object WeakSet]": return "WeakSet";
      case "[object Arguments]": return "Arguments";
    }
  } catch {
    return null;
  }
  if (tag === "[object Error]" || ObjectPrototypeIsPrototypeOf(ErrorPrototype, value)) return "Error";
  return null;
}

const BOXED_VALUE_OF = {
  __proto__: null,
  Number: NumberPrototypeValueOf,
  String: StringPrototypeValueOf,
  Boolean: BooleanPrototypeValueOf,
  Symbol: SymbolPrototypeValueOf,
  BigInt: BigIntPrototypeValueOf,
};

function formatRaw(ctx, value, recurseTimes) {
  const constructor = getConstructorName(value);
  let tag = value[SymbolToStringTag];
  if (typeof tag !== "string" || (tag !== "" && ObjectPrototypePropertyIsEnumerable(value, SymbolToStringTag))) {
    tag = "";
  }
  let base = "";
  let braces;
  let formatter = formatObjectEntries;
  let isArrayLike = false;
  let keys;
  const kind = typeof value === "function" ? "Function" : builtinKind(value);
  const typedArrayType = TypedArrayPrototypeGetSymbolToStringTag(value);

  if (ArrayIsArray(value)) {
    keys = getKeys(value, true);
    const prefix = constructor !== "Array" || tag !== ""
      ? getPrefix(constructor, tag, "Array", `(${value.length})`)
      : "";
    braces = [`${prefix}[`, "]"];
    if (value.length === 0 && keys.length === 0) return `${braces[0]}]`;
    isArrayLike = true;
    formatter = formatArray;
  } else if (typedArrayType !== undefined) {
    keys = getKeys(value, true);
    const length = TypedArrayPrototypeGetLength(value);
    braces = [`${getPrefix(constructor, tag, typedArrayType, `(${length})`)}[`, "]"];
    if (length === 0 && keys.length === 0) return `${braces[0]}]`;
    isArrayLike = true;
    formatter = formatArray;
  } else if (kind === "Set" || kind === "Map") {
    keys = getKeys(value, false);
    const size = kind === "Set" ? SetPrototypeGetSize(value) : MapPrototypeGetSize(value);
    const prefix = getPrefix(constructor, tag, kind, `(${size})`);
    formatter = kind === "Set" ? formatSet : formatMap;
    if (size === 0 && keys.length === 0) return `${prefix}{}`;
    braces = [`${prefix}{`, "}"];
  } else {
    keys = getKeys(value, kind === "Arguments");
    braces = ["{", "}"];
    switch (kind) {
      case "Arguments":
        braces = ["[Arguments] [", "]"];
        isArrayLike = true;
        formatter = formatArray;
        break;
      case "Function":
        base = functionBase(value, constructor, tag);
        if (keys.length === 0) return base;
        break;
      case "Error":
        base = formatError(ctx, value, keys);
        if (keys.length === 0) return base;
        break;
      case "RegExp":
        base = RegExpPrototypeToString(value);
        if (constructor !== "RegExp") base = `${getPrefix(constructor, tag, "RegExp")}${base}`;
        if (keys.length === 0) return base;
        break;
      case "Date": {
        const time = DatePrototypeGetTime(value);
        base = time !== time ? "Invalid Date" : DatePrototypeToISOString(value);
        if (keys.length === 0) return base;
        break;
      }
      case "Number": case "String": case "Boolean": case "Symbol": case "BigInt": {
        const inner = formatPrimitive(ctx, BOXED_VALUE_OF[kind](value));
        base = `[${kind}: ${inner}]`;
        if (kind === "String") keys = getKeys(value, true);
        if (keys.length === 0) return base;
        break;
      }
      case "WeakMap": case "WeakSet":
        return `${getPrefix(constructor, tag, kind)}{ <items unknown> }`;
      case "ArrayBuffer":
        braces[0] = `${getPrefix(constructor, tag, "ArrayBuffer")}{`;
        formatter = formatArrayBuffer;
        break;
      case "Promise":
        braces[0] = `${getPrefix(constructor, tag, "Promise")}{`;
        formatter = formatPromise;
        break;
      default:
        if (constructor === "Object" && tag === "") {
          if (keys.length === 0) return "{}";
        } else {
          braces[0] = `${getPrefix(constructor, tag, "Object")}{`;
          if (keys.length === 0) return `${braces[0]}}`;
        }
    }
  }

  if (recurseTimes > ctx.depth) {
    const name = StringPrototypeSlice(getPrefix(constructor, tag, "Object"), 0, -1);
    return constructor !== null ? `[${name}]` : name;
  }
  recurseTimes += 1;
  ArrayPrototypePush(ctx.seen, value);
  ctx.currentDepth = recurseTimes;
  const output = formatter(ctx, value, recurseTimes);
  for (let i = 0; i < keys.length; i++) {
    ArrayPrototypePush(output, formatProperty(ctx, value, recurseTimes, keys[i], isArrayLike));
  }
  ArrayPrototypePop(ctx.seen);

  if (ctx.circular !== undefined) {
    const index = MapPrototypeGet(ctx.circular, value);
    if (index !== undefined) {
      const reference = `<ref *${index}>`;
      base = base === "" ? reference : `${reference} ${base}`;
    }
  }
  return reduceToSingleString(ctx, output, base, braces, isArrayLike, recurseTimes, value);
}

const FUNCTION_TYPES = ["Function", "AsyncFunction", "GeneratorFunction", "AsyncGeneratorFunction"];

function functionBase(value, constructor, tag) {
  const source = FunctionPrototypeToString(value);
  if (StringPrototypeStartsWith(source, "class") && source[source.length - 1] === "}") {
    let base = `[class ${value.name || "(anonymous)"}`;
    const parent = ObjectGetPrototypeOf(value);
    if (parent !== null && parent.name) base += ` extends ${parent.name}`;
    return `${base}]`;
  }
  const type = ArrayPrototypeIncludes(FUNCTION_TYPES, constructor) ? constructor : "Function";
  let base = `[${type}`;
  if (constructor === null) base += " (null prototype)";
  base += value.name === "" ? " (anonymous)]" : `: ${value.name}]`;
  if (constructor !== type && constructor !== null) base += ` ${constructor}`;
  if (tag !== "" && constructor !== tag) base += ` [${tag}]`;
  return base;
}

function formatError(ctx, err, keys) {
  let stack = err.stack;
  if (typeof stack !== "string" || stack === "") {
    try {
      stack = ErrorPrototypeToString(err);
    } catch {
      stack = "Error";
    }
  }
  stack = StringPrototypeTrimEnd(stack); // QuickJS ends stacks with "\n"
  // Keys already visible in the stack are not repeated.
  const duplicates = ["name", "message", "stack"];
  for (let i = 0; i < duplicates.length; i++) {
    const name = duplicates[i];
    const index = ArrayPrototypeIndexOf(keys, name);
    if (index !== -1 && typeof err[name] === "string" && StringPrototypeIncludes(stack, err[name])) {
      ArrayPrototypeSplice(keys, index, 1);
    }
  }
  if ("cause" in err && !ArrayPrototypeIncludes(keys, "cause")) ArrayPrototypePush(keys, "cause");
  if (ArrayIsArray(err.errors) && !ArrayPrototypeIncludes(keys, "errors")) {
    ArrayPrototypePush(keys, "errors");
  }
  if (StringPrototypeIndexOf(stack, "\n    at") === -1) stack = `[${stack}]`;
  if (ctx.indentationLvl !== 0) {
    const indent = StringPrototypeRepeat(" ", ctx.indentationLvl);
    stack = StringPrototypeReplace(stack, new SafeRegExp("\n", "g"), `\n${indent}`);
  }
  return stack;
}

function formatProperty(ctx, value, recurseTimes, key, isArrayLike) {
  // Not own only for an inherited `cause` of an error.
  const desc = ObjectGetOwnPropertyDescriptor(value, key) ?? { value: value[key], enumerable: false };
  let str;
  if (desc.value !== undefined || desc.get === undefined && desc.set === undefined) {
    ctx.indentationLvl += 2;
    str = formatValue(ctx, desc.value, recurseTimes);
    ctx.indentationLvl -= 2;
  } else if (desc.get !== undefined) {
    str = desc.set !== undefined ? "[Getter/Setter]" : "[Getter]";
  } else {
    str = "[Setter]";
  }
  let name;
  if (typeof key === "symbol") {
    name = `[${SymbolPrototypeToString(key)}]`;
  } else if (!desc.enumerable) {
    name = `[${key}]`; // `cause` and `errors` of errors
  } else if (RegExpPrototypeExec(IDENTIFIER, key) !== null) {
    name = key;
  } else {
    name = quote(key);
  }
  return `${name}: ${str}`;
}

function formatObjectEntries() {
  return [];
}

function formatArray(ctx, value, recurseTimes) {
  const output = [];
  const length = value.length;
  const shown = MathMin(length, ctx.maxArrayLength);
  let i = 0;
  while (i < shown) {
    if (!ObjectPrototypeHasOwnProperty(value, i)) {
      let holes = 0;
      while (i < length && !ObjectPrototypeHasOwnProperty(value, i)) {
        holes++;
        i++;
      }
      ArrayPrototypePush(output, `<${holes} empty item${holes > 1 ? "s" : ""}>`);
      continue;
    }
    ctx.indentationLvl += 2;
    ArrayPrototypePush(output, formatValue(ctx, value[i], recurseTimes));
    ctx.indentationLvl -= 2;
    i++;
  }
  if (i < length) {
    const remaining = length - i;
    ArrayPrototypePush(output, `... ${remaining} more item${remaining > 1 ? "s" : ""}`);
  }
  return output;
}

function formatSet(ctx, value, recurseTimes) {
  const output = [];
  ctx.indentationLvl += 2;
  for (const item of new SafeSetIterator(value)) {
    ArrayPrototypePush(output, formatValue(ctx, item, recurseTimes));
  }
  ctx.indentationLvl -= 2;
  return output;
}

function formatMap(ctx, value, recurseTimes) {
  const output = [];
  ctx.indentationLvl += 2;
  for (const { 0: k, 1: v } of new SafeMapIterator(value)) {
    ArrayPrototypePush(output, `${formatValue(ctx, k, recurseTimes)} => ${formatValue(ctx, v, recurseTimes)}`);
  }
  ctx.indentationLvl -= 2;
  return output;
}

function formatArrayBuffer(ctx, value) {
  const bytes = new Uint8Array(value);
  let hex = "";
  const shown = MathMin(bytes.length, 50);
  for (let i = 0; i < shown; i++) {
    hex += `${i === 0 ? "" : " "}${StringPrototypePadStart(NumberPrototypeToString(bytes[i], 16), 2, "0")}`;
  }
  if (bytes.length > 50) hex += ` ... ${bytes.length - 50} more byte${bytes.length - 50 > 1 ? "s" : ""}`;
  return [`[Uint8Contents]: <${hex}>`, `byteLength: ${bytes.length}`];
}

function formatPromise(ctx, value, recurseTimes) {
  const details = promiseDetails(value);
  if (details === null) return ["<unknown>"];
  if (details[0] === 0) return ["<pending>"];
  ctx.indentationLvl += 2;
  const str = formatValue(ctx, details[1], recurseTimes);
  ctx.indentationLvl -= 2;
  return [details[0] === 2 ? `<rejected> ${str}` : str];
}

/** The engine's view of a promise: [0 pending | 1 fulfilled | 2 rejected, value]. */
function promiseDetails(promise) {
  try {
    return core.getPromiseDetails?.(promise) ?? null;
  } catch {
    return null;
  }
}

function groupArrayElements(ctx, output, value) {
  let totalLength = 0;
  let maxLength = 0;
  let outputLength = output.length;
  if (ctx.maxArrayLength < output.length) outputLength--; // the "... more items" entry
  const separatorSpace = 2;
  const dataLen = [];
  for (let i = 0; i < outputLength; i++) {
    const len = output[i].length;
    dataLen[i] = len;
    totalLength += len + separatorSpace;
    if (maxLength < len) maxLength = len;
  }
  const actualMax = maxLength + separatorSpace;
  if (actualMax * 3 + ctx.indentationLvl < ctx.breakLength &&
    (totalLength / actualMax > 5 || maxLength <= 6)) {
    const averageBias = MathSqrt(actualMax - totalLength / output.length);
    const biasedMax = MathMax(actualMax - 3 - averageBias, 1);
    const columns = MathMin(
      MathRound(MathSqrt(2.5 * biasedMax * outputLength) / biasedMax),
      MathFloor((ctx.breakLength - ctx.indentationLvl) / actualMax),
      ctx.compact * 4,
      15,
    );
    if (columns <= 1) return output;
    const maxLineLength = [];
    for (let i = 0; i < columns; i++) {
      let lineLength = 0;
      for (let j = i; j < output.length; j += columns) {
        if (dataLen[j] > lineLength) lineLength = dataLen[j];
      }
      ArrayPrototypePush(maxLineLength, lineLength + separatorSpace);
    }
    let padNumbers = value !== undefined;
    for (let i = 0; padNumbers && i < output.length; i++) {
      if (typeof value[i] !== "number" && typeof value[i] !== "bigint") padNumbers = false;
    }
    const order = padNumbers ? StringPrototypePadStart : StringPrototypePadEnd;
    const grouped = [];
    for (let i = 0; i < outputLength; i += columns) {
      const max = MathMin(i + columns, outputLength);
      let line = "";
      let j = i;
      for (; j < max - 1; j++) line += order(`${output[j]}, `, maxLineLength[j - i], " ");
      line += padNumbers
        ? StringPrototypePadStart(output[j], maxLineLength[j - i] - separatorSpace, " ")
        : output[j];
      ArrayPrototypePush(grouped, line);
    }
    if (ctx.maxArrayLength < output.length) ArrayPrototypePush(grouped, output[outputLength]);
    return grouped;
  }
  return output;
}

function isBelowBreakLength(ctx, output, start, base) {
  let totalLength = output.length + start;
  if (totalLength + output.length > ctx.breakLength) return false;
  for (let i = 0; i < output.length; i++) {
    totalLength += output[i].length;
    if (totalLength > ctx.breakLength) return false;
  }
  return base === "" || !StringPrototypeIncludes(base, "\n");
}

function reduceToSingleString(ctx, output, base, braces, isArrayLike, recurseTimes, value) {
  const entries = output.length;
  if (isArrayLike && entries > 6) output = groupArrayElements(ctx, output, value);
  if (ctx.currentDepth - recurseTimes < ctx.compact && entries === output.length) {
    const start = output.length + ctx.indentationLvl + braces[0].length + base.length + 10;
    if (isBelowBreakLength(ctx, output, start, base)) {
      const joined = ArrayPrototypeJoin(output, ", ");
      if (!StringPrototypeIncludes(joined, "\n")) {
        return `${base ? `${base} ` : ""}${braces[0]} ${joined} ${braces[1]}`;
      }
    }
  }
  const indentation = `\n${StringPrototypeRepeat(" ", ctx.indentationLvl)}`;
  return `${base ? `${base} ` : ""}${braces[0]}${indentation}  ${
    ArrayPrototypeJoin(output, `,${indentation}  `)
  }${indentation}${braces[1]}`;
}

export { builtinKind, formatNumber, inspect };

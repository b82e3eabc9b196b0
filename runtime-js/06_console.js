// atoll runtime: `console`. Values are formatted like Node's `util.inspect`
// without colours (06_inspect.js); each console call hands one message to the
// host (`op_atoll_log`), which records it as a run `log` event.
//
// Layout: the printf-style formatter, the table renderer, then the console
// object.

import { primordials } from "ext:core/mod.js";
import { op_atoll_log } from "ext:core/ops";
import { builtinKind, formatNumber, inspect } from "ext:atoll/06_inspect.js";

const {
  ArrayIsArray,
  ArrayPrototypeIncludes,
  ArrayPrototypeJoin,
  ArrayPrototypeMap,
  ArrayPrototypePush,
  ArrayPrototypeSlice,
  DateNow,
  ErrorCaptureStackTrace,
  FunctionPrototypeBind,
  JSONStringify,
  MapPrototypeDelete,
  MapPrototypeGet,
  MapPrototypeSet,
  MathMax,
  NumberParseFloat,
  NumberParseInt,
  NumberPrototypeToFixed,
  ObjectGetOwnPropertyDescriptor,
  ObjectGetPrototypeOf,
  ObjectKeys,
  ObjectPrototypeHasOwnProperty,
  SafeMap,
  SafeMapIterator,
  SafeRegExp,
  SafeSet,
  SafeSetIterator,
  SetPrototypeHas,
  String,
  StringPrototypeCharCodeAt,
  StringPrototypeIncludes,
  StringPrototypeRepeat,
  StringPrototypeReplace,
  StringPrototypeSlice,
  StringPrototypeSplit,
  StringPrototypeStartsWith,
  StringPrototypeTrimEnd,
  globalThis: realGlobalThis,
} = primordials;

const now = typeof realGlobalThis.performance?.now === "function"
  ? FunctionPrototypeBind(realGlobalThis.performance.now, realGlobalThis.performance)
  : DateNow;

// --- printf-style formatting ------------------------------------------------------

const BUILTIN_CONSTRUCTORS = new SafeSet([
  "Object", "Error", "TypeError", "RangeError", "SyntaxError", "ReferenceError",
  "EvalError", "URIError", "AggregateError", "Array", "Date", "RegExp", "Map",
  "Set", "WeakMap", "WeakSet", "Promise", "Function", "Number", "String",
  "Boolean", "Symbol", "BigInt", "ArrayBuffer", "DataView",
]);

/** Whether `%s` should inspect an object rather than call its toString. */
function hasBuiltInToString(value) {
  if (typeof value.toString !== "function") return true;
  if (ObjectPrototypeHasOwnProperty(value, "toString")) return false;
  let pointer = value;
  do {
    pointer = ObjectGetPrototypeOf(pointer);
  } while (pointer !== null && !ObjectPrototypeHasOwnProperty(pointer, "toString"));
  if (pointer === null) return true;
  const desc = ObjectGetOwnPropertyDescriptor(pointer, "constructor");
  return desc !== undefined && typeof desc.value === "function" &&
    SetPrototypeHas(BUILTIN_CONSTRUCTORS, desc.value.name);
}

function tryStringify(value) {
  try {
    return JSONStringify(value);
  } catch (error) {
    if (StringPrototypeIncludes(String(error?.message), "ircular")) return "[Circular]";
    throw error;
  }
}

/** Node's util.format: `%s %d %i %f %j %o %O %c %%`, then the rest joined by spaces. */
function format(args) {
  const first = args[0];
  let a = 0;
  let str = "";
  let join = "";
  if (typeof first === "string") {
    if (args.length === 1) return first;
    let lastPos = 0;
    for (let i = 0; i < first.length - 1; i++) {
      if (StringPrototypeCharCodeAt(first, i) !== 37) continue; // '%'
      const next = StringPrototypeCharCodeAt(first, ++i);
      if (a + 1 !== args.length) {
        let tempStr;
        switch (next) {
          case 115: { // s
            const arg = args[++a];
            if (typeof arg === "number") tempStr = formatNumber(arg);
            else if (typeof arg === "bigint") tempStr = `${arg}n`;
            else if (typeof arg !== "object" || arg === null || !hasBuiltInToString(arg)) tempStr = String(arg);
            else tempStr = inspect(arg, { depth: 0 });
            break;
          }
          case 106: // j
            tempStr = tryStringify(args[++a]);
            break;
          case 100: { // d
            const arg = args[++a];
            if (typeof arg === "bigint") tempStr = `${arg}n`;
            else if (typeof arg === "symbol" || (typeof arg === "object" && arg !== null)) tempStr = "NaN";
            else tempStr = formatNumber(+arg);
            break;
          }
          case 79: // O
            tempStr = inspect(args[++a]);
            break;
          case 111: // o
            tempStr = inspect(args[++a], { depth: 4 });
            break;
          case 105: { // i
            const arg = args[++a];
            if (typeof arg === "bigint") tempStr = `${arg}n`;
            else if (typeof arg === "symbol") tempStr = "NaN";
            else tempStr = formatNumber(NumberParseInt(arg));
            break;
          }
          case 102: { // f
            const arg = args[++a];
            tempStr = typeof arg === "symbol" ? "NaN" : formatNumber(NumberParseFloat(arg));
            break;
          }
          case 99: // c: CSS, ignored
            a += 1;
            tempStr = "";
            break;
          case 37: // %%
            str += StringPrototypeSlice(first, lastPos, i);
            lastPos = i + 1;
            continue;
          default:
            continue;
        }
        if (lastPos !== i - 1) str += StringPrototypeSlice(first, lastPos, i - 1);
        str += tempStr;
        lastPos = i + 1;
      } else if (next === 37) {
        str += StringPrototypeSlice(first, lastPos, i);
        lastPos = i + 1;
      }
    }
    if (lastPos !== 0) {
      a++;
      join = " ";
      if (lastPos < first.length) str += StringPrototypeSlice(first, lastPos);
    }
  }
  while (a < args.length) {
    const value = args[a];
    str += join;
    str += typeof value === "string" ? value : inspect(value);
    join = " ";
    a++;
  }
  return str;
}

// --- console.table ------------------------------------------------------------------

function renderRow(row, widths) {
  let out = "\u2502 ";
  for (let i = 0; i < row.length; i++) {
    out += row[i] + StringPrototypeRepeat(" ", widths[i] - row[i].length);
    if (i !== row.length - 1) out += " \u2502 ";
  }
  return `${out} \u2502`;
}

function renderTable(head, columns) {
  const widths = ArrayPrototypeMap(head, (h) => h.length);
  let rowCount = 0;
  for (let i = 0; i < columns.length; i++) rowCount = MathMax(rowCount, columns[i].length);
  const rows = [];
  for (let j = 0; j < rowCount; j++) {
    const row = [];
    for (let i = 0; i < head.length; i++) {
      row[i] = columns[i][j] ?? "";
      widths[i] = MathMax(widths[i], row[i].length);
    }
    ArrayPrototypePush(rows, row);
  }
  const divider = ArrayPrototypeMap(widths, (w) => StringPrototypeRepeat("\u2500", w + 2));
  let result = `\u250c${ArrayPrototypeJoin(divider, "\u252c")}\u2510\n${renderRow(head, widths)}\n`;
  result += `\u251c${ArrayPrototypeJoin(divider, "\u253c")}\u2524\n`;
  for (let j = 0; j < rows.length; j++) result += `${renderRow(rows[j], widths)}\n`;
  return `${result}\u2514${ArrayPrototypeJoin(divider, "\u2534")}\u2518`;
}

function formatTable(data, properties) {
  const cell = (v) => {
    const small = v !== null && typeof v === "object" && !ArrayIsArray(v) && ObjectKeys(v).length > 2;
    return inspect(v, { depth: small ? -1 : 0, maxArrayLength: 3, breakLength: Infinity });
  };
  const kind = builtinKind(data);
  if (kind === "Map" || kind === "Set") {
    const head = kind === "Map" ? ["(iteration index)", "Key", "Values"] : ["(iteration index)", "Values"];
    const columns = ArrayPrototypeMap(head, () => []);
    let i = 0;
    const iterator = kind === "Map" ? new SafeMapIterator(data) : new SafeSetIterator(data);
    for (const item of iterator) {
      ArrayPrototypePush(columns[0], `${i++}`);
      if (kind === "Map") {
        ArrayPrototypePush(columns[1], cell(item[0]));
        ArrayPrototypePush(columns[2], cell(item[1]));
      } else {
        ArrayPrototypePush(columns[1], cell(item));
      }
    }
    return renderTable(head, columns);
  }
  const entries = ArrayPrototypeMap(ObjectKeys(data), (k) => [k, data[k]]);
  const columnKeys = [];
  const columnCells = new SafeMap();
  const indexCells = [];
  const valueCells = [];
  let hasValues = false;
  for (let row = 0; row < entries.length; row++) {
    const { 0: key, 1: item } = entries[row];
    ArrayPrototypePush(indexCells, key);
    if (item !== null && (typeof item === "object" || typeof item === "function")) {
      const keys = properties ?? ObjectKeys(item);
      for (let k = 0; k < keys.length; k++) {
        const name = keys[k];
        if (!ArrayPrototypeIncludes(columnKeys, name)) {
          ArrayPrototypePush(columnKeys, name);
          MapPrototypeSet(columnCells, name, []);
        }
        if (ObjectPrototypeHasOwnProperty(item, name)) MapPrototypeGet(columnCells, name)[row] = cell(item[name]);
      }
    } else {
      valueCells[row] = cell(item);
      hasValues = true;
    }
  }
  const head = ["(index)", ...columnKeys];
  const columns = [indexCells, ...ArrayPrototypeMap(columnKeys, (k) => MapPrototypeGet(columnCells, k))];
  if (hasValues) {
    ArrayPrototypePush(head, "Values");
    ArrayPrototypePush(columns, valueCells);
  }
  return renderTable(head, columns);
}

// --- the console object -----------------------------------------------------------

let groupIndent = "";
const counts = new SafeMap();
const timers = new SafeMap();

function emit(level, message) {
  if (groupIndent !== "") {
    message = groupIndent + StringPrototypeReplace(message, new SafeRegExp("\n", "g"), `\n${groupIndent}`);
  }
  op_atoll_log(level, message);
}

function formatDuration(ms) {
  return `${NumberPrototypeToFixed(ms, 3)}ms`;
}

function trace(...data) {
  const holder = {};
  ErrorCaptureStackTrace(holder, trace);
  const message = format(data);
  const stack = typeof holder.stack === "string" ? StringPrototypeTrimEnd(holder.stack) : "";
  const lines = StringPrototypeSplit(stack, "\n");
  const frames = ArrayPrototypeSlice(lines, StringPrototypeStartsWith(lines[0] ?? "", "    at") ? 0 : 1);
  const header = message === "" ? "Trace" : `Trace: ${message}`;
  emit("debug", ArrayPrototypeJoin([header, ...frames], "\n"));
}

const console = {
  log: (...data) => emit("log", format(data)),
  info: (...data) => emit("info", format(data)),
  debug: (...data) => emit("debug", format(data)),
  warn: (...data) => emit("warn", format(data)),
  error: (...data) => emit("error", format(data)),
  trace,
  dir: (item = undefined, options = undefined) => emit("log", inspect(item, options)),
  dirxml: (...data) => emit("log", format(data)),
  table(data = undefined, properties = undefined) {
    if (data === null || typeof data !== "object") return emit("log", format([data]));
    emit("log", formatTable(data, ArrayIsArray(properties) ? properties : undefined));
  },
  assert(condition = false, ...data) {
    if (condition) return;
    if (typeof data[0] === "string") data[0] = `Assertion failed: ${data[0]}`;
    else data = ["Assertion failed", ...data];
    emit("error", format(data));
  },
  count(label = "default") {
    label = `${label}`;
    const count = (MapPrototypeGet(counts, label) ?? 0) + 1;
    MapPrototypeSet(counts, label, count);
    emit("info", `${label}: ${count}`);
  },
  countReset(label = "default") {
    label = `${label}`;
    if (!MapPrototypeDelete(counts, label)) emit("warn", `Count for '${label}' does not exist`);
  },
  time(label = "default") {
    label = `${label}`;
    if (MapPrototypeGet(timers, label) !== undefined) {
      return emit("warn", `Warning: Label '${label}' already exists for console.time()`);
    }
    MapPrototypeSet(timers, label, now());
  },
  timeLog(label = "default", ...data) {
    label = `${label}`;
    const start = MapPrototypeGet(timers, label);
    if (start === undefined) return emit("warn", `Warning: No such label '${label}' for console.timeLog()`);
    const extra = data.length > 0 ? ` ${format(data)}` : "";
    emit("info", `${label}: ${formatDuration(now() - start)}${extra}`);
  },
  timeEnd(label = "default") {
    label = `${label}`;
    const start = MapPrototypeGet(timers, label);
    if (start === undefined) return emit("warn", `Warning: No such label '${label}' for console.timeEnd()`);
    MapPrototypeDelete(timers, label);
    emit("info", `${label}: ${formatDuration(now() - start)}`);
  },
  group(...label) {
    if (label.length > 0) emit("log", format(label));
    groupIndent += "  ";
  },
  groupCollapsed(...label) {
    if (label.length > 0) emit("log", format(label));
    groupIndent += "  ";
  },
  groupEnd() {
    groupIndent = StringPrototypeSlice(groupIndent, 0, -2);
  },
  clear() {},
};

export { console, format, inspect };

// @hostile/hostile-intrinsics — the bootstrap deletes `SharedArrayBuffer`, `WebAssembly` and
// `Atomics.wait` from the global object, but the engine keeps its own references to every
// intrinsic: the quickjs engine leaves `__v8x_snapshot_intrinsics` (an array of ~680
// built-ins, for its startup snapshot) and other `__v8x*` helpers on the global object.
// This agent walks every own property of the global object and of every object one level
// below it, looking for functions by name.
//
// Input:  { "try": "shared" | "wasm" | "spin" } picks the one attempt to make (each in its
//   own run); {} only looks. Limits: memory_mb 16, cpu_ms 500.
// Expected: nothing is found, and the output is
//   { "shared": "absent", "wasm_memory": "absent", "wasm_spin": "absent", "internals": [] }.
// If the constructors were reachable: 256 MiB of SharedArrayBuffer, a WebAssembly memory
// grown to 256 MiB (both outside the heap limit), and a WebAssembly `loop br 0` that
// `terminate_execution` cannot interrupt — the worker thread spins forever, the watchdog
// gives it up, and a core stays busy for the life of the process.

const MIB = 1024 * 1024;

function find(name) {
  // Every own property of the global object, and every element or property one level
  // below it (the engine's intrinsics array among them).
  for (const key of Reflect.ownKeys(globalThis)) {
    let holder;
    try {
      holder = globalThis[key];
    } catch {
      continue;
    }
    if (typeof holder === "function" && holder.name === name) return holder;
    if (holder === null || (typeof holder !== "object" && typeof holder !== "function")) continue;
    let keys;
    try {
      keys = Reflect.ownKeys(holder);
    } catch {
      continue;
    }
    for (const inner of keys) {
      try {
        const value = holder[inner];
        if (typeof value === "function" && value.name === name && /native code/.test(String(value))) {
          return value;
        }
      } catch {
        // a getter that throws: not it
      }
    }
  }
  return undefined;
}

export default async (input) => {
  const out = {};
  out.internals = Object.getOwnPropertyNames(globalThis).filter((n) => n.startsWith("__v8x"));

  const SharedArrayBuffer = find("SharedArrayBuffer");
  if (input.try !== "shared") {
    out.shared = SharedArrayBuffer ? "found" : "absent";
  } else if (!SharedArrayBuffer) {
    out.shared = "absent";
  } else {
    try {
      const kept = [];
      for (let i = 0; i < 16; i++) {
        const buffer = new SharedArrayBuffer(16 * MIB);
        new Uint8Array(buffer).fill(1);
        kept.push(buffer);
      }
      out.shared = `allocated ${kept.length * 16} MiB`;
    } catch (e) {
      out.shared = e.name;
    }
  }

  const Module = find("Module");
  const Instance = find("Instance");
  if (!Module || !Instance) {
    out.wasm_memory = "absent";
    out.wasm_spin = "absent";
    return out;
  }
  if (input.try !== "wasm" && input.try !== "spin") {
    out.wasm_memory = "found";
    out.wasm_spin = "found";
    return out;
  }
  // (module (memory (export "m") 1 16384)
  //   (func (export "g") (param i32) (result i32) local.get 0 memory.grow))
  const grow = new Uint8Array([
    0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 6, 1, 0x60, 1, 0x7f, 1, 0x7f, 3, 2, 1, 0, 5, 6, 1, 1, 1,
    0x80, 0x80, 1, 7, 9, 2, 1, 0x6d, 2, 0, 1, 0x67, 0, 0, 0x0a, 8, 1, 6, 0, 0x20, 0, 0x40, 0,
    0x0b,
  ]);
  // The engine's constructors look their siblings up on `globalThis.WebAssembly`: put
  // back what was found.
  globalThis.WebAssembly = { Module, Instance, Memory: find("Memory"), Table: find("Table") };
  if (input.try === "wasm") try {
    const instance = new Instance(new Module(grow), {});
    // memory.grow answers the old size in pages, or -1 when refused.
    const before = instance.exports.g(4095);
    out.wasm_memory = before === -1 ? "refused" : `grew from ${before} to 4096 pages (256 MiB)`;
  } catch (e) {
    out.wasm_memory = e.name;
  }
  if (input.try === "spin") {
    // (module (func (export "f") (loop (br 0))))
    const spin = new Uint8Array([
      0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 3, 2, 1, 0, 7, 5, 1, 1, 0x66, 0, 0,
      0x0a, 9, 1, 7, 0, 3, 0x40, 0x0c, 0, 0x0b, 0x0b,
    ]);
    new Instance(new Module(spin), {}).exports.f();
  }
  out.wasm_spin = "returned";
  return out;
};

// @hostile/hostile-shared-memory — allocates 1 GiB where the heap limit does not look:
// SharedArrayBuffers, then a WebAssembly memory grown page by page.
//
// Input:  {} (ignored). Limits: memory_mb 16.
// Expected: neither exists in the sandbox, so both attempts fail at once and the output is
//   { "shared": "ReferenceError", "wasm": "ReferenceError" }.
// If either allocation worked, the output would say how many MiB it got past the 16 MiB limit.

const MIB = 1024 * 1024;

export default async () => {
  const result = {};
  try {
    const kept = [];
    for (let i = 0; i < 64; i++) {
      const buffer = new SharedArrayBuffer(16 * MIB);
      new Uint8Array(buffer).fill(1);
      kept.push(buffer);
    }
    result.shared = `allocated ${kept.length * 16} MiB`;
  } catch (e) {
    result.shared = e.name;
  }
  try {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 16384 });
    memory.grow(16383);
    new Uint8Array(memory.buffer).fill(1);
    result.wasm = `grew to ${memory.buffer.byteLength / MIB} MiB`;
  } catch (e) {
    result.wasm = e.name;
  }
  return result;
};

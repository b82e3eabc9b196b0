// @hostile/hostile-atomics — tries to block its worker thread, where neither the CPU limit
// (a blocked thread uses no CPU) nor termination (it runs no JS) can reach it.
//
// Input:  {} (ignored). Limits: timeout_ms 1000.
// Expected: nothing blocks. `SharedArrayBuffer` and `Atomics.wait` do not exist, every way
//   this code tries to reach a waiting function finds none, and the output is
//   { "shared_array_buffer": "undefined", "atomics_wait": "undefined", "tries": ["absent", ...] }.
// If a wait were possible, this code would block its thread for 3 s, past its 1 s timeout.

const BLOCK_MS = 3000;

export default async () => {
  const tries = [];
  const candidates = [
    () => Atomics.wait,
    () => Reflect.get(Atomics, "wait"),
    () => Object.getOwnPropertyDescriptor(Atomics, "wait")?.value,
    () => Atomics.waitAsync,
    () => globalThis["Atom" + "ics"]["wa" + "it"],
  ];
  for (const candidate of candidates) {
    let wait;
    try {
      wait = candidate();
    } catch (e) {
      tries.push(e.name);
      continue;
    }
    if (typeof wait !== "function") {
      tries.push("absent");
      continue;
    }
    try {
      const memory = typeof SharedArrayBuffer === "function"
        ? new SharedArrayBuffer(8)
        : new ArrayBuffer(8);
      const result = wait.call(Atomics, new Int32Array(memory), 0, 0, BLOCK_MS);
      tries.push(`returned ${result}`);
    } catch (e) {
      tries.push(e.name);
    }
  }
  return {
    shared_array_buffer: typeof SharedArrayBuffer,
    atomics_wait: typeof Atomics.wait,
    tries,
  };
};

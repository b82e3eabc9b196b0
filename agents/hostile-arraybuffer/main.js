// @hostile/hostile-arraybuffer — allocates 16 MiB ArrayBuffers in a loop and keeps every one.
//
// Input:  {} (ignored). Limits: memory_mb 32.
// Expected: the run ends `failed` with error code `memory_limit` — also when the engine refuses
//   an allocation with a RangeError (this code does not catch it: the runtime must still report
//   `memory_limit`, not `agent_error`). ArrayBuffer backing stores count against the run's
//   memory limit (on V8 they live outside the JS heap). The process never aborts and keeps serving.

const CHUNK = 16 * 1024 * 1024;

export default async (_input, _ctx) => {
  const kept = [];
  for (let i = 0; ; i++) {
    const buf = new ArrayBuffer(CHUNK);
    // Touch every page so the memory is really committed, not lazily zero-mapped.
    new Uint8Array(buf).fill((i % 255) + 1);
    kept.push(buf);
  }
};

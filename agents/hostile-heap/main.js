// @hostile/hostile-heap — grows a reachable array of objects and strings forever.
//
// Input:  {} (ignored). Limits: memory_mb 32 (cpu_ms default 2000).
// Expected: the run ends `failed` with error code `memory_limit` (the CPU limit must not be what
//   stops it: it passes 32 MiB after a few thousand iterations, milliseconds of CPU); the atoll
//   process never aborts (no V8/QuickJS OOM crash) and keeps serving; the isolate is destroyed.
//   usage.heap_peak_bytes is reported and is around the limit.

export default async (_input, _ctx) => {
  const hoard = [];
  for (let i = 0; ; i++) {
    // Every entry is a fresh object holding a fresh, unique 4 KiB string: nothing can be shared
    // or collected, so the heap grows by about 4 KiB per iteration.
    hoard.push({ i, text: `${i}:`.padEnd(4096, "x"), pair: [i, { nested: i }] });
  }
};

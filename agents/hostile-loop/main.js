// @hostile/hostile-loop — an infinite loop inside the default export.
//
// Input:  {} (ignored). Limits: defaults (cpu_ms 2000).
// Expected: the run ends `failed` with error code `cpu_limit` after about the CPU budget (well
//   before the 60 s wall clock; not `timed_out`), its isolate is destroyed, and the atoll process
//   survives and keeps serving (a following run of @atoll/hello succeeds).

export default async (_input, _ctx) => {
  // eslint-disable-next-line no-constant-condition
  while (true) {}
};

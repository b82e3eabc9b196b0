// @hostile/hostile-loop-toplevel — an infinite loop at module top level, i.e. while the module
// is being evaluated, before the default export can be called.
//
// Input:  {} (ignored). Limits: defaults (cpu_ms 2000).
// Expected: the run ends `failed` with error code `cpu_limit` (not a hang, not `timed_out`);
//   the atoll process survives and keeps serving. Note: on the QuickJS engine a terminated
//   top-level evaluation leaves deno_core's `mod_evaluate` future pending forever, so the
//   runtime must not wait on it alone after terminating the isolate.
// The upload must succeed: this file parses, and its default export exists (it is never reached).

// eslint-disable-next-line no-constant-condition
while (true) {}

export default async (_input, _ctx) => ({ unreachable: true });

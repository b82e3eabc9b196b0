// @hostile/hostile-loop-async — an infinite loop that starts only after an `await` of a timer,
// i.e. from a macrotask inside the event loop, not from the initial call.
//
// Input:  {} (ignored). Limits: defaults (cpu_ms 2000).
// Expected: the run ends `failed` with error code `cpu_limit` (not `timed_out`, not a hang);
//   the atoll process survives. (When termination happens inside the event loop deno_core's
//   run_event_loop returns Ok — the runtime has to notice the termination itself.)

export default async (_input, _ctx) => {
  await new Promise((resolve) => setTimeout(resolve, 1));
  // eslint-disable-next-line no-constant-condition
  while (true) {}
};

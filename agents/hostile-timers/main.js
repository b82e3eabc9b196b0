// @hostile/hostile-timers — schedules 10,000 timers (delays 0–49 ms) and waits for all of them.
//
// Input:  {} (ignored). Limits: timeout_ms 5000.
// Expected: either success with output exactly { "scheduled": 10000, "fired": 10000 } (well within
//   the 5 s wall clock), or a run `failed` with a precise limit error code if the runtime caps
//   pending timers. Never a hang, never `timed_out` because of timer bookkeeping.

const COUNT = 10_000;

export default async (_input, _ctx) => {
  let fired = 0;
  await new Promise((resolve) => {
    for (let i = 0; i < COUNT; i++) {
      setTimeout(() => {
        fired += 1;
        if (fired === COUNT) resolve();
      }, i % 50);
    }
  });
  return { scheduled: COUNT, fired };
};

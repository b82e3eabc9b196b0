// @hostile/hostile-events — logs 50,000 lines of exactly 100 bytes (about 5 MB).
//
// Input:  {} (ignored).
// Expected: the run `succeeded` with output exactly { "lines": 50000 }; the log is truncated:
//   the stored/streamed log + event volume stays within 1 MiB (about 10,000 of these lines at
//   most), one `log_truncated` event marks the cut, later lines are dropped, and the events that
//   finish the run (`output`, `status`, `end`) are still delivered.
// Each line: "line 000000 " … padded with "." to 100 ASCII characters.

const LINES = 50_000;

export default async (_input, _ctx) => {
  for (let i = 0; i < LINES; i++) {
    console.log(`line ${String(i).padStart(6, "0")} `.padEnd(100, "."));
  }
  return { lines: LINES };
};

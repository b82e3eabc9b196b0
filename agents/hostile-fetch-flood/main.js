// @hostile/hostile-fetch-flood — makes the host buffer response bodies for it: `count`
// (default 40) fetches of a 9 MiB body in parallel, every body kept.
//
// Input:  { "url": "http://127.0.0.1:<port>/9mb", "count": 40 } (loopback allowed by the operator)
// Limits: memory_mb 16.
// Expected: bodies held by the host count against the run's 16 MiB like its heap does, so
//   the run ends `failed` with error code `memory_limit` — also though this code catches
//   every error — never `internal`, and the host never holds 360 MiB for it.
// If nothing stopped it, the output would be { "kept_mib": 360 }.

export default async (input) => {
  const count = input.count ?? 40;
  const settled = await Promise.allSettled(
    Array.from({ length: count }, () => fetch(input.url).then((r) => r.arrayBuffer())),
  );
  const kept = settled.filter((s) => s.status === "fulfilled").map((s) => s.value);
  const bytes = kept.reduce((n, b) => n + b.byteLength, 0);
  return { kept_mib: Math.round(bytes / (1024 * 1024)), failed: settled.length - kept.length };
};

// @hostile/hostile-fetch-many — 150 sequential fetches to one allowed loopback URL.
//
// Input:  { "url": "http://127.0.0.1:<port>/" }  (run with loopback allowed by the operator)
// Expected: fetches 1–100 succeed; the 101st is refused with code `fetch_limit`; this code emits
//   one event `fetch_refused` with data { "attempt": 101, "code": "fetch_limit", "message": ... }
//   and re-throws, so the run ends `failed` with error code `fetch_limit`. The test server sees
//   exactly 100 requests; usage.fetches is 100.
// If no limit stopped it, the output would be { "fetched": 150 } (a failure of the runtime).
// Permissions: fetch ["127.0.0.1", "localhost"].

const TOTAL = 150;

export default async (input, ctx) => {
  let fetched = 0;
  for (let attempt = 1; attempt <= TOTAL; attempt++) {
    try {
      const res = await fetch(input.url);
      await res.text();
      fetched += 1;
    } catch (err) {
      await ctx.emit("fetch_refused", {
        attempt,
        code: err?.code ?? null,
        message: String(err),
      });
      throw err;
    }
  }
  return { fetched };
};

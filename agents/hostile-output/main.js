// @hostile/hostile-output — returns a 5 MiB string as its output.
//
// Input:  {} (ignored). Output schema: a string (so the schema is not what fails).
// Expected: the run ends `failed` with error code `output_too_large` (limit: 1 MiB); no output is
//   stored or streamed; the process keeps serving.

export default async (_input, _ctx) => "x".repeat(5 * 1024 * 1024);

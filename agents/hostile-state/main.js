// @hostile/hostile-state — sets a 5 MiB state, then returns a tiny output.
//
// Input:  {} (ignored).
// Expected: the run ends `failed` with error code `output_too_large` (state limit: 1 MiB),
//   whether ctx.setState refuses at once (the error is not caught here) or the size is checked
//   when the run finishes; the previous state of this agent + end-user is left unchanged.

export default async (_input, ctx) => {
  await ctx.setState({ blob: "s".repeat(5 * 1024 * 1024) });
  return { ok: true };
};

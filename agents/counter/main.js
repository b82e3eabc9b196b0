// @atoll/counter — state and memory across runs.
//
// Input:  {} (anything; ignored). Run it with an end_user (end_user memory needs one).
// Output: { "count": n, "visits": v, "total": t } where
//   count  = previous state's count + 1   (ctx.state is null on the first run → 1);
//            state is per agent + end-user and only a *successful* run's state is kept;
//   visits = memory "visits" in scope end_user, + 1 (missing → 1);
//   total  = memory "total"  in scope app,      + 1 (missing → 1).
// Example, fresh app: end-user A runs twice, then end-user B runs once:
//   A#1 → {count:1, visits:1, total:1}
//   A#2 → {count:2, visits:2, total:2}
//   B#1 → {count:1, visits:1, total:3}
// Side effects: state { "count": count }; memory end_user "visits" = visits, app "total" = total.
// Permissions: memory ["end_user", "app"].

const asCount = (value) => (Number.isInteger(value) && value >= 0 ? value : 0);

export default async (_input, ctx) => {
  const count = asCount(ctx.state?.count) + 1;
  await ctx.setState({ count });

  const visits = asCount(await ctx.memory.get("visits", { scope: "end_user" })) + 1;
  await ctx.memory.set("visits", visits, { scope: "end_user" });

  const total = asCount(await ctx.memory.get("total", { scope: "app" })) + 1;
  await ctx.memory.set("total", total, { scope: "app" });

  return { count, visits, total };
};

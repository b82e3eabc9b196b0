// @atoll/hello — the smallest well-behaved agent.
//
// Input:  { "name": "Ada" }                       (name required; {} is refused with 422, no run)
// Output: { "greeting": "Hello, Ada!", "run_id": ctx.run.id }
// Events: exactly one `log` event with the line "greeting Ada", and exactly one `emit` event
//         of type "greeted" with data { "name": "Ada" }.
// Needs no permissions.
// Types (checked by sdk-ts's tests with `tsc --checkJs`; comments only, nothing is imported):

/** @type {import("@atoll/sdk/agent").Agent<{ name: string }, { greeting: string, run_id: string }>} */
export default async (input, ctx) => {
  const name = input.name;
  console.log(`greeting ${name}`);
  await ctx.emit("greeted", { name });
  return { greeting: `Hello, ${name}!`, run_id: ctx.run.id };
};

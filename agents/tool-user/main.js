// @atoll/tool-user — calls one registered app tool.
//
// Input:  { "customer_id": "c_42" }
// Output: { "customer": <whatever the app's `lookup_customer` tool returned for { "id": "c_42" }> }
//         e.g. a test tool answering { "id": "c_42", "name": "Ada" } gives
//         { "customer": { "id": "c_42", "name": "Ada" } }.
// Events: one `tool.call` and one `tool.result` event (emitted by the runtime, not by this code).
// Errors: none of its own; an error from the tool (or a missing tool) propagates and fails the run.
// Permissions: tools ["lookup_customer"].

export default async (input, ctx) => {
  const customer = await ctx.tools.call("lookup_customer", { id: input.customer_id });
  return { customer };
};

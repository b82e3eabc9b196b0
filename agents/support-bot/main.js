// @atoll/support-bot — the three brokered capabilities together.
//
// Input:  { ticket_url, customer_id, question, model? }   model defaults to "openai/gpt-4o-mini"
// 1. fetch(ticket_url, { connection: "helpdesk" }): the host adds the helpdesk credential;
//    this code never sees it (an upstream that echoes it back gets "[redacted]").
// 2. ctx.tools.call("lookup_customer", { id: customer_id }): an HTTP tool of the app.
// 3. ctx.llm.chat(...) with the ticket and customer, offering lookup_customer to the model,
//    until it answers without tool calls (at most 4 rounds).
// Output: { answer, ticket_status, rounds }
// Permissions: fetch (the helpdesk host; 127.0.0.1 for the tests), connection helpdesk,
// tool lookup_customer, llm openai/* anthropic/* test/*.
// Types (checked by sdk-ts's tests with `tsc --checkJs`; comments only, nothing is imported):
/**
 * @typedef {{ ticket_url: string, customer_id: string, question: string, model?: string }} Input
 * @typedef {{ answer: string | null, ticket_status: number, rounds: number }} Output
 * @typedef {import("@atoll/sdk/agent").ChatMessage} ChatMessage
 */

/**
 * @param {Input} input
 * @param {import("@atoll/sdk/agent").Ctx} ctx
 * @returns {Promise<Output>}
 */
export default async (input, ctx) => {
  const ticket = await fetch(input.ticket_url, { connection: "helpdesk" });
  const ticketText = await ticket.text();
  const customer = await ctx.tools.call("lookup_customer", { id: input.customer_id });
  /** @type {ChatMessage[]} */
  const messages = [
    { role: "system", content: "You answer support questions briefly." },
    {
      role: "user",
      content: `Ticket: ${ticketText.slice(0, 2000)}\nCustomer: ${JSON.stringify(customer)}\nQuestion: ${input.question}`,
    },
  ];
  let rounds = 0;
  let answer = null;
  while (rounds < 4) {
    rounds += 1;
    const res = await ctx.llm.chat({
      model: input.model ?? "openai/gpt-4o-mini",
      messages,
      tools: ["lookup_customer"],
    });
    answer = res.message?.content ?? null;
    if (!res.tool_calls?.length) break;
    messages.push({ role: "assistant", content: res.message?.content ?? null, tool_calls: res.tool_calls });
    for (const call of res.tool_calls) {
      const result = await ctx.tools.call(call.name, call.arguments);
      messages.push({ role: "tool", tool_call_id: call.id, content: JSON.stringify(result) });
    }
  }
  ctx.emit("answered", { rounds });
  return { answer, ticket_status: ticket.status, rounds };
};

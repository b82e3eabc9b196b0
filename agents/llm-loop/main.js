// @atoll/llm-loop — the classic agent loop over ctx.llm.chat and ctx.tools.call.
//
// Input:  { "question": "Who is customer c_42?" }
// Loop (at most MAX_ROUNDS = 8 chat calls):
//   res = await ctx.llm.chat({ model: "test/echo", messages, tools: ["lookup_customer"] })
//     where res = { message: { role, content }, tool_calls: [{ id, name, arguments }], usage }
//   no tool_calls (missing or empty) → stop;
//   otherwise append the assistant message { role: "assistant", content, tool_calls }, then for
//   each call, in order: result = await ctx.tools.call(name, arguments) and append
//   { role: "tool", tool_call_id: id, content: JSON.stringify(result) }.
//   `arguments` may be an object or a JSON string (parsed before the call).
// Output: { "answer": <content of the last model message (null if the model gave none)>,
//           "rounds": <number of ctx.llm.chat calls, 1..8> }
//   e.g. a test model that answers without tool calls → { answer: <its text>, rounds: 1 };
//   one that calls lookup_customer once, then answers → rounds: 2, with one tool.call/tool.result
//   pair of events between the two chat calls; one that always calls a tool → rounds: 8.
// Errors: a tool call for a tool other than lookup_customer (or a chat to a model outside
//   test/*) is refused by the host and, not being caught, fails the run.
// Permissions: llm ["test/*"], tools ["lookup_customer"].

const MODEL = "test/echo";
const MAX_ROUNDS = 8;

const parseArguments = (args) => (typeof args === "string" ? JSON.parse(args) : args ?? {});

export default async (input, ctx) => {
  const messages = [{ role: "user", content: input.question }];
  let rounds = 0;
  let res;
  while (rounds < MAX_ROUNDS) {
    res = await ctx.llm.chat({ model: MODEL, messages, tools: ["lookup_customer"] });
    rounds += 1;
    const calls = res.tool_calls ?? [];
    if (calls.length === 0) break;

    messages.push({ role: "assistant", content: res.message?.content ?? "", tool_calls: calls });
    for (const call of calls) {
      const result = await ctx.tools.call(call.name, parseArguments(call.arguments));
      messages.push({ role: "tool", tool_call_id: call.id, content: JSON.stringify(result) });
    }
  }
  return { answer: res.message?.content ?? null, rounds };
};

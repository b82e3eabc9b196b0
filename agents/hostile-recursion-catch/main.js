// @hostile/hostile-recursion-catch — catches stack overflow and keeps recursing inside the catch.
//
// Every frame that catches the overflow calls itself again from its catch block, which overflows
// again near the same depth: the call tree is exponential in the stack depth and never finishes.
//
// Input:  {} (ignored). Limits: defaults (cpu_ms 2000).
// Expected: the run ends `failed` with error code `cpu_limit` (a stack-overflow error escaping to
//   the top, `agent_error`, is also acceptable) — never a crash of the process, never a hang
//   past the CPU budget; the process keeps serving.

let overflowsCaught = 0;

function dive(depth) {
  try {
    return dive(depth + 1);
  } catch (_err) {
    overflowsCaught += 1;
    return dive(depth + 1);
  }
}

export default async (_input, _ctx) => {
  dive(0);
  return { unreachable: true, overflowsCaught };
};

// @hostile/hostile-recursion — unbounded recursion.
//
// Input:  {} (ignored). Limits: defaults.
// Expected: the engine throws its stack-overflow error (V8: RangeError "Maximum call stack size
//   exceeded"; QuickJS-ng: the same RangeError, or InternalError "stack overflow"); this code does
//   not catch it, so the run ends `failed` with error code `agent_error` and a message that names
//   the stack overflow. Never a crash of the process (no native stack overflow / SIGSEGV).

export default async (_input, _ctx) => {
  const f = () => f();
  f();
  return { unreachable: true };
};

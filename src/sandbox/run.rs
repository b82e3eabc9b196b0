//! One run on one fresh isolate: assign the package and the run's scope, call the
//! runner under the limit enforcer, and turn whatever happened into a [`RunOutcome`].

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use deno_core::PollEventLoopOptions;
use serde_json::{json, Value};

use super::grant::RunGrant;
use super::isolate::{AgentRunner, Isolate};
use super::limits::{Breach, CpuBudget, Metered, WorkerMeter};
use super::loader::PackageLoader;
use super::record::{ErrorCode, EventKind, RunError, RunOutcome, RunStatus, Usage};
use super::scope::{RunIdentity, RunScope};
use super::shared::RunShared;
use crate::host::{HostServices, Tenant};
use crate::package::AgentPackage;

/// Everything needed to run an agent once.
pub struct RunRequest {
    pub run_id: String,
    pub package: Arc<AgentPackage>,
    pub tenant: Tenant,
    pub input: Value,
    /// The state the previous successful run of this agent and end-user left.
    pub state: Option<Value>,
    pub grant: RunGrant,
    pub services: HostServices,
    /// `api`, `webhook`, `cron` or `cli`.
    pub trigger: String,
    pub attempt: u32,
    /// Events of this run already stored (a retried run continues their numbering).
    pub events_before: u64,
    /// Where a sandbox process's host calls are journaled and replayed (durable runs);
    /// None runs them all live.
    pub journal: Option<Arc<dyn crate::host::RunJournal>>,
}

/// What the run produced before the isolate was dropped.
struct Collected {
    /// Dropped only after the outcome is delivered: disposal takes ~0.7 ms that no
    /// caller should wait for.
    isolate: Option<Isolate>,
    ended: Result<Result<(), String>, Breach>,
    cpu: std::time::Duration,
    heap_bytes: u64,
    load_failure: Option<String>,
}

/// Runs `req` and concludes it (terminal events, then the answer); returns the isolate,
/// to be disposed once nobody waits for it.
pub(crate) async fn execute(
    isolate: Option<Isolate>,
    req: RunRequest,
    shared: Arc<RunShared>,
    meter: Arc<WorkerMeter>,
) -> Option<Isolate> {
    let started = Instant::now();
    shared.start_clock(req.grant.limits.wall());
    let manifest = &req.package.manifest;
    let start = json!({
        "entry": PackageLoader::entry_url(&req.package),
        "input": req.input,
        "state": req.state,
        // A journaled run's timers are host calls (their firings are journaled).
        "journaled": req.services.clock.is_some(),
        "run": {
            "id": req.run_id, "agent": manifest.name, "version": manifest.version.to_string(),
            "end_user": req.tenant.end_user, "trigger": req.trigger, "attempt": req.attempt,
        },
    });
    let identity = RunIdentity {
        run_id: req.run_id.clone(),
        agent: manifest.name.clone(),
        version: manifest.version.to_string(),
        tenant: req.tenant.clone(),
        trigger: req.trigger.clone(),
        attempt: req.attempt,
    };
    let scope = Rc::new(RunScope::new(
        identity,
        req.grant.clone(),
        req.services.clone(),
        shared.clone(),
        start.to_string(),
    ));
    scope.publish(EventKind::Status, json!({ "status": "running" }));

    let mut spent = None;
    let outcome = match (isolate, req.package.validate_input(&req.input)) {
        _ if shared.cancel_requested() => RunOutcome::failed(
            RunError::new(
                ErrorCode::Cancelled,
                "the run was cancelled before it started",
            ),
            Usage::default(),
        ),
        (_, Err(why)) => RunOutcome::failed(
            RunError::new(
                ErrorCode::InputInvalid,
                format!("input does not match the agent's input schema: {why}"),
            ),
            Usage::default(),
        ),
        (None, _) => RunOutcome::failed(
            RunError::new(
                ErrorCode::Internal,
                "no isolate could be created for this run",
            ),
            Usage::default(),
        ),
        (Some(isolate), Ok(())) => {
            let mut collected = drive(isolate, &req, &scope, &shared, meter).await;
            spent = collected.isolate.take();
            conclude(collected, &req, &scope)
        }
    };
    let mut outcome = outcome;
    outcome.usage.wall_ms = ms(started.elapsed());
    outcome.usage.llm_tokens_in = scope.llm_tokens_in.get();
    outcome.usage.llm_tokens_out = scope.llm_tokens_out.get();
    outcome.usage.fetches = scope.fetches.get();
    // False when the pool already ended the run because this thread was stuck.
    shared.conclude(outcome);
    spent
}

/// Runs the agent on the isolate under the enforcer, then drops the isolate.
async fn drive(
    mut isolate: Isolate,
    req: &RunRequest,
    scope: &Rc<RunScope>,
    shared: &Arc<RunShared>,
    meter: Arc<WorkerMeter>,
) -> Collected {
    isolate.loader().assign(req.package.clone());
    isolate.watch_heap(shared.clone());
    shared.attach_isolate(isolate.thread_safe_handle());
    let op_state = isolate.runtime().op_state();
    op_state.borrow_mut().put(scope.clone());
    // Taken, not cloned: cloning a handle needs the isolate entered, and this isolate
    // serves exactly one run anyway.
    let runner = op_state.borrow_mut().try_take::<AgentRunner>().map(|r| r.0);
    let Some(runner) = runner else {
        return Collected {
            isolate: Some(isolate),
            ended: Ok(Err("the isolate has no agent runner".into())),
            cpu: Default::default(),
            heap_bytes: 0,
            load_failure: None,
        };
    };

    let mut budget = CpuBudget {
        limit: req.grant.limits.cpu(),
        used: Default::default(),
    };
    let entry = isolate.entry();
    let ended = {
        let runtime = isolate.runtime();
        let work = async move {
            let call = runtime.call(&runner);
            runtime
                .with_event_loop_promise(call, PollEventLoopOptions::default())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let heap_limit = req.grant.limits.heap_bytes() as u64;
        let metered = Metered::new(work, meter, shared.clone(), &mut budget, entry, heap_limit);
        tokio::pin!(metered);
        loop {
            let deadline = tokio::time::Instant::from_std(shared.deadline());
            tokio::select! {
                ended = &mut metered => break ended,
                _ = tokio::time::sleep_until(deadline) => {
                    let breach = if shared.cancel_requested() { Breach::Cancelled } else { Breach::Wall };
                    shared.condemn(breach);
                    break Err(shared.breach().unwrap_or(breach));
                }
                // A cancel moves the deadline to the end of its grace period.
                _ = shared.cancelled.notified() => continue,
            }
        }
    };
    // An isolate whose engine failed or ran out of heap must not run anything again,
    // not even a heap statistics call.
    let heap_bytes = match ended {
        Err(Breach::Crash) | Err(Breach::Memory) => req.grant.limits.heap_bytes() as u64,
        _ => isolate.heap_used(),
    };
    let load_failure = isolate.loader().failure();
    Collected {
        isolate: Some(isolate),
        ended,
        cpu: budget.used,
        heap_bytes,
        load_failure,
    }
}

/// Decides the outcome: an outside breach beats a limit hit through an op, which beats
/// what the agent reported, which beats its output.
fn conclude(collected: Collected, req: &RunRequest, scope: &RunScope) -> RunOutcome {
    let limits = &req.grant.limits;
    let usage = Usage {
        cpu_ms: ms(collected.cpu),
        heap_peak_bytes: collected.heap_bytes,
        ..Usage::default()
    };
    let fail =
        |code, message: String| RunOutcome::failed(RunError::new(code, message), usage.clone());

    if scope.shared.cancel_requested() {
        return fail(
            ErrorCode::Cancelled,
            Breach::Cancelled.message(limits.cpu(), limits.wall(), limits.memory_mb),
        );
    }
    match collected.ended {
        Err(breach) => {
            return fail(
                breach.code(),
                breach.message(limits.cpu(), limits.wall(), limits.memory_mb),
            )
        }
        Ok(Err(engine_error)) => {
            if let Some((code, message)) = scope.violation() {
                return fail(code, message);
            }
            if engine_error.contains("Promise resolution is still pending") {
                return fail(
                    ErrorCode::AgentError,
                    "the agent awaits a promise that can never settle: nothing it waits for (timer, fetch, tool, ...) is pending".into(),
                );
            }
            return fail(ErrorCode::AgentError, engine_error);
        }
        Ok(Ok(())) => {}
    }
    if let Some((code, message)) = scope.violation() {
        return fail(code, message);
    }
    if let Some(reported) = scope.error.borrow().clone() {
        let code = match reported.phase.as_str() {
            "load" if collected.load_failure.is_some() || reported.name == "SyntaxError" => {
                ErrorCode::PackageInvalid
            }
            "output" => ErrorCode::OutputInvalid,
            _ => ErrorCode::AgentError,
        };
        let message = match (&collected.load_failure, code) {
            (Some(failure), ErrorCode::PackageInvalid) => failure.clone(),
            (None, ErrorCode::PackageInvalid) => format!(
                "{}: {}: {}",
                package_location(reported.stack.as_deref()).unwrap_or(&req.package.manifest.entry),
                reported.name,
                reported.message
            ),
            _ if reported.name.is_empty() => reported.message.clone(),
            _ => format!("{}: {}", reported.name, reported.message),
        };
        let mut outcome = fail(code, message);
        if let Some(error) = outcome.error.as_mut() {
            error.stack = reported.stack;
        }
        return outcome;
    }
    let Some(json) = scope.output.borrow_mut().take() else {
        return fail(
            ErrorCode::Internal,
            "the runner finished without output or error".into(),
        );
    };
    let output: Value = match serde_json::from_str(&json) {
        Ok(v) => v,
        Err(e) => return fail(ErrorCode::OutputInvalid, format!("output is not JSON: {e}")),
    };
    if let Err(why) = req.package.validate_output(&output) {
        return fail(
            ErrorCode::OutputInvalid,
            format!("output does not match the agent's output schema: {why}"),
        );
    }
    RunOutcome {
        status: RunStatus::Succeeded,
        output: Some(output),
        error: None,
        state: scope.state.borrow_mut().take(),
        usage,
    }
}

/// `lib/x.js:3:7` from the first package frame of an engine stack trace.
fn package_location(stack: Option<&str>) -> Option<&str> {
    let at = stack?.find(super::loader::PACKAGE_URL_PREFIX)?;
    let rest = &stack?[at + super::loader::PACKAGE_URL_PREFIX.len()..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == ')')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

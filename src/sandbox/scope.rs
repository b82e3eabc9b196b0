//! The per-run state the ops consult: identity, grant, services, the event log with its
//! volume limit, usage counters, and what the agent reported back.
//!
//! It lives in the isolate's `OpState` as `Rc<RunScope>`; async ops clone the `Rc` out
//! before awaiting, so no `OpState` borrow is ever held across an `.await`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;

use serde_json::{json, Value};

use super::grant::RunGrant;
use super::limits::Breach;
use super::record::{ErrorCode, EventKind};
use super::shared::RunShared;
use crate::broker::budget::{self, HostMemory, Reservation};
use crate::host::{HostServices, Tenant};

/// Who and what a run is (`ctx.run`).
#[derive(Debug, Clone)]
pub struct RunIdentity {
    pub run_id: String,
    pub agent: String,
    pub version: String,
    pub tenant: Tenant,
    pub trigger: String,
    pub attempt: u32,
}

/// An error the JS runner reported: where it happened and what the engine said.
#[derive(Debug, Clone)]
pub struct ReportedError {
    pub phase: String,
    pub name: String,
    pub message: String,
    pub stack: Option<String>,
}

#[derive(Default)]
struct EventLog {
    bytes: u64,
    truncated: bool,
}

pub struct RunScope {
    pub identity: RunIdentity,
    pub grant: RunGrant,
    pub services: HostServices,
    pub shared: Arc<RunShared>,
    /// JSON handed to the runner by `op_atoll_run_start`.
    pub start: RefCell<Option<String>>,
    pub output: RefCell<Option<String>>,
    pub error: RefCell<Option<ReportedError>>,
    pub state: RefCell<Option<Value>>,
    /// A limit the agent hit through an op; it fails the run even if the agent caught the
    /// exception (limits are not negotiable from JS).
    violation: RefCell<Option<(ErrorCode, String)>>,
    events: RefCell<EventLog>,
    pub fetches: Cell<u32>,
    pub llm_tokens_in: Cell<u64>,
    pub llm_tokens_out: Cell<u64>,
    /// What the host holds for this run outside the heap, bounded by its memory limit.
    pub host_memory: HostMemory,
    /// Response bodies read by the host that the isolate has not copied in yet.
    bodies: RefCell<HashMap<u32, (Bytes, Reservation)>>,
    next_body: Cell<u32>,
}

impl RunScope {
    pub fn new(
        identity: RunIdentity,
        grant: RunGrant,
        services: HostServices,
        shared: Arc<RunShared>,
        start: String,
    ) -> Self {
        let host_memory = HostMemory::new(grant.limits.heap_bytes() as u64);
        RunScope {
            identity,
            services,
            shared,
            start: RefCell::new(Some(start)),
            output: RefCell::new(None),
            error: RefCell::new(None),
            state: RefCell::new(None),
            violation: RefCell::new(None),
            grant,
            events: RefCell::new(EventLog::default()),
            fetches: Cell::new(0),
            llm_tokens_in: Cell::new(0),
            llm_tokens_out: Cell::new(0),
            host_memory,
            bodies: RefCell::new(HashMap::new()),
            next_body: Cell::new(0),
        }
    }

    pub fn tenant(&self) -> &Tenant {
        &self.identity.tenant
    }

    /// Records a limit breach (the first one wins) and returns the message for the
    /// exception the op throws.
    pub fn violate(&self, code: ErrorCode, message: String) -> String {
        self.violation
            .borrow_mut()
            .get_or_insert_with(|| (code, message.clone()));
        format!("{}: {message}", code.as_str())
    }

    pub fn violation(&self) -> Option<(ErrorCode, String)> {
        self.violation.borrow().clone()
    }

    /// Runs a host call with this run's budget paying for what the host buffers; a call
    /// that went over it ends the run with `memory_limit`, caught or not.
    pub async fn host_call<F: Future>(&self, work: F) -> F::Output {
        let answer = budget::charged_to(self.host_memory.clone(), work).await;
        if self.host_memory.exceeded() {
            self.over_budget();
        }
        answer
    }

    /// The run holds more than its memory limit on the host: it ends now, like a heap
    /// that outgrew its limit. Answers the message for the op's exception.
    pub fn over_budget(&self) -> String {
        let message = self.violate(
            ErrorCode::MemoryLimit,
            format!(
                "the run holds more than its {} MiB of memory in host-side buffers (bodies in flight)",
                self.grant.limits.memory_mb
            ),
        );
        self.shared.condemn(Breach::Memory);
        message
    }

    /// Keeps a body until the isolate copies it into memory of its own; the body counts
    /// against the run's budget meanwhile. Answers its id.
    pub fn hold_body(&self, body: Bytes) -> Result<u32, String> {
        let held = self
            .host_memory
            .reserve(body.len() as u64)
            .map_err(|_| self.over_budget())?;
        let id = self.next_body.get().wrapping_add(1);
        self.next_body.set(id);
        self.bodies.borrow_mut().insert(id, (body, held));
        Ok(id)
    }

    /// Hands a held body over (and releases its share of the budget).
    pub fn take_body(&self, id: u32) -> Option<Bytes> {
        self.bodies.borrow_mut().remove(&id).map(|(body, _)| body)
    }

    /// Publishes an event the agent caused (log, emit, deltas, tool and fetch records),
    /// counting it against the run's event volume. Past the limit, events are dropped and
    /// a single `log_truncated` event says so.
    pub fn emit(&self, kind: EventKind, data: Value) {
        let size = approx_size(&data);
        let limit = self.grant.limits.max_event_bytes;
        {
            let mut log = self.events.borrow_mut();
            if log.truncated {
                return;
            }
            if log.bytes + size > limit {
                log.truncated = true;
                drop(log);
                self.publish(
                    EventKind::LogTruncated,
                    json!({ "limit_bytes": limit, "message": "event volume limit reached; further log and emit events of this run are dropped" }),
                );
                return;
            }
            log.bytes += size;
        }
        self.publish(kind, data);
    }

    /// Publishes a lifecycle event (status, output, error, end): never dropped.
    pub fn publish(&self, kind: EventKind, data: Value) {
        self.shared.publish(kind, data);
    }
}

/// Size of an event's payload as it will be stored, without serialising twice for
/// strings (the common case: log lines).
fn approx_size(data: &Value) -> u64 {
    let len = match data {
        Value::String(s) => s.len() + 2,
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                k.len()
                    + 4
                    + match v {
                        Value::String(s) => s.len() + 2,
                        other => other.to_string().len(),
                    }
            })
            .sum(),
        other => other.to_string().len(),
    };
    len as u64
}

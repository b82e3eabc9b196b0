//! A run hosted by a sandbox process, as the server holds it: what serving its host
//! calls needs (services, grant, journal, budgets) and the count of its calls in flight.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::AbortHandle;

use crate::broker::budget::HostMemory;
use crate::host::{HostServices, Tenant};
use crate::package::AgentPackage;
use crate::sandbox::shared::{lock, RunShared};
use crate::sandbox::{RunGrant, RunRequest};

/// A run hosted by a child: what the server needs to serve its host calls and end it.
pub(crate) struct RemoteRun {
    pub shared: Arc<RunShared>,
    pub services: HostServices,
    pub grant: RunGrant,
    pub tenant: Tenant,
    pub package: Arc<AgentPackage>,
    /// What the server buffers for this run (bodies being read), bounded by its limit.
    pub memory: HostMemory,
    pub fetches: AtomicU32,
    /// A crash of its child retries it (`retry_on_node_lost`, first attempt): it then
    /// ends without terminal events, since its stream goes on with the next attempt.
    pub(super) retry_on_crash: bool,
    /// Event bytes relayed, bounded on this side too (a child may lie about its own count).
    pub(super) event_bytes: AtomicU64,
    /// The run's span (current where the run was submitted): host calls are its children.
    pub span: tracing::Span,
    /// Host-call spans made so far, capped so one run cannot flood the exporter.
    pub op_spans: AtomicU32,
    /// Where its host calls are journaled and replayed.
    pub journal: Option<Arc<dyn crate::host::RunJournal>>,
    /// The journal position of the next host call, in the order the child asked them.
    pub next_op: AtomicU64,
    /// Its host calls being served now.
    pub(super) calls_in_flight: AtomicU32,
    /// Its JS timers not yet due.
    pub(super) timers: Timers,
}

impl RemoteRun {
    pub fn new(req: RunRequest, shared: Arc<RunShared>) -> RemoteRun {
        RemoteRun {
            retry_on_crash: req.package.manifest.tries_again_after_loss(req.attempt),
            shared,
            memory: HostMemory::new(req.grant.limits.heap_bytes() as u64),
            services: req.services,
            grant: req.grant,
            tenant: req.tenant,
            package: req.package,
            fetches: AtomicU32::new(0),
            event_bytes: AtomicU64::new(0),
            span: tracing::Span::current(),
            op_spans: AtomicU32::new(0),
            journal: req.journal,
            next_op: AtomicU64::new(0),
            calls_in_flight: AtomicU32::new(0),
            timers: Timers::default(),
        }
    }

    /// The run is over here (ended, parked, lost): its timers stop, so a run that set a
    /// year-long timer holds nothing on the server once it is gone.
    pub(super) fn stop_timers(&self) {
        let pending = {
            let mut table = lock(&self.timers.table);
            table.stopped = true;
            std::mem::take(&mut table.pending)
        };
        for timer in pending.into_values() {
            timer.task.abort();
        }
    }
}

/// A run's JS timers on the server: each is a host call answered when it is due.
#[derive(Default)]
pub(crate) struct Timers {
    pub(super) table: Mutex<TimerTable>,
    /// Held while a due timer's firing is recorded, and while a clear decides what it
    /// comes to: a timer is either cleared before it fired, or its recorded firing is
    /// replaced by the clear (the run ignored it).
    pub(super) gate: tokio::sync::Mutex<()>,
}

#[derive(Default)]
pub(crate) struct TimerTable {
    /// Not yet due, by the child's call id.
    pub pending: HashMap<u64, PendingTimer>,
    /// Timers that fired lately (call id, position): a clear can cross a firing on the
    /// channel, and must then find the firing it replaces.
    pub fired: VecDeque<(u64, u64)>,
    /// The run is gone: no timer is set any more.
    pub stopped: bool,
}

pub(crate) struct PendingTimer {
    pub seq: u64,
    pub ms: u64,
    pub task: AbortHandle,
}

impl Timers {
    /// Timers one run may have pending on the server (each costs it a task).
    pub const MAX_PENDING: usize = 1_000;

    /// The timer at `seq` is due: the gate, held, if it is still pending (it fires now;
    /// its firing is recorded under the gate), or None if the run cleared it.
    pub async fn fire(&self, seq: u64) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        let gate = self.gate.lock().await;
        self.take_due(seq).then_some(gate)
    }

    /// Whether the timer at `seq` is still pending, taking it out if so.
    fn take_due(&self, seq: u64) -> bool {
        let mut table = lock(&self.table);
        let Some(call) = table
            .pending
            .iter()
            .find(|(_, t)| t.seq == seq)
            .map(|(c, _)| *c)
        else {
            return false;
        };
        table.pending.remove(&call);
        if table.fired.len() >= Self::MAX_PENDING {
            table.fired.pop_front();
        }
        table.fired.push_back((call, seq));
        true
    }
}

/// A call counted in its run's `calls_in_flight` until it is dropped, however the call
/// ends.
pub(super) struct CallCounted(pub(super) Arc<RemoteRun>);

impl Drop for CallCounted {
    fn drop(&mut self) {
        self.0.calls_in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

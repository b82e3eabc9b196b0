//! Runs as durable work: accepted runs are rows in the store (`queued`), claimed with a
//! lease by a node, executed on its sandbox pool, and finished in the store. A run
//! accepted with 202 survives a restart: queued runs are claimed again, and runs whose
//! node died are failed with `node_lost` or retried, per the agent's setting.
//!
//! - `adapters`: `ctx.memory` over the store.
//! - `admission`: every quota rule, and the permit a run holds until it ends.
//! - `events`: the bounded event pipeline (persisted in order, then fanned out).
//! - `dispatch`: claiming, executing and finishing runs on this node.
//! - `recovery`: lease renewal and the reaper of expired leases.
//! - `durable`: parking waiting runs, signals, resuming; `journal`: each run's journal.

pub mod adapters;
pub mod admission;
mod dispatch;
mod durable;
pub mod events;
mod journal;
pub mod metrics;
mod recovery;
mod view;
mod wait;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;

use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::bus::EventBus;
use crate::host::{Fetcher, LlmClient, ToolInvoker};
use crate::ids::{new_id, now_ms};
use crate::package::{AgentPackage, PackageLimits};
use crate::process::Sandbox;
use crate::quota::Decision;
use crate::sandbox::{Limits, RunCanceller};
use crate::store::{AgentVersion, AuditEvent, Fired, Firing, RunRow, RunStatus, Store, StoreError};
use admission::{Admission, Refused, RunTenant};
use events::EventPipeline;
pub use view::{RunView, WaitView};

/// What the run service needs from the rest of the server.
pub struct RunServiceConfig {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn EventBus>,
    /// Quota rules; runs take a permit here and give it back when they end.
    pub admission: Admission,
    /// Where runs execute: sandbox processes, or this process.
    pub sandbox: Sandbox,
    pub fetcher: Arc<dyn Fetcher>,
    pub tools: Arc<dyn ToolInvoker>,
    pub llm: Arc<dyn LlmClient>,
    pub node_id: String,
    pub ceilings: Limits,
    pub lease: Duration,
    /// Runs this node executes at once.
    pub max_inflight: usize,
    /// Droppable events queued in the event pipeline before they are dropped.
    pub event_queue: usize,
    /// Durable runs: journal bytes per run, and runs per app that may be parked.
    pub journal_max_bytes: u64,
    pub waiting_runs_per_app: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    InputInvalid(String),
    #[error("the agent version does not load: {0}")]
    PackageInvalid(String),
    /// Not admitted: over a quota, or the quota backend is away.
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("this node is shutting down")]
    ShuttingDown,
    /// The run has ended: nothing can reach it any more.
    #[error("the run has ended ({0})")]
    Ended(RunStatus),
    /// The trigger that fired it was paused (or deleted) meanwhile.
    #[error("the trigger is paused")]
    TriggerPaused,
    /// Refused for now: the run holds too much of something it has yet to take.
    #[error("{0}")]
    Busy(String),
}

/// How many times a cancel follows a run that changed state under it (waiting → queued
/// → running is the longest path).
const CANCEL_LOOKS: usize = 4;

/// A run to create.
pub struct NewRun {
    pub org_id: String,
    pub app_id: String,
    pub version: AgentVersion,
    pub input: Value,
    pub end_user: Option<String>,
    pub metadata: Option<Value>,
    pub trigger: String,
    /// The audit event of this creation, stored in the same transaction as the run (its
    /// `target` is set to the new run's id).
    pub audit: Option<AuditEvent>,
    /// What started it, for a triggered run: a firing starts at most one run.
    pub firing: Option<Firing>,
}

/// Bytes of package files the package cache keeps (a package under both of its keys
/// counts twice): bounded by size, since one package may hold megabytes.
const PACKAGE_CACHE_BYTES: u64 = 256 << 20;

pub(crate) struct Inner {
    pub cfg: RunServiceConfig,
    pub sink: Arc<EventPipeline>,
    pub active: Mutex<HashMap<String, RunCanceller>>,
    /// Slots set aside by claims in progress (`dispatch::Reservation`).
    pub reserved: AtomicUsize,
    /// Who waits for which run on this node (`wait`): told how the run ended, once it
    /// is stored and its slot is free, so `?wait` answers without reading the store again.
    pub waiters: Mutex<HashMap<String, Vec<tokio::sync::oneshot::Sender<Arc<RunRow>>>>>,
    /// Cancels that came for a run this node has claimed but not yet made active (it is
    /// being prepared): honoured as it becomes active. Locked only while `active` is.
    pub cancels_pending: Mutex<HashMap<String, std::time::Instant>>,
    pub packages: moka::sync::Cache<String, Arc<AgentPackage>>,
    pub accepting: AtomicBool,
    pub shutting_down: AtomicBool,
    pub stop: CancellationToken,
    /// Wakes the claimer (a run was queued, or a slot freed).
    pub wake: Notify,
    /// Signalled when the last active run of this node finishes.
    pub idle: Notify,
    pub metrics: metrics::RunMetrics,
}

#[derive(Clone)]
pub struct RunService {
    inner: Arc<Inner>,
}

impl RunService {
    /// Starts the service and its background loops (claimer, leases, reaper).
    pub async fn start(cfg: RunServiceConfig) -> Result<RunService, RunError> {
        let sink = EventPipeline::start(cfg.store.clone(), cfg.bus.clone(), cfg.event_queue);
        let inner = Arc::new(Inner {
            sink,
            active: Mutex::new(HashMap::new()),
            reserved: AtomicUsize::new(0),
            waiters: Mutex::new(HashMap::new()),
            cancels_pending: Mutex::new(HashMap::new()),
            packages: moka::sync::Cache::builder()
                .weigher(|key: &String, package: &Arc<AgentPackage>| {
                    let bytes: usize = package.files.values().map(|f| f.len()).sum();
                    u32::try_from(key.len() + bytes).unwrap_or(u32::MAX)
                })
                .max_capacity(PACKAGE_CACHE_BYTES)
                .build(),
            accepting: AtomicBool::new(true),
            shutting_down: AtomicBool::new(false),
            stop: CancellationToken::new(),
            wake: Notify::new(),
            idle: Notify::new(),
            metrics: metrics::RunMetrics::default(),
            cfg,
        });
        recovery::adopt_own_leftovers(&inner).await?;
        tokio::spawn(dispatch::claimer(inner.clone()));
        tokio::spawn(recovery::lease_keeper(inner.clone()));
        tokio::spawn(recovery::reaper(inner.clone()));
        tokio::spawn(durable::waker(inner.clone()));
        recovery::listen_for_cancels(&inner).await;
        Ok(RunService { inner })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.cfg.store
    }

    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.inner.cfg.bus
    }

    pub fn sandbox(&self) -> &Sandbox {
        &self.inner.cfg.sandbox
    }

    pub fn metrics(&self) -> &metrics::RunMetrics {
        &self.inner.metrics
    }

    pub fn events(&self) -> &EventPipeline {
        &self.inner.sink
    }

    /// Runs executing here, or slots a claim in progress set aside.
    fn busy(&self) -> bool {
        self.active_runs() + self.inner.reserved.load(Ordering::Acquire) > 0
    }

    pub fn active_runs(&self) -> usize {
        self.inner.active.lock().map_or(0, |a| a.len())
    }

    /// The loaded package of a stored version (cached by digest).
    pub fn package(&self, version: &AgentVersion) -> Result<Arc<AgentPackage>, RunError> {
        package_of(&self.inner, version)
    }

    /// Validates the input, admits the run (rates, budget, slots), stores it as `queued`
    /// and hands it to this node's claimer. The permit is given back when the run ends.
    pub async fn create(&self, new: NewRun) -> Result<(RunRow, Decision), RunError> {
        self.create_as(new_id("run"), new).await
    }

    async fn create_as(&self, id: String, new: NewRun) -> Result<(RunRow, Decision), RunError> {
        if !self.inner.accepting.load(Ordering::Acquire) {
            return Err(RunError::ShuttingDown);
        }
        let package = self.package(&new.version)?;
        package.validate_input(&new.input).map_err(|why| {
            RunError::InputInvalid(format!(
                "input does not match the agent's input schema: {why}"
            ))
        })?;
        let tenant = RunTenant {
            org_id: &new.org_id,
            app_id: &new.app_id,
            end_user: new.end_user.as_deref(),
        };
        let (permit, rate) = self
            .inner
            .cfg
            .admission
            .admit_run(&tenant, &id)
            .instrument(tracing::info_span!("run.admission", run = %id, app = %tenant.app_id))
            .await?;
        let row = RunRow {
            id,
            org_id: new.org_id,
            app_id: new.app_id,
            agent: new.version.name.clone(),
            version: new.version.version.clone(),
            end_user: new.end_user,
            trigger: new.trigger,
            status: RunStatus::Queued,
            input: new.input,
            output: None,
            error: None,
            metadata: new.metadata,
            usage: None,
            attempt: 1,
            created_at: now_ms(),
            started_at: None,
            finished_at: None,
            lease_owner: None,
            lease_expires_at: None,
        };
        // The permit travels as the stored run: wherever the run ends it is rebuilt from it.
        debug_assert_eq!(permit, admission::Permit::of(&row));
        let audit = new.audit.map(|audit| AuditEvent {
            target: row.id.clone(),
            ..audit
        });
        let store = &self.inner.cfg.store;
        let inserted = match &new.firing {
            None => store
                .insert_run_audited(&row, audit.as_ref())
                .await
                .map(|()| Fired::Started),
            Some(firing) => store.insert_fired_run(&row, audit.as_ref(), firing).await,
        };
        // Unless stored, no ending will give the permit back: this is its ending.
        match inserted {
            Ok(Fired::Started) => {}
            Ok(Fired::Paused) => {
                dispatch::release_permit(&self.inner, &row, 0).await;
                return Err(RunError::TriggerPaused);
            }
            Ok(Fired::Existing(existing)) => {
                dispatch::release_permit(&self.inner, &row, 0).await;
                // The firing already started a run (another node, or a repeated delivery).
                let found = store.get_run(&row.app_id, &existing).await?;
                return found.map(|run| (run, rate)).ok_or_else(|| {
                    RunError::Store(StoreError::Database(format!(
                        "run {existing} of a firing is missing"
                    )))
                });
            }
            Err(e) => {
                dispatch::release_permit(&self.inner, &row, 0).await;
                return Err(e.into());
            }
        }
        // In a task of its own: the claim may take another tenant's run, which a request
        // whose client went away must not leave half-started.
        let inner = self.inner.clone();
        tokio::spawn(async move { dispatch::try_start(&inner).await });
        Ok((row, rate))
    }

    /// Cancels a run of this app: a queued run ends at once; a running one on this node
    /// is aborted (its isolate terminated after the cancel grace).
    pub async fn cancel(&self, app_id: &str, run_id: &str) -> Result<Option<RunRow>, RunError> {
        let store = &self.inner.cfg.store;
        // Each ending is a compare-and-set on the status it saw; one that loses (a node
        // claimed the queued run, or a signal resumed the waiting one) looks again, so
        // the cancel follows the run into its next state instead of being dropped.
        for _ in 0..CANCEL_LOOKS {
            let Some(row) = store.get_run(app_id, run_id).await? else {
                return Ok(None);
            };
            let message = match row.status {
                RunStatus::Running => {
                    if self.cancel_running(&row).await {
                        break;
                    }
                    // Kept for a run this node is preparing, or parking: look again
                    // shortly (a parked run is ended from `waiting`; one that starts
                    // takes the kept cancel with it).
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                RunStatus::Queued => "the run was cancelled before it started",
                // Parked: no isolate to stop, and no slots held.
                RunStatus::Waiting => "the run was cancelled while it waited",
                _ => break,
            };
            let finish = dispatch::finish_record(
                &row,
                RunStatus::Cancelled,
                None,
                Some(json!({ "code": "cancelled", "message": message })),
                None,
            );
            // Ended straight from `queued` (`status = 'queued'` in the update) it wins
            // only while no node has claimed it, and once it has, none can (so nothing
            // else numbers its events, and no `run.started` is announced for it).
            let ended = match row.status {
                RunStatus::Queued => store.finish_queued_run(run_id, &finish).await?,
                _ => store.finish_waiting_run(run_id, &finish).await?,
            };
            if ended {
                dispatch::after_finish(&self.inner, &row, &finish).await;
                break;
            }
        }
        Ok(store.get_run(app_id, run_id).await?)
    }

    /// Aborts a running run: here when this node runs it, else through its node. False
    /// when the cancel could only be kept (the run is claimed here but not active).
    async fn cancel_running(&self, row: &RunRow) -> bool {
        let own = row.lease_owner.as_deref() == Some(self.inner.cfg.node_id.as_str());
        if dispatch::cancel_here(&self.inner, &row.id, own) {
            return true;
        }
        match row.lease_owner.as_deref().filter(|_| !own) {
            Some(owner) => {
                // Another node runs it: ask that node over the bus.
                recovery::request_remote_cancel(&self.inner, owner, &row.id).await;
                true
            }
            None => false,
        }
    }

    /// Stops taking runs; lets running ones finish for up to `grace`; then cancels the
    /// rest (they end `cancelled`, reason `shutdown`), so nothing stays `running`.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.accepting.store(false, Ordering::Release);
        self.inner.stop.cancel();
        let drained = tokio::time::timeout(grace, async {
            while self.busy() {
                let idle = self.inner.idle.notified();
                if !self.busy() {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(100), idle).await;
            }
        })
        .await;
        if drained.is_err() {
            let cancellers: Vec<RunCanceller> = self
                .inner
                .active
                .lock()
                .map(|a| a.values().cloned().collect())
                .unwrap_or_default();
            tracing::warn!(
                runs = cancellers.len(),
                "shutdown grace over: cancelling running runs"
            );
            dispatch::mark_shutdown(&self.inner);
            for c in cancellers {
                c.cancel();
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while self.active_runs() > 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
        }
        // Every event of the runs that ended is written before the process goes.
        if tokio::time::timeout(Duration::from_secs(10), self.inner.sink.flush())
            .await
            .is_err()
        {
            tracing::warn!("shutdown: the event pipeline did not drain in 10 s");
        }
    }
}

pub(crate) fn package_of(
    inner: &Inner,
    version: &AgentVersion,
) -> Result<Arc<AgentPackage>, RunError> {
    let key = format!("{}:{}", version.app_id, version.digest);
    let by_name = version_key(&version.app_id, &version.name, &version.version);
    if let Some(p) = inner.packages.get(&key) {
        inner.packages.insert(by_name, p.clone());
        return Ok(p);
    }
    let files: std::collections::BTreeMap<String, String> =
        serde_json::from_value(version.files.clone())
            .map_err(|e| RunError::PackageInvalid(format!("stored files: {e}")))?;
    let package =
        AgentPackage::from_files(version.manifest.clone(), files, &PackageLimits::default())
            .map_err(|e| RunError::PackageInvalid(e.to_string()))?;
    let package = Arc::new(package);
    inner.packages.insert(key, package.clone());
    inner.packages.insert(by_name, package.clone());
    Ok(package)
}

/// The package cache's second key: an app's `agent@version`, which names one immutable
/// package, so a node that created a run prepares it without reading the version again.
pub(crate) fn version_key(app_id: &str, agent: &str, version: &str) -> String {
    format!("{app_id}/{agent}@{version}")
}

//! The event pipeline of a node: run events from the sandbox (any worker thread) and from
//! the run service go through one bounded queue to one writer task, which persists them in
//! order and then publishes them live.
//!
//! **Bound and back-pressure.** `publish` never waits for the store: a worker thread
//! must not stall on a slow database. At most `capacity` *droppable* events (`log`,
//! `emit`, `llm.delta`, `tool.*`, `fetch`) wait in the queue; past that a run's further
//! droppable events are counted instead of queued, and one `log_truncated` event
//! (`{"reason":"event_pipeline_full","dropped":n}`, numbered with the first dropped
//! event's seq) takes their place. Lifecycle events (`status`, `output`, `error`, `end`,
//! `log_truncated`) are never dropped; a run has a handful of them, so the queue stays
//! bounded by `capacity` plus a few events per run in flight.
//!
//! **Numbering.** This pipeline numbers nothing: the sandbox numbers a run's events while
//! it executes (`RunShared`), and the run service numbers the terminal events of a run
//! that ended outside the sandbox (see `dispatch::terminal_events`), after the last
//! stored one. A dropped event leaves a gap in the ids, never a duplicate.
//!
//! **The held `end`.** A run's `end` from the sandbox is held back until its record is
//! final (`release_end`), so a client that sees `end` and reads the run finds it finished.
//!
//! **Shutdown.** `flush` resolves once everything queued before it is written.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{oneshot, Notify};
use tracing::warn;

use crate::bus::{BusEvent, EventBus};
use crate::host::EventSink;
use crate::ids::now_ms;
use crate::sandbox::{EventKind, RunEvent};
use crate::store::{Store, StoredEvent};

/// Droppable events a node keeps queued before it starts dropping them.
pub const DEFAULT_CAPACITY: usize = 8192;
/// Events the writer persists in one transaction.
const BATCH: usize = 256;
/// Attempts to persist a batch before the writer gives up on it (and says so).
const WRITE_ATTEMPTS: u32 = 4;

/// Whether `kind` may be dropped under pressure; lifecycle events never are.
pub fn droppable(kind: EventKind) -> bool {
    !matches!(
        kind,
        EventKind::Status
            | EventKind::Output
            | EventKind::Error
            | EventKind::End
            | EventKind::LogTruncated
            | EventKind::Waiting
            | EventKind::Resumed
    )
}

enum Item {
    Event(RunEvent),
    /// Stands for the events of a run dropped while the queue was full; written as one
    /// `log_truncated` event with this seq (the first dropped event's).
    Dropped {
        run_id: String,
        seq: u64,
    },
    Flush(oneshot::Sender<()>),
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    /// Droppable events in `items`.
    droppable: usize,
    /// Runs with a queued `Dropped` marker, and how many events it stands for so far.
    dropped: HashMap<String, u64>,
    held_ends: HashMap<String, RunEvent>,
    /// The last handle is gone: the writer drains what is queued and stops.
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Notify,
    capacity: usize,
    dropped_total: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, item: Item) {
        self.lock().items.push_back(item);
        self.wake.notify_one();
    }
}

/// The handle the sandbox and the run service publish through.
pub struct EventPipeline {
    shared: Arc<Shared>,
}

impl EventPipeline {
    /// Starts the writer task; at most `capacity` droppable events wait in the queue.
    pub fn start(
        store: Arc<dyn Store>,
        bus: Arc<dyn EventBus>,
        capacity: usize,
    ) -> Arc<EventPipeline> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            capacity,
            dropped_total: AtomicU64::new(0),
        });
        tokio::spawn(writer(shared.clone(), store, bus));
        Arc::new(EventPipeline { shared })
    }

    /// Queues an event the run service numbered itself (a run ended outside the sandbox);
    /// never dropped.
    pub fn send(&self, event: RunEvent) {
        self.shared.push(Item::Event(event));
    }

    /// Releases a run's held `end` event, if there is one. Called whatever became of the
    /// run's record, so the end always goes out and the entry never stays behind.
    pub fn release_end(&self, run_id: &str) {
        let held = self.shared.lock().held_ends.remove(run_id);
        if let Some(event) = held {
            self.shared.push(Item::Event(event));
        }
    }

    /// Resolves once every event queued before the call is persisted and published.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        self.shared.push(Item::Flush(tx));
        let _ = rx.await;
    }

    /// Events dropped since start because the queue was full.
    pub fn dropped_total(&self) -> u64 {
        self.shared.dropped_total.load(Ordering::Relaxed)
    }

    /// `end` events waiting for their run's record to become final.
    pub fn held_ends(&self) -> usize {
        self.shared.lock().held_ends.len()
    }
}

impl Drop for EventPipeline {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

impl EventSink for EventPipeline {
    fn publish(&self, event: RunEvent) {
        let shared = &self.shared;
        let mut q = shared.lock();
        if event.kind == EventKind::End {
            q.held_ends.insert(event.run_id.clone(), event);
            return;
        }
        if droppable(event.kind) {
            if q.droppable >= shared.capacity {
                shared.dropped_total.fetch_add(1, Ordering::Relaxed);
                if let Some(count) = q.dropped.get_mut(&event.run_id) {
                    *count += 1;
                    return;
                }
                q.dropped.insert(event.run_id.clone(), 1);
                q.items.push_back(Item::Dropped {
                    run_id: event.run_id,
                    seq: event.seq,
                });
            } else {
                q.droppable += 1;
                q.items.push_back(Item::Event(event));
            }
        } else {
            q.items.push_back(Item::Event(event));
        }
        drop(q);
        shared.wake.notify_one();
    }
}

/// Takes up to a batch from the queue: the events to write and the flushes to answer
/// once they are written. `None` when the pipeline is closed and drained.
async fn next_batch(shared: &Shared) -> Option<(Vec<StoredEvent>, Vec<oneshot::Sender<()>>)> {
    loop {
        {
            let mut q = shared.lock();
            if !q.items.is_empty() {
                let (mut events, mut flushes) = (Vec::new(), Vec::new());
                while events.len() < BATCH {
                    let Some(item) = q.items.pop_front() else {
                        break;
                    };
                    match item {
                        Item::Event(event) => {
                            if droppable(event.kind) {
                                q.droppable -= 1;
                            }
                            events.push(stored(event));
                        }
                        Item::Dropped { run_id, seq } => {
                            let count = q.dropped.remove(&run_id).unwrap_or(1);
                            events.push(stored(RunEvent {
                                run_id,
                                seq,
                                kind: EventKind::LogTruncated,
                                data: json!({ "reason": "event_pipeline_full", "dropped": count }),
                            }));
                        }
                        Item::Flush(tx) => flushes.push(tx),
                    }
                }
                return Some((events, flushes));
            }
            if q.closed {
                return None;
            }
        }
        shared.wake.notified().await;
    }
}

fn stored(event: RunEvent) -> StoredEvent {
    StoredEvent {
        run_id: event.run_id,
        seq: event.seq as i64,
        kind: event.kind.as_str().to_owned(),
        data: event.data,
        created_at: now_ms(),
    }
}

async fn writer(shared: Arc<Shared>, store: Arc<dyn Store>, bus: Arc<dyn EventBus>) {
    while let Some((events, flushes)) = next_batch(&shared).await {
        if !events.is_empty() {
            persist(store.as_ref(), &events).await;
            // Persisted before published: a client that sees an event live can always
            // replay it later.
            for event in events {
                let live = BusEvent {
                    run_id: event.run_id,
                    seq: event.seq,
                    kind: event.kind,
                    data: event.data,
                };
                if let Err(e) = bus.publish(&live).await {
                    warn!(run = %live.run_id, error = %e, "could not publish a run event");
                }
            }
        }
        for flush in flushes {
            let _ = flush.send(());
        }
    }
}

/// Writes a batch, retrying a store that fails briefly (a retried batch is harmless:
/// events already stored are skipped). While it retries the queue fills and droppable
/// events are dropped, which is the back-pressure.
async fn persist(store: &dyn Store, events: &[StoredEvent]) {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=WRITE_ATTEMPTS {
        match store.append_events(events).await {
            Ok(()) => return,
            Err(e) if attempt == WRITE_ATTEMPTS => {
                warn!(events = events.len(), error = %e, "could not persist run events; they are published live only");
            }
            Err(e) => {
                warn!(attempt, error = %e, "persisting run events failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
        }
    }
}

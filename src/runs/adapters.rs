//! The sandbox's host traits over the store and the bus: memory in the database, and
//! run events persisted in order and fanned out live.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::warn;

use crate::bus::{BusEvent, EventBus};
use crate::host::{EventSink, HostError, MemoryNamespace, MemoryStore};
use crate::package::MemoryScope;
use crate::sandbox::{EventKind, RunEvent};
use crate::store::{MemoryNs, Store, StoredEvent};

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn memory_ns(ns: &MemoryNamespace) -> MemoryNs {
    let (scope, app_id, end_user) = match ns.scope {
        MemoryScope::EndUser => (
            "end_user",
            ns.app_id.clone(),
            ns.end_user.clone().unwrap_or_default(),
        ),
        MemoryScope::App => ("app", ns.app_id.clone(), String::new()),
        MemoryScope::Org => ("org", String::new(), String::new()),
    };
    MemoryNs {
        org_id: ns.org_id.clone(),
        app_id,
        scope: scope.to_owned(),
        end_user,
    }
}

/// `ctx.memory` in the database.
pub struct StoreMemory(pub Arc<dyn Store>);

fn storage(e: crate::store::StoreError) -> HostError {
    warn!(error = %e, "memory store failed");
    HostError::new("storage_unavailable", "memory storage failed; try again")
}

#[async_trait]
impl MemoryStore for StoreMemory {
    async fn get(&self, ns: &MemoryNamespace, key: &str) -> Result<Option<Value>, HostError> {
        self.0
            .memory_get(&memory_ns(ns), key)
            .await
            .map_err(storage)
    }
    async fn set(&self, ns: &MemoryNamespace, key: &str, value: Value) -> Result<(), HostError> {
        self.0
            .memory_set(&memory_ns(ns), key, &value, now_ms())
            .await
            .map_err(storage)
    }
    async fn delete(&self, ns: &MemoryNamespace, key: &str) -> Result<bool, HostError> {
        self.0
            .memory_delete(&memory_ns(ns), key)
            .await
            .map_err(storage)
    }
    async fn list(
        &self,
        ns: &MemoryNamespace,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, HostError> {
        let rows = self
            .0
            .memory_list(
                &memory_ns(ns),
                prefix,
                None,
                limit.min(u32::MAX as usize) as u32,
            )
            .await
            .map_err(storage)?;
        Ok(rows.into_iter().map(|(k, _)| k).collect())
    }
}

/// Events from the sandbox (any worker thread) go through one channel to one writer task,
/// which persists them in order and then publishes them live. A run's `end` event is held
/// back until the run's record is final, so a client that sees `end` and reads the run
/// finds it finished.
pub struct PersistingSink {
    tx: mpsc::UnboundedSender<RunEvent>,
    held_ends: Mutex<HashMap<String, RunEvent>>,
}

impl PersistingSink {
    pub fn start(store: Arc<dyn Store>, bus: Arc<dyn EventBus>) -> Arc<PersistingSink> {
        let (tx, mut rx) = mpsc::unbounded_channel::<RunEvent>();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while rx.recv_many(&mut batch, 256).await > 0 {
                let stored: Vec<StoredEvent> = batch
                    .drain(..)
                    .map(|event| StoredEvent {
                        run_id: event.run_id,
                        seq: event.seq as i64,
                        kind: event.kind.as_str().to_owned(),
                        data: event.data,
                        created_at: now_ms(),
                    })
                    .collect();
                // Persisted before published: a client that sees an event live can
                // always replay it later.
                if let Err(e) = store.append_events(&stored).await {
                    warn!(events = stored.len(), error = %e, "could not persist run events");
                }
                for event in stored {
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
        });
        Arc::new(PersistingSink {
            tx,
            held_ends: Mutex::new(HashMap::new()),
        })
    }

    /// Sends an event the run service makes itself (e.g. `node_lost`).
    pub fn send(&self, event: RunEvent) {
        let _ = self.tx.send(event);
    }

    /// Releases the held `end` event of a run, once its record is final.
    pub fn release_end(&self, run_id: &str) {
        let held = self
            .held_ends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(run_id);
        if let Some(event) = held {
            let _ = self.tx.send(event);
        }
    }
}

impl EventSink for PersistingSink {
    fn publish(&self, event: RunEvent) {
        if event.kind == EventKind::End {
            self.held_ends
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(event.run_id.clone(), event);
            return;
        }
        let _ = self.tx.send(event);
    }
}

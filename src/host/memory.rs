//! In-process implementations of the host traits, for `atoll exec`, `atoll dev` and tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde_json::Value;

use super::{
    ChatRequest, ChatResponse, DeltaSink, EventSink, HostError, LlmClient, MemoryNamespace,
    MemoryStore, StateStore, Tenant, ToolInvoker,
};
use crate::sandbox::record::RunEvent;

/// Locks a mutex even if a panicking thread poisoned it: the maps stay consistent
/// because every critical section is a single insert/remove.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
pub struct InMemoryMemory {
    spaces: Mutex<HashMap<MemoryNamespace, BTreeMap<String, Value>>>,
}

#[async_trait]
impl MemoryStore for InMemoryMemory {
    async fn get(&self, ns: &MemoryNamespace, key: &str) -> Result<Option<Value>, HostError> {
        Ok(lock(&self.spaces).get(ns).and_then(|s| s.get(key)).cloned())
    }

    async fn set(&self, ns: &MemoryNamespace, key: &str, value: Value) -> Result<(), HostError> {
        lock(&self.spaces)
            .entry(ns.clone())
            .or_default()
            .insert(key.to_owned(), value);
        Ok(())
    }

    async fn delete(&self, ns: &MemoryNamespace, key: &str) -> Result<bool, HostError> {
        Ok(lock(&self.spaces)
            .get_mut(ns)
            .is_some_and(|s| s.remove(key).is_some()))
    }

    async fn list(
        &self,
        ns: &MemoryNamespace,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, HostError> {
        let spaces = lock(&self.spaces);
        let Some(space) = spaces.get(ns) else {
            return Ok(Vec::new());
        };
        Ok(space
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, _)| k.clone())
            .collect())
    }
}

#[derive(Default)]
pub struct InMemoryState {
    states: Mutex<HashMap<(Tenant, String), Value>>,
}

#[async_trait]
impl StateStore for InMemoryState {
    async fn load(&self, tenant: &Tenant, agent: &str) -> Result<Option<Value>, HostError> {
        Ok(lock(&self.states)
            .get(&(tenant.clone(), agent.to_owned()))
            .cloned())
    }

    async fn save(&self, tenant: &Tenant, agent: &str, state: Value) -> Result<(), HostError> {
        lock(&self.states).insert((tenant.clone(), agent.to_owned()), state);
        Ok(())
    }
}

/// Keeps every event, per run, in the order published.
#[derive(Default)]
pub struct CollectingEvents {
    events: Mutex<HashMap<String, Vec<RunEvent>>>,
}

impl CollectingEvents {
    /// The events of one run so far.
    pub fn of_run(&self, run_id: &str) -> Vec<RunEvent> {
        lock(&self.events).get(run_id).cloned().unwrap_or_default()
    }

    /// Removes and returns the events of one run.
    pub fn take_run(&self, run_id: &str) -> Vec<RunEvent> {
        lock(&self.events).remove(run_id).unwrap_or_default()
    }
}

impl EventSink for CollectingEvents {
    fn publish(&self, event: RunEvent) {
        lock(&self.events)
            .entry(event.run_id.clone())
            .or_default()
            .push(event);
    }
}

/// Drops every event: for benchmarks and callers that only want the outcome.
pub struct DiscardEvents;

impl EventSink for DiscardEvents {
    fn publish(&self, _event: RunEvent) {}
}

/// The tool invoker of a host with no tools configured: every call is refused with a
/// clear error, never faked.
pub struct NoTools;

#[async_trait]
impl ToolInvoker for NoTools {
    async fn call(&self, _tenant: &Tenant, name: &str, _args: Value) -> Result<Value, HostError> {
        Err(HostError::new(
            "capability_unavailable",
            format!("tool '{name}' cannot be called: this host has no tool registry (tools come with `atoll serve`)"),
        ))
    }
}

/// The LLM client of a host with no providers configured.
pub struct NoLlm;

#[async_trait]
impl LlmClient for NoLlm {
    async fn chat(
        &self,
        _tenant: &Tenant,
        request: ChatRequest,
        _deltas: DeltaSink,
    ) -> Result<ChatResponse, HostError> {
        Err(HostError::new(
            "capability_unavailable",
            format!(
                "model '{}' cannot be called: this host has no LLM providers configured",
                request.model
            ),
        ))
    }
}

/// Waits without a server: a sleep sleeps (within the run's wall clock), and a signal is
/// one of those given up front (`atoll exec --signal NAME=JSON`), taken once, first
/// given first taken; a wait for any other is refused, since nothing could send it.
#[derive(Default)]
pub struct LocalWaits {
    signals: std::sync::Mutex<Vec<(String, Value)>>,
}

impl LocalWaits {
    pub fn with_signals(signals: Vec<(String, Value)>) -> LocalWaits {
        LocalWaits {
            signals: std::sync::Mutex::new(signals),
        }
    }
}

#[async_trait]
impl super::Waiter for LocalWaits {
    async fn wait(
        &self,
        _tenant: &super::Tenant,
        request: super::WaitRequest,
    ) -> Result<Value, HostError> {
        let Some(name) = request.name else {
            tokio::time::sleep(std::time::Duration::from_millis(request.ms)).await;
            return Ok(Value::Null);
        };
        let taken = {
            let mut signals = self.signals.lock().unwrap_or_else(|p| p.into_inner());
            signals
                .iter()
                .position(|(n, _)| *n == name)
                .map(|i| signals.remove(i).1)
        };
        match taken {
            Some(payload) => {
                if let Some(schema) = &request.schema {
                    crate::package::check_against_schema(schema, &payload).map_err(|why| {
                        HostError::new(
                            "signal_invalid",
                            format!("the signal {name} does not match the wait's schema: {why}"),
                        )
                    })?;
                }
                Ok(payload)
            }
            None => Err(HostError::new(
                "capability_unavailable",
                format!(
                    "no signal {name} can arrive here: give it to atoll exec with --signal {name}=JSON, or run on atoll serve (POST /v1/runs/{{id}}/signals/{name})"
                ),
            )),
        }
    }
}

/// A convenient bundle of in-memory services around a real fetcher.
pub fn in_memory_services(
    fetcher: Arc<dyn super::Fetcher>,
    events: Arc<dyn EventSink>,
) -> super::HostServices {
    super::HostServices {
        memory: Arc::new(InMemoryMemory::default()),
        tools: Arc::new(NoTools),
        llm: Arc::new(NoLlm),
        fetcher,
        events,
        waits: Arc::new(LocalWaits::default()),
        clock: None,
    }
}

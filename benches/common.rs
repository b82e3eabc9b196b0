//! What the sandbox benchmarks share: a tool that parks runs, a trivial package, in-memory
//! services and run requests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use atoll::broker::{AddressPolicy, HttpFetcher};
use atoll::host::memory::{DiscardEvents, InMemoryMemory, NoLlm};
use atoll::host::{HostError, HostServices, Tenant, ToolInvoker};
use atoll::package::{AgentPackage, PackageLimits};
use atoll::sandbox::{Limits, RunGrant, RunRequest};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

/// A tool that parks until released: runs awaiting it cost memory, not CPU.
pub struct ParkingTool {
    pub gate: Arc<Semaphore>,
    pub parked: AtomicU64,
}

#[async_trait]
impl ToolInvoker for ParkingTool {
    async fn call(&self, _t: &Tenant, _name: &str, args: Value) -> Result<Value, HostError> {
        self.parked.fetch_add(1, Ordering::SeqCst);
        let permit = self
            .gate
            .acquire()
            .await
            .map_err(|_| HostError::new("closed", "closed"))?;
        permit.forget();
        Ok(args)
    }
}

pub fn package(source: &str, tools: &[&str]) -> Arc<AgentPackage> {
    let manifest =
        json!({ "name": "@bench/trivial", "version": "1.0.0", "permissions": { "tools": tools } });
    let files = BTreeMap::from([("main.js".to_owned(), source.to_owned())]);
    Arc::new(AgentPackage::from_files(manifest, files, &PackageLimits::default()).expect("package"))
}

pub fn services(tools: Arc<dyn ToolInvoker>) -> HostServices {
    HostServices {
        memory: Arc::new(InMemoryMemory::default()),
        tools,
        llm: Arc::new(NoLlm),
        fetcher: Arc::new(HttpFetcher::new(AddressPolicy::default()).expect("fetcher")),
        events: Arc::new(DiscardEvents),
        waits: Arc::new(atoll::host::memory::LocalWaits::default()),
        clock: None,
    }
}

pub fn request(pkg: &Arc<AgentPackage>, services: &HostServices, n: u64) -> RunRequest {
    RunRequest {
        run_id: format!("run_{n}"),
        package: pkg.clone(),
        tenant: Tenant {
            org_id: "o".into(),
            app_id: "a".into(),
            end_user: Some("u".into()),
        },
        input: json!({ "n": n }),
        state: None,
        grant: RunGrant::from_manifest(&pkg.manifest, &Limits::default()),
        services: services.clone(),
        trigger: "bench".into(),
        attempt: 1,
        events_before: 0,
        journal: None,
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

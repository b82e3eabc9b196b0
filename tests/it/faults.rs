//! A [`Store`] test double: delegates to a real store, and fails (or refuses, or holds)
//! chosen methods on demand, to show what the server does when its database misbehaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use atoll::store::*;
use serde_json::Value;

mod hooks;

/// The calls of one method to spoil: after letting `skip` through, the next `times`.
#[derive(Debug, Clone, Copy)]
struct Fault {
    skip: usize,
    times: usize,
    /// Answer `false` without reaching the store (`finish_run`) instead of failing.
    refuse: bool,
}

pub struct FaultyStore {
    inner: Arc<dyn Store>,
    faults: Mutex<HashMap<&'static str, Fault>>,
    fired: Mutex<HashMap<&'static str, usize>>,
    /// `append_events` waits while this is false.
    gate: tokio::sync::watch::Sender<bool>,
    /// How long some calls take before they reach the store (`slow`).
    delays: Mutex<HashMap<&'static str, std::time::Duration>>,
}

/// The text of every injected error: it must never reach a client or a run record.
pub const INJECTED: &str = "injected fault: connection reset by peer";

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<FaultyStore> {
        Arc::new(FaultyStore {
            inner,
            faults: Mutex::default(),
            fired: Mutex::default(),
            gate: tokio::sync::watch::channel(true).0,
            delays: Mutex::default(),
        })
    }

    /// The next `times` calls of `method` fail.
    pub fn fail(&self, method: &'static str, times: usize) {
        self.fail_after(method, 0, times);
    }

    /// After `skip` calls of `method` succeed, the next `times` fail.
    pub fn fail_after(&self, method: &'static str, skip: usize, times: usize) {
        self.set(
            method,
            Fault {
                skip,
                times,
                refuse: false,
            },
        );
    }

    /// The next `times` calls of `method` answer false (only `finish_run` looks).
    pub fn refuse(&self, method: &'static str, times: usize) {
        self.set(
            method,
            Fault {
                skip: 0,
                times,
                refuse: true,
            },
        );
    }

    /// How many injected faults of `method` have fired.
    pub fn fired(&self, method: &str) -> usize {
        self.fired
            .lock()
            .expect("lock")
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// Makes every call of `method` wait `delay` first. Honoured by `state_get` (a
    /// claimed run stays `running` but not yet in the sandbox that long) and
    /// `suspend_run` (a parking run stays `running` after its `waiting` event).
    pub fn slow(&self, method: &'static str, delay: std::time::Duration) {
        self.delays.lock().expect("lock").insert(method, delay);
    }

    pub(crate) async fn pause(&self, method: &'static str) {
        let delay = self.delays.lock().expect("lock").get(method).copied();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
    }

    /// Holds every `append_events` call until [`FaultyStore::open_events`].
    pub fn hold_events(&self) {
        self.gate.send_replace(false);
    }

    pub fn open_events(&self) {
        self.gate.send_replace(true);
    }

    fn set(&self, method: &'static str, fault: Fault) {
        self.faults.lock().expect("lock").insert(method, fault);
    }

    /// Whether this call of `method` is spoiled with a fault of the `refuse` kind.
    fn take(&self, method: &'static str, refuse: bool) -> bool {
        let mut faults = self.faults.lock().expect("lock");
        let Some(fault) = faults.get_mut(method).filter(|f| f.refuse == refuse) else {
            return false;
        };
        if fault.skip > 0 {
            fault.skip -= 1;
            return false;
        }
        if fault.times == 0 {
            return false;
        }
        fault.times -= 1;
        *self.fired.lock().expect("lock").entry(method).or_default() += 1;
        true
    }

    fn check(&self, method: &'static str) -> StoreResult<()> {
        if self.take(method, false) {
            return Err(StoreError::Database(format!("{INJECTED} ({method})")));
        }
        Ok(())
    }

    fn refused(&self, method: &'static str) -> bool {
        self.take(method, true)
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn ping(&self) -> StoreResult<()> {
        self.check("ping")?;
        self.inner.ping().await
    }
    async fn create_org(&self, org: &Org) -> StoreResult<()> {
        self.check("create_org")?;
        self.inner.create_org(org).await
    }
    async fn get_org(&self, id: &str) -> StoreResult<Option<Org>> {
        self.check("get_org")?;
        self.inner.get_org(id).await
    }
    async fn create_app(&self, app: &App) -> StoreResult<()> {
        self.check("create_app")?;
        self.inner.create_app(app).await
    }
    async fn get_app(&self, org_id: &str, id: &str) -> StoreResult<Option<App>> {
        self.check("get_app")?;
        self.inner.get_app(org_id, id).await
    }
    async fn list_apps(&self, org_id: &str, page: &Page) -> StoreResult<Vec<App>> {
        self.check("list_apps")?;
        self.inner.list_apps(org_id, page).await
    }
    async fn create_api_key(&self, key: &ApiKey, hash: &str) -> StoreResult<()> {
        self.check("create_api_key")?;
        self.inner.create_api_key(key, hash).await
    }
    async fn find_api_key(&self, hash: &str) -> StoreResult<Option<ApiKey>> {
        self.check("find_api_key")?;
        self.inner.find_api_key(hash).await
    }
    async fn list_api_keys(
        &self,
        org_id: &str,
        app_id: Option<&str>,
        page: &Page,
    ) -> StoreResult<Vec<ApiKey>> {
        self.check("list_api_keys")?;
        self.inner.list_api_keys(org_id, app_id, page).await
    }
    async fn revoke_api_key(
        &self,
        org_id: &str,
        app_id: Option<&str>,
        id: &str,
        at: Millis,
        rule: RevokeRule,
    ) -> StoreResult<KeyRevoke> {
        self.check("revoke_api_key")?;
        self.inner
            .revoke_api_key(org_id, app_id, id, at, rule)
            .await
    }
    async fn upsert_end_user(
        &self,
        app_id: &str,
        external_id: &str,
        new_id: &str,
        now: Millis,
    ) -> StoreResult<EndUser> {
        self.check("upsert_end_user")?;
        self.inner
            .upsert_end_user(app_id, external_id, new_id, now)
            .await
    }
    async fn put_agent_version(&self, version: &AgentVersion) -> StoreResult<PutVersion> {
        self.check("put_agent_version")?;
        self.inner.put_agent_version(version).await
    }
    async fn get_agent(&self, app_id: &str, name: &str) -> StoreResult<Option<Agent>> {
        self.check("get_agent")?;
        self.inner.get_agent(app_id, name).await
    }
    async fn list_agents(&self, app_id: &str, page: &Page) -> StoreResult<Vec<Agent>> {
        self.check("list_agents")?;
        self.inner.list_agents(app_id, page).await
    }
    async fn get_agent_version(
        &self,
        app_id: &str,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<AgentVersion>> {
        self.check("get_agent_version")?;
        self.inner.get_agent_version(app_id, name, version).await
    }
    async fn list_agent_versions(
        &self,
        app_id: &str,
        name: &str,
    ) -> StoreResult<Vec<AgentVersion>> {
        self.check("list_agent_versions")?;
        self.inner.list_agent_versions(app_id, name).await
    }
    async fn set_agent_version_deprecated(
        &self,
        app_id: &str,
        name: &str,
        version: &str,
        at: Option<Millis>,
    ) -> StoreResult<bool> {
        self.check("set_agent_version_deprecated")?;
        self.inner
            .set_agent_version_deprecated(app_id, name, version, at)
            .await
    }
    async fn delete_agent_version(
        &self,
        app_id: &str,
        name: &str,
        version: &str,
        at: Millis,
    ) -> StoreResult<DeleteVersion> {
        self.check("delete_agent_version")?;
        self.inner
            .delete_agent_version(app_id, name, version, at)
            .await
    }
    async fn insert_run_audited(
        &self,
        run: &RunRow,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<()> {
        self.check("insert_run_audited")?;
        self.inner.insert_run_audited(run, audit).await
    }
    async fn get_run(&self, app_id: &str, id: &str) -> StoreResult<Option<RunRow>> {
        self.check("get_run")?;
        self.inner.get_run(app_id, id).await
    }
    async fn list_runs(
        &self,
        app_id: &str,
        filter: &RunFilter,
        page: &Page,
    ) -> StoreResult<Vec<RunRow>> {
        self.check("list_runs")?;
        self.inner.list_runs(app_id, filter, page).await
    }
    async fn claim_queued_runs(
        &self,
        node: &str,
        limit: u32,
        now: Millis,
        lease_until: Millis,
    ) -> StoreResult<Vec<RunRow>> {
        self.check("claim_queued_runs")?;
        self.inner
            .claim_queued_runs(node, limit, now, lease_until)
            .await
    }
    async fn claim_run(
        &self,
        id: &str,
        node: &str,
        now: Millis,
        lease_until: Millis,
    ) -> StoreResult<Option<RunRow>> {
        self.check("claim_run")?;
        self.inner.claim_run(id, node, now, lease_until).await
    }
    async fn renew_leases(
        &self,
        node: &str,
        run_ids: &[String],
        lease_until: Millis,
    ) -> StoreResult<()> {
        self.check("renew_leases")?;
        self.inner.renew_leases(node, run_ids, lease_until).await
    }
    async fn expired_runs(&self, now: Millis, limit: u32) -> StoreResult<Vec<RunRow>> {
        self.check("expired_runs")?;
        self.inner.expired_runs(now, limit).await
    }
    async fn requeue_run(&self, id: &str, expected_owner: &str, attempt: i32) -> StoreResult<bool> {
        self.check("requeue_run")?;
        self.inner.requeue_run(id, expected_owner, attempt).await
    }
    async fn finish_run(&self, id: &str, finish: &RunFinish) -> StoreResult<bool> {
        self.check("finish_run")?;
        if self.refused("finish_run") {
            return Ok(false);
        }
        self.inner.finish_run(id, finish).await
    }
    async fn finish_queued_run(&self, id: &str, finish: &RunFinish) -> StoreResult<bool> {
        self.check("finish_run")?;
        if self.refused("finish_run") {
            return Ok(false);
        }
        self.inner.finish_queued_run(id, finish).await
    }
    async fn finish_waiting_run(&self, id: &str, finish: &RunFinish) -> StoreResult<bool> {
        self.check("finish_run")?;
        self.inner.finish_waiting_run(id, finish).await
    }
    async fn runs_of_node(&self, node: &str) -> StoreResult<Vec<RunRow>> {
        self.check("runs_of_node")?;
        self.inner.runs_of_node(node).await
    }
    async fn queue_depth(&self) -> StoreResult<i64> {
        self.check("queue_depth")?;
        self.inner.queue_depth().await
    }
    async fn append_event(&self, event: &StoredEvent) -> StoreResult<()> {
        self.check("append_event")?;
        self.inner.append_event(event).await
    }
    async fn append_events(&self, events: &[StoredEvent]) -> StoreResult<()> {
        self.check("append_events")?;
        let mut open = self.gate.subscribe();
        let _ = open.wait_for(|open| *open).await;
        self.inner.append_events(events).await
    }
    async fn last_event(&self, run_id: &str) -> StoreResult<Option<StoredEvent>> {
        self.check("last_event")?;
        self.inner.last_event(run_id).await
    }
    async fn events_after(
        &self,
        run_id: &str,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        self.check("events_after")?;
        self.inner.events_after(run_id, after, limit).await
    }
    async fn memory_get(&self, ns: &MemoryNs, key: &str) -> StoreResult<Option<Value>> {
        self.check("memory_get")?;
        self.inner.memory_get(ns, key).await
    }
    async fn memory_set(
        &self,
        ns: &MemoryNs,
        key: &str,
        value: &Value,
        now: Millis,
    ) -> StoreResult<()> {
        self.check("memory_set")?;
        self.inner.memory_set(ns, key, value, now).await
    }
    async fn memory_delete(&self, ns: &MemoryNs, key: &str) -> StoreResult<bool> {
        self.check("memory_delete")?;
        self.inner.memory_delete(ns, key).await
    }
    async fn memory_list(
        &self,
        ns: &MemoryNs,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<(String, Value)>> {
        self.check("memory_list")?;
        self.inner.memory_list(ns, prefix, after, limit).await
    }
    async fn state_get(
        &self,
        app_id: &str,
        agent: &str,
        end_user: &str,
    ) -> StoreResult<Option<Value>> {
        self.check("state_get")?;
        self.pause("state_get").await;
        self.inner.state_get(app_id, agent, end_user).await
    }
    async fn state_set(
        &self,
        app_id: &str,
        agent: &str,
        end_user: &str,
        state: &Value,
        now: Millis,
    ) -> StoreResult<()> {
        self.check("state_set")?;
        self.inner
            .state_set(app_id, agent, end_user, state, now)
            .await
    }
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        self.check("append_audit")?;
        self.inner.append_audit(event).await
    }
    async fn list_audit(
        &self,
        org_id: &str,
        app_id: Option<&str>,
        page: &Page,
    ) -> StoreResult<Vec<AuditEvent>> {
        self.check("list_audit")?;
        self.inner.list_audit(org_id, app_id, page).await
    }
    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
        now: Millis,
    ) -> StoreResult<IdempotencyBegin> {
        self.check("idempotency_begin")?;
        self.inner
            .idempotency_begin(scope, key, request_hash, now)
            .await
    }
    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        body: &str,
    ) -> StoreResult<()> {
        self.check("idempotency_complete")?;
        self.inner
            .idempotency_complete(scope, key, status, body)
            .await
    }
    async fn idempotency_abandon(&self, scope: &str, key: &str) -> StoreResult<()> {
        self.check("idempotency_abandon")?;
        self.inner.idempotency_abandon(scope, key).await
    }
    async fn idempotency_purge(&self, before: Millis) -> StoreResult<u64> {
        self.check("idempotency_purge")?;
        self.inner.idempotency_purge(before).await
    }
    async fn usage(
        &self,
        org_id: &str,
        app_id: Option<&str>,
        since: Millis,
    ) -> StoreResult<UsageTotals> {
        self.check("usage")?;
        self.inner.usage(org_id, app_id, since).await
    }
    async fn put_connection(&self, connection: &ConnectionRow) -> StoreResult<()> {
        self.check("put_connection")?;
        self.inner.put_connection(connection).await
    }
    async fn get_connection(
        &self,
        app_id: &str,
        name: &str,
        end_user: &str,
    ) -> StoreResult<Option<ConnectionRow>> {
        self.check("get_connection")?;
        self.inner.get_connection(app_id, name, end_user).await
    }
    async fn list_connections(&self, app_id: &str) -> StoreResult<Vec<ConnectionRow>> {
        self.check("list_connections")?;
        self.inner.list_connections(app_id).await
    }
    async fn delete_connection(
        &self,
        app_id: &str,
        name: &str,
        end_user: &str,
    ) -> StoreResult<bool> {
        self.check("delete_connection")?;
        self.inner.delete_connection(app_id, name, end_user).await
    }
    async fn put_tool(&self, tool: &ToolRow) -> StoreResult<()> {
        self.check("put_tool")?;
        self.inner.put_tool(tool).await
    }
    async fn get_tool(&self, app_id: &str, name: &str) -> StoreResult<Option<ToolRow>> {
        self.check("get_tool")?;
        self.inner.get_tool(app_id, name).await
    }
    async fn list_tools(&self, app_id: &str) -> StoreResult<Vec<ToolRow>> {
        self.check("list_tools")?;
        self.inner.list_tools(app_id).await
    }
    async fn delete_tool(&self, app_id: &str, name: &str) -> StoreResult<bool> {
        self.check("delete_tool")?;
        self.inner.delete_tool(app_id, name).await
    }
}

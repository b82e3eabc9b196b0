//! Persistence: one [`Store`] interface, implemented over sqlx for PostgreSQL
//! (`DATABASE_URL=postgres://...`) and embedded SQLite (the default).
//!
//! Every method that touches tenant data takes the tenant (org and/or app) it is scoped
//! to and filters on it in SQL: a row of another tenant is never returned, changed or
//! deleted, whatever id the caller passes.
//!
//! Times are Unix milliseconds (`i64`); JSON documents are `serde_json::Value`, stored as
//! text so the SQL stays portable between the two engines.

mod durable;
mod hooks;
mod sql;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::status::RunStatus;
pub use durable::*;
pub use hooks::*;
pub use sql::{Backend, SqlStore};

pub type Millis = i64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write; the string names the constraint/entity.
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({ "id": "org_01hx", "name": "Acme", "created_at": 1764892800000_i64 }))]
pub struct Org {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({ "id": "app_01hx", "org_id": "org_01hx", "name": "support", "settings": {}, "created_at": 1764892800000_i64 }))]
pub struct App {
    pub id: String,
    pub org_id: String,
    pub name: String,
    /// Per-app settings (limit ceilings, quotas), free-form JSON object.
    #[schema(value_type = Object)]
    pub settings: Value,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    Org,
    App,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({ "id": "key_01hx", "org_id": "org_01hx", "app_id": "app_01hx", "kind": "app", "name": "backend", "prefix": "atl_k3j9x2ab", "scopes": ["*"], "created_at": 1764892800000_i64, "revoked_at": null }))]
pub struct ApiKey {
    pub id: String,
    pub org_id: String,
    /// Set for app keys.
    pub app_id: Option<String>,
    pub kind: KeyKind,
    pub name: String,
    /// The first characters of the secret, shown in listings (`atl_ab12...`).
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndUser {
    pub id: String,
    pub app_id: String,
    pub external_id: String,
    pub created_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({ "app_id": "app_01hx", "name": "@acme/hello", "created_at": 1764892800000_i64 }))]
pub struct Agent {
    pub app_id: String,
    /// `@scope/name`.
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentVersion {
    pub app_id: String,
    pub name: String,
    pub version: String,
    pub manifest: Value,
    /// `{ "path": "text", ... }` — everything but agent.json.
    pub files: Value,
    /// Content digest; the same upload twice is idempotent, other content is a conflict.
    pub digest: String,
    pub created_at: Millis,
    /// Set once deprecated: `latest` skips it; a run may still pin it.
    #[serde(default)]
    pub deprecated_at: Option<Millis>,
}

/// Whether a revoke may take an app's last key that manages keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeRule {
    Any,
    KeepAppReachable,
}

/// What revoking a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRevoke {
    Revoked,
    NotFound,
    /// It is the app's last live key that can manage keys: kept.
    LastKeyOfApp,
}

/// What deleting a version found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteVersion {
    Deleted,
    NotFound,
    /// A run that has not ended uses it (queued, running or waiting): kept.
    InUse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutVersion {
    Created,
    /// The version existed with the same digest: nothing changed.
    Unchanged,
    /// The version existed with other content: nothing changed.
    Conflict,
    /// The version number was used and deleted: it is never given to other content.
    Deleted,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub id: String,
    pub org_id: String,
    pub app_id: String,
    pub agent: String,
    pub version: String,
    pub end_user: Option<String>,
    pub trigger: String,
    pub status: RunStatus,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<Value>,
    pub metadata: Option<Value>,
    pub usage: Option<Value>,
    pub attempt: i32,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    /// The node holding the run while it is `running`, and until when.
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<Millis>,
}

/// How a run ended, as written by [`Store::finish_run`].
#[derive(Debug, Clone, PartialEq)]
pub struct RunFinish {
    /// A final status.
    pub status: RunStatus,
    /// The attempt this ending belongs to: a node that lost its lease (the run was
    /// requeued, so its attempt moved on) cannot overwrite the next attempt's record.
    pub attempt: i32,
    pub output: Option<Value>,
    pub error: Option<Value>,
    pub usage: Option<Value>,
    pub finished_at: Millis,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    pub agent: Option<String>,
    pub status: Option<RunStatus>,
    pub end_user: Option<String>,
}

/// Keyset pagination: newest first; `after` is the (created_at, id) of the last row of
/// the previous page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub limit: u32,
    pub after: Option<(Millis, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredEvent {
    pub run_id: String,
    pub seq: i64,
    pub kind: String,
    pub data: Value,
    pub created_at: i64,
}

/// One memory namespace: `scope` is end_user, app or org; `end_user` is set for the
/// end_user scope only; `app_id` is empty for the org scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemoryNs {
    pub org_id: String,
    pub app_id: String,
    pub scope: String,
    pub end_user: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({ "id": "aud_01hx", "org_id": "org_01hx", "app_id": "app_01hx", "key_id": "key_01hx", "action": "run.create", "target": "run_01hx", "detail": { "agent": "@acme/hello", "version": "1.0.0" }, "created_at": 1764892800000_i64 }))]
pub struct AuditEvent {
    pub id: String,
    pub org_id: String,
    pub app_id: Option<String>,
    pub key_id: Option<String>,
    pub action: String,
    pub target: String,
    #[schema(value_type = Object)]
    pub detail: Value,
    pub created_at: i64,
}

impl AuditEvent {
    /// An event of the system itself (a trigger firing, an endpoint disabled): no key.
    pub fn by_system(
        org_id: &str,
        app_id: &str,
        action: &str,
        target: &str,
        detail: Value,
        at: Millis,
    ) -> AuditEvent {
        AuditEvent {
            id: crate::ids::new_id("aud"),
            org_id: org_id.to_owned(),
            app_id: Some(app_id.to_owned()),
            key_id: None,
            action: action.to_owned(),
            target: target.to_owned(),
            detail,
            created_at: at,
        }
    }
}

/// What a POST with an `Idempotency-Key` finds when it starts.
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyBegin {
    /// First use of the key: the caller proceeds and later calls `idempotency_complete`.
    Started,
    /// Same key, same request, finished: replay this response.
    Replay { status: u16, body: String },
    /// Same key, same request, still being processed.
    InProgress,
    /// Same key, different request body.
    Mismatch,
}

/// A connection: `public` is what GET shows (type, hosts, provider, fingerprint...);
/// `sealed` is the secret, encrypted by the server before it gets here.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRow {
    pub app_id: String,
    pub name: String,
    /// Empty for the app's own connection; an end-user's external id for theirs.
    pub end_user: String,
    pub public: Value,
    pub sealed: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// An HTTP tool: `spec` holds description, schemas, method, URL and connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRow {
    pub app_id: String,
    pub name: String,
    pub spec: Value,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageTotals {
    pub runs: i64,
    pub cpu_ms: f64,
    pub llm_tokens_in: i64,
    pub llm_tokens_out: i64,
    pub fetches: i64,
}

/// Webhook and trigger rows are in [`HookStore`], durable runs' rows in [`DurableStore`];
/// every store is both.
#[async_trait]
pub trait Store: HookStore + DurableStore + Send + Sync {
    /// Reachability, for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    async fn create_org(&self, org: &Org) -> StoreResult<()>;
    async fn get_org(&self, id: &str) -> StoreResult<Option<Org>>;

    async fn create_app(&self, app: &App) -> StoreResult<()>;
    async fn get_app(&self, org_id: &str, id: &str) -> StoreResult<Option<App>>;
    async fn list_apps(&self, org_id: &str, page: &Page) -> StoreResult<Vec<App>>;

    /// `hash` is the SHA-256 hex of the secret; the secret itself is never stored.
    async fn create_api_key(&self, key: &ApiKey, hash: &str) -> StoreResult<()>;
    /// A key that is not revoked, by the hash of its secret.
    async fn find_api_key(&self, hash: &str) -> StoreResult<Option<ApiKey>>;
    /// Keys of an org (app_id None: all of the org's keys) or of one app.
    async fn list_api_keys(
        &self,
        org_id: &str,
        app_id: Option<&str>,
        page: &Page,
    ) -> StoreResult<Vec<ApiKey>>;
    /// Revokes a key of this org (and of this app when `app_id` is set). With
    /// [`RevokeRule::KeepAppReachable`] an app key is revoked only if another live key
    /// of its app has scope `*` (the one that can make any key again), decided under the app's row
    /// lock so that racing revokes cannot leave the app without one. Revoking a revoked
    /// key keeps its first time.
    async fn revoke_api_key(
        &self,
        org_id: &str,
        app_id: Option<&str>,
        id: &str,
        at: Millis,
        rule: RevokeRule,
    ) -> StoreResult<KeyRevoke>;

    /// The end-user with this external id, created (with `new_id`) if missing.
    async fn upsert_end_user(
        &self,
        app_id: &str,
        external_id: &str,
        new_id: &str,
        now: Millis,
    ) -> StoreResult<EndUser>;

    /// Creates the agent if needed and stores the version, unless it exists.
    async fn put_agent_version(&self, version: &AgentVersion) -> StoreResult<PutVersion>;
    async fn get_agent(&self, app_id: &str, name: &str) -> StoreResult<Option<Agent>>;
    async fn list_agents(&self, app_id: &str, page: &Page) -> StoreResult<Vec<Agent>>;
    async fn get_agent_version(
        &self,
        app_id: &str,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<AgentVersion>>;
    /// Every version of an agent, in upload order, without its files (`files` is `{}`;
    /// [`Store::get_agent_version`] has them).
    async fn list_agent_versions(&self, app_id: &str, name: &str)
        -> StoreResult<Vec<AgentVersion>>;
    /// Deprecates (`at`) or undeprecates (`None`) a version; false when there is none.
    async fn set_agent_version_deprecated(
        &self,
        app_id: &str,
        name: &str,
        version: &str,
        at: Option<Millis>,
    ) -> StoreResult<bool>;
    /// Deletes a version unless a run that has not ended uses it: a tombstone stays, so
    /// the number is never reused; reads no longer find it.
    async fn delete_agent_version(
        &self,
        app_id: &str,
        name: &str,
        version: &str,
        at: Millis,
    ) -> StoreResult<DeleteVersion>;
    /// The highest version of an agent that is not deprecated (semver order; names that
    /// are not semver last).
    async fn latest_agent_version(
        &self,
        app_id: &str,
        name: &str,
    ) -> StoreResult<Option<AgentVersion>> {
        let mut versions = self.list_agent_versions(app_id, name).await?;
        versions.retain(|v| v.deprecated_at.is_none());
        versions.sort_by(|a, b| {
            match (
                semver::Version::parse(&a.version),
                semver::Version::parse(&b.version),
            ) {
                (Ok(a), Ok(b)) => a.cmp(&b),
                _ => a.version.cmp(&b.version),
            }
        });
        match versions.pop() {
            Some(latest) => self.get_agent_version(app_id, name, &latest.version).await,
            None => Ok(None),
        }
    }

    /// Inserts a run and, when given, the audit event of its creation in the same
    /// transaction: both are stored or neither is.
    async fn insert_run_audited(&self, run: &RunRow, audit: Option<&AuditEvent>)
        -> StoreResult<()>;
    async fn insert_run(&self, run: &RunRow) -> StoreResult<()> {
        self.insert_run_audited(run, None).await
    }
    async fn get_run(&self, app_id: &str, id: &str) -> StoreResult<Option<RunRow>>;
    async fn list_runs(
        &self,
        app_id: &str,
        filter: &RunFilter,
        page: &Page,
    ) -> StoreResult<Vec<RunRow>>;
    /// Atomically moves up to `limit` queued runs (oldest first) to running, leased to
    /// `node` until `lease_until`; two nodes never claim the same run.
    async fn claim_queued_runs(
        &self,
        node: &str,
        limit: u32,
        now: Millis,
        lease_until: Millis,
    ) -> StoreResult<Vec<RunRow>>;
    /// Claims one specific queued run (for a node that just accepted it); None if gone.
    async fn claim_run(
        &self,
        id: &str,
        node: &str,
        now: Millis,
        lease_until: Millis,
    ) -> StoreResult<Option<RunRow>>;
    /// Extends the leases `node` holds on these runs.
    async fn renew_leases(
        &self,
        node: &str,
        run_ids: &[String],
        lease_until: Millis,
    ) -> StoreResult<()>;
    /// Running runs whose lease expired before `now`.
    async fn expired_runs(&self, now: Millis, limit: u32) -> StoreResult<Vec<RunRow>>;
    /// Puts an expired running run back in the queue with `attempt` (compare-and-set on
    /// status running and the old lease owner); false if it changed meanwhile.
    async fn requeue_run(&self, id: &str, expected_owner: &str, attempt: i32) -> StoreResult<bool>;
    /// Finishes a run that is queued or running; false if it had already ended.
    async fn finish_run(&self, id: &str, finish: &RunFinish) -> StoreResult<bool>;
    /// Finishes a run only while it is still queued (a cancel that must not race a
    /// claim); false if a node claimed it or it ended.
    async fn finish_queued_run(&self, id: &str, finish: &RunFinish) -> StoreResult<bool>;
    /// Finishes a run only while it is still waiting (a cancel that must not race a
    /// resume); false if it resumed or ended.
    async fn finish_waiting_run(&self, id: &str, finish: &RunFinish) -> StoreResult<bool>;
    /// Runs queued or running on `node` (used at shutdown).
    async fn runs_of_node(&self, node: &str) -> StoreResult<Vec<RunRow>>;
    /// Number of queued runs, for metrics.
    async fn queue_depth(&self) -> StoreResult<i64>;

    /// Appends an event; (run_id, seq) is unique.
    async fn append_event(&self, event: &StoredEvent) -> StoreResult<()>;
    /// Appends several events at once (one transaction where the backend has them);
    /// events already stored are skipped.
    async fn append_events(&self, events: &[StoredEvent]) -> StoreResult<()> {
        for event in events {
            match self.append_event(event).await {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    /// The event with the highest seq of a run (where a new numbering must continue).
    async fn last_event(&self, run_id: &str) -> StoreResult<Option<StoredEvent>>;
    /// Events with seq > `after`, in order, at most `limit`.
    async fn events_after(
        &self,
        run_id: &str,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>>;

    async fn memory_get(&self, ns: &MemoryNs, key: &str) -> StoreResult<Option<Value>>;
    async fn memory_set(
        &self,
        ns: &MemoryNs,
        key: &str,
        value: &Value,
        now: Millis,
    ) -> StoreResult<()>;
    async fn memory_delete(&self, ns: &MemoryNs, key: &str) -> StoreResult<bool>;
    /// Keys starting with `prefix`, ascending, after `after` (exclusive), at most `limit`.
    async fn memory_list(
        &self,
        ns: &MemoryNs,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<(String, Value)>>;

    async fn state_get(
        &self,
        app_id: &str,
        agent: &str,
        end_user: &str,
    ) -> StoreResult<Option<Value>>;
    async fn state_set(
        &self,
        app_id: &str,
        agent: &str,
        end_user: &str,
        state: &Value,
        now: Millis,
    ) -> StoreResult<()>;

    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Audit events of an org (app_id None) or one app, newest first.
    async fn list_audit(
        &self,
        org_id: &str,
        app_id: Option<&str>,
        page: &Page,
    ) -> StoreResult<Vec<AuditEvent>>;

    /// Records the start of an idempotent request under (`scope`, `key`).
    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
        now: Millis,
    ) -> StoreResult<IdempotencyBegin>;
    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        body: &str,
    ) -> StoreResult<()>;
    /// Forgets an unfinished record (the request failed before producing a response).
    async fn idempotency_abandon(&self, scope: &str, key: &str) -> StoreResult<()>;
    /// Deletes records created before `before`.
    async fn idempotency_purge(&self, before: Millis) -> StoreResult<u64>;

    /// Totals over finished runs of an org (or one app) since `since`.
    async fn usage(
        &self,
        org_id: &str,
        app_id: Option<&str>,
        since: Millis,
    ) -> StoreResult<UsageTotals>;

    /// Creates or replaces a connection of an app (or of one of its end-users).
    async fn put_connection(&self, connection: &ConnectionRow) -> StoreResult<()>;
    async fn get_connection(
        &self,
        app_id: &str,
        name: &str,
        end_user: &str,
    ) -> StoreResult<Option<ConnectionRow>>;
    async fn list_connections(&self, app_id: &str) -> StoreResult<Vec<ConnectionRow>>;
    async fn delete_connection(
        &self,
        app_id: &str,
        name: &str,
        end_user: &str,
    ) -> StoreResult<bool>;

    async fn put_tool(&self, tool: &ToolRow) -> StoreResult<()>;
    async fn get_tool(&self, app_id: &str, name: &str) -> StoreResult<Option<ToolRow>>;
    async fn list_tools(&self, app_id: &str) -> StoreResult<Vec<ToolRow>>;
    async fn delete_tool(&self, app_id: &str, name: &str) -> StoreResult<bool>;
}

//! [`SqlStore`]: the [`Store`] over sqlx's `Any` driver, for PostgreSQL and SQLite.
//!
//! One implementation serves both engines: the SQL is portable (times are BIGINT millis,
//! JSON is TEXT, ids come from the application, `$n` placeholders, `ON CONFLICT`,
//! `RETURNING`, row-value comparisons), so both backends run the same statements and the
//! same test suite checks them. Where the engines differ the code branches on
//! [`Backend`]: the migrations (one directory per dialect), connection setup (SQLite
//! pragmas, pool sizes) and claiming (`FOR UPDATE SKIP LOCKED` on PostgreSQL).
//!
//! Operations are single statements, short sequences of autocommit statements (insert,
//! then read what won), or transactions that start with their write: a version upload,
//! a run with its audit event or firing row, and every run change with the webhook
//! deliveries announcing it (`webhooks::announce`). SQLite then never has to upgrade a
//! read transaction to a write one, which is what fails with "database is locked"
//! despite the busy timeout.
//!
//! # Layout
//! - `tenants`: orgs, apps, API keys, end-users, audit events.
//! - `agents`: agents, their versions, per-agent state.
//! - `runs`: runs, leases, usage totals.
//! - `events`: run events.
//! - `kv`: memory and idempotency records.
//! - `webhooks`: webhook endpoints, deliveries (written with the run changes they
//!   announce) and attempts.
//! - `deliveries`: claiming deliveries, their attempts and log.
//! - `durable`: journals, signals and waits of durable runs.
//! - `triggers`: triggers and the firing that started each triggered run.
//! - `util`: error mapping, column reads, keyset bounds.

mod agents;
mod broker;
mod deliveries;
mod durable;
mod events;
mod fair;
mod hook_store;
mod kv;
mod runs;
mod tenants;
mod triggers;
mod util;
mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

use super::*;

static PG_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a SQLite writer waits for the write lock before giving up (10 s).
const SQLITE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 10000";

/// Which engine a [`SqlStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// The store over a connection pool. Cloning is cheap and shares the pool.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
}

impl SqlStore {
    /// Connects to `postgres://...` (or `postgresql://...`), `sqlite://<path>` (the file is
    /// created if missing) or `sqlite::memory:`, and applies the pending migrations.
    pub async fn connect(url: &str) -> StoreResult<SqlStore> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else if url.starts_with("sqlite:") {
            (Backend::Sqlite, sqlite_url(url))
        } else {
            return Err(StoreError::Database(format!(
                "unsupported database URL (expected postgres://... or sqlite:...): {}",
                redact(url)
            )));
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Database(format!("bad database URL: {e}")))?;
        let pool = match backend {
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(16)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(|e| connect_error(&url, e))?,
            Backend::Sqlite => {
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                // An in-memory database lives as long as its one connection: never let the
                // pool close it, and never open a second one (it would see another database).
                let opts = if in_memory {
                    AnyPoolOptions::new()
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None)
                } else {
                    // One connection: SQLite has one writer at a time, and a second
                    // connection that finds the database locked sleeps in its busy handler
                    // (1, 2, 5, 10 ms ...) instead of queueing. Queued on the pool, writes
                    // wait only as long as the one before them: +24 % runs/s in the HTTP
                    // benchmark, every statement being short.
                    AnyPoolOptions::new().max_connections(1).min_connections(0)
                };
                opts.acquire_timeout(Duration::from_secs(30))
                    .after_connect(move |conn, _meta| {
                        Box::pin(async move {
                            conn.execute(SQLITE_BUSY_TIMEOUT).await?;
                            if !in_memory {
                                conn.execute("PRAGMA journal_mode = WAL").await?;
                                conn.execute("PRAGMA synchronous = NORMAL").await?;
                            }
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await
                    .map_err(|e| connect_error(&url, e))?
            }
        };
        let migrator = match backend {
            Backend::Postgres => &PG_MIGRATIONS,
            Backend::Sqlite => &SQLITE_MIGRATIONS,
        };
        migrator.run(&pool).await.map_err(|e| {
            StoreError::Database(format!("migrating the {} database: {e}", backend.name()))
        })?;
        tracing::info!(backend = backend.name(), "store connected and migrated");
        Ok(SqlStore { pool, backend })
    }

    /// "postgres" or "sqlite".
    pub fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Adds `mode=rwc` (create if missing) to a SQLite file URL that names no mode.
fn sqlite_url(url: &str) -> String {
    if url.contains(":memory:") || url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..s + 3], &creds[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn connect_error(url: &str, e: sqlx::Error) -> StoreError {
    StoreError::Database(format!("connecting to {}: {e}", redact(url)))
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_org(&self, org: &Org) -> StoreResult<()> {
        tenants::create_org(&self.pool, org).await
    }
    async fn get_org(&self, id: &str) -> StoreResult<Option<Org>> {
        tenants::get_org(&self.pool, id).await
    }

    async fn create_app(&self, app: &App) -> StoreResult<()> {
        tenants::create_app(&self.pool, app).await
    }
    async fn get_app(&self, org_id: &str, id: &str) -> StoreResult<Option<App>> {
        tenants::get_app(&self.pool, org_id, id).await
    }
    async fn list_apps(&self, org_id: &str, page: &Page) -> StoreResult<Vec<App>> {
        tenants::list_apps(&self.pool, org_id, page).await
    }

    async fn create_api_key(&self, key: &ApiKey, hash: &str) -> StoreResult<()> {
        tenants::create_api_key(&self.pool, key, hash).await
    }
    async fn find_api_key(&self, hash: &str) -> StoreResult<Option<ApiKey>> {
        tenants::find_api_key(&self.pool, hash).await
    }
    async fn list_api_keys(
        &self,
        org_id: &str,
        app_id: Option<&str>,
        page: &Page,
    ) -> StoreResult<Vec<ApiKey>> {
        tenants::list_api_keys(&self.pool, org_id, app_id, page).await
    }
    async fn revoke_api_key(
        &self,
        org_id: &str,
        app_id: Option<&str>,
        id: &str,
        at: Millis,
        rule: RevokeRule,
    ) -> StoreResult<KeyRevoke> {
        tenants::revoke_api_key(&self.pool, org_id, app_id, id, at, rule).await
    }

    async fn upsert_end_user(
        &self,
        app_id: &str,
        external_id: &str,
        new_id: &str,
        now: Millis,
    ) -> StoreResult<EndUser> {
        tenants::upsert_end_user(&self.pool, app_id, external_id, new_id, now).await
    }

    async fn put_agent_version(&self, version: &AgentVersion) -> StoreResult<PutVersion> {
        agents::put_agent_version(&self.pool, version).await
    }
    async fn get_agent(&self, app_id: &str, name: &str) -> StoreResult<Option<Agent>> {
        agents::get_agent(&self.pool, app_id, name).await
    }
    async fn list_agents(&self, app_id: &str, page: &Page) -> StoreResult<Vec<Agent>> {
        agents::list_agents(&self.pool, app_id, page).await
    }
    async fn get_agent_version(
        &self,
        app_id: &str,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<AgentVersion>> {
        agents::get_agent_version(&self.pool, app_id, name, version).await
    }
    async fn list_agent_versions(
        &self,
        app_id: &str,
        name: &str,
    ) -> StoreResult<Vec<AgentVersion>> {
        agents::list_agent_versions(&self.pool, app_id, name).await
    }
    async fn set_agent_version_deprecated(
        &self,
        app_id: &str,
        name: &str,
        version: &str,
        at: Option<Millis>,
    ) -> StoreResult<bool> {
        agents::set_agent_version_deprecated(&self.pool, app_id, name, version, at).await
    }
    async fn delete_agent_version(
        &self,
        app_id: &str,
        name: &str,
        version: &str,
        at: Millis,
    ) -> StoreResult<DeleteVersion> {
        agents::delete_agent_version(&self.pool, app_id, name, version, at).await
    }

    async fn insert_run_audited(
        &self,
        run: &RunRow,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<()> {
        runs::insert_run(&self.pool, run, audit).await
    }
    async fn get_run(&self, app_id: &str, id: &str) -> StoreResult<Option<RunRow>> {
        runs::get_run(&self.pool, app_id, id).await
    }
    async fn list_runs(
        &self,
        app_id: &str,
        filter: &RunFilter,
        page: &Page,
    ) -> StoreResult<Vec<RunRow>> {
        runs::list_runs(&self.pool, app_id, filter, page).await
    }
    async fn claim_queued_runs(
        &self,
        node: &str,
        limit: u32,
        now: Millis,
        lease_until: Millis,
    ) -> StoreResult<Vec<RunRow>> {
        runs::claim_queued_runs(&self.pool, self.backend, node, limit, now, lease_until).await
    }
    async fn claim_run(
        &self,
        id: &str,
        node: &str,
        now: Millis,
        lease_until: Millis,
    ) -> StoreResult<Option<RunRow>> {
        runs::claim_run(&self.pool, id, node, now, lease_until).await
    }
    async fn renew_leases(
        &self,
        node: &str,
        run_ids: &[String],
        lease_until: Millis,
    ) -> StoreResult<()> {
        runs::renew_leases(&self.pool, node, run_ids, lease_until).await
    }
    async fn expired_runs(&self, now: Millis, limit: u32) -> StoreResult<Vec<RunRow>> {
        runs::expired_runs(&self.pool, now, limit).await
    }
    async fn requeue_run(&self, id: &str, expected_owner: &str, attempt: i32) -> StoreResult<bool> {
        runs::requeue_run(&self.pool, id, expected_owner, attempt).await
    }
    async fn finish_run(&self, id: &str, finish: &RunFinish) -> StoreResult<bool> {
        runs::finish_run(&self.pool, id, finish, runs::Unfinished::QueuedOrRunning).await
    }
    async fn finish_queued_run(&self, id: &str, finish: &RunFinish) -> StoreResult<bool> {
        runs::finish_run(&self.pool, id, finish, runs::Unfinished::Queued).await
    }
    async fn finish_waiting_run(&self, id: &str, finish: &RunFinish) -> StoreResult<bool> {
        runs::finish_run(&self.pool, id, finish, runs::Unfinished::Waiting).await
    }
    async fn runs_of_node(&self, node: &str) -> StoreResult<Vec<RunRow>> {
        runs::runs_of_node(&self.pool, node).await
    }
    async fn queue_depth(&self) -> StoreResult<i64> {
        runs::queue_depth(&self.pool).await
    }

    async fn append_event(&self, event: &StoredEvent) -> StoreResult<()> {
        events::append_event(&self.pool, event).await
    }
    async fn append_events(&self, events: &[StoredEvent]) -> StoreResult<()> {
        events::append_events(&self.pool, events).await
    }
    async fn last_event(&self, run_id: &str) -> StoreResult<Option<StoredEvent>> {
        events::last_event(&self.pool, run_id).await
    }
    async fn events_after(
        &self,
        run_id: &str,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        events::events_after(&self.pool, run_id, after, limit).await
    }

    async fn memory_get(&self, ns: &MemoryNs, key: &str) -> StoreResult<Option<Value>> {
        kv::memory_get(&self.pool, ns, key).await
    }
    async fn memory_set(
        &self,
        ns: &MemoryNs,
        key: &str,
        value: &Value,
        now: Millis,
    ) -> StoreResult<()> {
        kv::memory_set(&self.pool, ns, key, value, now).await
    }
    async fn memory_delete(&self, ns: &MemoryNs, key: &str) -> StoreResult<bool> {
        kv::memory_delete(&self.pool, ns, key).await
    }
    async fn memory_list(
        &self,
        ns: &MemoryNs,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<(String, Value)>> {
        kv::memory_list(&self.pool, ns, prefix, after, limit).await
    }

    async fn state_get(
        &self,
        app_id: &str,
        agent: &str,
        end_user: &str,
    ) -> StoreResult<Option<Value>> {
        agents::state_get(&self.pool, app_id, agent, end_user).await
    }
    async fn state_set(
        &self,
        app_id: &str,
        agent: &str,
        end_user: &str,
        state: &Value,
        now: Millis,
    ) -> StoreResult<()> {
        agents::state_set(&self.pool, app_id, agent, end_user, state, now).await
    }

    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        tenants::append_audit(&self.pool, event).await
    }
    async fn list_audit(
        &self,
        org_id: &str,
        app_id: Option<&str>,
        page: &Page,
    ) -> StoreResult<Vec<AuditEvent>> {
        tenants::list_audit(&self.pool, org_id, app_id, page).await
    }

    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
        now: Millis,
    ) -> StoreResult<IdempotencyBegin> {
        kv::idempotency_begin(&self.pool, scope, key, request_hash, now).await
    }
    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        body: &str,
    ) -> StoreResult<()> {
        kv::idempotency_complete(&self.pool, scope, key, status, body).await
    }
    async fn idempotency_abandon(&self, scope: &str, key: &str) -> StoreResult<()> {
        kv::idempotency_abandon(&self.pool, scope, key).await
    }
    async fn idempotency_purge(&self, before: Millis) -> StoreResult<u64> {
        kv::idempotency_purge(&self.pool, before).await
    }

    async fn usage(
        &self,
        org_id: &str,
        app_id: Option<&str>,
        since: Millis,
    ) -> StoreResult<UsageTotals> {
        runs::usage(&self.pool, org_id, app_id, since).await
    }

    async fn put_connection(&self, connection: &ConnectionRow) -> StoreResult<()> {
        broker::put_connection(&self.pool, connection).await
    }
    async fn get_connection(
        &self,
        app_id: &str,
        name: &str,
        end_user: &str,
    ) -> StoreResult<Option<ConnectionRow>> {
        broker::get_connection(&self.pool, app_id, name, end_user).await
    }
    async fn list_connections(&self, app_id: &str) -> StoreResult<Vec<ConnectionRow>> {
        broker::list_connections(&self.pool, app_id).await
    }
    async fn delete_connection(
        &self,
        app_id: &str,
        name: &str,
        end_user: &str,
    ) -> StoreResult<bool> {
        broker::delete_connection(&self.pool, app_id, name, end_user).await
    }
    async fn put_tool(&self, tool: &ToolRow) -> StoreResult<()> {
        broker::put_tool(&self.pool, tool).await
    }
    async fn get_tool(&self, app_id: &str, name: &str) -> StoreResult<Option<ToolRow>> {
        broker::get_tool(&self.pool, app_id, name).await
    }
    async fn list_tools(&self, app_id: &str) -> StoreResult<Vec<ToolRow>> {
        broker::list_tools(&self.pool, app_id).await
    }
    async fn delete_tool(&self, app_id: &str, name: &str) -> StoreResult<bool> {
        broker::delete_tool(&self.pool, app_id, name).await
    }
}

#[cfg(test)]
impl SqlStore {
    /// The pool, for tests that need to write what the API never would (corrupt rows).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

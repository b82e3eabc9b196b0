//! One suite for [`SqlStore`], run against both backends: SQLite always (a fresh file per
//! test) and PostgreSQL when `ATOLL_TEST_DATABASE_URL` is set (a fresh schema per test,
//! dropped at the end, so tests run in parallel without seeing each other).
//!
//! # Layout
//! - `tenancy`: orgs, apps, keys, end-users, audit.
//! - `scoping`: cross-tenant isolation, keyset pagination.
//! - `runs`: runs, claiming, leases, finishing.
//! - `fairness`: claiming takes turns across apps and end-users.
//! - `events`: run events, usage totals.
//! - `data`: agents and versions, state, memory, idempotency, corrupt rows.
//! - `hooks`: webhook endpoints, deliveries and attempts; triggers and firings.
//! - `durable`: journals, signals and waits.

mod broker;
mod data;
mod durable;
mod events;
mod fairness;
mod hooks;
mod runs;
mod scoping;
mod tenancy;

use serde_json::json;
use sqlx::Connection;
use tempfile::TempDir;

use super::*;

const DB_ENV: &str = "ATOLL_TEST_DATABASE_URL";

/// A store on a database of its own, and what it takes to throw that database away.
pub(super) struct TestDb {
    pub store: SqlStore,
    pub url: String,
    /// PostgreSQL: the server URL and the schema to drop.
    pg: Option<(String, String)>,
    _dir: Option<TempDir>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("atoll.db").display());
        let store = SqlStore::connect(&url).await.expect("connect sqlite");
        assert_eq!(store.backend(), "sqlite");
        TestDb {
            store,
            url,
            pg: None,
            _dir: Some(dir),
        }
    }

    /// None (and a note on stderr) when no PostgreSQL server is configured.
    pub async fn postgres(test: &str) -> Option<TestDb> {
        let Ok(base) = std::env::var(DB_ENV) else {
            eprintln!("skipped postgres::{test}: {DB_ENV} is not set");
            return None;
        };
        let schema = format!("atoll_t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&base)
            .await
            .expect("connect postgres");
        // The schema name is generated above (hex digits only), not user input.
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .expect("create schema");
        admin.close().await.expect("close admin connection");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        let store = SqlStore::connect(&url).await.expect("connect postgres");
        assert_eq!(store.backend(), "postgres");
        Some(TestDb {
            store,
            url,
            pg: Some((base, schema)),
            _dir: None,
        })
    }

    /// Another store (another pool) on the same database, like a second node.
    pub async fn second_node(&self) -> SqlStore {
        SqlStore::connect(&self.url)
            .await
            .expect("connect second store")
    }

    /// Drops the database, then fails the test if its body did.
    pub async fn finish(self, outcome: Result<(), tokio::task::JoinError>) {
        self.store.close().await;
        if let Some((base, schema)) = &self.pg {
            let mut admin = sqlx::PgConnection::connect(base)
                .await
                .expect("connect postgres");
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut admin)
                .await
                .expect("drop schema");
            admin.close().await.expect("close admin connection");
        }
        if let Err(e) = outcome {
            match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("test task failed: {e}"),
            }
        }
    }
}

/// Generates `sqlite::<case>` and `postgres::<case>` for every `module::case`, each an
/// async fn taking `&SqlStore`.
macro_rules! suite {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let db = super::TestDb::sqlite().await;
                    let store = db.store.clone();
                    let outcome =
                        tokio::spawn(async move { super::$module::$case(&store).await }).await;
                    db.finish(outcome).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(db) = super::TestDb::postgres(stringify!($case)).await else {
                        return;
                    };
                    let store = db.store.clone();
                    let outcome =
                        tokio::spawn(async move { super::$module::$case(&store).await }).await;
                    db.finish(outcome).await;
                }
            )*
        }
    };
}

suite!(
    tenancy::ping_and_backend,
    tenancy::orgs_and_apps,
    tenancy::api_keys,
    tenancy::last_app_key_survives_racing_revokes,
    tenancy::end_users,
    tenancy::audit_events,
    scoping::cross_tenant_isolation,
    scoping::pagination_across_pages,
    runs::run_round_trip_and_filters,
    runs::claim_oldest_first,
    runs::claim_exclusive_under_concurrency,
    runs::claim_one_run,
    fairness::claim_takes_turns_across_apps,
    fairness::claim_takes_turns_across_end_users,
    runs::leases_expire_and_requeue,
    runs::finish_only_once,
    runs::runs_of_node_and_queue_depth,
    events::events_in_order,
    events::usage_totals,
    data::agent_versions,
    data::put_version_race,
    data::agent_state,
    data::memory_crud_and_namespaces,
    data::memory_list_prefix_and_after,
    data::idempotency_flow,
    data::idempotency_begin_race,
    data::concurrent_writers,
    data::corrupt_rows_are_reported,
    broker::connections_and_tools,
    events::events_in_batches,
    events::last_event_is_the_highest_seq,
    events::run_and_its_audit_commit_together,
    hooks::deliveries_come_with_the_changes_they_announce,
    hooks::deliveries_are_leased_retried_and_disabled,
    hooks::rotation_keeps_the_previous_secret,
    hooks::triggers_and_firings,
    durable::journals_signals_and_waits,
    durable::signal_caps_hold_under_concurrency,
);

/// Two stores on one database (two nodes) claiming the same queue.
mod two_nodes {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        let db = super::TestDb::sqlite().await;
        let (a, b) = (db.store.clone(), db.second_node().await);
        let outcome = tokio::spawn(async move { super::runs::two_nodes_claim(&a, &b).await }).await;
        db.finish(outcome).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        let Some(db) = super::TestDb::postgres("two_nodes").await else {
            return;
        };
        let (a, b) = (db.store.clone(), db.second_node().await);
        let outcome = tokio::spawn(async move { super::runs::two_nodes_claim(&a, &b).await }).await;
        db.finish(outcome).await;
    }
}

#[tokio::test]
async fn connect_sqlite_memory() {
    let store = SqlStore::connect("sqlite::memory:").await.expect("connect");
    assert_eq!(store.backend(), "sqlite");
    store.ping().await.expect("ping");
    // The one connection keeps the database: what is written stays readable.
    store.create_org(&org("org_m")).await.expect("create org");
    assert!(store.get_org("org_m").await.expect("get org").is_some());
}

#[tokio::test]
async fn connect_rejects_other_urls() {
    let err = SqlStore::connect("mysql://root:secret@localhost/db")
        .await
        .unwrap_err();
    let StoreError::Database(msg) = err else {
        panic!("expected a database error, got {err:?}")
    };
    assert!(msg.contains("unsupported"), "{msg}");
    assert!(!msg.contains("secret"), "the password is not echoed: {msg}");
}

#[tokio::test]
async fn connect_creates_sqlite_file_and_reconnects() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fresh.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqlStore::connect(&url).await.expect("connect");
    store.create_org(&org("org_f")).await.expect("create org");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .expect("pragma");
    assert_eq!(mode, "wal");
    let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(store.pool())
        .await
        .expect("pragma");
    assert!(timeout >= 5_000, "busy_timeout {timeout}");
    let fks: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(store.pool())
        .await
        .expect("pragma");
    assert_eq!(fks, 1);
    store.close().await;
    assert!(path.exists());
    // Reconnecting applies no migration twice and keeps the data.
    let again = SqlStore::connect(&url).await.expect("reconnect");
    assert!(again.get_org("org_f").await.expect("get org").is_some());
}

// ---- fixtures shared by the cases ----

pub(super) fn org(id: &str) -> Org {
    Org {
        id: id.into(),
        name: format!("{id} name"),
        created_at: 1_000,
    }
}

pub(super) fn app(id: &str, org_id: &str, created_at: Millis) -> App {
    App {
        id: id.into(),
        org_id: org_id.into(),
        name: format!("{id} name"),
        settings: json!({ "limits": { "cpu_ms": 500 } }),
        created_at,
    }
}

/// An org with one app.
pub(super) async fn tenant(s: &SqlStore, org_id: &str, app_id: &str) {
    s.create_org(&org(org_id)).await.expect("create org");
    s.create_app(&app(app_id, org_id, 1_000))
        .await
        .expect("create app");
}

pub(super) fn run(id: &str, org_id: &str, app_id: &str, created_at: Millis) -> RunRow {
    RunRow {
        id: id.into(),
        org_id: org_id.into(),
        app_id: app_id.into(),
        agent: "@acme/triage".into(),
        version: "1.0.0".into(),
        end_user: None,
        trigger: "api".into(),
        status: RunStatus::Queued,
        input: json!({ "text": "hello" }),
        output: None,
        error: None,
        metadata: None,
        usage: None,
        attempt: 1,
        created_at,
        started_at: None,
        finished_at: None,
        lease_owner: None,
        lease_expires_at: None,
    }
}

pub(super) fn page(limit: u32) -> Page {
    Page { limit, after: None }
}

pub(super) fn finish(status: &str, at: Millis) -> RunFinish {
    RunFinish {
        status: status.parse().expect("a status"),
        attempt: 1,
        output: Some(json!({ "ok": true })),
        error: None,
        usage: Some(
            json!({ "cpu_ms": 1.5, "llm_tokens_in": 10, "llm_tokens_out": 20, "fetches": 2 }),
        ),
        finished_at: at,
    }
}

/// A SQLite database made by the first four migrations, with a run and its events, keeps
/// them through 0005 (which rebuilds `runs` and `run_events`), and the rebuilt tables keep
/// their constraints.
#[tokio::test]
async fn upgrading_sqlite_through_the_runs_rebuild_keeps_runs_and_events() {
    use sqlx::migrate::Migrator;
    let dir = tempfile::tempdir().expect("temp dir");
    let old = dir.path().join("migrations");
    std::fs::create_dir(&old).expect("dir");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for name in [
        "0001_init.sql",
        "0002_broker.sql",
        "0003_fair_claims.sql",
        "0004_hooks.sql",
    ] {
        std::fs::copy(source.join(name), old.join(name)).expect("copy migration");
    }
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("atoll.db").display()
    );
    {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.expect("connect");
        Migrator::new(old.as_path())
            .await
            .expect("migrator")
            .run(&pool)
            .await
            .expect("old migrations");
        for sql in [
            "INSERT INTO orgs (id, name, created_at) VALUES ('org_a', 'a', 1)",
            "INSERT INTO apps (id, org_id, name, settings, created_at) VALUES ('app_a', 'org_a', 'a', '{}', 1)",
            "INSERT INTO runs (id, org_id, app_id, agent, version, trigger, status, input, attempt, created_at)
             VALUES ('run_1', 'org_a', 'app_a', '@a/b', '1.0.0', 'api', 'succeeded', '{}', 1, 5)",
            "INSERT INTO run_events (run_id, seq, kind, data, created_at) VALUES ('run_1', 1, 'log', '{}', 6)",
        ] {
            sqlx::query(sql).execute(&pool).await.expect(sql);
        }
        pool.close().await;
    }
    let store = SqlStore::connect(&url).await.expect("upgrade");
    let kept = store
        .get_run("app_a", "run_1")
        .await
        .unwrap()
        .expect("the run survives");
    assert_eq!(kept.status, RunStatus::Succeeded);
    assert_eq!(store.events_after("run_1", 0, 10).await.unwrap().len(), 1);
    // The rebuilt tables still refuse what they refused: events of no run, unknown statuses.
    let orphan = StoredEvent {
        run_id: "run_missing".into(),
        seq: 1,
        kind: "log".into(),
        data: json!({}),
        created_at: 1,
    };
    assert!(store.append_event(&orphan).await.is_err());
    let waiting = RunRow {
        status: RunStatus::Waiting,
        ..run("run_2", "org_a", "app_a", 10)
    };
    store
        .insert_run(&waiting)
        .await
        .expect("waiting is a status now");
}

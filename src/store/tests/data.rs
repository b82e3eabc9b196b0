//! Agents and versions, state, memory, idempotency, concurrent writers, corrupt rows.

use serde_json::{json, Value};

use super::{page, run, tenant};
use crate::store::*;

fn version(app_id: &str, name: &str, v: &str, digest: &str, created_at: Millis) -> AgentVersion {
    AgentVersion {
        app_id: app_id.into(),
        name: name.into(),
        version: v.into(),
        manifest: json!({ "name": name, "version": v, "limits": { "cpu_ms": 100 } }),
        files: json!({ "index.js": "export default async () => 1;", "lib/x.js": "// x" }),
        digest: digest.into(),
        created_at,
        deprecated_at: None,
    }
}

pub(super) async fn agent_versions(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    let v1 = version("app_a", "@acme/triage", "1.0.0", "d1", 100);
    assert_eq!(s.put_agent_version(&v1).await.unwrap(), PutVersion::Created);
    assert_eq!(
        s.put_agent_version(&v1).await.unwrap(),
        PutVersion::Unchanged
    );
    let other = AgentVersion {
        files: json!({}),
        ..version("app_a", "@acme/triage", "1.0.0", "d9", 150)
    };
    assert_eq!(
        s.put_agent_version(&other).await.unwrap(),
        PutVersion::Conflict
    );
    // The stored version is untouched by the refused upload.
    assert_eq!(
        s.get_agent_version("app_a", "@acme/triage", "1.0.0")
            .await
            .unwrap(),
        Some(v1.clone())
    );

    let v2 = version("app_a", "@acme/triage", "1.1.0", "d2", 200);
    assert_eq!(s.put_agent_version(&v2).await.unwrap(), PutVersion::Created);
    let agent = s.get_agent("app_a", "@acme/triage").await.unwrap().unwrap();
    assert_eq!(
        agent,
        Agent {
            app_id: "app_a".into(),
            name: "@acme/triage".into(),
            created_at: 100
        }
    );
    assert_eq!(s.get_agent("app_a", "@acme/none").await.unwrap(), None);
    assert_eq!(
        s.get_agent_version("app_a", "@acme/triage", "9.9.9")
            .await
            .unwrap(),
        None
    );
    let all = s
        .list_agent_versions("app_a", "@acme/triage")
        .await
        .unwrap();
    // Listed without their files; a version read alone has them.
    let bare = |v: &AgentVersion| AgentVersion {
        files: json!({}),
        ..v.clone()
    };
    assert_eq!(all, vec![bare(&v1), bare(&v2)]);
    assert_eq!(
        s.latest_agent_version("app_a", "@acme/triage")
            .await
            .unwrap(),
        Some(v2.clone())
    );
    assert_eq!(
        s.list_agent_versions("app_a", "@acme/none").await.unwrap(),
        vec![]
    );

    let w = version("app_a", "@acme/writer", "0.1.0", "d3", 300);
    assert_eq!(s.put_agent_version(&w).await.unwrap(), PutVersion::Created);
    let names: Vec<_> = s
        .list_agents("app_a", &page(10))
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, vec!["@acme/writer", "@acme/triage"]);
    // An app that does not exist cannot get agents.
    let orphan = version("app_missing", "@acme/x", "1.0.0", "d", 1);
    assert!(matches!(
        s.put_agent_version(&orphan).await,
        Err(StoreError::Database(_))
    ));
}

pub(super) async fn put_version_race(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    for round in 0..3 {
        let v = version("app_a", "@acme/race", &format!("1.0.{round}"), "same", 100);
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (s, v) = (s.clone(), v.clone());
                tokio::spawn(async move { s.put_agent_version(&v).await.unwrap() })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let created = outcomes
            .iter()
            .filter(|o| **o == PutVersion::Created)
            .count();
        let unchanged = outcomes
            .iter()
            .filter(|o| **o == PutVersion::Unchanged)
            .count();
        assert_eq!((created, unchanged), (1, 5), "round {round}: {outcomes:?}");
    }
    // Two different uploads of one version racing: one wins, the other conflicts.
    let a = version("app_a", "@acme/race", "2.0.0", "a", 100);
    let b = version("app_a", "@acme/race", "2.0.0", "b", 100);
    let (sa, sb) = (s.clone(), s.clone());
    let ta = tokio::spawn(async move { sa.put_agent_version(&a).await.unwrap() });
    let tb = tokio::spawn(async move { sb.put_agent_version(&b).await.unwrap() });
    let mut both = [ta.await.unwrap(), tb.await.unwrap()];
    both.sort_by_key(|o| *o == PutVersion::Conflict);
    assert_eq!(both, [PutVersion::Created, PutVersion::Conflict]);
}

pub(super) async fn agent_state(s: &SqlStore) {
    assert_eq!(s.state_get("app_a", "@acme/t", "eu_1").await.unwrap(), None);
    s.state_set("app_a", "@acme/t", "eu_1", &json!({ "count": 1 }), 100)
        .await
        .unwrap();
    s.state_set("app_a", "@acme/t", "", &json!("app-wide"), 100)
        .await
        .unwrap();
    assert_eq!(
        s.state_get("app_a", "@acme/t", "eu_1").await.unwrap(),
        Some(json!({ "count": 1 }))
    );
    s.state_set("app_a", "@acme/t", "eu_1", &json!({ "count": 2 }), 200)
        .await
        .unwrap();
    assert_eq!(
        s.state_get("app_a", "@acme/t", "eu_1").await.unwrap(),
        Some(json!({ "count": 2 }))
    );
    assert_eq!(
        s.state_get("app_a", "@acme/t", "").await.unwrap(),
        Some(json!("app-wide"))
    );
    assert_eq!(s.state_get("app_a", "@acme/u", "eu_1").await.unwrap(), None);
    assert_eq!(s.state_get("app_a", "@acme/t", "eu_2").await.unwrap(), None);
    s.state_set("app_a", "@acme/t", "eu_1", &Value::Null, 300)
        .await
        .unwrap();
    assert_eq!(
        s.state_get("app_a", "@acme/t", "eu_1").await.unwrap(),
        Some(Value::Null)
    );
}

fn ns(scope: &str, end_user: &str) -> MemoryNs {
    MemoryNs {
        org_id: "org_a".into(),
        app_id: if scope == "org" {
            String::new()
        } else {
            "app_a".into()
        },
        scope: scope.into(),
        end_user: end_user.into(),
    }
}

pub(super) async fn memory_crud_and_namespaces(s: &SqlStore) {
    let (app, user, org) = (ns("app", ""), ns("end_user", "eu_1"), ns("org", ""));
    assert_eq!(s.memory_get(&app, "k").await.unwrap(), None);
    s.memory_set(&app, "k", &json!({ "v": 1 }), 100)
        .await
        .unwrap();
    s.memory_set(&user, "k", &json!("user"), 100).await.unwrap();
    s.memory_set(&org, "k", &json!([1, 2]), 100).await.unwrap();
    assert_eq!(
        s.memory_get(&app, "k").await.unwrap(),
        Some(json!({ "v": 1 }))
    );
    assert_eq!(s.memory_get(&user, "k").await.unwrap(), Some(json!("user")));
    assert_eq!(s.memory_get(&org, "k").await.unwrap(), Some(json!([1, 2])));
    assert_eq!(
        s.memory_get(&ns("end_user", "eu_2"), "k").await.unwrap(),
        None
    );
    // Overwrite.
    s.memory_set(&app, "k", &json!(null), 200).await.unwrap();
    assert_eq!(s.memory_get(&app, "k").await.unwrap(), Some(Value::Null));
    // Delete: once, and only in its namespace.
    assert!(s.memory_delete(&app, "k").await.unwrap());
    assert!(!s.memory_delete(&app, "k").await.unwrap());
    assert_eq!(s.memory_get(&app, "k").await.unwrap(), None);
    assert_eq!(s.memory_get(&user, "k").await.unwrap(), Some(json!("user")));
    assert_eq!(s.memory_get(&org, "k").await.unwrap(), Some(json!([1, 2])));
}

pub(super) async fn memory_list_prefix_and_after(s: &SqlStore) {
    let space = ns("app", "");
    let keys = [
        "a",
        "a/1",
        "a/2",
        "a/10",
        "a/z",
        "a0",
        "a.",
        "ab",
        "b",
        "B",
        "",
        "é/1",
        "é/2",
        "éa",
        "\u{10FFFF}",
        "\u{10FFFF}x",
        "z",
    ];
    for (i, k) in keys.iter().enumerate() {
        s.memory_set(&space, k, &json!(i), 100).await.unwrap();
    }
    s.memory_set(&ns("app", "x"), "a/other", &json!(0), 100)
        .await
        .unwrap();
    let space = &space;
    let list = |prefix: &'static str, after: Option<&'static str>, limit: u32| async move {
        let got = s.memory_list(space, prefix, after, limit).await.unwrap();
        got.into_iter().map(|(k, _)| k).collect::<Vec<_>>()
    };
    // Bytewise order on both engines ("B" < "a", "a/10" < "a/2").
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort();
    assert_eq!(list("", None, 100).await, sorted);
    assert_eq!(
        list("a/", None, 100).await,
        vec!["a/1", "a/10", "a/2", "a/z"]
    );
    assert_eq!(list("a/", Some("a/10"), 100).await, vec!["a/2", "a/z"]);
    assert_eq!(list("a/", Some("a/"), 2).await, vec!["a/1", "a/10"]);
    assert_eq!(list("a/", Some("a/z"), 100).await, Vec::<String>::new());
    assert_eq!(
        list("a", None, 100).await,
        vec!["a", "a.", "a/1", "a/10", "a/2", "a/z", "a0", "ab"]
    );
    assert_eq!(
        list("A", None, 100).await,
        Vec::<String>::new(),
        "prefixes are case-sensitive"
    );
    assert_eq!(list("é/", None, 100).await, vec!["é/1", "é/2"]);
    assert_eq!(
        list("\u{10FFFF}", None, 100).await,
        vec!["\u{10FFFF}", "\u{10FFFF}x"]
    );
    assert_eq!(
        list("", Some("éa"), 100).await,
        vec!["\u{10FFFF}", "\u{10FFFF}x"]
    );
    assert_eq!(list("", Some("z"), 3).await, vec!["é/1", "é/2", "éa"]);
    assert_eq!(
        list("%", None, 100).await,
        Vec::<String>::new(),
        "no LIKE wildcards"
    );
    // The values come along.
    let got = s.memory_list(space, "b", None, 10).await.unwrap();
    assert_eq!(got, vec![("b".to_string(), json!(8))]);
    // Walking with `after` visits each key once.
    let (mut after, mut seen) = (None::<String>, Vec::new());
    loop {
        let batch = s.memory_list(space, "", after.as_deref(), 3).await.unwrap();
        let Some((last, _)) = batch.last() else { break };
        after = Some(last.clone());
        seen.extend(batch.into_iter().map(|(k, _)| k));
    }
    assert_eq!(seen, sorted);
}

pub(super) async fn idempotency_flow(s: &SqlStore) {
    use IdempotencyBegin::*;
    assert_eq!(
        s.idempotency_begin("app_a", "key1", "h1", 1_000)
            .await
            .unwrap(),
        Started
    );
    assert_eq!(
        s.idempotency_begin("app_a", "key1", "h1", 1_001)
            .await
            .unwrap(),
        InProgress
    );
    assert_eq!(
        s.idempotency_begin("app_a", "key1", "h2", 1_001)
            .await
            .unwrap(),
        Mismatch
    );
    s.idempotency_complete("app_a", "key1", 201, r#"{"id":"run_1"}"#)
        .await
        .unwrap();
    let replay = Replay {
        status: 201,
        body: r#"{"id":"run_1"}"#.into(),
    };
    assert_eq!(
        s.idempotency_begin("app_a", "key1", "h1", 1_002)
            .await
            .unwrap(),
        replay
    );
    assert_eq!(
        s.idempotency_begin("app_a", "key1", "h2", 1_002)
            .await
            .unwrap(),
        Mismatch
    );
    // Abandoning a finished record does nothing.
    s.idempotency_abandon("app_a", "key1").await.unwrap();
    assert_eq!(
        s.idempotency_begin("app_a", "key1", "h1", 1_003)
            .await
            .unwrap(),
        replay
    );
    // Abandoning an unfinished one lets the key start again.
    assert_eq!(
        s.idempotency_begin("app_a", "key2", "h1", 2_000)
            .await
            .unwrap(),
        Started
    );
    s.idempotency_abandon("app_a", "key2").await.unwrap();
    assert_eq!(
        s.idempotency_begin("app_a", "key2", "h9", 3_000)
            .await
            .unwrap(),
        Started
    );
    // Scopes are separate.
    assert_eq!(
        s.idempotency_begin("app_b", "key1", "h7", 1_000)
            .await
            .unwrap(),
        Started
    );
    // Purge removes what was created before the cut-off.
    assert_eq!(s.idempotency_purge(2_000).await.unwrap(), 2);
    assert_eq!(
        s.idempotency_begin("app_a", "key1", "h5", 4_000)
            .await
            .unwrap(),
        Started
    );
    assert_eq!(
        s.idempotency_begin("app_a", "key2", "h1", 4_000)
            .await
            .unwrap(),
        Mismatch
    );
    assert_eq!(s.idempotency_purge(0).await.unwrap(), 0);
}

pub(super) async fn idempotency_begin_race(s: &SqlStore) {
    for round in 0..3 {
        let key = format!("race_{round}");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (s, key) = (s.clone(), key.clone());
                tokio::spawn(
                    async move { s.idempotency_begin("app_a", &key, "h", 1).await.unwrap() },
                )
            })
            .collect();
        let mut started = 0;
        for t in tasks {
            match t.await.unwrap() {
                IdempotencyBegin::Started => started += 1,
                IdempotencyBegin::InProgress => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(started, 1, "round {round}");
    }
}

/// Many tasks writing at once: on SQLite they queue for the write lock (WAL and a busy
/// timeout) instead of failing with "database is locked".
pub(super) async fn concurrent_writers(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    s.insert_run(&run("run_1", "org_a", "app_a", 1))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                let space = ns("app", &format!("writer_{t}"));
                for i in 0..25 {
                    s.memory_set(&space, &format!("k{i}"), &json!(i), 1)
                        .await
                        .unwrap();
                    s.append_event(&StoredEvent {
                        run_id: "run_1".into(),
                        seq: t * 1_000 + i,
                        kind: "log".into(),
                        data: json!({}),
                        created_at: 1,
                    })
                    .await
                    .unwrap();
                    // A read between writes (SQLite: no read transaction held open).
                    assert!(s
                        .memory_get(&space, &format!("k{i}"))
                        .await
                        .unwrap()
                        .is_some());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        s.events_after("run_1", -1, 1_000).await.unwrap().len(),
        16 * 25
    );
}

/// JSON that does not parse, or a value out of range, is `Corrupt`, not a panic.
pub(super) async fn corrupt_rows_are_reported(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    sqlx::query("UPDATE apps SET settings = $1 WHERE id = $2")
        .bind("{not json")
        .bind("app_a")
        .execute(s.pool())
        .await
        .unwrap();
    assert!(matches!(
        s.get_app("org_a", "app_a").await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        s.list_apps("org_a", &page(5)).await,
        Err(StoreError::Corrupt(_))
    ));

    s.insert_run(&run("run_1", "org_a", "app_a", 1))
        .await
        .unwrap();
    sqlx::query("UPDATE runs SET attempt = $1 WHERE id = $2")
        .bind(i64::MAX)
        .bind("run_1")
        .execute(s.pool())
        .await
        .unwrap();
    assert!(matches!(
        s.get_run("app_a", "run_1").await,
        Err(StoreError::Corrupt(_))
    ));

    s.memory_set(&ns("app", ""), "k", &json!(1), 1)
        .await
        .unwrap();
    sqlx::query("UPDATE memory SET value = $1")
        .bind("")
        .execute(s.pool())
        .await
        .unwrap();
    assert!(matches!(
        s.memory_get(&ns("app", ""), "k").await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        s.memory_list(&ns("app", ""), "", None, 5).await,
        Err(StoreError::Corrupt(_))
    ));
}

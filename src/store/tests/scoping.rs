//! Tenant isolation (another tenant's ids find, list and change nothing) and keyset
//! pagination (pages neither skip nor repeat rows).

use std::future::Future;

use serde_json::json;

use super::tenancy::{audit, key};
use super::{app, finish, page, run, tenant};
use crate::store::*;

/// Org A's data, looked for, listed, changed and deleted through org B's ids.
pub(super) async fn cross_tenant_isolation(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    tenant(s, "org_b", "app_b").await;
    let name = "@acme/triage";

    s.create_api_key(&key("key_a", "org_a", None, 100), "hash_a")
        .await
        .unwrap();
    s.create_api_key(&key("key_aa", "org_a", Some("app_a"), 100), "hash_aa")
        .await
        .unwrap();
    let version = AgentVersion {
        app_id: "app_a".into(),
        name: name.into(),
        version: "1.0.0".into(),
        manifest: json!({ "name": name }),
        files: json!({ "index.js": "export default 1" }),
        digest: "sha256:a".into(),
        created_at: 100,
        deprecated_at: None,
    };
    assert_eq!(
        s.put_agent_version(&version).await.unwrap(),
        PutVersion::Created
    );
    let mut r = run("run_a", "org_a", "app_a", 100);
    r.end_user = Some("eu_a".into());
    s.insert_run(&r).await.unwrap();
    assert!(s
        .finish_run("run_a", &finish("succeeded", 200))
        .await
        .unwrap());
    let ns_a = MemoryNs {
        org_id: "org_a".into(),
        app_id: "app_a".into(),
        scope: "app".into(),
        end_user: "".into(),
    };
    s.memory_set(&ns_a, "k", &json!(1), 100).await.unwrap();
    s.state_set("app_a", name, "eu_a", &json!({ "n": 1 }), 100)
        .await
        .unwrap();
    s.append_audit(&audit("aud_a", "org_a", Some("app_a"), 100))
        .await
        .unwrap();

    // Apps and keys.
    assert_eq!(s.get_app("org_b", "app_a").await.unwrap(), None);
    let apps_b = s.list_apps("org_b", &page(10)).await.unwrap();
    assert_eq!(
        apps_b.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        vec!["app_b"]
    );
    assert_eq!(
        s.list_api_keys("org_b", None, &page(10)).await.unwrap(),
        vec![]
    );
    assert_eq!(
        s.list_api_keys("org_a", Some("app_b"), &page(10))
            .await
            .unwrap(),
        vec![]
    );
    assert!(
        !(s.revoke_api_key("org_b", None, "key_a", 300, RevokeRule::Any)
            .await
            .unwrap()
            == KeyRevoke::Revoked)
    );
    assert!(
        !(s.revoke_api_key("org_b", Some("app_b"), "key_aa", 300, RevokeRule::Any)
            .await
            .unwrap()
            == KeyRevoke::Revoked)
    );
    assert!(
        !(s.revoke_api_key("org_a", Some("app_b"), "key_aa", 300, RevokeRule::Any)
            .await
            .unwrap()
            == KeyRevoke::Revoked)
    );
    assert!(s.find_api_key("hash_a").await.unwrap().is_some());
    assert!(s.find_api_key("hash_aa").await.unwrap().is_some());

    // Agents and versions.
    assert_eq!(s.get_agent("app_b", name).await.unwrap(), None);
    assert_eq!(s.list_agents("app_b", &page(10)).await.unwrap(), vec![]);
    assert_eq!(
        s.get_agent_version("app_b", name, "1.0.0").await.unwrap(),
        None
    );
    assert_eq!(s.list_agent_versions("app_b", name).await.unwrap(), vec![]);
    // The same name and version in app B is B's own, not a conflict with A's.
    let in_b = AgentVersion {
        app_id: "app_b".into(),
        digest: "sha256:b".into(),
        ..version.clone()
    };
    assert_eq!(
        s.put_agent_version(&in_b).await.unwrap(),
        PutVersion::Created
    );
    assert_eq!(
        s.get_agent_version("app_a", name, "1.0.0").await.unwrap(),
        Some(version)
    );

    // Runs.
    assert_eq!(s.get_run("app_b", "run_a").await.unwrap(), None);
    assert_eq!(
        s.list_runs("app_b", &RunFilter::default(), &page(10))
            .await
            .unwrap(),
        vec![]
    );
    let by_user = RunFilter {
        end_user: Some("eu_a".into()),
        ..Default::default()
    };
    assert_eq!(
        s.list_runs("app_b", &by_user, &page(10)).await.unwrap(),
        vec![]
    );
    assert_eq!(
        s.list_runs("app_a", &by_user, &page(10))
            .await
            .unwrap()
            .len(),
        1
    );

    // Memory: another org, another app, another scope or end-user is another namespace.
    let others = [
        MemoryNs {
            org_id: "org_b".into(),
            ..ns_a.clone()
        },
        MemoryNs {
            app_id: "app_b".into(),
            ..ns_a.clone()
        },
        MemoryNs {
            scope: "org".into(),
            app_id: "".into(),
            ..ns_a.clone()
        },
        MemoryNs {
            scope: "end_user".into(),
            end_user: "eu_a".into(),
            ..ns_a.clone()
        },
    ];
    for ns in &others {
        assert_eq!(s.memory_get(ns, "k").await.unwrap(), None, "{ns:?}");
        assert_eq!(
            s.memory_list(ns, "", None, 10).await.unwrap(),
            vec![],
            "{ns:?}"
        );
        assert!(!s.memory_delete(ns, "k").await.unwrap(), "{ns:?}");
    }
    assert_eq!(s.memory_get(&ns_a, "k").await.unwrap(), Some(json!(1)));

    // State, audit, usage, idempotency.
    assert_eq!(s.state_get("app_b", name, "eu_a").await.unwrap(), None);
    assert_eq!(
        s.list_audit("org_b", None, &page(10)).await.unwrap(),
        vec![]
    );
    assert_eq!(
        s.list_audit("org_b", Some("app_a"), &page(10))
            .await
            .unwrap(),
        vec![]
    );
    assert_eq!(
        s.usage("org_b", None, 0).await.unwrap(),
        UsageTotals::default()
    );
    assert_eq!(
        s.usage("org_a", Some("app_b"), 0).await.unwrap(),
        UsageTotals::default()
    );
    assert_eq!(s.usage("org_a", None, 0).await.unwrap().runs, 1);
    assert_eq!(
        s.idempotency_begin("app_a", "idem", "h1", 100)
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(
        s.idempotency_begin("app_b", "idem", "h2", 100)
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );
}

/// Pages of `limit` through a newest-first listing, following the keyset cursor.
async fn walk<T, F, Fut>(limit: u32, cursor: impl Fn(&T) -> (Millis, String), mut list: F) -> Vec<T>
where
    F: FnMut(Page) -> Fut,
    Fut: Future<Output = Vec<T>>,
{
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let batch = list(Page {
            limit,
            after: after.clone(),
        })
        .await;
        assert!(batch.len() <= limit as usize);
        let Some(last) = batch.last() else { break };
        after = Some(cursor(last));
        let full = batch.len() == limit as usize;
        out.extend(batch);
        if !full {
            break;
        }
    }
    out
}

pub(super) async fn pagination_across_pages(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    // 23 runs, created in bursts of three in the same millisecond.
    let mut expected = Vec::new();
    for i in 0..23 {
        let r = run(
            &format!("run_{:02}", (i * 7) % 23),
            "org_a",
            "app_a",
            1_000 + i / 3,
        );
        s.insert_run(&r).await.unwrap();
        expected.push((r.created_at, r.id));
    }
    expected.sort();
    expected.reverse();
    for limit in [1, 5, 7, 23, 50] {
        let got = walk(
            limit,
            |r: &RunRow| (r.created_at, r.id.clone()),
            |p| async move {
                s.list_runs("app_a", &RunFilter::default(), &p)
                    .await
                    .unwrap()
            },
        )
        .await;
        let got: Vec<_> = got.into_iter().map(|r| (r.created_at, r.id)).collect();
        assert_eq!(got, expected, "limit {limit}");
    }
    // With a filter, pages still neither skip nor repeat.
    for (created, id) in expected.iter().step_by(2) {
        assert!(s
            .finish_run(id, &finish("failed", created + 10))
            .await
            .unwrap());
    }
    let failed = RunFilter {
        status: Some(RunStatus::Failed),
        ..Default::default()
    };
    let got = walk(
        4,
        |r: &RunRow| (r.created_at, r.id.clone()),
        |p| {
            let failed = failed.clone();
            async move { s.list_runs("app_a", &failed, &p).await.unwrap() }
        },
    )
    .await;
    let want: Vec<_> = expected.iter().step_by(2).cloned().collect();
    assert_eq!(
        got.into_iter()
            .map(|r| (r.created_at, r.id))
            .collect::<Vec<_>>(),
        want
    );

    // Apps, keys, audit events and agents page the same way.
    for i in 0..9 {
        s.create_app(&app(&format!("app_p{i}"), "org_a", 5_000 + i / 2))
            .await
            .unwrap();
        s.create_api_key(
            &key(&format!("key_{i}"), "org_a", None, 5_000 + i / 2),
            &format!("h{i}"),
        )
        .await
        .unwrap();
        s.append_audit(&audit(&format!("aud_{i}"), "org_a", None, 5_000 + i / 2))
            .await
            .unwrap();
        let v = AgentVersion {
            app_id: "app_a".into(),
            name: format!("@acme/agent{i}"),
            version: "1.0.0".into(),
            manifest: json!({}),
            files: json!({}),
            digest: "d".into(),
            created_at: 5_000 + i / 2,
            deprecated_at: None,
        };
        s.put_agent_version(&v).await.unwrap();
    }
    let apps = walk(
        2,
        |a: &App| (a.created_at, a.id.clone()),
        |p| async move { s.list_apps("org_a", &p).await.unwrap() },
    )
    .await;
    assert_eq!(apps, s.list_apps("org_a", &page(100)).await.unwrap());
    assert_eq!(apps.len(), 10);
    let keys = walk(
        2,
        |k: &ApiKey| (k.created_at, k.id.clone()),
        |p| async move { s.list_api_keys("org_a", None, &p).await.unwrap() },
    )
    .await;
    assert_eq!(
        keys,
        s.list_api_keys("org_a", None, &page(100)).await.unwrap()
    );
    assert_eq!(keys.len(), 9);
    let events = walk(
        2,
        |e: &AuditEvent| (e.created_at, e.id.clone()),
        |p| async move { s.list_audit("org_a", None, &p).await.unwrap() },
    )
    .await;
    assert_eq!(
        events,
        s.list_audit("org_a", None, &page(100)).await.unwrap()
    );
    assert_eq!(events.len(), 9);
    let agents = walk(
        2,
        |a: &Agent| (a.created_at, a.name.clone()),
        |p| async move { s.list_agents("app_a", &p).await.unwrap() },
    )
    .await;
    assert_eq!(agents, s.list_agents("app_a", &page(100)).await.unwrap());
    assert_eq!(agents.len(), 9);
    let mut sorted = agents.clone();
    sorted.sort_by(|a, b| (b.created_at, &b.name).cmp(&(a.created_at, &a.name)));
    assert_eq!(agents, sorted);
}

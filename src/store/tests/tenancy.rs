//! Orgs, apps, API keys, end-users, audit events.

use std::collections::HashSet;

use serde_json::json;

use super::{app, org, page, tenant};
use crate::store::*;

pub(super) async fn ping_and_backend(s: &SqlStore) {
    s.ping().await.unwrap();
    assert!(["postgres", "sqlite"].contains(&s.backend()));
}

pub(super) async fn orgs_and_apps(s: &SqlStore) {
    s.create_org(&org("org_a")).await.unwrap();
    assert_eq!(s.get_org("org_a").await.unwrap(), Some(org("org_a")));
    assert_eq!(s.get_org("org_missing").await.unwrap(), None);
    assert!(matches!(
        s.create_org(&org("org_a")).await,
        Err(StoreError::Conflict(_))
    ));

    let (a1, a2) = (app("app_1", "org_a", 10), app("app_2", "org_a", 20));
    s.create_app(&a1).await.unwrap();
    s.create_app(&a2).await.unwrap();
    assert_eq!(s.get_app("org_a", "app_1").await.unwrap(), Some(a1.clone()));
    assert_eq!(
        s.list_apps("org_a", &page(10)).await.unwrap(),
        vec![a2, a1.clone()]
    );
    assert_eq!(s.list_apps("org_a", &page(0)).await.unwrap(), vec![]);
    assert!(matches!(
        s.create_app(&a1).await,
        Err(StoreError::Conflict(_))
    ));
    // An app of an org that does not exist is refused (foreign key), not a conflict.
    let orphan = app("app_x", "org_missing", 30);
    assert!(matches!(
        s.create_app(&orphan).await,
        Err(StoreError::Database(_))
    ));
}

pub(super) fn key(id: &str, org_id: &str, app_id: Option<&str>, created_at: Millis) -> ApiKey {
    ApiKey {
        id: id.into(),
        org_id: org_id.into(),
        app_id: app_id.map(Into::into),
        kind: if app_id.is_some() {
            KeyKind::App
        } else {
            KeyKind::Org
        },
        name: format!("{id} name"),
        prefix: "atl_ab12".into(),
        scopes: vec!["runs:read".into(), "runs:write".into()],
        created_at,
        revoked_at: None,
    }
}

pub(super) async fn api_keys(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    s.create_app(&app("app_b", "org_a", 2_000)).await.unwrap();
    s.create_org(&org("org_b")).await.unwrap();
    let k1 = key("key_1", "org_a", None, 100);
    let k2 = key("key_2", "org_a", Some("app_a"), 200);
    let k3 = key("key_3", "org_a", Some("app_b"), 300);
    s.create_api_key(&k1, "hash_1").await.unwrap();
    s.create_api_key(&k2, "hash_2").await.unwrap();
    s.create_api_key(&k3, "hash_3").await.unwrap();

    assert_eq!(s.find_api_key("hash_2").await.unwrap(), Some(k2.clone()));
    assert_eq!(s.find_api_key("hash_1").await.unwrap(), Some(k1.clone()));
    assert_eq!(s.find_api_key("hash_none").await.unwrap(), None);
    // The same secret hash, or the same id, twice.
    let dup = key("key_4", "org_a", None, 400);
    assert!(matches!(
        s.create_api_key(&dup, "hash_1").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_api_key(&k1, "hash_9").await,
        Err(StoreError::Conflict(_))
    ));
    // An app key naming another org's app is refused.
    let wrong = key("key_5", "org_b", Some("app_a"), 500);
    assert!(matches!(
        s.create_api_key(&wrong, "hash_5").await,
        Err(StoreError::Database(_))
    ));

    let all = s.list_api_keys("org_a", None, &page(10)).await.unwrap();
    assert_eq!(all, vec![k3.clone(), k2.clone(), k1.clone()]);
    let of_a = s
        .list_api_keys("org_a", Some("app_a"), &page(10))
        .await
        .unwrap();
    assert_eq!(of_a, vec![k2.clone()]);

    // Revoking: only within the org (and the app when given).
    assert!(
        !(s.revoke_api_key("org_b", None, "key_2", 600, RevokeRule::Any)
            .await
            .unwrap()
            == KeyRevoke::Revoked)
    );
    assert!(
        !(s.revoke_api_key("org_a", Some("app_b"), "key_2", 600, RevokeRule::Any)
            .await
            .unwrap()
            == KeyRevoke::Revoked)
    );
    assert!(
        !(s.revoke_api_key("org_a", None, "key_missing", 600, RevokeRule::Any)
            .await
            .unwrap()
            == KeyRevoke::Revoked)
    );
    assert!(s.find_api_key("hash_2").await.unwrap().is_some());
    assert!(
        (s.revoke_api_key("org_a", Some("app_a"), "key_2", 600, RevokeRule::Any)
            .await
            .unwrap()
            == KeyRevoke::Revoked)
    );
    assert_eq!(s.find_api_key("hash_2").await.unwrap(), None);
    // Revoking again still finds the key and keeps the first time.
    assert!(
        (s.revoke_api_key("org_a", None, "key_2", 700, RevokeRule::Any)
            .await
            .unwrap()
            == KeyRevoke::Revoked)
    );
    let listed = s
        .list_api_keys("org_a", Some("app_a"), &page(10))
        .await
        .unwrap();
    assert_eq!(listed[0].revoked_at, Some(600));
    assert!(
        (s.revoke_api_key("org_a", None, "key_1", 800, RevokeRule::Any)
            .await
            .unwrap()
            == KeyRevoke::Revoked)
    );
    assert_eq!(s.find_api_key("hash_1").await.unwrap(), None);
    assert_eq!(s.find_api_key("hash_3").await.unwrap(), Some(k3));
}

pub(super) async fn end_users(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    s.create_app(&app("app_b", "org_a", 2_000)).await.unwrap();
    let u1 = s
        .upsert_end_user("app_a", "ext_1", "eu_1", 100)
        .await
        .unwrap();
    assert_eq!(
        u1,
        EndUser {
            id: "eu_1".into(),
            app_id: "app_a".into(),
            external_id: "ext_1".into(),
            created_at: 100
        }
    );
    // Existing: the stored row, whatever new id is offered.
    assert_eq!(
        s.upsert_end_user("app_a", "ext_1", "eu_2", 200)
            .await
            .unwrap(),
        u1
    );
    // The same external id in another app is another end-user.
    let other = s
        .upsert_end_user("app_b", "ext_1", "eu_3", 300)
        .await
        .unwrap();
    assert_eq!(other.id, "eu_3");
    // A new id that collides with another end-user's id is a conflict, not a merge.
    assert!(matches!(
        s.upsert_end_user("app_a", "ext_2", "eu_1", 400).await,
        Err(StoreError::Conflict(_))
    ));

    // Concurrent first sightings agree on one end-user.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.upsert_end_user("app_a", "ext_race", &format!("eu_race_{i}"), 500)
                .await
                .unwrap()
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().id);
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
}

pub(super) fn audit(
    id: &str,
    org_id: &str,
    app_id: Option<&str>,
    created_at: Millis,
) -> AuditEvent {
    AuditEvent {
        id: id.into(),
        org_id: org_id.into(),
        app_id: app_id.map(Into::into),
        key_id: Some("key_1".into()),
        action: "app.create".into(),
        target: "app_1".into(),
        detail: json!({ "name": "x" }),
        created_at,
    }
}

pub(super) async fn audit_events(s: &SqlStore) {
    let e1 = audit("aud_1", "org_a", None, 100);
    let e2 = audit("aud_2", "org_a", Some("app_a"), 200);
    let e3 = audit("aud_3", "org_a", Some("app_b"), 300);
    let e4 = AuditEvent {
        key_id: None,
        ..audit("aud_4", "org_b", None, 400)
    };
    for e in [&e1, &e2, &e3, &e4] {
        s.append_audit(e).await.unwrap();
    }
    assert!(matches!(
        s.append_audit(&e1).await,
        Err(StoreError::Conflict(_))
    ));
    let of_org = s.list_audit("org_a", None, &page(10)).await.unwrap();
    assert_eq!(of_org, vec![e3, e2.clone(), e1]);
    assert_eq!(
        s.list_audit("org_a", Some("app_a"), &page(10))
            .await
            .unwrap(),
        vec![e2]
    );
    assert_eq!(
        s.list_audit("org_b", None, &page(10)).await.unwrap(),
        vec![e4]
    );
    assert_eq!(
        s.list_audit("org_b", Some("app_a"), &page(10))
            .await
            .unwrap(),
        vec![]
    );
}

/// An app keeps a live key that manages keys, however revokes race.
pub(super) async fn last_app_key_survives_racing_revokes(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    let managing = |id: &str, at| ApiKey {
        scopes: vec!["*".into()],
        ..key(id, "org_a", Some("app_a"), at)
    };
    for (k, hash) in [(managing("key_m1", 1), "h1"), (managing("key_m2", 2), "h2")] {
        s.create_api_key(&k, hash).await.unwrap();
    }
    // A key without keys:write does not keep the app reachable.
    s.create_api_key(&key("key_ro", "org_a", Some("app_a"), 3), "h3")
        .await
        .unwrap();
    let revokes = ["key_m1", "key_m2"].map(|id| {
        let s = s.clone();
        tokio::spawn(async move {
            s.revoke_api_key("org_a", Some("app_a"), id, 10, RevokeRule::KeepAppReachable)
                .await
                .unwrap()
        })
    });
    let mut outcomes = Vec::new();
    for r in revokes {
        outcomes.push(r.await.unwrap());
    }
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, vec![KeyRevoke::LastKeyOfApp, KeyRevoke::Revoked]);
    let live: Vec<String> = s
        .list_api_keys("org_a", Some("app_a"), &page(10))
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.revoked_at.is_none() && k.scopes == ["*"])
        .map(|k| k.id)
        .collect();
    assert_eq!(live.len(), 1, "{live:?}");
    // The read-only key goes freely; the rule does not apply to revoking it.
    assert_eq!(
        s.revoke_api_key("org_a", None, "key_ro", 11, RevokeRule::KeepAppReachable)
            .await
            .unwrap(),
        KeyRevoke::Revoked
    );
}

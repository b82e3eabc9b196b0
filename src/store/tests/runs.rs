//! Runs: storage and filters, claiming, leases, finishing.

use std::collections::HashSet;

use serde_json::json;

use super::{finish, page, run, tenant};
use crate::store::*;

pub(super) async fn run_round_trip_and_filters(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    let full = RunRow {
        end_user: Some("eu_1".into()),
        trigger: "cron".into(),
        status: RunStatus::Succeeded,
        input: json!({ "nested": { "list": [1, 2.5, "x", null] }, "unicode": "héllo ✓" }),
        output: Some(json!("done")),
        error: Some(json!({ "code": "none", "message": "m" })),
        metadata: Some(json!({ "k": "v" })),
        usage: Some(json!({ "cpu_ms": 2.25, "fetches": 3 })),
        attempt: 2,
        started_at: Some(110),
        finished_at: Some(120),
        lease_owner: Some("node_x".into()),
        lease_expires_at: Some(130),
        ..run("run_full", "org_a", "app_a", 100)
    };
    s.insert_run(&full).await.unwrap();
    assert_eq!(
        s.get_run("app_a", "run_full").await.unwrap(),
        Some(full.clone())
    );
    assert_eq!(s.get_run("app_a", "run_missing").await.unwrap(), None);
    assert!(matches!(
        s.insert_run(&full).await,
        Err(StoreError::Conflict(_))
    ));
    // The app must belong to the run's org.
    s.create_org(&super::org("org_b")).await.unwrap();
    let wrong_org = run("run_wrong", "org_b", "app_a", 1);
    assert!(matches!(
        s.insert_run(&wrong_org).await,
        Err(StoreError::Database(_))
    ));

    let plain = run("run_plain", "org_a", "app_a", 200);
    s.insert_run(&plain).await.unwrap();
    let other_agent = RunRow {
        agent: "@acme/other".into(),
        ..run("run_other", "org_a", "app_a", 300)
    };
    s.insert_run(&other_agent).await.unwrap();

    let ids = |rows: Vec<RunRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = s
        .list_runs("app_a", &RunFilter::default(), &page(10))
        .await
        .unwrap();
    assert_eq!(ids(all), vec!["run_other", "run_plain", "run_full"]);
    let f = RunFilter {
        agent: Some("@acme/triage".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(s.list_runs("app_a", &f, &page(10)).await.unwrap()),
        vec!["run_plain", "run_full"]
    );
    let f = RunFilter {
        status: Some(RunStatus::Queued),
        ..Default::default()
    };
    assert_eq!(
        ids(s.list_runs("app_a", &f, &page(10)).await.unwrap()),
        vec!["run_other", "run_plain"]
    );
    let f = RunFilter {
        end_user: Some("eu_1".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(s.list_runs("app_a", &f, &page(10)).await.unwrap()),
        vec!["run_full"]
    );
    let f = RunFilter {
        agent: Some("@acme/triage".into()),
        status: Some(RunStatus::Queued),
        end_user: None,
    };
    assert_eq!(
        ids(s.list_runs("app_a", &f, &page(10)).await.unwrap()),
        vec!["run_plain"]
    );
    assert_eq!(
        ids(s.list_runs("app_a", &f, &page(0)).await.unwrap()),
        Vec::<String>::new()
    );
}

pub(super) async fn claim_oldest_first(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    for (id, at) in [
        ("run_c", 300),
        ("run_a", 100),
        ("run_b", 200),
        ("run_d", 400),
    ] {
        s.insert_run(&run(id, "org_a", "app_a", at)).await.unwrap();
    }
    assert_eq!(s.queue_depth().await.unwrap(), 4);
    let got = s
        .claim_queued_runs("node_1", 2, 1_000, 31_000)
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["run_a", "run_b"]
    );
    for r in &got {
        assert_eq!(r.status, RunStatus::Running);
        assert_eq!(r.lease_owner.as_deref(), Some("node_1"));
        assert_eq!(r.lease_expires_at, Some(31_000));
        assert_eq!(r.started_at, Some(1_000));
        assert_eq!(s.get_run("app_a", &r.id).await.unwrap().as_ref(), Some(r));
    }
    assert_eq!(s.queue_depth().await.unwrap(), 2);
    let rest = s
        .claim_queued_runs("node_2", 10, 2_000, 32_000)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["run_c", "run_d"]
    );
    assert_eq!(
        s.claim_queued_runs("node_2", 10, 2_000, 32_000)
            .await
            .unwrap(),
        vec![]
    );
    assert_eq!(
        s.claim_queued_runs("node_2", 0, 2_000, 32_000)
            .await
            .unwrap(),
        vec![]
    );
    assert_eq!(s.queue_depth().await.unwrap(), 0);
}

/// Claims until the queue is empty, returning the claimed ids.
async fn drain(s: SqlStore, node: String) -> Vec<String> {
    let mut mine = Vec::new();
    loop {
        let got = s.claim_queued_runs(&node, 3, 1_000, 60_000).await.unwrap();
        assert!(
            got.len() <= 3,
            "claimed {} runs with a limit of 3",
            got.len()
        );
        if got.is_empty() {
            return mine;
        }
        for r in got {
            assert_eq!(r.lease_owner.as_deref(), Some(node.as_str()));
            mine.push(r.id);
        }
    }
}

async fn seed_queue(s: &SqlStore, n: usize) -> HashSet<String> {
    tenant(s, "org_a", "app_a").await;
    let mut ids = HashSet::new();
    for i in 0..n {
        let id = format!("run_{i:03}");
        s.insert_run(&run(&id, "org_a", "app_a", 1 + (i as Millis) / 4))
            .await
            .unwrap();
        ids.insert(id);
    }
    ids
}

fn assert_claimed_once(all: &HashSet<String>, claims: Vec<Vec<String>>) {
    let mut seen = HashSet::new();
    for id in claims.into_iter().flatten() {
        assert!(seen.insert(id.clone()), "{id} was claimed twice");
    }
    assert_eq!(&seen, all);
}

pub(super) async fn claim_exclusive_under_concurrency(s: &SqlStore) {
    let all = seed_queue(s, 90).await;
    let tasks: Vec<_> = (0..6)
        .map(|i| tokio::spawn(drain(s.clone(), format!("node_{i}"))))
        .collect();
    let mut claims = Vec::new();
    for t in tasks {
        claims.push(t.await.unwrap());
    }
    assert_claimed_once(&all, claims);
    assert_eq!(s.queue_depth().await.unwrap(), 0);
}

/// Two stores on one database, as two nodes, each with several claimers.
pub(super) async fn two_nodes_claim(a: &SqlStore, b: &SqlStore) {
    let all = seed_queue(a, 60).await;
    let mut tasks = Vec::new();
    for i in 0..3 {
        tasks.push(tokio::spawn(drain(a.clone(), format!("a_{i}"))));
        tasks.push(tokio::spawn(drain(b.clone(), format!("b_{i}"))));
    }
    let mut claims = Vec::new();
    for t in tasks {
        claims.push(t.await.unwrap());
    }
    assert_claimed_once(&all, claims);
    b.close().await;
}

pub(super) async fn claim_one_run(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    s.insert_run(&run("run_1", "org_a", "app_a", 100))
        .await
        .unwrap();
    let got = s
        .claim_run("run_1", "node_1", 500, 1_500)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.status.as_str(), got.lease_owner.as_deref()),
        ("running", Some("node_1"))
    );
    assert_eq!(
        (got.started_at, got.lease_expires_at),
        (Some(500), Some(1_500))
    );
    assert_eq!(
        s.claim_run("run_1", "node_2", 600, 1_600).await.unwrap(),
        None
    );
    assert_eq!(
        s.claim_run("run_missing", "node_2", 600, 1_600)
            .await
            .unwrap(),
        None
    );
    // Racing claimers of one run: exactly one wins.
    s.insert_run(&run("run_2", "org_a", "app_a", 100))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.claim_run("run_2", &format!("n{i}"), 1, 2).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(winners, 1);
}

pub(super) async fn leases_expire_and_requeue(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    for id in ["run_1", "run_2", "run_3"] {
        s.insert_run(&run(id, "org_a", "app_a", 100)).await.unwrap();
    }
    assert!(s
        .claim_run("run_1", "node_a", 1_000, 2_000)
        .await
        .unwrap()
        .is_some());
    assert!(s
        .claim_run("run_2", "node_a", 1_000, 2_000)
        .await
        .unwrap()
        .is_some());
    assert!(s
        .claim_run("run_3", "node_b", 1_000, 2_000)
        .await
        .unwrap()
        .is_some());

    // Renewing extends only the node's own running runs.
    let ids = vec![
        "run_1".to_string(),
        "run_3".to_string(),
        "run_missing".to_string(),
    ];
    s.renew_leases("node_a", &ids, 5_000).await.unwrap();
    s.renew_leases("node_a", &[], 9_000).await.unwrap();
    let lease = |id: &'static str| async move {
        s.get_run("app_a", id)
            .await
            .unwrap()
            .unwrap()
            .lease_expires_at
    };
    assert_eq!(lease("run_1").await, Some(5_000));
    assert_eq!(lease("run_2").await, Some(2_000));
    assert_eq!(lease("run_3").await, Some(2_000));

    // At 3000 the leases of run_2 and run_3 have expired, not run_1's.
    let expired = s.expired_runs(3_000, 10).await.unwrap();
    let mut got: Vec<_> = expired.iter().map(|r| r.id.as_str()).collect();
    got.sort();
    assert_eq!(got, vec!["run_2", "run_3"]);
    assert_eq!(s.expired_runs(3_000, 1).await.unwrap().len(), 1);
    assert_eq!(
        s.expired_runs(2_000, 10).await.unwrap(),
        vec![],
        "expired means before now"
    );

    // Requeue is compare-and-set on (running, owner).
    assert!(!s.requeue_run("run_2", "node_b", 2).await.unwrap());
    assert!(s.requeue_run("run_2", "node_a", 2).await.unwrap());
    assert!(
        !s.requeue_run("run_2", "node_a", 3).await.unwrap(),
        "already requeued"
    );
    let r2 = s.get_run("app_a", "run_2").await.unwrap().unwrap();
    assert_eq!((r2.status.as_str(), r2.attempt), ("queued", 2));
    assert_eq!((r2.lease_owner, r2.lease_expires_at), (None, None));
    // A renewal by the old owner does not resurrect the lease.
    s.renew_leases("node_a", &["run_2".to_string()], 9_000)
        .await
        .unwrap();
    assert_eq!(lease("run_2").await, None);
    // Nor does the old attempt's late outcome end the new attempt.
    assert!(
        !s.finish_run("run_2", &finish("succeeded", 9_000))
            .await
            .unwrap(),
        "attempt 1 cannot finish attempt 2"
    );
    // The requeued run is claimable again, keeping its first start time.
    let again = s
        .claim_queued_runs("node_c", 5, 4_000, 8_000)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id.as_str(), again[0].attempt), ("run_2", 2));
    assert_eq!(again[0].started_at, Some(1_000));
    // A finished run is not requeued.
    assert!(s
        .finish_run("run_3", &finish("failed", 3_500))
        .await
        .unwrap());
    assert!(!s.requeue_run("run_3", "node_b", 2).await.unwrap());
    assert_eq!(s.expired_runs(100_000, 10).await.unwrap().len(), 2);
    // Many ids in one renewal (more than one statement's worth).
    let many: Vec<String> = (0..1_200)
        .map(|i| format!("run_x{i}"))
        .chain(["run_1".into()])
        .collect();
    s.renew_leases("node_a", &many, 7_000).await.unwrap();
    assert_eq!(lease("run_1").await, Some(7_000));
}

pub(super) async fn finish_only_once(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    s.insert_run(&run("run_q", "org_a", "app_a", 100))
        .await
        .unwrap();
    s.insert_run(&run("run_r", "org_a", "app_a", 100))
        .await
        .unwrap();
    assert!(s
        .claim_run("run_r", "node_1", 200, 9_000)
        .await
        .unwrap()
        .is_some());

    // Queued → cancelled.
    let cancel = RunFinish {
        output: None,
        usage: None,
        error: Some(json!({ "code": "cancelled" })),
        ..finish("cancelled", 300)
    };
    assert!(s.finish_run("run_q", &cancel).await.unwrap());
    assert!(!s
        .finish_run("run_q", &finish("succeeded", 400))
        .await
        .unwrap());
    let q = s.get_run("app_a", "run_q").await.unwrap().unwrap();
    assert_eq!((q.status.as_str(), q.finished_at), ("cancelled", Some(300)));
    assert_eq!(q.error, Some(json!({ "code": "cancelled" })));
    // A cancel meant for a queued run loses to a claim: the claimed run is not ended.
    assert!(!s.finish_queued_run("run_r", &cancel).await.unwrap());
    assert_eq!(
        s.get_run("app_a", "run_r").await.unwrap().unwrap().status,
        RunStatus::Running
    );

    // Running → succeeded, once, even when racing.
    let tasks: Vec<_> = ["succeeded", "failed", "timed_out", "cancelled", "succeeded"]
        .into_iter()
        .map(|status| {
            let s = s.clone();
            tokio::spawn(async move { s.finish_run("run_r", &finish(status, 500)).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    let r = s.get_run("app_a", "run_r").await.unwrap().unwrap();
    assert_eq!(r.output, Some(json!({ "ok": true })));
    assert_eq!(r.usage, finish("failed", 0).usage);
    assert_eq!(
        (r.lease_owner, r.lease_expires_at, r.finished_at),
        (None, None, Some(500))
    );
    assert_eq!(r.started_at, Some(200));
    assert!(s
        .claim_run("run_r", "node_2", 600, 9_000)
        .await
        .unwrap()
        .is_none());
    assert!(!s
        .finish_run("run_missing", &finish("failed", 1))
        .await
        .unwrap());
    // Not a final status: refused.
    s.insert_run(&run("run_s", "org_a", "app_a", 100))
        .await
        .unwrap();
    assert!(s.finish_run("run_s", &finish("running", 1)).await.is_err());
    assert_eq!(
        s.get_run("app_a", "run_s").await.unwrap().unwrap().status,
        RunStatus::Queued
    );
}

pub(super) async fn runs_of_node_and_queue_depth(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    assert_eq!(s.queue_depth().await.unwrap(), 0);
    for i in 0..5 {
        s.insert_run(&run(&format!("run_{i}"), "org_a", "app_a", 100 + i))
            .await
            .unwrap();
    }
    assert!(s
        .claim_run("run_0", "node_1", 1, 9)
        .await
        .unwrap()
        .is_some());
    assert!(s
        .claim_run("run_1", "node_1", 1, 9)
        .await
        .unwrap()
        .is_some());
    assert!(s
        .claim_run("run_2", "node_2", 1, 9)
        .await
        .unwrap()
        .is_some());
    assert!(s
        .finish_run("run_1", &finish("succeeded", 5))
        .await
        .unwrap());
    let of_1: Vec<_> = s
        .runs_of_node("node_1")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(of_1, vec!["run_0"]);
    assert_eq!(s.runs_of_node("node_2").await.unwrap().len(), 1);
    assert_eq!(s.runs_of_node("node_3").await.unwrap(), vec![]);
    assert_eq!(s.queue_depth().await.unwrap(), 2);
}

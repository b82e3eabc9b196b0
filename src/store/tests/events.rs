//! Run events (ordered, resumable) and usage totals.

use serde_json::json;

use super::{finish, run, tenant};
use crate::store::*;

fn event(run_id: &str, seq: i64) -> StoredEvent {
    StoredEvent {
        run_id: run_id.into(),
        seq,
        kind: if seq % 2 == 0 {
            "log".into()
        } else {
            "emit".into()
        },
        data: json!({ "seq": seq, "line": format!("line {seq}") }),
        created_at: 1_000 + seq,
    }
}

pub(super) async fn events_in_order(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    s.insert_run(&run("run_1", "org_a", "app_a", 100))
        .await
        .unwrap();
    s.insert_run(&run("run_2", "org_a", "app_a", 100))
        .await
        .unwrap();
    // Appended out of order (as concurrent writers might); read back by seq.
    for seq in [3, 1, 2, 5, 4, 10, 9, 8, 7, 6, 11, 12] {
        s.append_event(&event("run_1", seq)).await.unwrap();
    }
    s.append_event(&event("run_2", 1)).await.unwrap();
    assert!(matches!(
        s.append_event(&event("run_1", 3)).await,
        Err(StoreError::Conflict(_))
    ));

    let seqs = |evs: Vec<StoredEvent>| evs.into_iter().map(|e| e.seq).collect::<Vec<_>>();
    let all = s.events_after("run_1", 0, 100).await.unwrap();
    assert_eq!(all[0], event("run_1", 1));
    assert_eq!(seqs(all), (1..=12).collect::<Vec<_>>());
    assert_eq!(
        seqs(s.events_after("run_1", 4, 3).await.unwrap()),
        vec![5, 6, 7]
    );
    assert_eq!(
        seqs(s.events_after("run_1", 12, 10).await.unwrap()),
        Vec::<i64>::new()
    );
    assert_eq!(seqs(s.events_after("run_2", 0, 10).await.unwrap()), vec![1]);
    assert_eq!(
        seqs(s.events_after("run_missing", 0, 10).await.unwrap()),
        Vec::<i64>::new()
    );
    // Resuming page by page sees every event exactly once.
    let (mut last, mut seen) = (0, Vec::new());
    loop {
        let batch = s.events_after("run_1", last, 5).await.unwrap();
        let Some(tail) = batch.last() else { break };
        last = tail.seq;
        seen.extend(seqs(batch));
    }
    assert_eq!(seen, (1..=12).collect::<Vec<_>>());
}

pub(super) async fn usage_totals(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    s.create_app(&super::app("app_b", "org_a", 1))
        .await
        .unwrap();
    tenant(s, "org_b", "app_c").await;
    let runs = [
        (
            "run_1",
            "org_a",
            "app_a",
            1_000,
            Some(json!({ "cpu_ms": 1.5, "llm_tokens_in": 10, "llm_tokens_out": 1, "fetches": 1 })),
        ),
        (
            "run_2",
            "org_a",
            "app_b",
            2_000,
            Some(
                json!({ "cpu_ms": 2.25, "llm_tokens_in": 5, "llm_tokens_out": 2, "fetches": 0, "wall_ms": 9 }),
            ),
        ),
        (
            "run_3",
            "org_a",
            "app_a",
            500,
            Some(json!({ "cpu_ms": 100.0, "llm_tokens_in": 100 })),
        ),
        ("run_4", "org_a", "app_a", 3_000, None),
        (
            "run_5",
            "org_b",
            "app_c",
            3_000,
            Some(json!({ "cpu_ms": 7.0 })),
        ),
    ];
    for (id, org, app, finished_at, usage) in runs {
        s.insert_run(&run(id, org, app, 1)).await.unwrap();
        let f = RunFinish {
            usage,
            ..finish("succeeded", finished_at)
        };
        assert!(s.finish_run(id, &f).await.unwrap());
    }
    // Still running: not counted.
    s.insert_run(&run("run_6", "org_a", "app_a", 1))
        .await
        .unwrap();

    let org_a = s.usage("org_a", None, 1_000).await.unwrap();
    assert_eq!(
        org_a,
        UsageTotals {
            runs: 3,
            cpu_ms: 3.75,
            llm_tokens_in: 15,
            llm_tokens_out: 3,
            fetches: 1
        }
    );
    let app_a = s.usage("org_a", Some("app_a"), 0).await.unwrap();
    assert_eq!(
        app_a,
        UsageTotals {
            runs: 3,
            cpu_ms: 101.5,
            llm_tokens_in: 110,
            llm_tokens_out: 1,
            fetches: 1
        }
    );
    assert_eq!(
        s.usage("org_a", None, 10_000).await.unwrap(),
        UsageTotals::default()
    );
    assert_eq!(s.usage("org_b", None, 0).await.unwrap().cpu_ms, 7.0);
    // A run inserted already finished counts too.
    let done = RunRow {
        status: RunStatus::Failed,
        finished_at: Some(5_000),
        usage: Some(json!({ "cpu_ms": 0.5, "fetches": 4 })),
        ..run("run_7", "org_b", "app_c", 1)
    };
    s.insert_run(&done).await.unwrap();
    let b = s.usage("org_b", Some("app_c"), 0).await.unwrap();
    assert_eq!((b.runs, b.cpu_ms, b.fetches), (2, 7.5, 4));
}

pub(super) async fn events_in_batches(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    s.insert_run(&run("run_b", "org_a", "app_a", 100))
        .await
        .unwrap();
    let batch: Vec<StoredEvent> = (1..=5).map(|seq| event("run_b", seq)).collect();
    s.append_events(&batch).await.unwrap();
    // A batch that repeats stored events only adds the new ones.
    let again: Vec<StoredEvent> = (4..=7).map(|seq| event("run_b", seq)).collect();
    s.append_events(&again).await.unwrap();
    let stored = s.events_after("run_b", 0, 100).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
    assert_eq!(stored[3], event("run_b", 4), "the first copy wins");
}

/// `last_event` is where a new numbering continues: the highest seq, whatever the order
/// of the writes; none for a run without events.
pub(super) async fn last_event_is_the_highest_seq(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    s.insert_run(&run("run_1", "org_a", "app_a", 100))
        .await
        .unwrap();
    assert_eq!(s.last_event("run_1").await.unwrap(), None);
    for seq in [2, 7, 3] {
        s.append_event(&event("run_1", seq)).await.unwrap();
    }
    assert_eq!(
        s.last_event("run_1").await.unwrap(),
        Some(event("run_1", 7))
    );
    assert_eq!(s.last_event("run_missing").await.unwrap(), None);
}

/// A run and the audit event of its creation are stored together or not at all.
pub(super) async fn run_and_its_audit_commit_together(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    let audit = |id: &str, target: &str| AuditEvent {
        id: id.into(),
        org_id: "org_a".into(),
        app_id: Some("app_a".into()),
        key_id: Some("key_1".into()),
        action: "run.create".into(),
        target: target.into(),
        detail: json!({}),
        created_at: 100,
    };
    s.insert_run_audited(
        &run("run_1", "org_a", "app_a", 100),
        Some(&audit("aud_1", "run_1")),
    )
    .await
    .unwrap();
    assert!(s.get_run("app_a", "run_1").await.unwrap().is_some());
    // The audit insert fails (its id is taken): the run is rolled back with it.
    assert!(s
        .insert_run_audited(
            &run("run_2", "org_a", "app_a", 200),
            Some(&audit("aud_1", "run_2"))
        )
        .await
        .is_err());
    assert_eq!(s.get_run("app_a", "run_2").await.unwrap(), None);
    let logged = s
        .list_audit("org_a", Some("app_a"), &super::page(10))
        .await
        .unwrap();
    assert_eq!(
        logged.iter().map(|e| e.target.as_str()).collect::<Vec<_>>(),
        vec!["run_1"]
    );
}

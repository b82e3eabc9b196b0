//! Journals, signals and waits of durable runs.

use serde_json::json;

use super::{run, tenant};
use crate::store::*;

fn entry(seq: i64, rank: i64) -> JournalEntry {
    JournalEntry {
        run_id: "run_1".into(),
        seq,
        op: "fetch".into(),
        digest: format!("d{seq}"),
        rank,
        answer: vec![seq as u8; 3],
        created_at: 10 + seq,
    }
}

fn signal(id: &str, run_id: &str, payload: serde_json::Value, at: Millis) -> Signal {
    Signal {
        id: id.into(),
        run_id: run_id.into(),
        name: "go".into(),
        payload,
        created_at: at,
    }
}

/// Signals posted at once cannot pass a run's caps together (count and bytes).
pub(super) async fn signal_caps_hold_under_concurrency(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    for id in ["run_c", "run_b"] {
        s.insert_run(&run(id, "org_a", "app_a", 1)).await.unwrap();
    }
    let adds = (0..24).map(|i| {
        let s = s.clone();
        tokio::spawn(async move {
            s.add_signal(
                &signal(&format!("sig_{i}"), "run_c", json!(i), i),
                5,
                1 << 20,
            )
            .await
            .unwrap()
        })
    });
    let kept = futures::future::join_all(adds)
        .await
        .into_iter()
        .filter(|k| *k.as_ref().expect("task"))
        .count();
    assert_eq!(kept, 5);
    assert_eq!(s.open_signals("run_c").await.unwrap(), 5);
    // Bytes: payloads of 100 characters under a 350-byte cap: three fit.
    let big = json!("x".repeat(98));
    let adds = (0..12).map(|i| {
        let (s, big) = (s.clone(), big.clone());
        tokio::spawn(async move {
            s.add_signal(&signal(&format!("sig_b{i}"), "run_b", big, i), 1_000, 350)
                .await
                .unwrap()
        })
    });
    let kept = futures::future::join_all(adds)
        .await
        .into_iter()
        .filter(|k| *k.as_ref().expect("task"))
        .count();
    assert_eq!(kept, 3);
}

pub(super) async fn journals_signals_and_waits(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    s.insert_run(&run("run_1", "org_a", "app_a", 1))
        .await
        .unwrap();
    s.claim_run("run_1", "node_a", 2, 1_000)
        .await
        .unwrap()
        .unwrap();

    // Appends of the run's attempt are kept, in order, once per position; an attempt
    // that is over appends nothing.
    s.append_journal(&[entry(1, 0), entry(0, 1)], 1)
        .await
        .unwrap();
    s.append_journal(&[entry(0, 9)], 1).await.unwrap();
    s.append_journal(&[entry(2, 2)], 2).await.unwrap();
    let journal = s.journal("run_1").await.unwrap();
    assert_eq!(
        journal.iter().map(|e| (e.seq, e.rank)).collect::<Vec<_>>(),
        vec![(0, 1), (1, 0)]
    );
    assert_eq!(journal[0].answer, vec![0, 0, 0]);
    assert_eq!(s.journal_length("run_1").await.unwrap(), 2);
    // The index gives answer sizes without the answers, page by page.
    let index = s.journal_index("run_1", -1, 10).await.unwrap();
    assert_eq!(
        index.iter().map(|e| (e.seq, e.bytes)).collect::<Vec<_>>(),
        vec![(0, 3), (1, 3)]
    );
    assert_eq!(s.journal_index("run_1", 0, 10).await.unwrap().len(), 1);
    // Sizes are exact whatever the base64 padding (the run is not a journal the rest
    // of this test reads).
    s.insert_run(&run("run_sizes", "org_a", "app_a", 1))
        .await
        .unwrap();
    let sized: Vec<JournalEntry> = [0usize, 1, 2, 4, 5]
        .iter()
        .enumerate()
        .map(|(i, n)| JournalEntry {
            run_id: "run_sizes".into(),
            answer: vec![7; *n],
            ..entry(i as i64, i as i64)
        })
        .collect();
    s.append_journal(&sized, 1).await.unwrap();
    let index = s.journal_index("run_sizes", -1, 10).await.unwrap();
    assert_eq!(
        index.iter().map(|e| e.bytes).collect::<Vec<_>>(),
        vec![0, 1, 2, 4, 5]
    );

    // A signal is taken once, by one position, oldest first; taking again at that
    // position answers the same one.
    for (id, n, at) in [("sig_1", 1, 5), ("sig_2", 2, 6)] {
        assert!(s
            .add_signal(&signal(id, "run_1", json!({ "n": n }), at), 2, 1 << 20)
            .await
            .unwrap());
    }
    assert_eq!(s.open_signals("run_1").await.unwrap(), 2);
    // At the cap nothing more is kept.
    assert!(!s
        .add_signal(&signal("sig_x", "run_1", json!({ "n": 9 }), 7), 2, 1 << 20)
        .await
        .unwrap());
    assert_eq!(s.open_signals("run_1").await.unwrap(), 2);
    assert_eq!(
        s.take_signal("run_1", "go", 3).await.unwrap(),
        Some(json!({ "n": 1 }))
    );
    assert_eq!(
        s.take_signal("run_1", "go", 3).await.unwrap(),
        Some(json!({ "n": 1 }))
    );
    assert_eq!(
        s.take_signal("run_1", "go", 4).await.unwrap(),
        Some(json!({ "n": 2 }))
    );
    assert_eq!(s.take_signal("run_1", "go", 5).await.unwrap(), None);
    assert_eq!(s.take_signal("run_1", "other", 6).await.unwrap(), None);

    // Parking, resuming and giving a resume back are each one conditional update.
    let wait = RunWait {
        run_id: "run_1".into(),
        seq: 5,
        name: Some("go".into()),
        schema: None,
        wake_at: Some(100),
        created_at: 50,
    };
    assert!(
        !s.suspend_run("run_1", 2, &wait).await.unwrap(),
        "another attempt"
    );
    assert!(s.suspend_run("run_1", 1, &wait).await.unwrap());
    assert_eq!(
        s.get_run("app_a", "run_1").await.unwrap().unwrap().status,
        RunStatus::Waiting
    );
    assert_eq!(s.run_wait("run_1").await.unwrap(), Some(wait.clone()));
    assert_eq!(s.count_waiting("app_a").await.unwrap(), 1);
    assert!(s.due_waits(99, 10).await.unwrap().is_empty());
    assert_eq!(
        s.due_waits(100, 10).await.unwrap(),
        vec![("run_1".into(), "app_a".into())]
    );
    assert!(s.resume_run("run_1").await.unwrap());
    assert!(!s.resume_run("run_1").await.unwrap(), "resumed once");
    assert!(s.unresume_run("run_1").await.unwrap());
    assert!(s.due_waits(100, 10).await.unwrap().len() == 1);
    s.set_wake("run_1", 500).await.unwrap();
    assert!(s.due_waits(400, 10).await.unwrap().is_empty());
    // A waiting run can be ended only while it waits; its wait row goes with it.
    let cancel = RunFinish {
        status: RunStatus::Cancelled,
        attempt: 1,
        output: None,
        error: None,
        usage: None,
        finished_at: 60,
    };
    assert!(s.finish_waiting_run("run_1", &cancel).await.unwrap());
    assert_eq!(s.run_wait("run_1").await.unwrap(), None);
    assert_eq!(
        s.take_signal("run_1", "go", 3).await.unwrap(),
        None,
        "signals go with the run"
    );
    assert!(!s.finish_waiting_run("run_1", &cancel).await.unwrap());
}

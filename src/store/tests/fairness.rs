//! Claiming is fair across apps, and across end-users within an app.

use super::{app, run, tenant};
use crate::store::*;

fn ids(runs: &[RunRow]) -> Vec<&str> {
    runs.iter().map(|r| r.id.as_str()).collect()
}

/// App A queues a backlog before app B queues three runs: B's runs come out in the very
/// next claims, one per turn, not after A's backlog.
pub(super) async fn claim_takes_turns_across_apps(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    s.create_app(&app("app_b", "org_a", 1_000)).await.unwrap();
    for i in 0..200 {
        s.insert_run(&run(&format!("run_a{i:03}"), "org_a", "app_a", 1_000 + i))
            .await
            .unwrap();
    }
    for i in 0..3 {
        s.insert_run(&run(&format!("run_b{i}"), "org_a", "app_b", 5_000 + i))
            .await
            .unwrap();
    }
    let first = s
        .claim_queued_runs("node_1", 4, 9_000, 39_000)
        .await
        .unwrap();
    assert_eq!(ids(&first), ["run_a000", "run_b0", "run_a001", "run_b1"]);
    let next = s
        .claim_queued_runs("node_1", 3, 9_000, 39_000)
        .await
        .unwrap();
    assert_eq!(ids(&next), ["run_a002", "run_b2", "run_a003"]);
    // B is drained: A's backlog goes on oldest first.
    let rest = s
        .claim_queued_runs("node_1", 2, 9_000, 39_000)
        .await
        .unwrap();
    assert_eq!(ids(&rest), ["run_a004", "run_a005"]);
    assert_eq!(s.queue_depth().await.unwrap(), 194);
}

/// Within an app, one end-user's backlog does not hold back another end-user's run; runs
/// without an end-user take one turn together.
pub(super) async fn claim_takes_turns_across_end_users(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    let queued = [
        ("run_1", Some("eu_flood"), 100),
        ("run_2", Some("eu_flood"), 101),
        ("run_3", Some("eu_flood"), 102),
        ("run_4", None, 103),
        ("run_5", None, 104),
        ("run_6", Some("eu_quiet"), 105),
    ];
    for (id, end_user, at) in queued {
        let row = RunRow {
            end_user: end_user.map(Into::into),
            ..run(id, "org_a", "app_a", at)
        };
        s.insert_run(&row).await.unwrap();
    }
    let got = s
        .claim_queued_runs("node_1", 6, 9_000, 39_000)
        .await
        .unwrap();
    // Turn 1 of each turn-taker (by age), then turn 2, then turn 3.
    assert_eq!(
        ids(&got),
        ["run_1", "run_4", "run_6", "run_2", "run_5", "run_3"]
    );
}

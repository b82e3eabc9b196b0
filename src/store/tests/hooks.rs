//! Webhook endpoints, deliveries written with the changes they announce, their claiming
//! and attempts; triggers and firings that start one run each.

use std::collections::HashMap;

use serde_json::json;

use super::{finish, page, run, tenant};
use crate::store::*;

fn endpoint(id: &str, app_id: &str, at: Millis) -> WebhookEndpoint {
    WebhookEndpoint {
        id: id.into(),
        org_id: "org_a".into(),
        app_id: app_id.into(),
        url: format!("https://example.com/{id}"),
        description: None,
        events: None,
        agents: None,
        secret: "sealed".into(),
        previous_secret: None,
        previous_until: None,
        created_at: at,
        failing_since: None,
        disabled_at: None,
        disabled_reason: None,
    }
}

async fn claim(
    s: &SqlStore,
    node: &str,
    now: Millis,
    lease_until: Millis,
    max: usize,
    per_endpoint: usize,
    busy: &HashMap<String, usize>,
) -> Vec<ClaimedDelivery> {
    s.claim_deliveries(&DeliveryClaim {
        node,
        now,
        lease_until,
        max,
        per_endpoint,
        busy,
    })
    .await
    .unwrap()
}

async fn log(s: &SqlStore, app: &str, endpoint: &str) -> Vec<(Delivery, Vec<DeliveryAttempt>)> {
    s.list_deliveries(app, endpoint, &page(100)).await.unwrap()
}

pub(super) async fn deliveries_come_with_the_changes_they_announce(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    s.create_webhook(&endpoint("wh_all", "app_a", 1))
        .await
        .unwrap();
    let filtered = WebhookEndpoint {
        events: Some(vec![WebhookEvent::RunSucceeded]),
        agents: Some(vec!["@acme/other".into()]),
        ..endpoint("wh_other_agent", "app_a", 2)
    };
    s.create_webhook(&filtered).await.unwrap();
    let endings_only = WebhookEndpoint {
        events: Some(vec![WebhookEvent::RunSucceeded, WebhookEvent::RunFailed]),
        agents: Some(vec!["@acme/triage".into()]),
        ..endpoint("wh_endings", "app_a", 3)
    };
    s.create_webhook(&endings_only).await.unwrap();
    let disabled = WebhookEndpoint {
        disabled_at: Some(4),
        ..endpoint("wh_off", "app_a", 4)
    };
    s.create_webhook(&disabled).await.unwrap();

    s.insert_run(&run("run_1", "org_a", "app_a", 10))
        .await
        .unwrap();
    // Queued: nothing announced.
    assert!(log(s, "app_a", "wh_all").await.is_empty());
    s.claim_run("run_1", "node_a", 20, 1_000)
        .await
        .unwrap()
        .unwrap();
    let started = log(s, "app_a", "wh_all").await;
    assert_eq!(started.len(), 1);
    let (d, attempts) = &started[0];
    assert_eq!(d.event, WebhookEvent::RunStarted);
    assert_eq!(
        (d.run.status, d.run.started_at),
        (RunStatus::Running, Some(20))
    );
    assert_eq!(
        (d.status, d.attempts, d.next_attempt_at),
        (DeliveryStatus::Pending, 0, Some(20))
    );
    assert!(attempts.is_empty());
    assert!(log(s, "app_a", "wh_endings").await.is_empty());

    assert!(s
        .finish_run("run_1", &finish("succeeded", 30))
        .await
        .unwrap());
    let all = log(s, "app_a", "wh_all").await;
    assert_eq!(all.len(), 2);
    let endings = log(s, "app_a", "wh_endings").await;
    assert_eq!(endings.len(), 1);
    assert_eq!(endings[0].0.event, WebhookEvent::RunSucceeded);
    assert_eq!(endings[0].0.run.output, Some(json!({ "ok": true })));
    // One webhook-id per event, whichever endpoints it goes to.
    assert_eq!(endings[0].0.id, all[0].0.id);
    assert_ne!(all[0].0.id, all[1].0.id);
    assert!(log(s, "app_a", "wh_other_agent").await.is_empty());
    assert!(log(s, "app_a", "wh_off").await.is_empty());
    // An ending that is refused (already ended) announces nothing.
    assert!(!s.finish_run("run_1", &finish("failed", 40)).await.unwrap());
    assert_eq!(log(s, "app_a", "wh_all").await.len(), 2);
    // A run claimed in a batch is announced like one claimed alone.
    s.insert_run(&run("run_2", "org_a", "app_a", 50))
        .await
        .unwrap();
    let batch = s.claim_queued_runs("node_a", 10, 60, 1_000).await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(log(s, "app_a", "wh_all").await.len(), 3);
    // Claimed again after a requeue: still one run.started for it.
    assert!(s.requeue_run("run_2", "node_a", 2).await.unwrap());
    assert!(s
        .claim_run("run_2", "node_b", 70, 1_000)
        .await
        .unwrap()
        .is_some());
    assert_eq!(log(s, "app_a", "wh_all").await.len(), 3);
    // Another app sees none of it.
    tenant(s, "org_b", "app_b").await;
    assert!(log(s, "app_b", "wh_all").await.is_empty());
    assert_eq!(s.get_webhook("app_b", "wh_all").await.unwrap(), None);
    assert!(!s.delete_webhook("app_b", "wh_all").await.unwrap());
}

pub(super) async fn deliveries_are_leased_retried_and_disabled(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    s.create_webhook(&endpoint("wh_1", "app_a", 1))
        .await
        .unwrap();
    s.create_webhook(&endpoint("wh_2", "app_a", 2))
        .await
        .unwrap();
    for i in 0..5 {
        let id = format!("run_{i}");
        s.insert_run(&run(&id, "org_a", "app_a", 10 + i))
            .await
            .unwrap();
        s.claim_run(&id, "node_a", 100, 10_000)
            .await
            .unwrap()
            .unwrap();
    }
    // Per endpoint at most 2, minus what this node already sends to wh_1.
    let busy = HashMap::from([("wh_1".to_owned(), 1usize)]);
    let got = claim(s, "node_a", 200, 5_000, 10, 2, &busy).await;
    let count = |e: &str| got.iter().filter(|c| c.delivery.endpoint_id == e).count();
    assert_eq!((count("wh_1"), count("wh_2")), (1, 2));
    // Leased: nobody else gets them before the lease ends; then they are due again.
    let other = claim(s, "node_b", 300, 5_000, 100, 100, &HashMap::new()).await;
    assert_eq!(other.len(), 10 - 3);
    assert!(other.iter().all(|c| !got.iter().any(
        |g| g.delivery.id == c.delivery.id && g.delivery.endpoint_id == c.delivery.endpoint_id
    )));
    assert!(claim(s, "node_c", 4_999, 9_000, 100, 100, &HashMap::new())
        .await
        .is_empty());

    let attempt = |n: i32, at: Millis, code: Option<u16>| DeliveryAttempt {
        attempt: n,
        at,
        status_code: code,
        latency_ms: 7,
        response: code.map(|_| "body".to_owned()),
        error: code.is_none().then(|| "connection refused".to_owned()),
    };
    let first = got
        .iter()
        .find(|c| c.delivery.endpoint_id == "wh_1")
        .unwrap();
    // Not the holder: nothing is recorded.
    assert_eq!(
        s.finish_attempt(
            "node_b",
            first,
            &attempt(1, 400, Some(500)),
            AttemptOutcome::Retry(600),
            1_000
        )
        .await
        .unwrap(),
        None
    );
    s.finish_attempt(
        "node_a",
        first,
        &attempt(1, 400, Some(500)),
        AttemptOutcome::Retry(6_000),
        1_000,
    )
    .await
    .unwrap();
    let ep = first.delivery.endpoint_id.clone();
    let entry = |list: Vec<(Delivery, Vec<DeliveryAttempt>)>| {
        list.into_iter()
            .find(|(d, _)| d.id == first.delivery.id)
            .unwrap()
    };
    let (d, tries) = entry(log(s, "app_a", &ep).await);
    assert_eq!(
        (d.status, d.attempts, d.next_attempt_at),
        (DeliveryStatus::Pending, 1, Some(6_000))
    );
    assert_eq!(tries, vec![attempt(1, 400, Some(500))]);
    assert_eq!(
        s.get_webhook("app_a", &ep)
            .await
            .unwrap()
            .unwrap()
            .failing_since,
        Some(400)
    );
    // A manual retry makes it due now; one in flight cannot be retried meanwhile.
    assert_eq!(
        s.retry_delivery("app_a", &ep, &d.id, 500).await.unwrap(),
        RetryDelivery::Scheduled
    );
    assert_eq!(
        s.retry_delivery("app_b", &ep, &d.id, 500).await.unwrap(),
        RetryDelivery::NotFound
    );
    let again = claim(s, "node_a", 500, 9_000, 100, 100, &HashMap::new()).await;
    let again = again
        .into_iter()
        .find(|c| c.delivery.id == d.id && c.delivery.endpoint_id == ep)
        .unwrap();
    assert_eq!(again.delivery.attempts, 1);
    assert_eq!(
        s.retry_delivery("app_a", &ep, &d.id, 600).await.unwrap(),
        RetryDelivery::InFlight
    );
    s.finish_attempt(
        "node_a",
        &again,
        &attempt(2, 700, Some(204)),
        AttemptOutcome::Delivered,
        1_000,
    )
    .await
    .unwrap();
    let (d, tries) = entry(log(s, "app_a", &ep).await);
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Succeeded, 2));
    assert_eq!(tries.len(), 2);
    assert_eq!(
        s.get_webhook("app_a", &ep)
            .await
            .unwrap()
            .unwrap()
            .failing_since,
        None
    );

    // Failing for longer than `disable_after` disables the endpoint, with an audit event,
    // and fails what was pending for it.
    let victim = got
        .iter()
        .find(|c| c.delivery.endpoint_id == "wh_2")
        .unwrap();
    s.finish_attempt(
        "node_a",
        victim,
        &attempt(1, 1_000, None),
        AttemptOutcome::Retry(2_000),
        50_000,
    )
    .await
    .unwrap();
    let next = claim(s, "node_a", 60_000, 90_000, 100, 100, &HashMap::new()).await;
    let victim = next
        .iter()
        .find(|c| c.delivery.id == victim.delivery.id && c.delivery.endpoint_id == "wh_2")
        .unwrap();
    let disabled = s
        .finish_attempt(
            "node_a",
            victim,
            &attempt(2, 60_000, Some(503)),
            AttemptOutcome::Retry(70_000),
            50_000,
        )
        .await
        .unwrap();
    assert!(disabled.is_some());
    let ep2 = s.get_webhook("app_a", "wh_2").await.unwrap().unwrap();
    assert_eq!(ep2.disabled_at, Some(60_000));
    assert!(log(s, "app_a", "wh_2")
        .await
        .iter()
        .all(|(d, _)| d.status == DeliveryStatus::Failed));
    let audit = s
        .list_audit("org_a", Some("app_a"), &page(10))
        .await
        .unwrap();
    assert!(audit
        .iter()
        .any(|a| a.action == "webhook.disabled" && a.target == "wh_2"));
    assert_eq!(
        s.retry_delivery("app_a", "wh_2", &victim.delivery.id, 1)
            .await
            .unwrap(),
        RetryDelivery::EndpointDisabled
    );
    // A disabled endpoint is offered nothing, and gets no new deliveries.
    assert!(
        claim(s, "node_a", 100_000, 190_000, 100, 100, &HashMap::new())
            .await
            .iter()
            .all(|c| c.delivery.endpoint_id != "wh_2")
    );
    // 410 Gone disables at once.
    let gone = claim(s, "node_a", 200_000, 290_000, 1, 1, &HashMap::new()).await;
    assert_eq!(gone.len(), 1);
    let reason = s
        .finish_attempt(
            "node_a",
            &gone[0],
            &attempt(1, 200_000, Some(410)),
            AttemptOutcome::Gone,
            50_000,
        )
        .await
        .unwrap();
    assert_eq!(reason.as_deref(), Some("the endpoint answered 410 Gone"));
    // Finished deliveries go after the retention period; pending ones stay.
    let pending_before = log(s, "app_a", "wh_1")
        .await
        .iter()
        .filter(|(d, _)| d.status == DeliveryStatus::Pending)
        .count();
    assert!(s.purge_hooks(Millis::MAX).await.unwrap() > 0);
    let left = log(s, "app_a", "wh_1").await;
    assert!(left
        .iter()
        .all(|(d, _)| d.status == DeliveryStatus::Pending));
    assert_eq!(left.len(), pending_before);
    // Deleting an endpoint takes its log along.
    assert!(s.delete_webhook("app_a", "wh_1").await.unwrap());
    assert!(log(s, "app_a", "wh_1").await.is_empty());
}

pub(super) async fn rotation_keeps_the_previous_secret(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    s.create_webhook(&endpoint("wh_1", "app_a", 1))
        .await
        .unwrap();
    assert!(s
        .rotate_webhook_secret("app_a", "wh_1", "sealed2", 99)
        .await
        .unwrap());
    let e = s.get_webhook("app_a", "wh_1").await.unwrap().unwrap();
    assert_eq!(
        (
            e.secret.as_str(),
            e.previous_secret.as_deref(),
            e.previous_until
        ),
        ("sealed2", Some("sealed"), Some(99))
    );
    tenant(s, "org_b", "app_b").await;
    assert!(!s
        .rotate_webhook_secret("app_b", "wh_1", "x", 1)
        .await
        .unwrap());
}

fn trigger(id: &str, kind: TriggerKind, next: Option<Millis>) -> TriggerRow {
    TriggerRow {
        id: id.into(),
        org_id: "org_a".into(),
        app_id: "app_a".into(),
        agent: "@acme/agent".into(),
        kind,
        config: json!({ "type": kind.as_str() }),
        secret: None,
        paused_at: None,
        next_fire_at: next,
        created_at: 1,
    }
}

pub(super) async fn triggers_and_firings(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    s.create_trigger(&trigger("trg_cron", TriggerKind::Cron, Some(100)))
        .await
        .unwrap();
    s.create_trigger(&trigger("trg_hook", TriggerKind::Webhook, None))
        .await
        .unwrap();
    assert_eq!(
        s.list_triggers("app_a", "@acme/agent", &page(10))
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        s.find_trigger("trg_hook").await.unwrap().unwrap().kind,
        TriggerKind::Webhook
    );
    tenant(s, "org_b", "app_b").await;
    assert_eq!(
        s.get_trigger("app_b", "@acme/agent", "trg_hook")
            .await
            .unwrap(),
        None
    );
    assert!(!s
        .delete_trigger("app_b", "@acme/agent", "trg_hook")
        .await
        .unwrap());
    assert!(!s
        .set_trigger_paused("app_b", "@acme/agent", "trg_cron", Some(1), None)
        .await
        .unwrap());

    assert!(s.due_cron_triggers(99, 10).await.unwrap().is_empty());
    assert_eq!(s.due_cron_triggers(100, 10).await.unwrap().len(), 1);
    assert!(s.advance_trigger("trg_cron", 100, Some(200)).await.unwrap());
    assert!(
        !s.advance_trigger("trg_cron", 100, Some(300)).await.unwrap(),
        "moved already"
    );
    assert!(s
        .set_trigger_paused("app_a", "@acme/agent", "trg_cron", Some(150), Some(200))
        .await
        .unwrap());
    assert!(
        s.due_cron_triggers(1_000, 10).await.unwrap().is_empty(),
        "paused"
    );

    // A firing starts one run: the repeat finds it, racing or not.
    let firing = Firing {
        trigger_id: "trg_hook".into(),
        key: "delivery-1".into(),
    };
    let first = RunRow {
        trigger: "webhook:trg_hook".into(),
        ..run("run_1", "org_a", "app_a", 10)
    };
    assert_eq!(
        s.insert_fired_run(&first, None, &firing).await.unwrap(),
        Fired::Started
    );
    let second = run("run_2", "org_a", "app_a", 11);
    assert_eq!(
        s.insert_fired_run(&second, None, &firing).await.unwrap(),
        Fired::Existing("run_1".into())
    );
    assert_eq!(s.get_run("app_a", "run_2").await.unwrap(), None);
    assert_eq!(
        s.firing_run(&firing).await.unwrap().as_deref(),
        Some("run_1")
    );
    let race = Firing {
        key: "delivery-2".into(),
        ..firing.clone()
    };
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let (s, race) = (s.clone(), race.clone());
            tokio::spawn(async move {
                let r = run(&format!("run_race_{i}"), "org_a", "app_a", 20 + i);
                s.insert_fired_run(&r, None, &race).await.unwrap()
            })
        })
        .collect();
    let mut fresh = 0;
    for r in racers {
        if r.await.unwrap() == Fired::Started {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "exactly one racer started a run");
    let runs = s
        .list_runs("app_a", &RunFilter::default(), &page(100))
        .await
        .unwrap();
    assert_eq!(
        runs.iter()
            .filter(|r| r.id.starts_with("run_race_"))
            .count(),
        1
    );
    // A pause wins over a firing that read the trigger before it.
    assert!(s
        .set_trigger_paused("app_a", "@acme/agent", "trg_hook", Some(5), None)
        .await
        .unwrap());
    let late = Firing {
        key: "delivery-3".into(),
        ..firing.clone()
    };
    assert_eq!(
        s.insert_fired_run(&run("run_late", "org_a", "app_a", 30), None, &late)
            .await
            .unwrap(),
        Fired::Paused
    );
    assert_eq!(s.get_run("app_a", "run_late").await.unwrap(), None);
    // Deleting the trigger forgets its firings; the runs stay.
    assert!(s
        .delete_trigger("app_a", "@acme/agent", "trg_hook")
        .await
        .unwrap());
    assert_eq!(s.firing_run(&firing).await.unwrap(), None);
    assert!(s.get_run("app_a", "run_1").await.unwrap().is_some());
}

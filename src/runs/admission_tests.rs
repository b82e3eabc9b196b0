//! Admission rules over both quota backends: in-process always, Redis when
//! `ATOLL_TEST_REDIS_URL` is set (each test under its own random key prefix).

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::quota::{MemoryQuotas, RedisQuotas};

fn limits() -> AdmissionLimits {
    AdmissionLimits {
        requests_per_minute: 100,
        org_runs_per_minute: 100,
        app_runs_per_minute: 100,
        end_user_runs_per_minute: 100,
        concurrent_runs_per_app: 100,
        concurrent_runs_per_end_user: 100,
        cpu_ms_per_day: 1_000_000,
        llm_tokens_per_day: 1_000_000,
        slot_ttl: Duration::from_secs(3600),
    }
}

async fn backends() -> Vec<Arc<dyn Quotas>> {
    let mut all: Vec<Arc<dyn Quotas>> = vec![Arc::new(MemoryQuotas::new())];
    if let Ok(url) = std::env::var("ATOLL_TEST_REDIS_URL") {
        let prefix = format!("atoll-test:{}", uuid::Uuid::new_v4());
        let redis = RedisQuotas::connect(&url, &prefix).await.expect("connect");
        all.push(Arc::new(redis));
    } else {
        eprintln!("Redis part skipped: ATOLL_TEST_REDIS_URL is not set");
    }
    all
}

fn who<'a>(org: &'a str, app: &'a str, end_user: Option<&'a str>) -> RunTenant<'a> {
    RunTenant {
        org_id: org,
        app_id: app,
        end_user,
    }
}

/// The limit a refusal names, or a failure for anything else.
fn refused_by(answer: Result<(Permit, Decision), Refused>) -> &'static str {
    match answer {
        Err(Refused::Limit { what, decision }) => {
            assert!(!decision.allowed && decision.retry_after_secs >= 1);
            what
        }
        Err(Refused::Backend(e)) => panic!("backend failed: {e}"),
        Ok(_) => panic!("admitted over the limit"),
    }
}

#[test]
fn keys_are_spelled_once_and_kept_apart() {
    let (app, end_user) = ("app_1", "u");
    assert_eq!(QuotaKey::AppSlots { app }.key(), "concurrent:app:app_1");
    assert_eq!(
        QuotaKey::EndUserSlots { app, end_user }.key(),
        "concurrent:eu:app_1:u"
    );
    let all = [
        QuotaKey::Requests { fingerprint: app },
        QuotaKey::OrgRuns { org: app },
        QuotaKey::AppRuns { app },
        QuotaKey::EndUserRuns { app, end_user },
        QuotaKey::AppSlots { app },
        QuotaKey::EndUserSlots { app, end_user },
        QuotaKey::AppCpu { app },
        QuotaKey::AppTokens { app },
    ];
    let keys: std::collections::HashSet<String> = all.iter().map(QuotaKey::key).collect();
    assert_eq!(keys.len(), all.len(), "two rules share a counter");
}

#[tokio::test]
async fn each_run_rate_refuses_only_its_own_tenant() {
    for quotas in backends().await {
        let a = Admission::new(
            quotas,
            AdmissionLimits {
                org_runs_per_minute: 3,
                app_runs_per_minute: 2,
                end_user_runs_per_minute: 1,
                ..limits()
            },
        );
        a.admit_run(&who("o1", "a1", Some("alice")), "r1")
            .await
            .expect("first");
        let over = a.admit_run(&who("o1", "a1", Some("alice")), "r2").await;
        assert_eq!(refused_by(over), "end-user runs per minute");
        // bob is not alice; app a1 has one run left in its minute
        a.admit_run(&who("o1", "a1", Some("bob")), "r3")
            .await
            .expect("bob");
        let over = a.admit_run(&who("o1", "a1", None), "r4").await;
        assert_eq!(refused_by(over), "app runs per minute");
        // another app of the same org takes the org's last run of the minute
        a.admit_run(&who("o1", "a2", None), "r5").await.expect("a2");
        let over = a.admit_run(&who("o1", "a3", None), "r6").await;
        assert_eq!(refused_by(over), "org runs per minute");
        a.admit_run(&who("o2", "b1", None), "r7")
            .await
            .expect("other org");
    }
}

#[tokio::test]
async fn release_frees_both_slots_and_spends_cpu() {
    for quotas in backends().await {
        let a = Admission::new(
            quotas,
            AdmissionLimits {
                concurrent_runs_per_app: 1,
                concurrent_runs_per_end_user: 1,
                cpu_ms_per_day: 50,
                ..limits()
            },
        );
        let (permit, _) = a
            .admit_run(&who("o", "a", Some("u")), "r1")
            .await
            .expect("first");
        let over = a.admit_run(&who("o", "a", None), "r2").await;
        assert_eq!(refused_by(over), "concurrent runs per app");
        a.release(permit, 10).await;
        let (permit, _) = a
            .admit_run(&who("o", "a", Some("u")), "r3")
            .await
            .expect("freed");
        a.release(permit, 40).await;
        let over = a.admit_run(&who("o", "a", None), "r4").await;
        assert_eq!(refused_by(over), "CPU milliseconds per day");
        a.admit_run(&who("o", "b", None), "r5")
            .await
            .expect("another app's CPU");
    }
}

#[tokio::test]
async fn an_end_user_refused_a_slot_gives_the_app_slot_back() {
    for quotas in backends().await {
        let a = Admission::new(
            quotas,
            AdmissionLimits {
                concurrent_runs_per_app: 2,
                concurrent_runs_per_end_user: 1,
                ..limits()
            },
        );
        a.admit_run(&who("o", "a", Some("u")), "r1")
            .await
            .expect("first");
        let over = a.admit_run(&who("o", "a", Some("u")), "r2").await;
        assert_eq!(refused_by(over), "concurrent runs per end-user");
        // r2's app slot went back, so the app's second slot is free
        a.admit_run(&who("o", "a", None), "r3")
            .await
            .expect("app slot free");
    }
}

#[tokio::test]
async fn concurrency_refusals_spend_no_run_rate_and_rate_refusals_hold_no_slot() {
    for quotas in backends().await {
        let a = Admission::new(
            quotas,
            AdmissionLimits {
                concurrent_runs_per_app: 1,
                app_runs_per_minute: 3,
                ..limits()
            },
        );
        let (held, _) = a
            .admit_run(&who("o", "a", None), "r1")
            .await
            .expect("first");
        // Retried every second for a while: none of these count against the minute.
        for i in 0..10 {
            let over = a.admit_run(&who("o", "a", None), &format!("busy{i}")).await;
            assert_eq!(refused_by(over), "concurrent runs per app");
        }
        a.release(held, 0).await;
        let (second, _) = a
            .admit_run(&who("o", "a", None), "r2")
            .await
            .expect("the second of three runs this minute");
        a.release(second, 0).await;
        let (third, _) = a
            .admit_run(&who("o", "a", None), "r3")
            .await
            .expect("the third");
        a.release(third, 0).await;
        // Now the minute is spent: the refusal hands its slot back at once.
        let over = a.admit_run(&who("o", "a", None), "r4").await;
        assert_eq!(refused_by(over), "app runs per minute");
        let app_slots = QuotaKey::AppSlots { app: "a" }.key();
        let free = a
            .quotas()
            .acquire_slot(&app_slots, "probe", 1, Duration::from_secs(60))
            .await
            .expect("backend");
        assert!(free.allowed, "the refused run still holds the app's slot");
    }
}

#[tokio::test]
async fn tokens_and_requests_are_budgeted_per_app_and_key() {
    for quotas in backends().await {
        let a = Admission::new(
            quotas,
            AdmissionLimits {
                requests_per_minute: 1,
                llm_tokens_per_day: 10,
                ..limits()
            },
        );
        a.request("k1").await.expect("first request");
        assert!(matches!(a.request("k1").await, Err(Refused::Limit { .. })));
        a.request("k2").await.expect("another key");
        a.tokens_left("a").await.expect("fresh budget");
        a.spend_tokens("a", 10).await;
        assert!(matches!(
            a.tokens_left("a").await,
            Err(Refused::Limit { .. })
        ));
        a.tokens_left("b").await.expect("another app");
    }
}

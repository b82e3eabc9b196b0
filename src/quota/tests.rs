//! One suite for every [`Quotas`] backend: in-process always, Redis when
//! `ATOLL_TEST_REDIS_URL` is set (each test under its own random key prefix).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{MemoryQuotas, Quotas, RedisQuotas};

/// Two nodes sharing one store: the same instance in memory, two connections in Redis.
type Nodes = (Arc<dyn Quotas>, Arc<dyn Quotas>);

fn memory_nodes() -> Nodes {
    let quotas: Arc<dyn Quotas> = Arc::new(MemoryQuotas::new());
    (quotas.clone(), quotas)
}

async fn redis_nodes() -> Option<Nodes> {
    let url = std::env::var("ATOLL_TEST_REDIS_URL").ok()?;
    let prefix = format!("atoll-test:{}", uuid::Uuid::new_v4());
    let a = RedisQuotas::connect(&url, &prefix).await.expect("connect");
    let b = RedisQuotas::connect(&url, &prefix).await.expect("connect");
    Some((Arc::new(a), Arc::new(b)))
}

/// Runs each named test against both backends.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::memory_nodes()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    match super::redis_nodes().await {
                        Some(nodes) => super::$name(nodes).await,
                        None => eprintln!("skipped: ATOLL_TEST_REDIS_URL is not set"),
                    }
                }
            )*
        }
    };
}

suite!(
    window_refuses_then_resets,
    concurrent_hits_never_exceed_limit,
    keys_and_kinds_are_independent,
    zero_limits_refuse,
    budget_adds_and_checks,
    budget_resets_after_window,
    concurrent_adds_all_count,
    slots_limit_and_release,
    slots_hold_under_concurrency,
    slots_expire_after_ttl,
    ping_answers,
);

/// Short enough to wait out, long enough that a busy CI machine finishes a step inside it.
const SHORT: Duration = Duration::from_secs(2);
const HOUR: Duration = Duration::from_secs(3600);

/// Polls `check` until it holds or a generous bound passes.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn window_refuses_then_resets((a, b): Nodes) {
    for (node, left) in [(&a, 2), (&b, 1), (&a, 0)] {
        let d = node.hit("k", 3, SHORT).await.expect("hit");
        assert!(d.allowed);
        assert_eq!((d.limit, d.remaining, d.retry_after_secs), (3, left, 0));
        assert!(d.reset_secs <= 2);
    }
    let refused = b.hit("k", 3, SHORT).await.expect("hit");
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    assert!(refused.retry_after_secs >= 1);
    assert!(refused.reset_secs <= 2);

    let reset = eventually(|| async { a.hit("k", 3, SHORT).await.expect("hit").allowed }).await;
    assert!(reset, "a new window should open after the old one ends");
    // that allowed hit opened a new window
    assert_eq!(b.hit("k", 3, SHORT).await.expect("hit").remaining, 1);
}

async fn concurrent_hits_never_exceed_limit((a, b): Nodes) {
    let mut tasks = Vec::new();
    for i in 0..50 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut allowed = 0;
            for _ in 0..4 {
                if node.hit("busy", 37, HOUR).await.expect("hit").allowed {
                    allowed += 1;
                }
            }
            allowed
        }));
    }
    let mut allowed = 0;
    for task in tasks {
        allowed += task.await.expect("task");
    }
    assert_eq!(allowed, 37);
    let d = a.hit("busy", 37, HOUR).await.expect("hit");
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
}

async fn keys_and_kinds_are_independent((a, b): Nodes) {
    assert!(a.hit("x", 1, HOUR).await.expect("hit").allowed);
    assert!(!b.hit("x", 1, HOUR).await.expect("hit").allowed);
    assert!(b.hit("y", 1, HOUR).await.expect("hit").allowed);
    // a budget and a slot set named "x" are not the rate counter "x"
    let budget = a.check_budget("x", 1, HOUR).await.expect("check");
    assert!(budget.allowed);
    assert_eq!(budget.remaining, 1);
    assert!(
        a.acquire_slot("x", "r", 1, HOUR)
            .await
            .expect("acquire")
            .allowed
    );
    assert_eq!(b.add("x", 5, HOUR).await.expect("add"), 5);
}

async fn zero_limits_refuse((a, _): Nodes) {
    let d = a.hit("none", 0, SHORT).await.expect("hit");
    assert!(!d.allowed);
    assert!(d.retry_after_secs >= 1);
    let d = a
        .acquire_slot("none", "r", 0, SHORT)
        .await
        .expect("acquire");
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
    assert!(
        !a.check_budget("none", 0, SHORT)
            .await
            .expect("check")
            .allowed
    );
}

async fn budget_adds_and_checks((a, b): Nodes) {
    let fresh = a.check_budget("cpu", 1000, HOUR).await.expect("check");
    assert!(fresh.allowed);
    assert_eq!((fresh.remaining, fresh.retry_after_secs), (1000, 0));
    assert_eq!(
        fresh.reset_secs, 3600,
        "an unused budget reports a whole window"
    );

    assert_eq!(a.add("cpu", 400, HOUR).await.expect("add"), 400);
    assert_eq!(b.add("cpu", 500, HOUR).await.expect("add"), 900);
    let d = b.check_budget("cpu", 1000, HOUR).await.expect("check");
    assert!(d.allowed);
    assert_eq!(d.remaining, 100);
    assert!(d.reset_secs > 3500 && d.reset_secs <= 3600);

    // recording never refuses, even past the limit
    assert_eq!(a.add("cpu", 200, HOUR).await.expect("add"), 1100);
    let d = a.check_budget("cpu", 1000, HOUR).await.expect("check");
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
    assert!(d.retry_after_secs > 3500);
    // a higher limit reads the same total
    assert_eq!(
        a.check_budget("cpu", 2000, HOUR)
            .await
            .expect("check")
            .remaining,
        900
    );
}

async fn budget_resets_after_window((a, b): Nodes) {
    assert_eq!(a.add("tokens", 10, SHORT).await.expect("add"), 10);
    assert!(
        !b.check_budget("tokens", 10, SHORT)
            .await
            .expect("check")
            .allowed
    );
    let reset = eventually(|| async {
        let d = b.check_budget("tokens", 10, SHORT).await.expect("check");
        d.allowed && d.remaining == 10
    })
    .await;
    assert!(reset, "the budget should reset after its window");
    assert_eq!(a.add("tokens", 3, SHORT).await.expect("add"), 3);
}

async fn concurrent_adds_all_count((a, b): Nodes) {
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            node.add("sum", i + 1, HOUR).await.expect("add")
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let d = a.check_budget("sum", 10_000, HOUR).await.expect("check");
    assert_eq!(d.remaining, 10_000 - 40 * 41 / 2);
}

async fn slots_limit_and_release((a, b): Nodes) {
    let d = a
        .acquire_slot("runs", "run_a", 2, HOUR)
        .await
        .expect("acquire");
    assert!(d.allowed);
    assert_eq!((d.limit, d.remaining, d.retry_after_secs), (2, 1, 0));
    let d = b
        .acquire_slot("runs", "run_b", 2, HOUR)
        .await
        .expect("acquire");
    assert!(d.allowed);
    assert_eq!(d.remaining, 0);

    let refused = a
        .acquire_slot("runs", "run_c", 2, HOUR)
        .await
        .expect("acquire");
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    assert!(refused.retry_after_secs > 3500 && refused.retry_after_secs <= 3600);

    // a holder asking again keeps (and renews) its slot without taking another
    let again = b
        .acquire_slot("runs", "run_a", 2, HOUR)
        .await
        .expect("acquire");
    assert!(again.allowed);
    assert_eq!(again.remaining, 0);

    b.release_slot("runs", "run_a").await.expect("release");
    b.release_slot("runs", "run_a")
        .await
        .expect("release twice");
    b.release_slot("nobody", "run_z")
        .await
        .expect("release unknown");
    let d = a
        .acquire_slot("runs", "run_c", 2, HOUR)
        .await
        .expect("acquire");
    assert!(d.allowed);
    assert_eq!(d.remaining, 0);
}

async fn slots_hold_under_concurrency((a, b): Nodes) {
    let mut tasks = Vec::new();
    for i in 0..40 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let holder = format!("run_{i}");
            node.acquire_slot("conc", &holder, 7, HOUR)
                .await
                .expect("acquire")
                .allowed
        }));
    }
    let mut allowed = 0;
    for task in tasks {
        allowed += usize::from(task.await.expect("task"));
    }
    assert_eq!(allowed, 7);
}

async fn slots_expire_after_ttl((a, b): Nodes) {
    assert!(
        a.acquire_slot("ttl", "dead", 1, SHORT)
            .await
            .expect("acquire")
            .allowed
    );
    let refused = b
        .acquire_slot("ttl", "alive", 1, SHORT)
        .await
        .expect("acquire");
    assert!(!refused.allowed);
    assert!(refused.retry_after_secs >= 1 && refused.retry_after_secs <= 2);
    let freed = eventually(|| async {
        b.acquire_slot("ttl", "alive", 1, HOUR)
            .await
            .expect("acquire")
            .allowed
    })
    .await;
    assert!(freed, "an expired slot should come back");
    assert!(
        !a.acquire_slot("ttl", "dead", 1, SHORT)
            .await
            .expect("acquire")
            .allowed
    );
}

async fn ping_answers((a, b): Nodes) {
    a.ping().await.expect("ping");
    b.ping().await.expect("ping");
}

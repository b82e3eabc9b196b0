//! One suite for every [`EventBus`] backend: in-process always, Redis when
//! `ATOLL_TEST_REDIS_URL` is set (each test under its own random channel prefix).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{BoxStream, StreamExt};
use serde_json::json;

use super::{BusEvent, EventBus, MemoryBus, RedisBus};

/// Two nodes: the same instance in memory; in Redis, one publishes and one subscribes.
type Nodes = (Arc<dyn EventBus>, Arc<dyn EventBus>);

fn memory_nodes() -> Nodes {
    let bus: Arc<dyn EventBus> = Arc::new(MemoryBus::new());
    (bus.clone(), bus)
}

fn redis_url() -> Option<String> {
    std::env::var("ATOLL_TEST_REDIS_URL").ok()
}

fn test_prefix() -> String {
    format!("atoll-test:{}", uuid::Uuid::new_v4())
}

async fn redis_nodes() -> Option<Nodes> {
    let url = redis_url()?;
    let prefix = test_prefix();
    let a = RedisBus::connect(&url, &prefix).await.expect("connect");
    let b = RedisBus::connect(&url, &prefix).await.expect("connect");
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
    delivers_in_order,
    every_subscriber_gets_everything,
    runs_are_separate,
    dropping_one_subscriber_leaves_others,
    publish_without_subscribers_is_fine,
    resubscribing_right_after_leaving_works,
    streams_end_when_the_bus_is_dropped,
);

const BOUND: Duration = Duration::from_secs(10);

fn event(run_id: &str, seq: i64) -> BusEvent {
    BusEvent {
        run_id: run_id.to_owned(),
        seq,
        kind: "log".to_owned(),
        data: json!({ "line": format!("line {seq}"), "nested": [seq, null, true] }),
    }
}

async fn next(stream: &mut BoxStream<'static, BusEvent>) -> Option<BusEvent> {
    tokio::time::timeout(BOUND, stream.next())
        .await
        .expect("an event in time")
}

async fn take(stream: &mut BoxStream<'static, BusEvent>, n: usize) -> Vec<BusEvent> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        got.push(next(stream).await.expect("stream ended early"));
    }
    got
}

/// Polls `check` until it holds or a generous bound passes.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + BOUND;
    while Instant::now() < until {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn delivers_in_order((publisher, subscriber): Nodes) {
    let mut stream = subscriber.subscribe("run_1").await.expect("subscribe");
    let sent: Vec<BusEvent> = (1..=200).map(|seq| event("run_1", seq)).collect();
    for e in &sent {
        publisher.publish(e).await.expect("publish");
    }
    assert_eq!(take(&mut stream, sent.len()).await, sent);
}

async fn every_subscriber_gets_everything((a, b): Nodes) {
    // two on the subscribing node and one on the publishing node
    let mut streams = vec![
        b.subscribe("run_1").await.expect("subscribe"),
        b.subscribe("run_1").await.expect("subscribe"),
        a.subscribe("run_1").await.expect("subscribe"),
    ];
    let sent: Vec<BusEvent> = (1..=20).map(|seq| event("run_1", seq)).collect();
    for e in &sent {
        a.publish(e).await.expect("publish");
    }
    for stream in &mut streams {
        assert_eq!(take(stream, sent.len()).await, sent);
    }
}

async fn runs_are_separate((publisher, subscriber): Nodes) {
    let mut one = subscriber.subscribe("run_1").await.expect("subscribe");
    let mut two = subscriber.subscribe("run_2").await.expect("subscribe");
    publisher
        .publish(&event("run_3", 1))
        .await
        .expect("publish");
    publisher
        .publish(&event("run_2", 1))
        .await
        .expect("publish");
    publisher
        .publish(&event("run_1", 7))
        .await
        .expect("publish");
    assert_eq!(next(&mut one).await, Some(event("run_1", 7)));
    assert_eq!(next(&mut two).await, Some(event("run_2", 1)));
}

async fn dropping_one_subscriber_leaves_others((publisher, subscriber): Nodes) {
    let first = subscriber.subscribe("run_1").await.expect("subscribe");
    let mut second = subscriber.subscribe("run_1").await.expect("subscribe");
    drop(first);
    publisher
        .publish(&event("run_1", 1))
        .await
        .expect("publish");
    assert_eq!(next(&mut second).await, Some(event("run_1", 1)));

    drop(second);
    publisher
        .publish(&event("run_1", 2))
        .await
        .expect("publish");
    let mut third = subscriber.subscribe("run_1").await.expect("subscribe");
    publisher
        .publish(&event("run_1", 3))
        .await
        .expect("publish");
    // Live only, though an event published just before subscribing may still be in
    // flight and show up first (callers dedupe by seq anyway); never one out of order.
    let mut got = next(&mut third).await.expect("an event");
    if got.seq == 2 {
        got = next(&mut third).await.expect("an event");
    }
    assert_eq!(got, event("run_1", 3));
}

async fn publish_without_subscribers_is_fine((publisher, _): Nodes) {
    for seq in 1..=10 {
        publisher
            .publish(&event("nobody", seq))
            .await
            .expect("publish");
    }
}

async fn resubscribing_right_after_leaving_works((publisher, subscriber): Nodes) {
    // a leave and the next join of the same run must not undo each other
    for seq in 1..=30 {
        let stream = subscriber.subscribe("churn").await.expect("subscribe");
        drop(stream);
        let mut stream = subscriber.subscribe("churn").await.expect("subscribe");
        publisher
            .publish(&event("churn", seq))
            .await
            .expect("publish");
        assert_eq!(next(&mut stream).await, Some(event("churn", seq)));
    }
}

async fn streams_end_when_the_bus_is_dropped((a, b): Nodes) {
    let mut stream = b.subscribe("run_1").await.expect("subscribe");
    drop(a);
    drop(b);
    assert_eq!(next(&mut stream).await, None);
    assert_eq!(next(&mut stream).await, None, "an ended stream stays ended");
}

#[tokio::test]
async fn memory_forgets_runs_when_last_subscriber_leaves() {
    let bus = MemoryBus::new();
    let one = bus.subscribe("run_1").await.expect("subscribe");
    let two = bus.subscribe("run_1").await.expect("subscribe");
    assert_eq!(bus.open_runs(), 1);
    drop(one);
    assert_eq!(bus.open_runs(), 1);
    drop(two);
    assert_eq!(bus.open_runs(), 0);
}

#[tokio::test]
async fn memory_ends_a_stream_that_falls_behind() {
    let bus = MemoryBus::with_buffer(4);
    let mut stream = bus.subscribe("run_1").await.expect("subscribe");
    for seq in 1..=10 {
        bus.publish(&event("run_1", seq)).await.expect("publish");
    }
    // ending beats skipping: the caller refills from the store by seq
    assert_eq!(next(&mut stream).await, None);
    assert_eq!(next(&mut stream).await, None, "an ended stream stays ended");
    assert_eq!(bus.open_runs(), 0);
}

/// How many subscribers Redis counts on `channel`.
async fn redis_subscribers(url: &str, channel: &str) -> i64 {
    let client = ::redis::Client::open(url).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let counts: Vec<(String, i64)> = ::redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .expect("numsub");
    counts.first().map_or(0, |(_, n)| *n)
}

#[tokio::test]
async fn redis_unsubscribes_when_last_subscriber_leaves() {
    let Some(url) = redis_url() else {
        return eprintln!("skipped: ATOLL_TEST_REDIS_URL is not set");
    };
    let prefix = test_prefix();
    let channel = format!("{prefix}:run:run_1");
    let bus = RedisBus::connect(&url, &prefix).await.expect("connect");
    let one = bus.subscribe("run_1").await.expect("subscribe");
    let two = bus.subscribe("run_1").await.expect("subscribe");
    // one shared connection per node: two streams, one Redis subscription
    assert_eq!(redis_subscribers(&url, &channel).await, 1);
    drop(one);
    drop(two);
    assert!(eventually(|| async { redis_subscribers(&url, &channel).await == 0 }).await);
}

#[tokio::test]
async fn redis_disconnection_ends_streams_then_recovers() {
    let Some(url) = redis_url() else {
        return eprintln!("skipped: ATOLL_TEST_REDIS_URL is not set");
    };
    let bus = RedisBus::connect(&url, &test_prefix())
        .await
        .expect("connect");
    let mut stream = bus.subscribe("run_1").await.expect("subscribe");
    let id = bus.subscriber_id().await.expect("client id");
    let client = ::redis::Client::open(url.as_str()).expect("url");
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let _: i64 = ::redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut admin)
        .await
        .expect("kill");
    assert_eq!(next(&mut stream).await, None, "a gap must end the stream");

    let recovered = eventually(|| async {
        let Ok(mut stream) = bus.subscribe("run_1").await else {
            return false;
        };
        bus.publish(&event("run_1", 2)).await.expect("publish");
        let got = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
        matches!(got, Ok(Some(e)) if e == event("run_1", 2))
    })
    .await;
    assert!(
        recovered,
        "subscriptions should work again after a reconnect"
    );
}

#[tokio::test]
async fn redis_connect_to_nothing_fails() {
    if redis_url().is_none() {
        return eprintln!("skipped: ATOLL_TEST_REDIS_URL is not set");
    }
    let failed = tokio::time::timeout(
        Duration::from_secs(30),
        RedisBus::connect("redis://127.0.0.1:1", "x"),
    )
    .await
    .expect("gives up in time");
    assert!(failed.is_err());
}

//! Fetcher tests of limits and request checks, against loopback servers started here.

use std::time::{Duration, Instant};

use super::*;
use crate::broker::testutil::*;

#[tokio::test]
async fn oversize_streamed_body_is_cut_off() {
    let server = TestServer::start(|_, _| Reply::Chunked(vec![b'x'; 300], 10)).await;
    let err = loopback()
        .fetch(get(server.url("/")), &small(1000), &any_host)
        .await
        .expect_err("too large");
    assert!(
        matches!(err, FetchError::TooLarge { limit: 1000 }),
        "{err:?}"
    );
    assert_eq!(err.code(), "fetch_limit");
    let resp = loopback()
        .fetch(get(server.url("/")), &small(3000), &any_host)
        .await
        .expect("exactly at the limit");
    assert_eq!(resp.body.len(), 3000);
}

#[tokio::test]
async fn oversize_announced_body_fails_before_it_arrives() {
    // The server announces 5000 bytes and then sends nothing.
    let server = TestServer::start(|_, _| {
        Reply::HeadersThenStall(
            vec![("content-length".into(), "5000".into())],
            Duration::from_secs(10),
        )
    })
    .await;
    let started = Instant::now();
    let err = loopback()
        .fetch(get(server.url("/")), &small(1000), &any_host)
        .await
        .expect_err("too large");
    assert!(
        matches!(err, FetchError::TooLarge { limit: 1000 }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // HEAD has no body, whatever content-length says.
    let head = loopback()
        .fetch(
            request("HEAD", server.url("/"), &[], None),
            &small(1000),
            &any_host,
        )
        .await
        .expect("head");
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn full_body_over_the_limit_with_length_is_too_large() {
    let server = TestServer::start(|_, _| Reply::Full(200, vec![], vec![b'y'; 2048])).await;
    let err = loopback()
        .fetch(get(server.url("/")), &small(2047), &any_host)
        .await
        .expect_err("too large");
    assert!(
        matches!(err, FetchError::TooLarge { limit: 2047 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn slow_servers_time_out() {
    let silent = TestServer::start(|_, _| Reply::Stall(Duration::from_secs(10))).await;
    let trickle = TestServer::start(|_, _| {
        Reply::HeadersThenStall(
            vec![("content-length".into(), "10".into())],
            Duration::from_secs(10),
        )
    })
    .await;
    let limits = FetchLimits {
        timeout: Duration::from_millis(300),
        ..FetchLimits::default()
    };
    for server in [&silent, &trickle] {
        let started = Instant::now();
        let err = loopback()
            .fetch(get(server.url("/")), &limits, &any_host)
            .await
            .expect_err("timeout");
        assert!(matches!(err, FetchError::Timeout), "{err:?}");
        assert_eq!(err.code(), "fetch_timeout");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}

#[tokio::test]
async fn bad_requests_are_refused_before_connecting() {
    let server = echo_server().await;
    let f = loopback();
    let url = server.url("/");
    let cases = vec![
        get(parse("ftp://127.0.0.1/x")),
        get(parse("file:///etc/passwd")),
        get(parse("data:text/plain,hi")),
        get(parse(&format!("http://user:pw@127.0.0.1:{}/", server.port))),
        request("GE T", url.clone(), &[], None),
        request("CONNECT", url.clone(), &[], None),
        request("trace", url.clone(), &[], None),
        request("GET", url.clone(), &[], Some("body")),
        request("HEAD", url.clone(), &[], Some("body")),
        request("GET", url.clone(), &[("Host", "evil")], None),
        request("POST", url.clone(), &[("content-length", "1")], None),
        request(
            "POST",
            url.clone(),
            &[("Transfer-Encoding", "chunked")],
            None,
        ),
        request("GET", url.clone(), &[("connection", "upgrade")], None),
        request("GET", url.clone(), &[("x-a", "1\r\nx-b: 2")], None),
        request("GET", url.clone(), &[("bad name", "1")], None),
    ];
    for req in cases {
        let desc = format!("{} {} {:?}", req.method, req.url, req.headers);
        let err = f
            .fetch(req, &FetchLimits::default(), &any_host)
            .await
            .expect_err(&desc);
        assert!(matches!(err, FetchError::BadRequest(_)), "{desc}: {err:?}");
        assert_eq!(err.code(), "fetch_bad_request");
    }
    let big = request("POST", url, &[], Some(&"z".repeat(101)));
    let err = f
        .fetch(big, &small(100), &any_host)
        .await
        .expect_err("too large");
    assert!(
        matches!(err, FetchError::TooLarge { limit: 100 }),
        "{err:?}"
    );
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn network_errors_say_what_failed_but_not_the_secrets() {
    let addr = closed_port().await;
    let url = parse(&format!("http://127.0.0.1:{}/p?token=qu3ry", addr.port()));
    let req = request("GET", url, &[("authorization", "Bearer s3cret")], None);
    let err = loopback()
        .fetch(req, &FetchLimits::default(), &any_host)
        .await
        .expect_err("refused connection");
    let FetchError::Network(message) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(err.code(), "fetch_network");
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(message.to_lowercase().contains("connect"), "{message}");
    assert!(
        !message.contains("s3cret") && !message.contains("qu3ry"),
        "{message}"
    );
    let nx = loopback()
        .fetch(
            get(parse("http://nxdomain.test/")),
            &FetchLimits::default(),
            &any_host,
        )
        .await
        .expect_err("no such name");
    assert!(
        matches!(&nx, FetchError::Network(m) if m.contains("nxdomain.test")),
        "{nx:?}"
    );
}

#[tokio::test]
async fn the_fetch_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let server = echo_server().await;
    let f = loopback();
    let limits = FetchLimits::default();
    let fut = f.fetch(get(server.url("/")), &limits, &any_host);
    assert_send(&fut);
    let handle = tokio::spawn(async move {
        let limits = FetchLimits::default();
        loopback()
            .fetch(get(server.url("/")), &limits, &any_host)
            .await
            .map(|r| r.status)
    });
    assert_eq!(handle.await.expect("join").expect("fetch"), 201);
    drop(fut);
}

#[tokio::test]
async fn a_body_is_charged_to_the_budget_of_the_run_being_served() {
    use crate::broker::budget::{charged_to, HostMemory};

    let server = TestServer::start(|_, _| Reply::Chunked(vec![b'x'; 300], 10)).await;
    let memory = HostMemory::new(1000);
    let err = charged_to(
        memory.clone(),
        loopback().fetch(get(server.url("/")), &small(1_000_000), &any_host),
    )
    .await
    .expect_err("3000 bytes do not fit a 1000-byte budget");
    assert!(matches!(err, FetchError::OverBudget(_)), "{err:?}");
    assert_eq!(err.code(), "memory_limit");
    assert!(memory.exceeded());
    assert_eq!(memory.used(), 0, "a failed read releases what it held");

    // The same body with room to spare, and outside any run: no budget applies.
    let roomy = HostMemory::new(10_000);
    let body = charged_to(
        roomy.clone(),
        loopback().fetch(get(server.url("/")), &small(1_000_000), &any_host),
    )
    .await
    .expect("fits");
    assert_eq!(body.body.len(), 3000);
    assert_eq!(roomy.used(), 0, "the reservation ends with the read");
    loopback()
        .fetch(get(server.url("/")), &small(1_000_000), &any_host)
        .await
        .expect("no run, no budget");
}

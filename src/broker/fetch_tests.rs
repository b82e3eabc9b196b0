//! Fetcher tests against loopback servers started here: round trips, refusals, redirects.
//! Nothing leaves 127.0.0.1 / ::1.

use super::*;
use crate::broker::testutil::*;

#[tokio::test]
async fn get_round_trip() {
    let server = echo_server().await;
    let req = request(
        "get",
        server.url("/path?q=1#frag"),
        &[("X-Agent", "007")],
        None,
    );
    let resp = loopback()
        .fetch(req, &FetchLimits::default(), &any_host)
        .await
        .expect("fetch");
    assert_eq!(resp.status, 201);
    assert_eq!(resp.status_text, "Created");
    assert_eq!(&resp.body[..], b"GET /path?q=1 ");
    assert!(resp.headers.contains(&("x-echo".into(), "007".into())));
    let cookies = resp
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .count();
    assert_eq!(cookies, 2);
    assert_eq!(resp.url, server.url("/path?q=1").to_string());
    assert!(!resp.redirected);
    let seen = server.seen();
    assert!(seen[0]
        .header("user-agent")
        .is_some_and(|ua| ua.starts_with("atoll/")));
}

#[tokio::test]
async fn post_round_trip() {
    let server = echo_server().await;
    let headers = [
        ("content-type", "text/plain"),
        ("x-agent", "a"),
        ("x-agent", "b"),
    ];
    let req = request("post", server.url("/submit"), &headers, Some("hello body"));
    let resp = loopback()
        .fetch(req, &FetchLimits::default(), &any_host)
        .await
        .expect("fetch");
    assert_eq!(&resp.body[..], b"POST /submit hello body");
    let seen = &server.seen()[0];
    assert_eq!(seen.body, b"hello body");
    assert_eq!(seen.header("content-type"), Some("text/plain"));
    assert_eq!(seen.header("content-length"), Some("10"));
    let agents: Vec<_> = seen
        .headers
        .iter()
        .filter(|(n, _)| n == "x-agent")
        .collect();
    assert_eq!(agents.len(), 2, "repeated headers are all sent");
}

#[tokio::test]
async fn loopback_is_refused_without_a_connection() {
    let server = echo_server().await;
    let f = fetcher(&[]);
    let p = server.port;
    let urls = [
        format!("http://127.0.0.1:{p}/"),
        format!("http://127.9.9.9:{p}/"),
        format!("http://0x7f.1:{p}/"),
        format!("http://2130706433:{p}/"),
        format!("http://127.0.0.1.:{p}/"),
        format!("http://[::1]:{p}/"),
        format!("http://[::ffff:127.0.0.1]:{p}/"),
        format!("http://localhost:{p}/"),
        format!("http://api.LOCALHOST.:{p}/"),
        format!("http://rebind.test:{p}/"),
    ];
    for url in urls {
        let err = f
            .fetch(get(parse(&url)), &FetchLimits::default(), &any_host)
            .await
            .expect_err("refused");
        match &err {
            FetchError::AddressRefused { class, .. } => {
                assert_eq!(*class, AddressClass::Loopback, "{url}")
            }
            other => panic!("{url}: {other:?}"),
        }
        assert_eq!(err.code(), "fetch_address_refused");
        if url.contains("rebind") {
            // What a name resolved to stays out of the agent's view.
            assert!(!err.to_string().contains("127.0.0.1"), "{err}");
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_reached_only_when_permitted() {
    let server = echo_server().await;
    let url = parse(&format!("http://rebind.test:{}/x", server.port));
    let resp = loopback()
        .fetch(get(url), &FetchLimits::default(), &any_host)
        .await
        .expect("permitted");
    assert_eq!(resp.status, 201);
    assert_eq!(
        server.seen()[0].header("host"),
        Some(&*format!("rebind.test:{}", server.port))
    );
}

#[tokio::test]
async fn host_grant_is_checked_before_connecting() {
    let server = echo_server().await;
    let err = loopback()
        .fetch(get(server.url("/")), &FetchLimits::default(), &|_: &str| {
            false
        })
        .await
        .expect_err("not allowed");
    assert!(
        matches!(&err, FetchError::HostNotAllowed(h) if h == "127.0.0.1"),
        "{err:?}"
    );
    assert_eq!(err.code(), "fetch_host_not_allowed");
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn redirect_to_a_host_outside_the_grant_is_refused() {
    let server =
        TestServer::start(|_, port| Reply::redirect(302, &format!("http://localhost:{port}/next")))
            .await;
    let err = loopback()
        .fetch(
            get(server.url("/start")),
            &FetchLimits::default(),
            &|h: &str| h == "127.0.0.1",
        )
        .await
        .expect_err("not allowed");
    assert!(
        matches!(&err, FetchError::HostNotAllowed(h) if h == "localhost"),
        "{err:?}"
    );
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn redirect_to_a_refused_address_is_refused() {
    // Policy permits 127.0.0.1 only; the hop goes to ::1.
    let server =
        TestServer::start(|_, port| Reply::redirect(307, &format!("http://[::1]:{port}/"))).await;
    let err = loopback()
        .fetch(get(server.url("/")), &FetchLimits::default(), &any_host)
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            FetchError::AddressRefused {
                class: AddressClass::Loopback,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn cross_host_redirect_drops_credentials_and_turns_post_into_get() {
    let server = TestServer::start(|seen, port| match seen.target.as_str() {
        "/start" => Reply::redirect(302, &format!("http://localhost:{port}/final")),
        _ => Reply::ok("done"),
    })
    .await;
    let headers = [
        ("authorization", "Bearer s3cret"),
        ("cookie", "sid=1"),
        ("proxy-authorization", "Basic eA=="),
        ("x-api-key", "k3y"),
        ("x-trace", "t1"),
        ("content-type", "application/json"),
    ];
    let mut req = request("POST", server.url("/start"), &headers, Some("{}"));
    req.sensitive_headers = vec!["X-Api-Key".into()];
    let resp = loopback()
        .fetch(req, &FetchLimits::default(), &any_host)
        .await
        .expect("fetch");
    assert_eq!(&resp.body[..], b"done");
    assert!(resp.redirected);
    assert_eq!(resp.url, format!("http://localhost:{}/final", server.port));
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("authorization"), Some("Bearer s3cret"));
    let hop = &seen[1];
    assert_eq!(
        (hop.method.as_str(), hop.target.as_str()),
        ("GET", "/final")
    );
    assert!(hop.body.is_empty());
    for gone in [
        "authorization",
        "cookie",
        "proxy-authorization",
        "x-api-key",
        "content-type",
    ] {
        assert_eq!(hop.header(gone), None, "{gone}");
    }
    assert_eq!(hop.header("x-trace"), Some("t1"));
}

#[tokio::test]
async fn same_origin_307_keeps_method_body_and_credentials() {
    let server = TestServer::start(|seen, _| match seen.target.as_str() {
        "/a" => Reply::redirect(307, "/b"),
        "/b" => Reply::redirect(303, "/c"),
        _ => Reply::ok("c"),
    })
    .await;
    let req = request(
        "PUT",
        server.url("/a"),
        &[("authorization", "t")],
        Some("data"),
    );
    let resp = loopback()
        .fetch(req, &FetchLimits::default(), &any_host)
        .await
        .expect("fetch");
    assert_eq!(resp.url, server.url("/c").to_string());
    let seen = server.seen();
    let summary: Vec<_> = seen
        .iter()
        .map(|s| {
            (
                s.method.as_str(),
                s.body.as_slice(),
                s.header("authorization"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("PUT", &b"data"[..], Some("t")),
            ("PUT", &b"data"[..], Some("t")),
            ("GET", &b""[..], Some("t")),
        ]
    );
}

#[tokio::test]
async fn redirects_stop_at_the_limit() {
    let server = TestServer::start(|_, _| Reply::redirect(301, "/again")).await;
    let limits = FetchLimits {
        max_redirects: 2,
        ..FetchLimits::default()
    };
    let err = loopback()
        .fetch(get(server.url("/")), &limits, &any_host)
        .await
        .expect_err("too many");
    assert!(
        matches!(&err, FetchError::Network(m) if m.contains("too many redirects")),
        "{err:?}"
    );
    assert_eq!(server.seen().len(), 3);
    let none = FetchLimits {
        max_redirects: 0,
        ..limits
    };
    let err = loopback()
        .fetch(get(server.url("/")), &none, &any_host)
        .await
        .expect_err("no redirect may be followed");
    assert!(matches!(err, FetchError::Network(_)), "{err:?}");
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn redirect_to_another_scheme_is_not_followed() {
    let server = TestServer::start(|_, _| Reply::redirect(302, "file:///etc/passwd")).await;
    let err = loopback()
        .fetch(get(server.url("/")), &FetchLimits::default(), &any_host)
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, FetchError::Network(m) if m.contains("non-http")),
        "{err:?}"
    );
}

#[tokio::test]
async fn redirect_modes_follow_refuse_or_hand_back_the_redirect() {
    let server = TestServer::start(|seen, _| match seen.target.as_str() {
        "/start" => Reply::redirect(302, "/final"),
        _ => Reply::ok("arrived"),
    })
    .await;
    let with = |mode| FetchRequest {
        redirect: mode,
        ..get(server.url("/start"))
    };
    let followed = loopback()
        .fetch(with(Redirect::Follow), &FetchLimits::default(), &any_host)
        .await
        .expect("followed");
    assert_eq!((followed.status, followed.redirected), (200, true));
    assert_eq!(server.seen().len(), 2);

    // `error`: the redirect fails the fetch, and its target is never asked.
    let err = loopback()
        .fetch(with(Redirect::Error), &FetchLimits::default(), &any_host)
        .await
        .expect_err("a redirect in error mode");
    assert!(
        matches!(&err, FetchError::Network(m) if m.contains("redirect mode is 'error'")),
        "{err:?}"
    );
    assert_eq!(server.seen().len(), 3);

    // `manual`: the 3xx itself, with its Location, and nothing followed.
    let manual = loopback()
        .fetch(with(Redirect::Manual), &FetchLimits::default(), &any_host)
        .await
        .expect("the redirect itself");
    assert_eq!((manual.status, manual.redirected), (302, false));
    assert!(
        manual
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("location") && v == "/final"),
        "{:?}",
        manual.headers
    );
    assert_eq!(server.seen().len(), 4);
}

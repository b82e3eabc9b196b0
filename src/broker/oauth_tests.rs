//! Client-credentials tokens against loopback token endpoints: the request's form, caching,
//! single flight, expiry, and errors that never carry the client secret.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::broker::connection::{inject, Connection, ConnectionSecret};
use crate::broker::testutil::*;

const SECRET: &str = "s3cr3t:/&=+ value";

/// A token endpoint answering `tok-1`, `tok-2`, ... with `expires_in`, after `delay`.
async fn token_server(expires_in: u64, delay: Duration) -> TestServer {
    let issued = AtomicUsize::new(0);
    TestServer::start(move |_, _| {
        std::thread::sleep(delay);
        let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
        let body = json!({"access_token": format!("tok-{n}"), "token_type": "bearer", "expires_in": expires_in});
        Reply::Full(200, vec![("content-type".into(), "application/json".into())], body.to_string().into_bytes())
    })
    .await
}

fn replying(status: u16, body: &str) -> impl Fn(&Seen, u16) -> Reply + Send + Sync + 'static {
    let body = body.to_owned();
    move |_, _| Reply::Full(status, vec![], body.clone().into_bytes())
}

fn oauth(server: &TestServer, scopes: &[&str]) -> Connection {
    Connection {
        name: "acme-api".into(),
        hosts: vec![format!("127.0.0.1:{}", server.port)],
        allow_http: true,
        secret: ConnectionSecret::Oauth2ClientCredentials {
            token_url: server.url("/oauth/token").to_string(),
            client_id: "client id".into(),
            client_secret: SECRET.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            audience: Some("https://api.example.com".into()),
        },
    }
}

fn creds(c: &Connection) -> ClientCredentials<'_> {
    let ConnectionSecret::Oauth2ClientCredentials {
        token_url,
        client_id,
        client_secret,
        scopes,
        audience,
    } = &c.secret
    else {
        panic!("not oauth2");
    };
    ClientCredentials {
        token_url,
        client_id,
        client_secret,
        scopes,
        audience: audience.as_deref(),
    }
}

async fn failure(
    reply: impl Fn(&Seen, u16) -> Reply + Send + Sync + 'static,
) -> (String, TestServer) {
    let server = TestServer::start(reply).await;
    let c = oauth(&server, &[]);
    let err = TokenCache::new()
        .token(&creds(&c), &loopback())
        .await
        .expect_err("failure");
    assert_eq!(err.code(), "oauth_token_failed");
    (err.to_string(), server)
}

fn assert_no_secret(message: &str) {
    let encoded: String = form_urlencoded::byte_serialize(SECRET.as_bytes()).collect();
    for form in [
        SECRET,
        "s3cr3t",
        encoded.as_str(),
        basic_auth(&creds(&oauth_dummy())).as_str(),
    ] {
        assert!(!message.contains(form), "{message}");
    }
}

fn oauth_dummy() -> Connection {
    Connection {
        name: "x".into(),
        hosts: vec![],
        allow_http: false,
        secret: ConnectionSecret::Oauth2ClientCredentials {
            token_url: String::new(),
            client_id: "client id".into(),
            client_secret: SECRET.into(),
            scopes: vec![],
            audience: None,
        },
    }
}

#[tokio::test]
async fn one_token_serves_many_requests() {
    let auth = token_server(3600, Duration::ZERO).await;
    let api = TestServer::start(|_, _| Reply::ok("ok")).await;
    let (tokens, fetcher, c) = (
        TokenCache::new(),
        loopback(),
        oauth(&auth, &["read", "write"]),
    );
    let mut c = c;
    c.hosts.push(format!("127.0.0.1:{}", api.port));
    for _ in 0..10 {
        let mut req = get(api.url("/v1/things"));
        inject(&c, &mut req, &tokens, &fetcher)
            .await
            .expect("inject");
        fetcher
            .fetch(req, &FetchLimits::default(), &any_host)
            .await
            .expect("fetch");
    }
    let seen = api.seen();
    assert_eq!(seen.len(), 10);
    assert!(seen
        .iter()
        .all(|s| s.header("authorization") == Some("Bearer tok-1")));
    let token_requests = auth.seen();
    assert_eq!(token_requests.len(), 1);
    let t = &token_requests[0];
    assert_eq!(
        (t.method.as_str(), t.target.as_str()),
        ("POST", "/oauth/token")
    );
    assert_eq!(
        t.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        String::from_utf8_lossy(&t.body),
        "grant_type=client_credentials&scope=read+write&audience=https%3A%2F%2Fapi.example.com"
    );
    // RFC 6749 §2.3.1: form-encoded id and secret inside HTTP basic.
    let basic = t
        .header("authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .expect("basic");
    let pair = String::from_utf8(STANDARD.decode(basic).expect("b64")).expect("utf8");
    assert_eq!(pair, "client+id:s3cr3t%3A%2F%26%3D%2B+value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_one_fetch() {
    let auth = token_server(3600, Duration::from_millis(300)).await;
    let tokens = Arc::new(TokenCache::new());
    let fetcher = Arc::new(loopback());
    let c = Arc::new(oauth(&auth, &[]));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (tokens, fetcher, c) = (tokens.clone(), fetcher.clone(), c.clone());
        tasks.spawn(async move { tokens.token(&creds(&c), &fetcher).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.expect("task").expect("token"), "tok-1");
    }
    assert_eq!(auth.seen().len(), 1);
}

#[tokio::test]
async fn tokens_are_fetched_again_when_they_expire() {
    // expires_in 1 s is under twice the margin: kept for half of it.
    let auth = token_server(1, Duration::ZERO).await;
    let (tokens, fetcher, c) = (TokenCache::new(), loopback(), oauth(&auth, &[]));
    assert_eq!(
        tokens.token(&creds(&c), &fetcher).await.expect("token"),
        "tok-1"
    );
    assert_eq!(
        tokens.token(&creds(&c), &fetcher).await.expect("token"),
        "tok-1"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        tokens.token(&creds(&c), &fetcher).await.expect("token"),
        "tok-2"
    );
    assert_eq!(auth.seen().len(), 2);
    tokens.invalidate(&creds(&c)).await;
    assert_eq!(
        tokens.token(&creds(&c), &fetcher).await.expect("token"),
        "tok-3"
    );
}

#[tokio::test]
async fn other_credentials_get_other_tokens() {
    let auth = token_server(3600, Duration::ZERO).await;
    let (tokens, fetcher) = (TokenCache::new(), loopback());
    let (read, write) = (oauth(&auth, &["read"]), oauth(&auth, &["write"]));
    assert_eq!(
        tokens.token(&creds(&read), &fetcher).await.expect("token"),
        "tok-1"
    );
    assert_eq!(
        tokens.token(&creds(&write), &fetcher).await.expect("token"),
        "tok-2"
    );
    assert_eq!(
        tokens.token(&creds(&read), &fetcher).await.expect("token"),
        "tok-1"
    );
    assert_eq!(auth.seen().len(), 2);
}

#[tokio::test]
async fn endpoint_errors_name_the_error_but_never_the_secret() {
    let body = json!({"error": "invalid_client", "error_description": format!("client secret {SECRET} is wrong\r\n")});
    let (message, server) = failure(replying(401, &body.to_string())).await;
    assert!(
        message.starts_with(
            "OAuth2 token request failed: token endpoint 127.0.0.1 answered 401: invalid_client"
        ),
        "{message}"
    );
    assert!(
        message.contains("(client secret [redacted] is wrong)"),
        "{message}"
    );
    assert_no_secret(&message);
    // Failures are not cached.
    let c = oauth(&server, &[]);
    let _ = TokenCache::new().token(&creds(&c), &loopback()).await;
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn unusable_answers_fail() {
    for (status, body, expected) in [
        (500, "<html>oops</html>", "answered 500 without a JSON body"),
        (200, "not json", "answered 200 without a JSON body"),
        (
            200,
            r#"{"token_type":"bearer"}"#,
            "answered 200 without a usable access_token",
        ),
        (
            200,
            r#"{"access_token":"a b"}"#,
            "answered 200 without a usable access_token",
        ),
        (
            200,
            r#"{"access_token":"x","token_type":"mac"}"#,
            "issued a 'mac' token; only bearer tokens are supported",
        ),
        (200, r#"{"error":"slow_down"}"#, "answered 200: slow_down"),
    ] {
        let (message, _) = failure(replying(status, body)).await;
        assert!(message.contains(expected), "{body}: {message}");
        assert_no_secret(&message);
    }
    let long = json!({"error": "x", "error_description": "d".repeat(5000)});
    let (message, _) = failure(replying(400, &long.to_string())).await;
    assert!(
        message.len() < 500 && message.ends_with("...)"),
        "{message}"
    );
}

#[tokio::test]
async fn the_address_policy_covers_token_endpoints() {
    let auth = token_server(3600, Duration::ZERO).await;
    let c = oauth(&auth, &[]);
    let err = TokenCache::new()
        .token(&creds(&c), &fetcher(&[]))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), "oauth_token_failed");
    assert!(err.to_string().contains("is refused (loopback)"), "{err}");
    assert_eq!(auth.seen().len(), 0);
}

#[tokio::test]
async fn token_endpoints_may_not_redirect() {
    let elsewhere = token_server(3600, Duration::ZERO).await;
    let next = elsewhere.url("/token").to_string();
    let (message, _) = failure(move |_, _| Reply::redirect(307, &next)).await;
    assert!(message.contains("too many redirects"), "{message}");
    assert_eq!(elsewhere.seen().len(), 0);
}

#[test]
fn lifetimes() {
    let m = DEFAULT_MARGIN;
    assert_eq!(keep_for(3600, m), Duration::from_secs(3540));
    assert_eq!(keep_for(121, m), Duration::from_secs(61));
    assert_eq!(keep_for(120, m), Duration::from_secs(60));
    assert_eq!(keep_for(1, m), Duration::from_millis(500));
    assert_eq!(keep_for(0, m), Duration::ZERO);
    assert_eq!(keep_for(u64::MAX, m), Duration::from_secs(24 * 3600) - m);
    for (body, secs) in [
        (json!({}), 3600),
        (json!({"expires_in": 120}), 120),
        (json!({"expires_in": "120"}), 120),
        (json!({"expires_in": 59.9}), 59),
        (json!({"expires_in": -5}), 0),
        (json!({"expires_in": null}), 3600),
    ] {
        assert_eq!(expires_in(&body), secs, "{body}");
    }
}

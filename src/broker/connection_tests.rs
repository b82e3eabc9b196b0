//! The connection model: JSON shape, validation, the public view, and injection checked
//! on loopback servers (what the server received, not what we meant to send).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

use super::*;
use crate::broker::testutil::*;
use crate::broker::FetchLimits;

fn secret(value: serde_json::Value) -> ConnectionSecret {
    serde_json::from_value(value).expect("secret json")
}

fn conn(secret: ConnectionSecret) -> Connection {
    Connection {
        name: "acme-api".into(),
        hosts: vec!["127.0.0.1".into()],
        allow_http: true,
        secret,
    }
}

/// `c` allowed to one more loopback port.
fn with_port(c: &Connection, port: u16) -> Connection {
    let mut c = c.clone();
    c.hosts.push(format!("127.0.0.1:{port}"));
    c
}

fn all_kinds() -> Vec<(ConnectionSecret, Vec<&'static str>)> {
    vec![
        (
            secret(json!({"type": "bearer", "token": "SECRET-bearer-1"})),
            vec!["SECRET-bearer-1"],
        ),
        (
            secret(json!({"type": "header", "name": "X-Api-Key", "value": "SECRET-header-2"})),
            vec!["SECRET-header-2"],
        ),
        (
            secret(json!({"type": "basic", "username": "ada", "password": "SECRET-pass-3"})),
            vec!["SECRET-pass-3"],
        ),
        (
            secret(json!({"type": "query", "param": "api_key", "value": "SECRET-query-4"})),
            vec!["SECRET-query-4"],
        ),
        (
            secret(
                json!({"type": "oauth2_client_credentials", "token_url": "https://auth.example.com/token?tenant=SECRET-url-6",
                "client_id": "client-7", "client_secret": "SECRET-client-5", "scopes": ["read", "write"], "audience": "https://api"}),
            ),
            vec!["SECRET-client-5", "SECRET-url-6"],
        ),
    ]
}

/// Injects `c` into a GET of `path` on a fresh loopback server, sends it, and returns
/// what the server saw.
async fn received(c: &Connection, path: &str, headers: &[(&str, &str)]) -> (FetchRequest, Seen) {
    let server = TestServer::start(|_, _| Reply::ok("ok")).await;
    let fetcher = loopback();
    let mut req = request("GET", server.url(path), headers, None);
    let mut c = with_port(c, server.port);
    if let ConnectionSecret::Oauth2ClientCredentials { token_url, .. } = &c.secret {
        let port = url::Url::parse(token_url).ok().and_then(|u| u.port());
        c = with_port(&c, port.expect("token port"));
    }
    inject(&c, &mut req, &TokenCache::new(), &fetcher)
        .await
        .expect("inject");
    let sent = req.clone();
    fetcher
        .fetch(req, &FetchLimits::default(), &any_host)
        .await
        .expect("fetch");
    let seen = server.seen().pop().expect("one request");
    (sent, seen)
}

#[test]
fn json_shapes() {
    for (s, _) in all_kinds() {
        let back: ConnectionSecret =
            serde_json::from_value(serde_json::to_value(&s).expect("ser")).expect("de");
        assert_eq!(back, s);
        assert_eq!(serde_json::to_value(&s).expect("ser")["type"], s.kind());
        assert!(s.validate().is_ok(), "{s:?}");
    }
    let minimal = secret(
        json!({"type": "oauth2_client_credentials", "token_url": "https://a/t", "client_id": "c", "client_secret": "s"}),
    );
    let ConnectionSecret::Oauth2ClientCredentials {
        scopes, audience, ..
    } = minimal
    else {
        panic!("kind");
    };
    assert!(scopes.is_empty() && audience.is_none());
    for bad in [
        json!({"type": "cookie", "value": "x"}),
        json!({"token": "x"}),
        json!({"type": "bearer"}),
        json!({"type": "bearer", "token": "x", "tokne": "y"}),
        json!({"type": "basic", "username": "u", "password": "p", "hosts": []}),
    ] {
        assert!(
            serde_json::from_value::<ConnectionSecret>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn fingerprints_show_change_not_content() {
    let a = secret(json!({"type": "bearer", "token": "abc"}));
    let b = secret(json!({"type": "bearer", "token": "abd"}));
    let fp = a.fingerprint();
    assert_eq!(fp.len(), 12);
    assert!(fp.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(fp, a.clone().fingerprint());
    assert_ne!(fp, b.fingerprint());
    // Same strings, other kind or other split between fields: other fingerprint.
    let h1 = secret(json!({"type": "header", "name": "ab", "value": "c"}));
    let h2 = secret(json!({"type": "header", "name": "a", "value": "bc"}));
    let q1 = secret(json!({"type": "query", "param": "ab", "value": "c"}));
    assert_ne!(h1.fingerprint(), h2.fingerprint());
    assert_ne!(h1.fingerprint(), q1.fingerprint());
}

#[test]
fn validation_refuses_what_could_not_be_sent_as_stored() {
    let bad = [
        json!({"type": "bearer", "token": ""}),
        json!({"type": "bearer", "token": "a\r\nx-evil: 1"}),
        json!({"type": "bearer", "token": "two words"}),
        json!({"type": "bearer", "token": "tökén"}),
        json!({"type": "bearer", "token": "x".repeat(20_000)}),
        json!({"type": "header", "name": "X Api", "value": "v"}),
        json!({"type": "header", "name": "x-api:", "value": "v"}),
        json!({"type": "header", "name": "", "value": "v"}),
        json!({"type": "header", "name": "Host", "value": "evil.com"}),
        json!({"type": "header", "name": "transfer-encoding", "value": "chunked"}),
        json!({"type": "header", "name": "x-api-key", "value": " padded "}),
        json!({"type": "header", "name": "x-api-key", "value": "a\nb"}),
        json!({"type": "header", "name": "x-api-key", "value": ""}),
        json!({"type": "basic", "username": "a:b", "password": "p"}),
        json!({"type": "basic", "username": "", "password": ""}),
        json!({"type": "basic", "username": "u", "password": "p\r"}),
        json!({"type": "query", "param": "", "value": "v"}),
        json!({"type": "query", "param": "k", "value": "v\u{0}"}),
        json!({"type": "oauth2_client_credentials", "token_url": "ftp://a/t", "client_id": "c", "client_secret": "s"}),
        json!({"type": "oauth2_client_credentials", "token_url": "not a url", "client_id": "c", "client_secret": "s"}),
        json!({"type": "oauth2_client_credentials", "token_url": "https://u:p@a/t", "client_id": "c", "client_secret": "s"}),
        json!({"type": "oauth2_client_credentials", "token_url": "https://a/t#f", "client_id": "c", "client_secret": "s"}),
        json!({"type": "oauth2_client_credentials", "token_url": "https://a/t", "client_id": "", "client_secret": "s"}),
        json!({"type": "oauth2_client_credentials", "token_url": "https://a/t", "client_id": "c", "client_secret": ""}),
        json!({"type": "oauth2_client_credentials", "token_url": "https://a/t", "client_id": "c", "client_secret": "s", "scopes": ["a b"]}),
        json!({"type": "oauth2_client_credentials", "token_url": "https://a/t", "client_id": "c", "client_secret": "s", "scopes": [""]}),
        json!({"type": "oauth2_client_credentials", "token_url": "https://a/t", "client_id": "c", "client_secret": "s", "audience": "a\nb"}),
    ];
    for value in bad {
        let s = secret(value.clone());
        let why = s.validate().expect_err(&value.to_string());
        // Messages name fields, never values.
        for leaked in ["evil", "padded", "tökén", "chunked", "two words"] {
            assert!(!why.contains(leaked), "{why}");
        }
    }
    let ok = [
        json!({"type": "header", "name": "Authorization", "value": "Token abc"}),
        json!({"type": "basic", "username": "sk_live_key", "password": ""}),
        json!({"type": "basic", "username": "", "password": "pässwörd"}),
        json!({"type": "query", "param": "key", "value": "a b&c=d"}),
        json!({"type": "oauth2_client_credentials", "token_url": "http://127.0.0.1:9/t?x=1", "client_id": "c", "client_secret": "s:/?&", "scopes": ["api://x/.default"]}),
    ];
    for value in ok {
        assert_eq!(secret(value.clone()).validate(), Ok(()), "{value}");
    }
}

#[test]
fn describe_never_shows_secret_material() {
    for (s, secrets) in all_kinds() {
        let c = Connection {
            name: "acme-api".into(),
            hosts: vec!["api.example.com".into()],
            allow_http: false,
            secret: s.clone(),
        };
        let public = describe(&c);
        let text = public.to_string();
        for secret in secrets {
            assert!(!text.contains(secret), "{text}");
        }
        let basic = STANDARD.encode("ada:SECRET-pass-3");
        assert!(!text.contains(&basic));
        assert_eq!(public["name"], "acme-api");
        assert_eq!(public["type"], s.kind());
        assert_eq!(public["hosts"], json!(["api.example.com"]));
        assert_eq!(public["fingerprint"], s.fingerprint());
        assert!(!format!("{c:?}").contains("SECRET"), "{c:?}");
    }
    let [_, header, basic, query, oauth]: [_; 5] = all_kinds().try_into().expect("five kinds");
    assert_eq!(describe(&conn(header.0))["header"], "X-Api-Key");
    assert_eq!(describe(&conn(basic.0))["username"], "ada");
    assert_eq!(describe(&conn(query.0))["param"], "api_key");
    let oauth = describe(&conn(oauth.0));
    assert_eq!(oauth["token_url"], "https://auth.example.com/token");
    assert_eq!(oauth["client_id"], "client-7");
    assert_eq!(oauth["scopes"], json!(["read", "write"]));
    assert_eq!(oauth["audience"], "https://api");
    // A username with no password is the secret (Stripe's style): not shown.
    let stripe = conn(secret(
        json!({"type": "basic", "username": "sk_live_SECRET", "password": ""}),
    ));
    assert!(!describe(&stripe).to_string().contains("sk_live_SECRET"));
}

#[tokio::test]
async fn bearer_header_and_basic_reach_the_server() {
    let [bearer, header, basic, _, _]: [_; 5] = all_kinds().try_into().expect("five kinds");
    let (sent, seen) = received(&conn(bearer.0), "/b", &[]).await;
    assert_eq!(seen.header("authorization"), Some("Bearer SECRET-bearer-1"));
    assert_eq!(sent.sensitive_headers, ["authorization"]);

    let (sent, seen) = received(&conn(header.0), "/h", &[("x-agent", "1")]).await;
    assert_eq!(seen.header("x-api-key"), Some("SECRET-header-2"));
    assert_eq!(seen.header("x-agent"), Some("1"));
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(sent.sensitive_headers, ["x-api-key"]);

    let (sent, seen) = received(&conn(basic.0), "/basic", &[]).await;
    let value = seen.header("authorization").expect("authorization");
    let decoded = STANDARD
        .decode(value.strip_prefix("Basic ").expect("basic"))
        .expect("b64");
    assert_eq!(decoded, b"ada:SECRET-pass-3");
    assert_eq!(sent.sensitive_headers, ["authorization"]);
}

#[tokio::test]
async fn query_parameter_reaches_the_server() {
    let c = conn(secret(
        json!({"type": "query", "param": "api_key", "value": "S&CRET 4"}),
    ));
    let (sent, seen) = received(&c, "/q?page=2&q=a%20b", &[]).await;
    assert!(sent.sensitive_headers.is_empty());
    assert_eq!(seen.target, "/q?page=2&q=a%20b&api_key=S%26CRET+4");
}

#[tokio::test]
async fn oauth2_token_reaches_the_server() {
    let auth = TestServer::start(|_, _| {
        Reply::Full(
            200,
            vec![],
            br#"{"access_token":"tok-abc","token_type":"Bearer","expires_in":3600}"#.to_vec(),
        )
    })
    .await;
    let c = conn(secret(
        json!({"type": "oauth2_client_credentials", "token_url": auth.url("/token").to_string(),
        "client_id": "cid", "client_secret": "SECRET-client"}),
    ));
    let (sent, seen) = received(&c, "/api", &[]).await;
    assert_eq!(seen.header("authorization"), Some("Bearer tok-abc"));
    assert_eq!(sent.sensitive_headers, ["authorization"]);
    assert_eq!(auth.seen().len(), 1);
}

#[tokio::test]
async fn hosts_outside_the_connection_are_refused_before_anything_is_sent() {
    let server = TestServer::start(|_, _| Reply::ok("ok")).await;
    let fetcher = loopback();
    let mut c = conn(secret(json!({"type": "bearer", "token": "t"})));
    c.hosts = vec!["api.example.com".into(), "*.acme.dev".into()];
    let mut req = get(server.url("/"));
    let before = format!("{req:?}");
    let err = inject(&c, &mut req, &TokenCache::new(), &fetcher)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), "connection_host_not_allowed");
    assert_eq!(
        err.to_string(),
        "connection 'acme-api' may not be sent to host 127.0.0.1"
    );
    assert_eq!(format!("{req:?}"), before, "request untouched");
    assert_eq!(server.seen().len(), 0);
    for (url, ok) in [
        ("https://api.example.com/x", true),
        ("https://API.example.com./x", true),
        ("https://a.b.acme.dev/", true),
        ("https://acme.dev/", false),
        ("https://api.example.com.evil.net/", false),
    ] {
        let mut req = get(parse(url));
        let result = inject(&c, &mut req, &TokenCache::new(), &fetcher).await;
        assert_eq!(result.is_ok(), ok, "{url}");
    }
}

#[tokio::test]
async fn the_agent_cannot_preset_what_the_connection_sets() {
    let fetcher = loopback();
    let cases = [
        (
            json!({"type": "bearer", "token": "t"}),
            "/",
            ("Authorization", "Bearer mine"),
            "header authorization",
        ),
        (
            json!({"type": "basic", "username": "u", "password": "p"}),
            "/",
            (" authorization ", "x"),
            "header authorization",
        ),
        (
            json!({"type": "header", "name": "X-Api-Key", "value": "v"}),
            "/",
            ("x-api-KEY", "mine"),
            "header x-api-key",
        ),
        (
            json!({"type": "query", "param": "api_key", "value": "v"}),
            "/?api%5Fkey=mine",
            ("x", "y"),
            "query parameter api_key",
        ),
    ];
    for (value, path, (name, v), what) in cases {
        let mut req = request(
            "GET",
            parse(&format!("http://127.0.0.1{path}")),
            &[(name, v)],
            None,
        );
        let err = inject(&conn(secret(value)), &mut req, &TokenCache::new(), &fetcher)
            .await
            .expect_err(what);
        assert_eq!(err.code(), "connection_header_conflict");
        assert!(err.to_string().contains(what), "{err}");
    }
}

#[tokio::test]
async fn a_connection_header_does_not_follow_a_redirect_to_another_origin() {
    let target = TestServer::start(|_, _| Reply::ok("landed")).await;
    let next = target.url("/landed").to_string();
    let origin = TestServer::start(move |_, _| Reply::redirect(302, &next)).await;
    let c = conn(secret(
        json!({"type": "header", "name": "X-Api-Key", "value": "SECRET"}),
    ));
    let (_, first) = received(&c, "/", &[]).await;
    assert_eq!(first.header("x-api-key"), Some("SECRET"));
    let fetcher = loopback();
    let mut req = get(origin.url("/start"));
    inject(
        &with_port(&c, origin.port),
        &mut req,
        &TokenCache::new(),
        &fetcher,
    )
    .await
    .expect("inject");
    let resp = fetcher
        .fetch(req, &FetchLimits::default(), &any_host)
        .await
        .expect("fetch");
    assert_eq!(&resp.body[..], b"landed");
    assert_eq!(origin.seen()[0].header("x-api-key"), Some("SECRET"));
    assert_eq!(target.seen()[0].header("x-api-key"), None);
}

#[tokio::test]
async fn error_codes() {
    let fetcher = loopback();
    let mut c = conn(secret(json!({"type": "bearer", "token": "t"})));
    let mut req = get(parse("data:text/plain,hi"));
    let err = inject(&c, &mut req, &TokenCache::new(), &fetcher)
        .await
        .expect_err("no host");
    assert_eq!(err.code(), "fetch_bad_request");
    // A stored secret that no longer validates is not sent.
    c.secret = ConnectionSecret::Bearer {
        token: "a\r\nb".into(),
    };
    let mut req = get(parse("http://127.0.0.1/"));
    let err = inject(&c, &mut req, &TokenCache::new(), &fetcher)
        .await
        .expect_err("invalid");
    assert_eq!(err.code(), "secret_unavailable");
    assert!(req.headers.is_empty());
    let sealed: BrokerError = SecretError::Tampered.into();
    assert_eq!(sealed.code(), "secret_unavailable");
}

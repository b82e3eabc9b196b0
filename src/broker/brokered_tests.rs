//! Brokered requests against loopback servers that echo the credential back in every
//! way a careless (or hostile) upstream on the connection's list might: what the agent
//! would get must never hold it.

use std::io::Write;
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use flate2::write::GzEncoder;

use super::*;
use crate::broker::connection::Connection;
use crate::broker::redact::REDACTED;
use crate::broker::testutil::*;
use crate::host::HostCheck;
use crate::store::SqlStore;

const TOKEN: &str = "tok4leak9secret";

async fn broker() -> BrokeredFetcher {
    let store = SqlStore::connect("sqlite::memory:").await.expect("store");
    BrokeredFetcher {
        store: Arc::new(store),
        keys: None,
        tokens: Arc::new(TokenCache::new()),
        http: Arc::new(loopback()),
    }
}

fn bearer(server: &TestServer) -> Connection {
    connection(
        server,
        ConnectionSecret::Bearer {
            token: TOKEN.into(),
        },
    )
}

fn connection(server: &TestServer, secret: ConnectionSecret) -> Connection {
    Connection {
        name: "acme".into(),
        hosts: vec![format!("127.0.0.1:{}", server.port)],
        allow_http: true,
        secret,
    }
}

fn anywhere() -> HostCheck {
    Arc::new(|_: &str| true)
}

/// What the agent would get from a GET with `c` to `server`.
async fn fetched(server: &TestServer, c: &Connection) -> Result<FetchResponse, FetchError> {
    broker()
        .await
        .send(
            c,
            get(server.url("/echo")),
            &FetchLimits::default(),
            anywhere(),
        )
        .await
}

/// Everything of the response as one text, to search for the secret.
fn everything(r: &FetchResponse) -> String {
    let headers: Vec<String> = r.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
    format!(
        "{} {} {}\n{}\n{}",
        r.status,
        r.status_text,
        r.url,
        headers.join("\n"),
        String::from_utf8_lossy(&r.body)
    )
}

fn echo_with(
    reply: impl Fn(&str) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Seen, u16) -> Reply + Send + Sync + 'static {
    move |seen, _| reply(seen.header("authorization").unwrap_or(""))
}

#[tokio::test]
async fn base64_and_hex_echoes_are_scrubbed() {
    let server = TestServer::start(echo_with(|auth| {
        let token = auth.trim_start_matches("Bearer ");
        let body = format!(
            "{} {} {} {}",
            STANDARD.encode(auth),
            URL_SAFE_NO_PAD.encode(token),
            STANDARD.encode(format!("{{\"seen\":\"{auth}\"}}")),
            hex::encode(token)
        );
        Reply::Full(200, vec![], body.into_bytes())
    }))
    .await;
    let r = fetched(&server, &bearer(&server)).await.expect("fetch");
    assert_eq!(
        server.seen()[0].header("authorization"),
        Some(&*format!("Bearer {TOKEN}"))
    );
    let text = everything(&r);
    assert_eq!(text.matches(REDACTED).count(), 4, "{text}");
    for form in [
        STANDARD.encode(TOKEN),
        URL_SAFE_NO_PAD.encode(TOKEN),
        hex::encode(TOKEN),
    ] {
        assert!(!text.contains(&form[..form.len() - 2]), "{text}");
    }
}

#[tokio::test]
async fn a_header_name_that_carries_the_secret_is_dropped() {
    let server = TestServer::start(echo_with(|auth| {
        let token = auth.trim_start_matches("Bearer ").to_owned();
        Reply::Full(
            200,
            vec![
                (format!("x-{token}"), "1".into()),
                ("x-ok".into(), "2".into()),
            ],
            vec![],
        )
    }))
    .await;
    let r = fetched(&server, &bearer(&server)).await.expect("fetch");
    assert!(!everything(&r).contains(TOKEN), "{:?}", r.headers);
    assert!(r.headers.iter().any(|(n, v)| n == "x-ok" && v == "2"));
}

#[tokio::test]
async fn a_gzip_body_is_asked_for_as_identity_and_decoded_before_scrubbing() {
    let server = TestServer::start(echo_with(|auth| {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(format!("you sent {auth}").as_bytes())
            .expect("gzip");
        let body = gz.finish().expect("gzip");
        Reply::Full(200, vec![("content-encoding".into(), "gzip".into())], body)
    }))
    .await;
    let r = fetched(&server, &bearer(&server)).await.expect("fetch");
    assert_eq!(server.seen()[0].header("accept-encoding"), Some("identity"));
    // The whole header value is one of the forms.
    assert_eq!(&r.body[..], format!("you sent {REDACTED}").as_bytes());
    assert!(
        !r.headers.iter().any(|(n, _)| n == "content-encoding"),
        "{:?}",
        r.headers
    );
}

#[tokio::test]
async fn an_encoding_that_cannot_be_decoded_is_refused() {
    let server = TestServer::start(|_, _| {
        Reply::Full(
            200,
            vec![("content-encoding".into(), "br".into())],
            b"\x0b\x02\x80".to_vec(),
        )
    })
    .await;
    let err = fetched(&server, &bearer(&server))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), "fetch_network");
    assert!(err.to_string().contains("cannot decode"), "{err}");
}

#[tokio::test]
async fn json_unicode_escapes_and_a_re_encoded_link_header_are_scrubbed() {
    let server = TestServer::start(echo_with(|auth| {
        let escaped: String = auth
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect();
        let encoded: String = auth.bytes().map(|b| format!("%{b:02x}")).collect();
        Reply::Full(
            200,
            vec![(
                "link".into(),
                format!("<http://127.0.0.1/next?auth={encoded}>; rel=\"next\""),
            )],
            format!("{{\"auth\":\"{escaped}\"}}").into_bytes(),
        )
    }))
    .await;
    let r = fetched(&server, &bearer(&server)).await.expect("fetch");
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("still JSON");
    assert_eq!(body["auth"], REDACTED);
    let link = r
        .headers
        .iter()
        .find(|(n, _)| n == "link")
        .expect("link")
        .1
        .clone();
    assert_eq!(
        link,
        format!("<http://127.0.0.1/next?auth={REDACTED}>; rel=\"next\"")
    );
}

#[tokio::test]
async fn a_basic_username_that_is_the_secret_is_scrubbed() {
    let server = TestServer::start(echo_with(|auth| {
        let decoded = STANDARD
            .decode(auth.trim_start_matches("Basic "))
            .unwrap_or_default();
        let user = String::from_utf8_lossy(&decoded)
            .split(':')
            .next()
            .unwrap_or("")
            .to_owned();
        Reply::Full(
            200,
            vec![],
            format!("{{\"account\":\"{user}\"}}").into_bytes(),
        )
    }))
    .await;
    let c = connection(
        &server,
        ConnectionSecret::Basic {
            username: "sk_live_9f8e7d".into(),
            password: String::new(),
        },
    );
    let r = fetched(&server, &c).await.expect("fetch");
    assert_eq!(
        &r.body[..],
        format!("{{\"account\":\"{REDACTED}\"}}").as_bytes()
    );
}

#[tokio::test]
async fn a_redirect_to_a_host_named_after_the_token_leaves_no_trace_in_the_error() {
    let server = TestServer::start(echo_with(|auth| {
        let token = auth.trim_start_matches("Bearer ");
        Reply::redirect(302, &format!("http://{token}.leak.invalid/"))
    }))
    .await;
    let err = fetched(&server, &bearer(&server))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), "fetch_host_not_allowed");
    let message = err.to_string();
    assert!(!message.contains(TOKEN), "{message}");
    assert!(
        message.contains(&format!("{REDACTED}.leak.invalid")),
        "{message}"
    );
}

#[tokio::test]
async fn a_short_secret_is_scrubbed_as_a_whole_token() {
    let server = TestServer::start(|seen, _| {
        let key = seen.header("x-key").unwrap_or("").to_owned();
        Reply::Full(
            200,
            vec![],
            format!("key={key}; keyboard k9Zx").into_bytes(),
        )
    })
    .await;
    let c = connection(
        &server,
        ConnectionSecret::Header {
            name: "x-key".into(),
            value: "k9Z".into(),
        },
    );
    let r = fetched(&server, &c).await.expect("fetch");
    assert_eq!(
        &r.body[..],
        format!("key={REDACTED}; keyboard k9Zx").as_bytes()
    );
}

#[tokio::test]
async fn plain_http_and_other_ports_are_refused_before_anything_is_sent() {
    let server = TestServer::start(|_, _| Reply::ok("sent")).await;
    let mut c = bearer(&server);
    c.allow_http = false;
    let err = fetched(&server, &c).await.expect_err("http refused");
    assert_eq!(err.code(), "connection_scheme_not_allowed");
    let mut c = bearer(&server);
    c.hosts = vec!["127.0.0.1".into()];
    let err = fetched(&server, &c).await.expect_err("port refused");
    assert_eq!(err.code(), "connection_port_not_allowed");
    assert!(
        err.to_string()
            .contains(&format!("127.0.0.1:{}", server.port)),
        "{err}"
    );
    assert_eq!(server.connections(), 0, "nothing was sent");
}

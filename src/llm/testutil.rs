//! Test helpers: a loopback HTTP server that plays scripted answers (real chunked SSE,
//! fragmented on purpose) and records every request it received.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;
use url::Url;

use crate::broker::connection::{Connection, ConnectionSecret};
use crate::broker::AddressPolicy;
use crate::host::{ChatRequest, DeltaSink};
use crate::llm::{Backoff, LlmHttp, LlmTarget, Provider, ProviderKind};

/// One step of a scripted body.
#[derive(Clone)]
pub enum Step {
    Bytes(Bytes),
    Sleep(Duration),
    /// Holds the rest of the body until the test says so.
    Wait(Arc<Notify>),
}

#[derive(Clone)]
pub struct Reply {
    /// How long the server waits before it answers (headers included).
    pub delay: Duration,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<Step>,
}

impl Reply {
    /// A 200 event stream of `text`, sent in pieces of `piece` bytes (which split lines,
    /// CRLFs and UTF-8 sequences) with a short pause between them.
    pub fn sse(text: &str, piece: usize) -> Reply {
        Reply::status(200, "")
            .header("content-type", "text/event-stream")
            .then(text, piece)
    }

    /// An answer with a whole body.
    pub fn status(status: u16, body: &str) -> Reply {
        let body = if body.is_empty() {
            Vec::new()
        } else {
            vec![Step::Bytes(Bytes::from(body.to_owned()))]
        };
        Reply {
            delay: Duration::ZERO,
            status,
            headers: Vec::new(),
            body,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Appends `text` in pieces of `piece` bytes.
    pub fn then(mut self, text: &str, piece: usize) -> Reply {
        for chunk in text.as_bytes().chunks(piece.max(1)) {
            self.body.push(Step::Bytes(Bytes::copy_from_slice(chunk)));
            self.body.push(Step::Sleep(Duration::from_millis(1)));
        }
        self
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    pub fn step(mut self, step: Step) -> Reply {
        self.body.push(step);
        self
    }
}

/// What the server was sent.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
}

#[derive(Clone)]
struct Script {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

pub struct Mock {
    /// `http://127.0.0.1:<port>/v1`.
    pub base: Url,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Mock {
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    pub fn hits(&self) -> usize {
        self.received.lock().expect("lock").len()
    }

    /// The provider at `base`, on a bearer connection (key [`TEST_KEY`]) whose hosts
    /// cover `base`'s host and port, over plain http.
    pub fn provider(&self, kind: ProviderKind) -> LlmTarget {
        let provider = Provider {
            kind,
            base_url: self.base.clone(),
        };
        LlmTarget::new("prov", provider, connection_for(&self.base, TEST_KEY))
    }
}

pub const TEST_KEY: &str = "sk-test-SECRET-0123456789";

/// A bearer connection `key` allowed to `base`'s host and port, over http too.
pub fn connection_for(base: &Url, key: &str) -> Connection {
    let host = crate::broker::destination::url_host(base).expect("host");
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Connection {
        name: "prov".into(),
        hosts: vec![format!(
            "{host}:{}",
            base.port_or_known_default().expect("port")
        )],
        allow_http: true,
        secret: ConnectionSecret::Bearer {
            token: key.to_owned(),
        },
    }
}

/// Serves `replies` in order to any path; the last one repeats.
pub async fn serve(replies: Vec<Reply>) -> Mock {
    let script = Script {
        replies: Arc::new(Mutex::new(replies.into())),
        received: Arc::new(Mutex::new(Vec::new())),
    };
    let received = script.received.clone();
    let app = Router::new().fallback(answer).with_state(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let base = Url::parse(&format!("http://{addr}/v1")).expect("url");
    Mock { base, received }
}

async fn answer(
    State(script): State<Script>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    script.received.lock().expect("lock").push(Received {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let reply = {
        let mut replies = script.replies.lock().expect("lock");
        if replies.len() > 1 {
            replies.pop_front()
        } else {
            replies.front().cloned()
        }
    }
    .expect("a scripted reply");
    tokio::time::sleep(reply.delay).await;
    let steps: VecDeque<Step> = reply.body.into();
    let stream = futures::stream::unfold(steps, |mut steps| async move {
        loop {
            match steps.pop_front()? {
                Step::Bytes(bytes) => return Some((Ok::<_, Infallible>(bytes), steps)),
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::Wait(notify) => notify.notified().await,
            }
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = StatusCode::from_u16(reply.status).expect("status");
    for (name, value) in reply.headers {
        let name = axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name");
        response
            .headers_mut()
            .insert(name, value.parse().expect("value"));
    }
    response
}

/// `data: <json>\n\n` per chunk (OpenAI), then `data: [DONE]` when `done`.
pub fn openai_sse(chunks: &[Value], done: bool) -> String {
    let mut out: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    if done {
        out.push_str("data: [DONE]\n\n");
    }
    out
}

/// `event: <type>\ndata: <json>\n\n` per event (Anthropic), with CRLF line ends.
pub fn anthropic_sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "event: {}\r\ndata: {e}\r\n\r\n",
                e["type"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// A client that may reach 127.0.0.1, with a short backoff.
pub fn client() -> LlmHttp {
    let policy = AddressPolicy::parse(["127.0.0.1/32"]).expect("policy");
    LlmHttp::new(policy).expect("client").with_backoff(Backoff {
        base: Duration::from_millis(20),
        cap: Duration::from_millis(100),
    })
}

/// A sink that records deltas (and wakes `notify` on each, if given).
pub fn recorder(notify: Option<Arc<Notify>>) -> (DeltaSink, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink_seen = seen.clone();
    let sink: DeltaSink = Arc::new(move |delta: &str| {
        sink_seen.lock().expect("lock").push(delta.to_owned());
        if let Some(n) = &notify {
            n.notify_one();
        }
    });
    (sink, seen)
}

pub fn chat_request(json: Value) -> ChatRequest {
    serde_json::from_value(json).expect("chat request")
}

pub fn in_secs(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

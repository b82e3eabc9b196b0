//! What the webhook and trigger tests share: a loopback receiver that records every
//! request and answers from a script, and the `standardwebhooks` npm package (an
//! implementation independent of ours) run by Node to verify and to sign.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{json, Value};

/// The version of the npm package the tests check against.
const STANDARDWEBHOOKS: &str = "standardwebhooks@1.3.0";

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Received>>,
    /// Statuses to answer with, in order; 200 once they run out.
    script: Mutex<VecDeque<u16>>,
    /// While set, requests wait (a slow endpoint).
    hold: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// Counts a request in flight until its handler ends, or is dropped (the sender gave up).
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: Arc<Shared>) -> InFlight {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.most_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A webhook receiver on loopback.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
}

pub async fn receiver() -> Receiver {
    let shared = Arc::new(Shared::default());
    let state = shared.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let shared = state.clone();
            async move {
                let _in_flight = InFlight::enter(shared.clone());
                let hold = shared.hold.lock().expect("hold").clone();
                if let Some(gate) = hold {
                    let _ = gate.acquire().await;
                }
                let headers = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                shared.seen.lock().expect("seen").push(Received {
                    headers,
                    body: body.to_vec(),
                });
                let code = shared
                    .script
                    .lock()
                    .expect("script")
                    .pop_front()
                    .unwrap_or(200);
                (
                    StatusCode::from_u16(code).expect("status"),
                    format!("answered {code}"),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{addr}/hook"),
        shared,
    }
}

impl Receiver {
    pub fn answer(&self, codes: &[u16]) {
        self.shared.script.lock().expect("script").extend(codes);
    }

    /// Requests wait until `release` (each one holds the endpoint for as long).
    pub fn hold(&self) {
        *self.shared.hold.lock().expect("hold") = Some(Arc::new(tokio::sync::Semaphore::new(0)));
    }

    pub fn release(&self) {
        if let Some(gate) = self.shared.hold.lock().expect("hold").take() {
            gate.add_permits(10_000);
        }
    }

    pub fn most_in_flight(&self) -> usize {
        self.shared.most_in_flight.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Received> {
        self.shared.seen.lock().expect("seen").clone()
    }

    /// Waits until at least `n` requests arrived (failing after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver got {} requests, expected {n}",
                seen.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Where `standardwebhooks` is installed (once per test process, from the npm registry).
pub fn npm_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("npm-standardwebhooks");
        if !dir
            .join("node_modules/standardwebhooks/package.json")
            .exists()
        {
            std::fs::create_dir_all(&dir).expect("npm dir");
            let status = Command::new("npm")
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--silent",
                    STANDARDWEBHOOKS,
                ])
                .current_dir(&dir)
                .status()
                .expect("npm runs (Node 20 and npm are needed for these tests)");
            assert!(status.success(), "npm install {STANDARDWEBHOOKS} failed");
        }
        dir
    })
}

/// Runs `script` in Node with `input` as JSON on stdin; its stdout parsed as JSON.
fn node(script: &str, input: Value) -> Result<Value, String> {
    use std::io::Write;
    let mut child = Command::new("node")
        .args(["-e", script])
        .current_dir(npm_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("node finishes");
    if out.status.success() {
        serde_json::from_slice(&out.stdout).map_err(|e| format!("node printed no JSON: {e}"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

const READ_STDIN: &str = "const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));";

/// Verifies a received delivery with `standardwebhooks`; its parsed payload.
pub fn node_verify(secret: &str, received: &Received) -> Result<Value, String> {
    let script = format!(
        "{READ_STDIN}
         const {{ Webhook }} = require('standardwebhooks');
         const payload = new Webhook(input.secret).verify(input.body, input.headers);
         console.log(JSON.stringify(payload));"
    );
    node(
        &script,
        json!({
            "secret": secret,
            "body": String::from_utf8(received.body.clone()).expect("utf-8 body"),
            "headers": received.headers,
        }),
    )
}

/// Signs `body` as `standardwebhooks` does: the `webhook-signature` header value.
pub fn node_sign(secret: &str, id: &str, timestamp_secs: i64, body: &str) -> String {
    let script = format!(
        "{READ_STDIN}
         const {{ Webhook }} = require('standardwebhooks');
         const sig = new Webhook(input.secret).sign(input.id, new Date(input.ts * 1000), input.body);
         console.log(JSON.stringify(sig));"
    );
    node(
        &script,
        json!({ "secret": secret, "id": id, "ts": timestamp_secs, "body": body }),
    )
    .expect("node signs")
    .as_str()
    .expect("a string")
    .to_owned()
}

/// HMAC-SHA256 of `message` keyed with the UTF-8 `key`, hex, computed by Node's crypto.
pub fn node_hmac_hex(key: &str, message: &str) -> String {
    let script = format!(
        "{READ_STDIN}
         const h = require('crypto').createHmac('sha256', input.key).update(input.message).digest('hex');
         console.log(JSON.stringify(h));"
    );
    node(&script, json!({ "key": key, "message": message }))
        .expect("node hmac")
        .as_str()
        .expect("a string")
        .to_owned()
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

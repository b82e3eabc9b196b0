//! Shared test helpers: a pool, real packages from `agents/`, scripted tool and LLM
//! doubles, and a loopback HTTP server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use atoll::broker::{AddressPolicy, HttpFetcher};
use atoll::host::memory::{CollectingEvents, InMemoryMemory, NoLlm, NoTools};
use atoll::host::{
    ChatRequest, ChatResponse, ChatUsage, DeltaSink, HostError, HostServices, LlmClient, Tenant,
    ToolInvoker,
};
use atoll::package::{AgentPackage, PackageLimits};
use atoll::sandbox::{Limits, Pool, PoolConfig, RunGrant, RunOutcome, RunRequest};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub fn agent_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("agents")
        .join(name)
}

pub fn load(name: &str) -> Arc<AgentPackage> {
    let dir = agent_dir(name);
    Arc::new(
        AgentPackage::load_path(&dir, &PackageLimits::default())
            .unwrap_or_else(|e| panic!("agent {name} does not load: {e}")),
    )
}

/// A one-file package (`main.js` = `source`) with these manifest `limits`.
pub fn inline_package(limits: Value, source: &str) -> Arc<AgentPackage> {
    inline_package_with(json!({ "limits": limits }), source)
}

/// A one-file package whose manifest adds `fields` (permissions, limits, ...).
pub fn inline_package_with(fields: Value, source: &str) -> Arc<AgentPackage> {
    let mut manifest = json!({ "name": "@test/inline", "version": "1.0.0" });
    if let (Some(manifest), Value::Object(fields)) = (manifest.as_object_mut(), fields) {
        manifest.extend(fields);
    }
    let files = std::collections::BTreeMap::from([("main.js".to_owned(), source.to_owned())]);
    Arc::new(AgentPackage::from_files(manifest, files, &PackageLimits::default()).expect("package"))
}

pub fn small_pool() -> Pool {
    Pool::new(PoolConfig {
        min_threads: 2,
        ..PoolConfig::default()
    })
    .expect("pool")
}

/// Everything a test wants to see after runs: the services handed to them and the
/// events they published.
pub struct Harness {
    pub pool: Pool,
    pub events: Arc<CollectingEvents>,
    pub services: HostServices,
    pub tenant: Tenant,
}

impl Harness {
    pub fn new(pool: Pool) -> Harness {
        Harness::with_services(pool, Arc::new(NoTools), Arc::new(NoLlm), &[])
    }

    pub fn with_services(
        pool: Pool,
        tools: Arc<dyn ToolInvoker>,
        llm: Arc<dyn LlmClient>,
        allow_net: &[&str],
    ) -> Harness {
        let events = Arc::new(CollectingEvents::default());
        let allow: Vec<String> = allow_net.iter().map(|s| s.to_string()).collect();
        let policy = AddressPolicy::parse(&allow).expect("policy");
        let services = HostServices {
            memory: Arc::new(InMemoryMemory::default()),
            tools,
            llm,
            fetcher: Arc::new(HttpFetcher::new(policy).expect("fetcher")),
            events: events.clone(),
            waits: Arc::new(atoll::host::memory::LocalWaits::default()),
            clock: None,
        };
        Harness {
            pool,
            events,
            services,
            tenant: Tenant {
                org_id: "org_test".into(),
                app_id: "app_test".into(),
                end_user: Some("user_1".into()),
            },
        }
    }

    pub fn request(&self, package: &Arc<AgentPackage>, input: Value) -> RunRequest {
        RunRequest {
            run_id: format!("run_{}", uuid::Uuid::new_v4().simple()),
            package: package.clone(),
            tenant: self.tenant.clone(),
            input,
            state: None,
            grant: RunGrant::from_manifest(&package.manifest, &Limits::default()),
            services: self.services.clone(),
            trigger: "test".into(),
            attempt: 1,
            events_before: 0,
            journal: None,
        }
    }

    pub async fn run(&self, package: &Arc<AgentPackage>, input: Value) -> RunOutcome {
        self.run_request(self.request(package, input)).await.1
    }

    /// Runs and returns the run id with the outcome.
    pub async fn run_request(&self, req: RunRequest) -> (String, RunOutcome) {
        let id = req.run_id.clone();
        let handle = self.pool.submit(req).expect("submit");
        (id, handle.outcome().await)
    }
}

/// A tool registry double: answers `lookup_customer`, optionally after a delay, and
/// counts calls.
#[derive(Default)]
pub struct ScriptedTools {
    pub delay: Duration,
    pub calls: AtomicUsize,
}

#[async_trait]
impl ToolInvoker for ScriptedTools {
    async fn call(&self, tenant: &Tenant, name: &str, args: Value) -> Result<Value, HostError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        match name {
            "lookup_customer" => Ok(json!({
                "id": args.get("id").cloned().unwrap_or(Value::Null),
                "name": "Ada",
                "app": tenant.app_id,
            })),
            other => Err(HostError::new(
                "tool_not_found",
                format!("no tool '{other}'"),
            )),
        }
    }
}

/// An LLM double: the first chat asks for `lookup_customer`, later ones answer with
/// what the tool said; streams two deltas per answer.
#[derive(Default)]
pub struct ScriptedLlm {
    pub requests: Mutex<Vec<ChatRequest>>,
}

#[async_trait]
impl LlmClient for ScriptedLlm {
    async fn chat(
        &self,
        _tenant: &Tenant,
        request: ChatRequest,
        deltas: DeltaSink,
    ) -> Result<ChatResponse, HostError> {
        let round = {
            let mut requests = self.requests.lock().expect("lock");
            requests.push(request.clone());
            requests.len()
        };
        let tool_message = request
            .messages
            .iter()
            .rev()
            .find(|m| m.get("role") == Some(&json!("tool")))
            .cloned();
        match tool_message {
            None => Ok(ChatResponse {
                message: json!({ "role": "assistant", "content": null }),
                tool_calls: vec![
                    json!({ "id": format!("call_{round}"), "name": "lookup_customer", "arguments": { "id": "c_42" } }),
                ],
                usage: ChatUsage {
                    input_tokens: 10,
                    output_tokens: 5,
                },
            }),
            Some(tool) => {
                deltas("The customer ");
                deltas("is Ada.");
                let content = format!(
                    "The customer is Ada. ({})",
                    tool["content"].as_str().unwrap_or("")
                );
                Ok(ChatResponse {
                    message: json!({ "role": "assistant", "content": content }),
                    tool_calls: vec![],
                    usage: ChatUsage {
                        input_tokens: 20,
                        output_tokens: 7,
                    },
                })
            }
        }
    }
}

/// A loopback HTTP/1.1 server with a few fixed routes; counts requests.
pub struct TestServer {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let seen: Arc<Mutex<Vec<HashMap<String, String>>>> = Arc::default();
        let (count, log) = (requests.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (count, log) = (count.clone(), log.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let Ok(n) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i;
                        }
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let mut lines = head.split("\r\n");
                    let request_line = lines.next().unwrap_or_default().to_owned();
                    let mut headers = HashMap::new();
                    for line in lines {
                        if let Some((k, v)) = line.split_once(':') {
                            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                        }
                    }
                    let length: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = buf[head_end + 4..].to_vec();
                    while body.len() < length {
                        let Ok(n) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            break;
                        }
                        body.extend_from_slice(&chunk[..n]);
                    }
                    headers.insert(":request".into(), request_line.clone());
                    log.lock().expect("lock").push(headers.clone());
                    let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
                    if path == "/stall" {
                        // 5 MiB of a 9 MiB body, then nothing for 20 s: a body the host
                        // holds that never reaches the isolate.
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 9437184\r\nconnection: close\r\n\r\n";
                        let _ = socket.write_all(head.as_bytes()).await;
                        let _ = socket.write_all(&vec![b'z'; 5 * 1024 * 1024]).await;
                        tokio::time::sleep(Duration::from_secs(20)).await;
                        return;
                    }
                    let (status, content_type, payload) = match path.as_str() {
                        "/big" => (
                            "200 OK",
                            "application/octet-stream",
                            vec![b'x'; 11 * 1024 * 1024],
                        ),
                        "/9mb" => (
                            "200 OK",
                            "application/octet-stream",
                            vec![b'y'; 9 * 1024 * 1024],
                        ),
                        "/echo" => {
                            let echo = json!({
                                "request": request_line,
                                "body": String::from_utf8_lossy(&body),
                                "x-test": headers.get("x-test"),
                            });
                            ("200 OK", "application/json", echo.to_string().into_bytes())
                        }
                        "/missing" => ("404 Not Found", "text/plain", b"nope".to_vec()),
                        "/moved" => ("302 Found", "text/plain", Vec::new()),
                        _ => ("200 OK", "text/plain", b"pong".to_vec()),
                    };
                    let location = if path == "/moved" {
                        "location: /echo\r\n"
                    } else {
                        ""
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{location}content-length: {}\r\nconnection: close\r\n\r\n",
                        payload.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(&payload).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        TestServer {
            addr,
            requests,
            seen,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

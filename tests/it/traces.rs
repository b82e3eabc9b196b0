//! Traces and JSON logs of a real `atoll serve` process: spans of a run's path reach a
//! loopback OTLP/HTTP receiver (decoded with the OpenTelemetry protobuf types), parented
//! as one trace, and every log line on stderr is a JSON object.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{json, Value};

const ADMIN: &str = "atl_trace_test_admin_key_0123456789";

/// Memory calls cross the channel as host calls: each becomes a `run.op` span.
const AGENT: &str = r#"
export default async (input, ctx) => {
  await ctx.memory.set("seen", { n: 1 }, { scope: "app" });
  const got = await ctx.memory.get("seen", { scope: "app" });
  return { n: got.n };
};
"#;

/// An OTLP/HTTP receiver on loopback: every span it was sent.
async fn receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let store = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let store = store.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut spans = store.lock().expect("spans");
                for resource in request.resource_spans {
                    for scope in resource.scope_spans {
                        spans.extend(scope.spans);
                    }
                }
                ExportTraceServiceResponse::default().encode_to_vec()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), spans)
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(n) => Some(n.to_string()),
            other => Some(format!("{other:?}")),
        }
    })
}

async fn post_json(http: &reqwest::Client, url: String, key: &str, body: Value) -> Value {
    let response = http
        .post(url)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("send");
    response.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_traced_over_otlp_and_logged_as_json() {
    let (endpoint, spans) = receiver().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_atoll"))
        .arg("serve")
        .env("ATOLL_LISTEN", format!("127.0.0.1:{port}"))
        .env("ATOLL_DATA_DIR", dir.path())
        .env("ATOLL_ADMIN_KEY", ADMIN)
        .env("ATOLL_LOG_FORMAT", "json")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start atoll serve");
    let stderr = server.stderr.take().expect("stderr");
    let log_lines = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let org = post_json(
        &http,
        format!("{base}/v1/orgs"),
        ADMIN,
        json!({ "name": "t" }),
    )
    .await;
    let org_key = org["key"]["secret"].as_str().expect("org key").to_owned();
    let app = post_json(
        &http,
        format!("{base}/v1/apps"),
        &org_key,
        json!({ "name": "t" }),
    )
    .await;
    let app_id = app["id"].as_str().expect("app").to_owned();
    let key = post_json(
        &http,
        format!("{base}/v1/api-keys"),
        &org_key,
        json!({ "name": "k", "app_id": app_id }),
    )
    .await;
    let key = key["secret"].as_str().expect("key").to_owned();
    let manifest =
        json!({ "name": "@t/traced", "version": "1.0.0", "permissions": { "memory": ["app"] } });
    let uploaded = http
        .put(format!("{base}/v1/agents/t/traced/versions/1.0.0"))
        .bearer_auth(&key)
        .json(&json!({ "manifest": manifest, "files": { "main.js": AGENT } }))
        .send()
        .await
        .expect("upload");
    assert!(uploaded.status().is_success(), "{}", uploaded.status());
    let run = post_json(
        &http,
        format!("{base}/v1/agents/t/traced/runs?wait=20"),
        &key,
        json!({}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let run_id = run["id"].as_str().expect("run id").to_owned();

    // SIGTERM: the server drains, then flushes the spans still batched.
    // SAFETY: kill(2) on the child we started.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let status = server.wait().expect("wait");
    assert!(status.success(), "atoll serve exited with {status}");
    let lines = log_lines.join().expect("stderr reader");

    let spans = spans.lock().expect("spans").clone();
    let by_name: HashMap<&str, Vec<&Span>> = spans.iter().fold(HashMap::new(), |mut m, s| {
        m.entry(s.name.as_str()).or_default().push(s);
        m
    });
    for name in [
        "run.admission",
        "run.claim",
        "run",
        "run.prepare",
        "run.sandbox",
        "run.op",
        "run.finish",
    ] {
        assert!(
            by_name.contains_key(name),
            "no {name} span among {:?}",
            by_name.keys()
        );
    }
    let root = by_name["run"]
        .iter()
        .find(|s| attribute(s, "run").as_deref() == Some(run_id.as_str()))
        .expect("the run's span");
    assert!(attribute(root, "queue_wait_ms").is_some());
    // Its path is one trace: prepare, sandbox, finish and both host calls are its children.
    let children = |name: &str| -> Vec<&Span> {
        by_name[name]
            .iter()
            .copied()
            .filter(|s| s.trace_id == root.trace_id && s.parent_span_id == root.span_id)
            .collect()
    };
    assert_eq!(children("run.prepare").len(), 1);
    assert_eq!(children("run.sandbox").len(), 1);
    assert_eq!(children("run.finish").len(), 1);
    let ops: Vec<String> = children("run.op")
        .iter()
        .filter_map(|s| attribute(s, "op"))
        .collect();
    assert_eq!(ops, ["memory.set", "memory.get"], "host calls of the run");
    assert!(by_name["run.admission"]
        .iter()
        .any(|s| attribute(s, "run").as_deref() == Some(run_id.as_str())));

    // Every log line is one JSON object with a level and a message.
    assert!(!lines.is_empty());
    for line in &lines {
        let entry: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            entry["level"].is_string() && entry["fields"].is_object(),
            "{line}"
        );
    }
    assert!(lines.iter().any(|l| l.contains("atoll listening")));
}

//! `atoll exec` from the outside: one JSON line, exit status 0 only on success.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common::agent_dir;

fn exec(package: &Path, input: &str) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_atoll"))
        .arg("exec")
        .arg(package)
        .args(["--input", input])
        .output()
        .expect("run atoll");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let record: Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "not one JSON line ({e}): {stdout} / {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), record)
}

#[test]
fn exec_prints_the_run_record_and_exits_zero_on_success() {
    let (code, record) = exec(&agent_dir("hello"), r#"{"name":"Ada"}"#);
    assert_eq!(code, 0, "{record}");
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["output"]["greeting"], "Hello, Ada!");
    assert!(record["usage"]["cpu_ms"].as_f64().is_some_and(|v| v > 0.0));
    assert!(record["usage"]["heap_peak_bytes"]
        .as_u64()
        .is_some_and(|v| v > 0));
}

#[test]
fn exec_reports_limits_and_bad_input_with_exit_one() {
    let (code, record) = exec(&agent_dir("hostile-loop"), "{}");
    assert_eq!(
        (code, record["error"]["code"].as_str()),
        (1, Some("cpu_limit")),
        "{record}"
    );
    let (code, record) = exec(&agent_dir("hello"), "{not json");
    assert_eq!(
        (code, record["error"]["code"].as_str()),
        (1, Some("input_invalid")),
        "{record}"
    );
    let (code, record) = exec(&agent_dir("hello"), r#"{"name": 1}"#);
    assert_eq!(
        (code, record["error"]["code"].as_str()),
        (1, Some("input_invalid")),
        "{record}"
    );
}

#[test]
fn exec_refuses_a_broken_package_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("agent.json"),
        r#"{"name":"@t/broken","version":"1.0.0"}"#,
    )
    .expect("write");
    std::fs::write(
        dir.path().join("main.js"),
        "export default async () => { return (; };",
    )
    .expect("write");
    let (code, record) = exec(dir.path(), "{}");
    assert_eq!(
        (code, record["error"]["code"].as_str()),
        (1, Some("package_invalid")),
        "{record}"
    );
    let message = record["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("main.js"), "{message}");

    let (code, record) = exec(Path::new("/nonexistent/package"), "{}");
    assert_eq!(
        (code, record["error"]["code"].as_str()),
        (1, Some("package_invalid")),
        "{record}"
    );
}

#[tokio::test]
async fn exec_allow_host_opens_loopback_for_fetch_and_only_then() {
    let server = crate::common::TestServer::start().await;
    let input = serde_json::json!({ "url": server.url("/") }).to_string();
    let fetcher = agent_dir("fetcher");
    let (refused, allowed) = tokio::task::spawn_blocking(move || {
        let refused = exec(&fetcher, &input);
        let out = Command::new(env!("CARGO_BIN_EXE_atoll"))
            .arg("exec")
            .arg(&fetcher)
            .args(["--input", &input, "--allow-host", "127.0.0.1"])
            .output()
            .expect("run atoll");
        let allowed: Value = serde_json::from_slice(&out.stdout).expect("json");
        (refused, allowed)
    })
    .await
    .expect("join");
    assert_eq!(refused.0, 1);
    let message = refused.1["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("fetch_address_refused"), "{message}");
    assert_eq!(allowed["status"], "succeeded", "{allowed}");
    assert_eq!(allowed["output"]["body"], "pong");
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// `atoll exec` runs waits locally: a sleep sleeps, and `--signal NAME=JSON` answers
/// `ctx.waitFor(NAME)`; a wait for a signal not given fails with what to do.
#[test]
fn exec_takes_signals_and_sleeps_locally() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("agent.json"),
        r#"{ "name": "@t/waiter", "version": "1.0.0" }"#,
    )
    .expect("manifest");
    std::fs::write(
        dir.path().join("main.js"),
        r#"export default async (input, ctx) => {
  await ctx.sleep(20);
  const a = await ctx.waitFor("go");
  const b = await ctx.waitFor("go");
  return a.n + b.n;
};"#,
    )
    .expect("source");
    let run = |signals: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_atoll"))
            .arg("exec")
            .arg(dir.path())
            .args(signals.iter().flat_map(|s| ["--signal", s]))
            .output()
            .expect("run atoll");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let record: Value =
            serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("json");
        (out.status.code().unwrap_or(-1), record)
    };
    let (code, record) = run(&[r#"go={"n":2}"#, r#"go={"n":3}"#]);
    assert_eq!(
        (code, &record["output"]),
        (0, &serde_json::json!(5)),
        "{record}"
    );
    let (code, record) = run(&[r#"go={"n":2}"#]);
    assert_eq!(code, 1, "{record}");
    let message = record["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("--signal go=JSON"), "{record}");
    let (code, record) = run(&["go"]);
    assert_eq!(
        (code, record["error"]["code"].as_str()),
        (1, Some("input_invalid")),
        "{record}"
    );
}

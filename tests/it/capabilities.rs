//! Each capability granted and refused, checked on the host side.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use atoll::host::memory::NoLlm;
use atoll::sandbox::{ErrorCode, EventKind};
use serde_json::json;

use crate::common::{
    inline_package_with, load, small_pool, Harness, ScriptedLlm, ScriptedTools, TestServer,
};

#[tokio::test]
async fn tool_call_granted_goes_through_the_invoker_with_events() {
    let tools = Arc::new(ScriptedTools::default());
    let h = Harness::with_services(small_pool(), tools.clone(), Arc::new(NoLlm), &[]);
    let (run_id, outcome) = h
        .run_request(h.request(&load("tool-user"), json!({ "customer_id": "c_42" })))
        .await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(
        outcome.output.expect("output"),
        json!({ "customer": { "id": "c_42", "name": "Ada", "app": "app_test" } })
    );
    assert_eq!(tools.calls.load(Ordering::SeqCst), 1);
    let kinds: Vec<EventKind> = h.events.of_run(&run_id).iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&EventKind::ToolCall) && kinds.contains(&EventKind::ToolResult));
}

#[tokio::test]
async fn tool_and_llm_refused_without_a_configured_host_service() {
    let h = Harness::new(small_pool());
    let outcome = h
        .run(&load("tool-user"), json!({ "customer_id": "c_1" }))
        .await;
    assert_eq!(outcome.error_code(), Some(ErrorCode::AgentError));
    let message = outcome.error.expect("error").message;
    assert!(message.contains("capability_unavailable"), "{message}");
}

#[tokio::test]
async fn llm_loop_chats_calls_tools_and_streams_deltas() {
    let tools = Arc::new(ScriptedTools::default());
    let llm = Arc::new(ScriptedLlm::default());
    let h = Harness::with_services(small_pool(), tools.clone(), llm.clone(), &[]);
    let (run_id, outcome) = h
        .run_request(h.request(&load("llm-loop"), json!({ "question": "Who is c_42?" })))
        .await;
    assert!(outcome.succeeded(), "{outcome:?}");
    let out = outcome.output.expect("output");
    assert_eq!(out["rounds"], 2);
    assert!(
        out["answer"]
            .as_str()
            .is_some_and(|a| a.starts_with("The customer is Ada.")),
        "{out}"
    );
    assert_eq!(tools.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        (outcome.usage.llm_tokens_in, outcome.usage.llm_tokens_out),
        (30, 12)
    );
    let deltas: Vec<String> = h
        .events
        .of_run(&run_id)
        .iter()
        .filter(|e| e.kind == EventKind::LlmDelta)
        .map(|e| e.data["delta"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(deltas, vec!["The customer ", "is Ada."]);
}

#[tokio::test]
async fn fetch_to_a_granted_host_reaches_the_loopback_server_when_the_operator_allows_it() {
    let server = TestServer::start().await;
    let h = Harness::with_services(
        small_pool(),
        Arc::new(ScriptedTools::default()),
        Arc::new(NoLlm),
        &["127.0.0.1/32"],
    );
    let (run_id, outcome) = h
        .run_request(h.request(
            &load("fetcher"),
            json!({ "url": server.url("/echo"), "method": "POST", "body": "hi", "headers": { "x-test": "1" } }),
        ))
        .await;
    assert!(outcome.succeeded(), "{outcome:?}");
    let out = outcome.output.expect("output");
    assert_eq!(out["status"], 200);
    let echoed: serde_json::Value =
        serde_json::from_str(out["body"].as_str().expect("body")).expect("json");
    assert_eq!(echoed["body"], "hi");
    assert_eq!(echoed["x-test"], "1");
    assert!(echoed["request"]
        .as_str()
        .is_some_and(|r| r.starts_with("POST /echo")));
    assert_eq!(outcome.usage.fetches, 1);
    let fetch_event = h
        .events
        .of_run(&run_id)
        .into_iter()
        .find(|e| e.kind == EventKind::Fetch)
        .expect("fetch event");
    assert_eq!(fetch_event.data["status"], 200);
    assert_eq!(fetch_event.data["path"], "/echo");
    assert!(
        fetch_event.data.get("headers").is_none(),
        "fetch events never carry headers"
    );
    let seen = server.seen.lock().expect("lock");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].get("x-test").map(String::as_str), Some("1"));
}

#[tokio::test]
async fn fetch_with_a_connection_is_refused_without_a_broker() {
    let server = TestServer::start().await;
    let h = Harness::with_services(
        small_pool(),
        Arc::new(ScriptedTools::default()),
        Arc::new(NoLlm),
        &["127.0.0.1/32"],
    );
    let outcome = h
        .run(
            &load("fetcher"),
            json!({ "url": server.url("/"), "connection": "test-api" }),
        )
        .await;
    assert!(!outcome.succeeded());
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        0,
        "nothing was sent"
    );
}

#[tokio::test]
async fn loopback_is_refused_after_resolution_unless_the_operator_allows_it() {
    let server = TestServer::start().await;
    let h = Harness::new(small_pool());
    for agent in ["hostile-fetch-loopback", "hostile-fetch-localhost"] {
        let outcome = h
            .run(&load(agent), json!({ "port": server.addr.port() }))
            .await;
        assert!(outcome.succeeded(), "{agent}: {outcome:?}");
        let out = outcome.output.expect("output");
        assert_eq!(out["refused"], true, "{agent}: {out}");
        assert_eq!(out["code"], "fetch_address_refused", "{agent}: {out}");
        for (name, variant) in out["variants"].as_object().expect("variants") {
            assert_eq!(
                variant["refused"], true,
                "{agent} variant {name}: {variant}"
            );
        }
    }
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        0,
        "no request reached the server"
    );
}

#[tokio::test]
async fn hosts_outside_permissions_fetch_are_refused_before_any_connection() {
    let server = TestServer::start().await;
    let h = Harness::with_services(
        small_pool(),
        Arc::new(ScriptedTools::default()),
        Arc::new(NoLlm),
        &["127.0.0.1/32", "::1/128"],
    );
    let outcome = h
        .run(
            &load("hostile-fetch-ungranted"),
            json!({ "port": server.addr.port() }),
        )
        .await;
    assert!(outcome.succeeded(), "{outcome:?}");
    let out = outcome.output.expect("output");
    assert_eq!(out["refused"], true, "{out}");
    assert_eq!(out["code"], "fetch_host_not_allowed", "{out}");
    for (name, variant) in out["variants"].as_object().expect("variants") {
        assert_eq!(variant["refused"], true, "variant {name}: {variant}");
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn escape_attempts_are_all_blocked() {
    let tools = Arc::new(ScriptedTools::default());
    let h = Harness::with_services(
        small_pool(),
        tools.clone(),
        Arc::new(ScriptedLlm::default()),
        &[],
    );
    let outcome = h.run(&load("hostile-escape"), json!({})).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    let out = outcome.output.expect("output");
    let informational = [
        "global_names",
        "global_prototype_names",
        "ctx_member_names",
        "import_meta",
    ];
    let mut reached = Vec::new();
    for (name, value) in out.as_object().expect("object") {
        if informational.contains(&name.as_str()) {
            continue;
        }
        match value.as_str() {
            Some(s) if s.starts_with("blocked") => {}
            _ => reached.push(format!("{name}: {value}")),
        }
    }
    assert!(
        reached.is_empty(),
        "escapes that were not blocked: {reached:#?}"
    );
    let globals: Vec<String> = serde_json::from_value(out["global_names"].clone()).expect("names");
    for forbidden in [
        "Deno",
        "__bootstrap",
        "Bun",
        "process",
        "require",
        "primordials",
    ] {
        assert!(
            !globals.iter().any(|g| g == forbidden),
            "global {forbidden} is visible"
        );
    }
    assert!(!globals.iter().any(|g| g.starts_with("op_")), "{globals:?}");
    assert_eq!(
        tools.calls.load(Ordering::SeqCst),
        0,
        "the ungranted tool was never invoked"
    );
}

#[tokio::test]
async fn fetch_redirect_modes_reach_the_host() {
    let server = TestServer::start().await;
    let h = Harness::with_services(
        small_pool(),
        Arc::new(ScriptedTools::default()),
        Arc::new(NoLlm),
        &["127.0.0.1/32"],
    );
    let agent = inline_package_with(
        json!({ "permissions": { "fetch": ["127.0.0.1"] } }),
        r#"export default async (input) => {
  const out = {};
  for (const mode of ["follow", "manual", "error"]) {
    try {
      const res = await fetch(input.url, { redirect: mode });
      out[mode] = { status: res.status, redirected: res.redirected, location: res.headers.get("location") };
    } catch (e) {
      out[mode] = { threw: e.name, message: String(e.message) };
    }
  }
  return out;
};"#,
    );
    let outcome = h.run(&agent, json!({ "url": server.url("/moved") })).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    let out = outcome.output.expect("output");
    assert_eq!(out["follow"]["status"], 200, "{out}");
    assert_eq!(out["follow"]["redirected"], true, "{out}");
    assert_eq!(out["manual"]["status"], 302, "{out}");
    assert_eq!(out["manual"]["location"], "/echo", "{out}");
    assert_eq!(out["error"]["threw"], "TypeError", "{out}");
    // /moved three times, /echo once (only for `follow`).
    assert_eq!(server.seen.lock().expect("lock").len(), 4);
}

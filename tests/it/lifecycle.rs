//! Well-behaved agents: input/output, events in order, state and memory, modules.

use atoll::sandbox::{ErrorCode, EventKind, RunStatus};
use serde_json::json;

use crate::common::{load, small_pool, Harness};

#[tokio::test]
async fn hello_returns_greeting_and_events_in_order() {
    let h = Harness::new(small_pool());
    let hello = load("hello");
    let (run_id, outcome) = h
        .run_request(h.request(&hello, json!({ "name": "Ada" })))
        .await;
    assert_eq!(outcome.status, RunStatus::Succeeded, "{outcome:?}");
    let output = outcome.output.expect("output");
    assert_eq!(output["greeting"], "Hello, Ada!");
    assert_eq!(output["run_id"], run_id.as_str());
    assert!(outcome.usage.cpu_ms > 0.0);
    assert!(outcome.usage.wall_ms >= outcome.usage.cpu_ms * 0.5);

    let events = h.events.of_run(&run_id);
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Status,
            EventKind::Log,
            EventKind::Emit,
            EventKind::Output,
            EventKind::Status,
            EventKind::End
        ]
    );
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=6).collect::<Vec<u64>>(),
        "seq strictly increasing from 1"
    );
    assert_eq!(events[1].data["message"], "greeting Ada");
    assert_eq!(
        events[2].data,
        json!({ "type": "greeted", "data": { "name": "Ada" } })
    );
    assert_eq!(events[4].data["status"], "succeeded");
}

#[tokio::test]
async fn input_that_fails_the_schema_never_reaches_js() {
    let h = Harness::new(small_pool());
    let outcome = h.run(&load("hello"), json!({ "name": 42 })).await;
    assert_eq!(
        outcome.error_code(),
        Some(ErrorCode::InputInvalid),
        "{outcome:?}"
    );
    assert_eq!(outcome.usage.cpu_ms, 0.0);
}

#[tokio::test]
async fn counter_carries_state_and_memory_between_runs() {
    let h = Harness::new(small_pool());
    let counter = load("counter");
    let mut state = None;
    for expected in 1..=3 {
        let mut req = h.request(&counter, json!({}));
        req.state = state.clone();
        let (_, outcome) = h.run_request(req).await;
        assert!(outcome.succeeded(), "{outcome:?}");
        let out = outcome.output.expect("output");
        assert_eq!(out["count"], expected);
        assert_eq!(out["visits"], expected);
        assert_eq!(out["total"], expected);
        state = outcome.state;
        assert_eq!(state, Some(json!({ "count": expected })));
    }
    // Another end-user: own visits, shared app total.
    let mut req = h.request(&counter, json!({}));
    req.tenant.end_user = Some("user_2".into());
    let (_, outcome) = h.run_request(req).await;
    let out = outcome.output.expect("output");
    assert_eq!(
        (
            out["count"].clone(),
            out["visits"].clone(),
            out["total"].clone()
        ),
        (json!(1), json!(1), json!(4))
    );
}

#[tokio::test]
async fn multi_module_package_imports_files_json_and_dynamic_modules() {
    let h = Harness::new(small_pool());
    let outcome = h.run(&load("multi-module"), json!({})).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(
        outcome.output.expect("output"),
        json!({ "sum": 5, "product": 20, "circle_area": 12.56,
            "data_name": "multi-module fixture", "data_items": ["alpha", "beta", "gamma"],
            "lazy_message": "lazy module loaded", "lazy_ready": "ready", "lazy_square": 49,
            "same_math_instance": true, "math_evaluations": 1 })
    );
}

#[tokio::test]
async fn web_globals_behave() {
    let h = Harness::new(small_pool());
    let outcome = h.run(&load("web-globals"), json!({})).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    let out = outcome.output.expect("output");
    let failures: Vec<String> = out
        .as_object()
        .expect("object")
        .iter()
        .filter(|(_, v)| **v == json!(false) || v.as_str().is_some_and(|s| s.starts_with("error:")))
        .map(|(k, _)| k.clone())
        .collect();
    assert!(
        failures.is_empty(),
        "checks that failed: {failures:?} in {out}"
    );
}

//! A compromised sandbox process asks the server for what its run was never granted: every
//! such call is refused on the server, whatever the child's own ops would have said.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use super::host_side::serve;
use super::protocol::{Answer, FetchFailure, HostRequest, Json, MemoryAction};
use super::remote::RemoteRun;
use crate::broker::{AddressPolicy, HttpFetcher};
use crate::host::memory::{in_memory_services, CollectingEvents};
use crate::host::{DeltaSink, Tenant};
use crate::package::{AgentPackage, MemoryScope, PackageLimits};
use crate::sandbox::shared::RunShared;
use crate::sandbox::{Limits, RunGrant, RunRequest};

fn run(permissions: serde_json::Value, end_user: Option<&str>) -> RemoteRun {
    let manifest = json!({ "name": "@t/a", "version": "1.0.0", "permissions": permissions });
    let files = BTreeMap::from([("main.js".to_owned(), "export default () => 1;".to_owned())]);
    let package = Arc::new(
        AgentPackage::from_files(manifest, files, &PackageLimits::default()).expect("package"),
    );
    let events = Arc::new(CollectingEvents::default());
    let fetcher = Arc::new(HttpFetcher::new(AddressPolicy::default()).expect("fetcher"));
    let services = in_memory_services(fetcher, events.clone());
    let (shared, _outcome) = RunShared::new("run_1".into(), events, 0);
    RemoteRun::new(
        RunRequest {
            run_id: "run_1".into(),
            grant: RunGrant::from_manifest(&package.manifest, &Limits::default()),
            package,
            tenant: Tenant {
                org_id: "org_1".into(),
                app_id: "app_1".into(),
                end_user: end_user.map(str::to_owned),
            },
            input: json!({}),
            state: None,
            services,
            trigger: "api".into(),
            attempt: 1,
            events_before: 0,
            journal: None,
        },
        shared,
    )
}

fn no_deltas() -> DeltaSink {
    Arc::new(|_: &str| {})
}

fn refused_code(answer: &Answer) -> Option<&str> {
    match answer {
        Answer::Refused { code, .. } => Some(code),
        Answer::FetchFailed(FetchFailure::Other { code, .. }) => Some(code),
        _ => None,
    }
}

fn memory(
    action: MemoryAction,
    scope: MemoryScope,
    value: Option<serde_json::Value>,
) -> HostRequest {
    HostRequest::Memory {
        action,
        scope,
        key: "k".into(),
        value: value.as_ref().map(Json::of),
        limit: 10,
    }
}

#[tokio::test]
async fn calls_outside_the_grant_are_refused_on_the_server() {
    let run = run(json!({ "memory": ["end_user"] }), Some("u1"));
    let cases = [
        memory(MemoryAction::Set, MemoryScope::Org, Some(json!(1))),
        memory(MemoryAction::Get, MemoryScope::App, None),
        HostRequest::Tool {
            name: "delete_everything".into(),
            args: Json::of(&json!({})),
        },
        HostRequest::Llm {
            request: Json::of(&json!({ "model": "openai/gpt-4o", "messages": [] })),
        },
        HostRequest::Fetch {
            connection: None,
            method: "GET".into(),
            url: "https://evil.example/".into(),
            headers: vec![],
            body: None,
            redirect: Default::default(),
        },
    ];
    for request in cases {
        let what = format!("{request:?}");
        let (answer, over, _) = serve(&run, 0, request, no_deltas()).await;
        assert!(!over);
        let code = refused_code(&answer);
        assert!(
            matches!(code, Some("permission_denied" | "fetch_host_not_allowed")),
            "{what} was not refused: {answer:?}"
        );
    }
}

#[tokio::test]
async fn a_connection_and_a_fetch_count_the_grant_lacks_are_refused() {
    let run = run(json!({ "fetch": ["127.0.0.1"] }), None);
    let fetch = |connection: Option<&str>| HostRequest::Fetch {
        connection: connection.map(str::to_owned),
        method: "GET".into(),
        url: "http://127.0.0.1:9/".into(),
        headers: vec![],
        body: None,
        redirect: Default::default(),
    };
    let (answer, _, _) = serve(&run, 0, fetch(Some("someone-elses-crm")), no_deltas()).await;
    assert_eq!(
        refused_code(&answer),
        Some("permission_denied"),
        "{answer:?}"
    );
    // The server counts fetches itself: a child that skips its own count is stopped.
    let limit = run.grant.limits.max_fetches;
    run.fetches
        .store(limit, std::sync::atomic::Ordering::SeqCst);
    let (answer, _, _) = serve(&run, 0, fetch(None), no_deltas()).await;
    assert_eq!(refused_code(&answer), Some("fetch_limit"), "{answer:?}");
}

#[tokio::test]
async fn memory_lands_in_the_runs_own_namespace() {
    // The child names only a scope; the tenant and end-user come from the server's record.
    let a = run(json!({ "memory": ["end_user"] }), Some("alice"));
    let (answer, _, _) = serve(
        &a,
        0,
        memory(
            MemoryAction::Set,
            MemoryScope::EndUser,
            Some(json!("secret of alice")),
        ),
        no_deltas(),
    )
    .await;
    assert!(matches!(answer, Answer::Value(_)), "{answer:?}");
    let (answer, _, _) = serve(
        &a,
        0,
        memory(MemoryAction::Get, MemoryScope::EndUser, None),
        no_deltas(),
    )
    .await;
    match answer {
        Answer::Value(v) => assert_eq!(v.value(), json!("secret of alice")),
        other => panic!("{other:?}"),
    }
    // A run with no end-user cannot reach end-user memory at all.
    let nobody = run(json!({ "memory": ["end_user"] }), None);
    let (answer, _, _) = serve(
        &nobody,
        0,
        memory(MemoryAction::Get, MemoryScope::EndUser, None),
        no_deltas(),
    )
    .await;
    assert_eq!(refused_code(&answer), Some("no_end_user"), "{answer:?}");
    // Oversized values are refused before they reach the store.
    let big = "x".repeat(a.grant.limits.max_state_bytes as usize + 10);
    let (answer, _, _) = serve(
        &a,
        0,
        memory(MemoryAction::Set, MemoryScope::EndUser, Some(json!(big))),
        no_deltas(),
    )
    .await;
    assert_eq!(refused_code(&answer), Some("value_too_large"), "{answer:?}");
}

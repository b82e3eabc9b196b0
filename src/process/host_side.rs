//! The server's half of every host call a sandbox process makes. The child's ops have
//! checked the grant already, but a child is untrusted (its engine may be compromised),
//! so every call is checked again here, against the grant and tenant the server holds
//! for that run, before any service is reached.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::Instrument;

use serde_json::{json, Value};

use super::protocol::{Answer, FetchFailure, Fetched, HostRequest, Json, MemoryAction};
use super::remote::RemoteRun;
use crate::broker::budget;
use crate::broker::{FetchError, FetchLimits, FetchRequest};
use crate::host::{ChatRequest, DeltaSink, HostCheck, HostError, MemoryNamespace, WaitRequest};
use crate::package::MemoryScope;

/// Host calls of one run traced as `run.op` spans.
const MAX_OP_SPANS: u32 = 256;

/// Longest memory key and most keys listed, as the ops allow.
const MAX_KEY_BYTES: usize = 512;
const MAX_LIST: u32 = 1000;

/// Serves one call; answers whether the host went over the run's memory budget too, and
/// when the answer was given (journaled with it).
pub(crate) async fn serve(
    run: &RemoteRun,
    seq: u64,
    request: HostRequest,
    deltas: DeltaSink,
) -> (Answer, bool, i64) {
    // The first calls of a run get a span each; past the cap they go untraced.
    let span = if run.op_spans.fetch_add(1, Ordering::Relaxed) < MAX_OP_SPANS {
        tracing::info_span!(parent: &run.span, "run.op", op = request.kind())
    } else {
        tracing::Span::none()
    };
    let answered = super::journaled::answer(run, seq, request, deltas);
    let (answer, at) = budget::charged_to(run.memory.clone(), answered)
        .instrument(span)
        .await;
    (answer, run.memory.exceeded(), at)
}

/// Serves a call live (the journal, if any, was consulted by the caller).
pub(super) async fn dispatch(run: &RemoteRun, request: HostRequest, deltas: DeltaSink) -> Answer {
    let answered = match request {
        HostRequest::Memory {
            action,
            scope,
            key,
            value,
            limit,
        } => memory(run, action, scope, key, value, limit).await,
        HostRequest::Tool { name, args } => tool(run, &name, &args).await,
        HostRequest::Llm { request } => llm(run, &request, deltas).await,
        HostRequest::Fetch {
            connection,
            method,
            url,
            headers,
            body,
            redirect,
        } => return fetch(run, connection, method, &url, headers, body, redirect).await,
        // Served by `journaled::answer`, which knows the timer's position.
        HostRequest::Timer { .. } => Err(HostError::new(
            "internal",
            "a timer is not a call to dispatch",
        )),
        // Without a journal nothing can park the run: a sleep sleeps, a signal cannot come.
        HostRequest::Wait { request } => match request.parse::<WaitRequest>() {
            Ok(wait) => {
                use crate::host::Waiter;
                crate::host::memory::LocalWaits::default()
                    .wait(&run.tenant, wait)
                    .await
            }
            Err(e) => Err(HostError::new(
                "bad_request",
                format!("a wait is not valid: {e}"),
            )),
        },
    };
    match answered {
        Ok(value) => Answer::Value(Json::of(&value)),
        Err(e) => Answer::Refused {
            code: e.code.to_owned(),
            message: e.message,
        },
    }
}

fn denied(what: String) -> HostError {
    HostError::new("permission_denied", what)
}

async fn memory(
    run: &RemoteRun,
    action: MemoryAction,
    scope: MemoryScope,
    key: String,
    value: Option<Json>,
    limit: u32,
) -> Result<Value, HostError> {
    if !run.grant.allows_memory(scope) {
        return Err(denied(format!(
            "memory scope {scope:?} is not in this agent's permissions.memory"
        )));
    }
    if key.len() > MAX_KEY_BYTES || (key.is_empty() && action != MemoryAction::List) {
        return Err(HostError::new(
            "bad_key",
            format!("a memory key is 1 to {MAX_KEY_BYTES} bytes"),
        ));
    }
    let tenant = &run.tenant;
    let end_user = match scope {
        MemoryScope::EndUser => Some(
            tenant
                .end_user
                .clone()
                .ok_or_else(|| HostError::new("no_end_user", "this run has no end-user"))?,
        ),
        _ => None,
    };
    let ns = MemoryNamespace {
        org_id: tenant.org_id.clone(),
        app_id: tenant.app_id.clone(),
        scope,
        end_user,
    };
    let store = &run.services.memory;
    match action {
        MemoryAction::Get => Ok(store.get(&ns, &key).await?.unwrap_or(Value::Null)),
        MemoryAction::Set => {
            let value = value.ok_or_else(|| HostError::new("bad_request", "no value to set"))?;
            let limit = run.grant.limits.max_state_bytes;
            if value.0.len() as u64 > limit {
                return Err(HostError::new(
                    "value_too_large",
                    format!("a memory value is at most {limit} bytes"),
                ));
            }
            store.set(&ns, &key, value.value()).await?;
            Ok(Value::Bool(true))
        }
        MemoryAction::Delete => Ok(Value::Bool(store.delete(&ns, &key).await?)),
        MemoryAction::List => {
            let limit = limit.min(MAX_LIST) as usize;
            Ok(json!(store.list(&ns, &key, limit).await?))
        }
    }
}

async fn tool(run: &RemoteRun, name: &str, args: &Json) -> Result<Value, HostError> {
    if !run.grant.allows_tool(name) {
        return Err(denied(format!(
            "tool '{name}' is not in this agent's permissions.tools"
        )));
    }
    run.services
        .tools
        .call(&run.tenant, name, args.value())
        .await
}

async fn llm(run: &RemoteRun, request: &Json, deltas: DeltaSink) -> Result<Value, HostError> {
    let request: ChatRequest = request.parse().map_err(|e| {
        HostError::new("bad_request", format!("the chat request is not valid: {e}"))
    })?;
    if !run.grant.allows_model(&request.model) {
        return Err(denied(format!(
            "model '{}' is not in this agent's permissions.llm",
            request.model
        )));
    }
    let offered = request.tools.iter().all(|tool| {
        tool.as_str()
            .or_else(|| tool.get("name").and_then(Value::as_str))
            .is_some_and(|name| run.grant.allows_tool(name))
    });
    if !offered {
        return Err(denied(
            "a tool offered to the model is not in permissions.tools".into(),
        ));
    }
    let response = run.services.llm.chat(&run.tenant, request, deltas).await?;
    Ok(json!(response))
}

async fn fetch(
    run: &RemoteRun,
    connection: Option<String>,
    method: String,
    url: &str,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    redirect: crate::broker::Redirect,
) -> Answer {
    let refused = |code: &str, message: String| {
        Answer::FetchFailed(FetchFailure::Other {
            code: code.to_owned(),
            message,
        })
    };
    let Ok(url) = url::Url::parse(url) else {
        return refused("fetch_bad_request", "invalid URL".into());
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    let grant = &run.grant;
    if !grant.allows_host(&host) {
        return refused(
            "fetch_host_not_allowed",
            format!("host '{host}' is not in this agent's permissions.fetch"),
        );
    }
    if let Some(name) = &connection {
        if !grant.allows_connection(name) {
            return refused(
                "permission_denied",
                format!("connection '{name}' is not in this agent's permissions.connections"),
            );
        }
    }
    let count = run.fetches.fetch_add(1, Ordering::AcqRel) + 1;
    if count > grant.limits.max_fetches {
        return refused(
            "fetch_limit",
            format!(
                "the run may make at most {} fetches",
                grant.limits.max_fetches
            ),
        );
    }
    let limits = FetchLimits {
        max_response_bytes: grant.limits.max_fetch_response_bytes,
        timeout: grant.limits.wall(),
        max_redirects: 5,
    };
    let request = FetchRequest {
        method,
        url,
        headers,
        body: body.map(Into::into),
        sensitive_headers: Vec::new(),
        redirect,
    };
    let hops = run.grant.clone();
    let allow_host: HostCheck = Arc::new(move |h: &str| hops.allows_host(h));
    let result = run
        .services
        .fetcher
        .fetch(
            &run.tenant,
            connection.as_deref(),
            request,
            &limits,
            allow_host,
        )
        .await;
    match result {
        Ok(response) => Answer::Fetched(Box::new(Fetched {
            status: response.status,
            status_text: response.status_text,
            headers: response.headers,
            url: response.url,
            body: response.body.to_vec(),
            redirected: response.redirected,
        })),
        Err(FetchError::TooLarge { limit }) => {
            Answer::FetchFailed(FetchFailure::TooLarge { limit })
        }
        Err(FetchError::OverBudget(over)) => Answer::FetchFailed(FetchFailure::OverBudget {
            limit_mb: over.limit_mb,
        }),
        Err(e) => refused(e.code(), e.to_string()),
    }
}

//! Operations: health, readiness, Prometheus metrics, the OpenAPI document, and the
//! request-rate middleware.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::auth::key_fingerprint;
use super::error::{rate_limit_headers, ApiError};
use super::AppState;

#[derive(Default)]
pub struct Metrics {
    requests: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
}

/// Counts requests by outcome class.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let logged = state.limits.log_requests.then(|| {
        (
            request.method().clone(),
            request.uri().path().to_owned(),
            std::time::Instant::now(),
        )
    });
    let response = next.run(request).await;
    if let Some((method, path, started)) = logged {
        tracing::info!(
            target: "atoll::request",
            %method,
            path,
            status = response.status().as_u16(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
    let m = &state.metrics;
    m.requests.fetch_add(1, Ordering::Relaxed);
    if response.status().is_client_error() {
        m.client_errors.fetch_add(1, Ordering::Relaxed);
    } else if response.status().is_server_error() {
        m.server_errors.fetch_add(1, Ordering::Relaxed);
    }
    response
}

/// Request rate per API key (counted before the key is looked up, so floods of bad keys
/// are limited too); answers 429 with `retry-after` and `ratelimit-*` headers.
pub async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Some(fingerprint) = key_fingerprint(&parts) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    match state.admission.request(&fingerprint).await {
        Ok(d) => {
            let mut response = next.run(Request::from_parts(parts, body)).await;
            if !response.headers().contains_key("ratelimit-limit") {
                rate_limit_headers(response.headers_mut(), &d);
            }
            response
        }
        Err(refused) => ApiError::from(refused).into_response(),
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.store.ping().await;
    let quotas = state.admission.quotas().ping().await;
    let sandbox = match state.runs.sandbox().process_stats() {
        None => json!({ "mode": "in_process" }),
        Some(p) => json!({
            "mode": "processes",
            "children": p.children_alive,
            "lockdown": p.lockdown.as_ref().map(|l| &l.active),
            "lockdown_skipped": p.lockdown.as_ref().map(|l| &l.skipped),
        }),
    };
    let body = json!({
        "store": store.as_ref().map_or_else(|e| e.to_string(), |_| "ok".into()),
        "quotas": quotas.as_ref().map_or_else(|e| e.to_string(), |_| "ok".into()),
        "sandbox": sandbox,
    });
    if store.is_ok() && quotas.is_ok() {
        Json(body).into_response()
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    use std::fmt::Write;
    let mut out = String::new();
    let m = &state.metrics;
    let _ = writeln!(out, "# HELP atoll_http_requests_total HTTP requests served.\n# TYPE atoll_http_requests_total counter");
    let _ = writeln!(
        out,
        "atoll_http_requests_total{{class=\"all\"}} {}",
        m.requests.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "atoll_http_requests_total{{class=\"4xx\"}} {}",
        m.client_errors.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "atoll_http_requests_total{{class=\"5xx\"}} {}",
        m.server_errors.load(Ordering::Relaxed)
    );
    state.runs.metrics().render(&mut out);
    let queue = state.store.queue_depth().await.unwrap_or(-1);
    let pool = state.runs.sandbox().stats();
    if let Some(p) = state.runs.sandbox().process_stats() {
        let _ = writeln!(out, "# HELP atoll_sandbox_processes Sandbox processes alive (active, spare, draining).\n# TYPE atoll_sandbox_processes gauge\natoll_sandbox_processes {}", p.children_alive);
        let _ = writeln!(out, "# HELP atoll_sandbox_processes_started_total Sandbox processes started.\n# TYPE atoll_sandbox_processes_started_total counter\natoll_sandbox_processes_started_total {}", p.children_started);
        let _ = writeln!(out, "# HELP atoll_sandbox_processes_crashed_total Sandbox processes that died unasked.\n# TYPE atoll_sandbox_processes_crashed_total counter\natoll_sandbox_processes_crashed_total {}", p.children_crashed);
        let _ = writeln!(out, "# HELP atoll_sandbox_processes_recycled_total Sandbox processes retired after their budget or memory ceiling.\n# TYPE atoll_sandbox_processes_recycled_total counter\natoll_sandbox_processes_recycled_total {}", p.children_recycled);
    }
    let _ = writeln!(out, "# HELP atoll_queue_depth Runs waiting in the store queue.\n# TYPE atoll_queue_depth gauge\natoll_queue_depth {queue}");
    let _ = writeln!(out, "# HELP atoll_runs_active Runs executing on this node.\n# TYPE atoll_runs_active gauge\natoll_runs_active {}", state.runs.active_runs());
    let _ = writeln!(out, "# HELP atoll_isolates_created_total Isolates created by this node.\n# TYPE atoll_isolates_created_total counter\natoll_isolates_created_total {}", pool.isolates_created);
    let _ = writeln!(out, "# HELP atoll_isolates_alive Isolates alive (running or blank) on this node.\n# TYPE atoll_isolates_alive gauge\natoll_isolates_alive {}", pool.isolates_alive);
    let _ = writeln!(out, "# HELP atoll_worker_threads Sandbox worker threads alive.\n# TYPE atoll_worker_threads gauge\natoll_worker_threads {}", pool.threads_alive);
    let _ = writeln!(out, "# HELP atoll_worker_threads_abandoned_total Sandbox worker threads given up on because something blocked them.\n# TYPE atoll_worker_threads_abandoned_total counter\natoll_worker_threads_abandoned_total {}", pool.threads_abandoned);
    let _ = writeln!(out, "# HELP atoll_uptime_seconds Seconds since start.\n# TYPE atoll_uptime_seconds gauge\natoll_uptime_seconds {}", state.started.elapsed().as_secs());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Every route: method, path, scope, summary. The OpenAPI document is generated from
/// this table, and a test checks each entry against the live router.
pub const ROUTES: &[(&str, &str, &str, &str)] = &[
    (
        "post",
        "/v1/orgs",
        "admin",
        "Create an org and its first org key",
    ),
    ("get", "/v1/orgs/{id}", "", "Get an org"),
    ("post", "/v1/apps", "apps:write", "Create an app"),
    ("get", "/v1/apps", "apps:read", "List apps"),
    ("get", "/v1/apps/{id}", "apps:read", "Get an app"),
    (
        "post",
        "/v1/api-keys",
        "keys:write",
        "Create an API key (secret shown once)",
    ),
    ("get", "/v1/api-keys", "keys:read", "List API keys"),
    (
        "delete",
        "/v1/api-keys/{id}",
        "keys:write",
        "Revoke an API key",
    ),
    (
        "put",
        "/v1/agents/{scope}/{name}/versions/{version}",
        "agents:write",
        "Upload a package version (gzip, zip or JSON files map)",
    ),
    (
        "get",
        "/v1/agents/{scope}/{name}/versions/{version}",
        "agents:read",
        "Get a version",
    ),
    ("get", "/v1/agents", "agents:read", "List agents"),
    (
        "get",
        "/v1/agents/{scope}/{name}",
        "agents:read",
        "Get an agent",
    ),
    (
        "get",
        "/v1/agents/{scope}/{name}/versions",
        "agents:read",
        "List versions",
    ),
    (
        "post",
        "/v1/agents/{scope}/{name}/runs",
        "runs:write",
        "Start a run (?wait=N for up to 60 s)",
    ),
    (
        "get",
        "/v1/runs",
        "runs:read",
        "List runs (?agent=&status=&end_user=)",
    ),
    ("get", "/v1/runs/{id}", "runs:read", "Get a run"),
    ("post", "/v1/runs/{id}/cancel", "runs:write", "Cancel a run"),
    (
        "get",
        "/v1/runs/{id}/events",
        "runs:read",
        "Stream run events (SSE, Last-Event-ID resumes)",
    ),
    (
        "get",
        "/v1/memory/{scope}",
        "memory:read",
        "List memory keys",
    ),
    (
        "get",
        "/v1/memory/{scope}/{key}",
        "memory:read",
        "Get a memory value",
    ),
    (
        "put",
        "/v1/memory/{scope}/{key}",
        "memory:write",
        "Set a memory value",
    ),
    (
        "delete",
        "/v1/memory/{scope}/{key}",
        "memory:write",
        "Delete a memory value",
    ),
    (
        "put",
        "/v1/connections/{name}",
        "connections:write",
        "Create or replace a connection (secret write-only)",
    ),
    (
        "get",
        "/v1/connections/{name}",
        "connections:read",
        "Get a connection's metadata and fingerprint",
    ),
    (
        "delete",
        "/v1/connections/{name}",
        "connections:write",
        "Delete a connection",
    ),
    (
        "get",
        "/v1/connections",
        "connections:read",
        "List connections",
    ),
    (
        "put",
        "/v1/tools/{name}",
        "agents:write",
        "Create or replace an HTTP tool",
    ),
    ("get", "/v1/tools/{name}", "agents:read", "Get a tool"),
    (
        "delete",
        "/v1/tools/{name}",
        "agents:write",
        "Delete a tool",
    ),
    ("get", "/v1/tools", "agents:read", "List tools"),
    (
        "post",
        "/v1/webhooks",
        "webhooks:write",
        "Create a webhook endpoint (its secret is shown once)",
    ),
    (
        "get",
        "/v1/webhooks",
        "webhooks:read",
        "List webhook endpoints",
    ),
    (
        "get",
        "/v1/webhooks/{id}",
        "webhooks:read",
        "Get a webhook endpoint",
    ),
    (
        "delete",
        "/v1/webhooks/{id}",
        "webhooks:write",
        "Delete a webhook endpoint and its delivery log",
    ),
    (
        "post",
        "/v1/webhooks/{id}/rotate-secret",
        "webhooks:write",
        "Rotate the signing secret (the old one signs for 24 h more)",
    ),
    (
        "get",
        "/v1/webhooks/{id}/deliveries",
        "webhooks:read",
        "The delivery log: every delivery with its attempts",
    ),
    (
        "post",
        "/v1/webhooks/{id}/deliveries/{delivery_id}/retry",
        "webhooks:write",
        "Send a delivery again now",
    ),
    (
        "post",
        "/v1/agents/{scope}/{name}/triggers",
        "agents:write",
        "Create a webhook or cron trigger",
    ),
    (
        "get",
        "/v1/agents/{scope}/{name}/triggers",
        "agents:read",
        "List an agent's triggers",
    ),
    (
        "get",
        "/v1/agents/{scope}/{name}/triggers/{id}",
        "agents:read",
        "Get a trigger (with next_fire_at)",
    ),
    (
        "delete",
        "/v1/agents/{scope}/{name}/triggers/{id}",
        "agents:write",
        "Delete a trigger",
    ),
    (
        "post",
        "/v1/agents/{scope}/{name}/triggers/{id}/pause",
        "agents:write",
        "Pause a trigger",
    ),
    (
        "post",
        "/v1/agents/{scope}/{name}/triggers/{id}/resume",
        "agents:write",
        "Resume a trigger",
    ),
    (
        "post",
        "/v1/hooks/{id}",
        "",
        "Inbound webhook: signature-checked, starts the trigger's agent (no API key)",
    ),
    ("get", "/v1/audit", "audit:read", "Audit events"),
    ("get", "/v1/usage", "usage:read", "Usage per period"),
    ("get", "/healthz", "", "Liveness"),
    (
        "get",
        "/readyz",
        "",
        "Readiness (store and quota backend reachable)",
    ),
    ("get", "/metrics", "", "Prometheus metrics"),
    ("get", "/v1/openapi.json", "", "This document"),
];

pub fn openapi_document() -> Value {
    let mut paths = Map::new();
    for (method, path, scope, summary) in ROUTES {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let mut op = json!({
            "summary": summary,
            "parameters": params,
            "responses": {
                "default": { "description": "RFC 9457 problem", "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } },
                "2XX": { "description": "Success" }
            }
        });
        if !scope.is_empty() {
            op["security"] = json!([{ "bearer": [] }]);
            op["x-atoll-scope"] = json!(scope);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "atoll", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": { "Problem": { "type": "object", "properties": {
                "type": { "type": "string" }, "title": { "type": "string" }, "status": { "type": "integer" }, "detail": { "type": "string" }
            } } }
        }
    })
}

async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

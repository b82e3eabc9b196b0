//! Operations: health, readiness, Prometheus metrics, the OpenAPI document, and the
//! request-rate middleware.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::key_fingerprint;
use super::error::{rate_limit_headers, ApiError};
use super::AppState;

#[derive(Default)]
pub struct Metrics {
    requests: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({ "status": "ok" }))]
struct Health {
    status: &'static str,
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", summary = "Liveness",
    responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// What `/readyz` reports: each dependency `ok` or why not, and the sandbox's mode and
/// active lockdown layers.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({ "store": "ok", "quotas": "ok", "sandbox": {
    "mode": "processes", "children": 2, "lockdown": ["no_new_privs", "seccomp"], "lockdown_skipped": [] } }))]
struct Readiness {
    store: String,
    quotas: String,
    #[schema(value_type = Object)]
    sandbox: Value,
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

/// Readiness: the store and the quota backend answer (503 otherwise).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    summary = "Readiness (store and quota backend reachable, sandbox lockdown layers)",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
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
    let body = Readiness {
        store: store
            .as_ref()
            .map_or_else(|e| e.to_string(), |_| "ok".into()),
        quotas: quotas
            .as_ref()
            .map_or_else(|e| e.to_string(), |_| "ok".into()),
        sandbox,
    };
    if store.is_ok() && quotas.is_ok() {
        Json(body).into_response()
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations", summary = "Prometheus metrics",
    responses((status = 200, description = "Text exposition format", content_type = "text/plain",
        body = String, example = "atoll_runs_active 0")))]
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

/// `GET /v1/openapi.json`.
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "get_openapi", tag = "operations",
    summary = "This OpenAPI 3.1 document",
    responses((status = 200, description = "The document", content_type = "application/json",
        body = Object, example = json!({ "openapi": "3.1.0", "info": { "title": "atoll" } }))))]
async fn openapi() -> Json<Value> {
    Json(super::doc::document().clone())
}

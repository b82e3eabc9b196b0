//! The HTTP API (`/v1`, SPEC §5): one module per resource, each with its own
//! `router()`, merged here; one error type; auth, idempotency and rate limits as
//! extractors and middleware.

pub mod auth;
pub mod doc;
pub mod error;
pub mod extract;
mod idempotency;
pub mod json;
mod ops;
mod page;

pub(crate) mod agents;
mod apps;
mod audit;
mod connections;
mod durable;
mod hooks;
pub(crate) mod keys;
mod memory;
mod orgs;
mod run_events;
mod runs;
mod tools;
mod triggers;
mod usage;
mod versions;
mod webhooks;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::broker::resolve::PolicyResolver;
use crate::runs::admission::Admission;
use crate::runs::RunService;
use crate::sandbox::Limits;
use crate::store::Store;
use error::ApiError;

/// Limits of the HTTP layer itself; quotas are in [`Admission`].
#[derive(Debug, Clone)]
pub struct ApiLimits {
    pub max_body_bytes: usize,
    /// Largest body `POST /v1/hooks/{id}` takes (what is signed is the raw body).
    pub hook_max_body_bytes: usize,
    /// One log line per request.
    pub log_requests: bool,
}

pub struct Inner {
    pub store: Arc<dyn Store>,
    /// Every quota rule (request rate here; run rules through `runs`).
    pub admission: Admission,
    pub runs: RunService,
    pub admin_key_hash: Option<String>,
    /// Seals connection secrets; None when the operator set no `ATOLL_MASTER_KEY`.
    pub master_keys: Option<Arc<crate::broker::secrets::MasterKeys>>,
    pub ceilings: Limits,
    pub limits: ApiLimits,
    pub destinations: PolicyResolver,
    /// Inbound webhooks (`POST /v1/hooks/{id}`, unauthenticated) in flight on this node.
    pub hook_slots: Arc<tokio::sync::Semaphore>,
    pub started: Instant,
    pub metrics: ops::Metrics,
    /// The latest version of each agent, briefly cached: resolving it reads every
    /// version; uploads on this node invalidate it, other nodes see them within the TTL.
    pub latest_versions: moka::sync::Cache<(String, String), crate::store::AgentVersion>,
}

/// The one state every handler gets: cheap handles only.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// What the API is built from.
pub struct StateParts<'a> {
    pub store: Arc<dyn Store>,
    pub admission: Admission,
    pub runs: RunService,
    pub admin_key: Option<&'a str>,
    pub master_keys: Option<Arc<crate::broker::secrets::MasterKeys>>,
    pub ceilings: Limits,
    pub limits: ApiLimits,
    /// Checks webhook URLs against the broker's address policy when they are saved.
    pub destinations: PolicyResolver,
}

impl AppState {
    pub fn new(parts: StateParts<'_>) -> AppState {
        AppState(Arc::new(Inner {
            store: parts.store,
            admission: parts.admission,
            runs: parts.runs,
            admin_key_hash: parts.admin_key.map(auth::hash_secret),
            master_keys: parts.master_keys,
            ceilings: parts.ceilings,
            limits: parts.limits,
            destinations: parts.destinations,
            hook_slots: Arc::new(tokio::sync::Semaphore::new(hooks::HOOKS_IN_FLIGHT)),
            started: Instant::now(),
            metrics: ops::Metrics::default(),
            latest_versions: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(std::time::Duration::from_secs(5))
                .build(),
        }))
    }
}

/// Every route with its documentation: each module registers its handlers through
/// `utoipa_axum::routes!`, which takes the path and method from the handler's
/// `#[utoipa::path]`, so the router and the OpenAPI document ([`doc::document`]) are
/// built from the same list.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(doc::ApiDoc::openapi())
        .nest("/v1", v1_routes())
        .merge(ops::router())
}

fn v1_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(orgs::router())
        .merge(apps::router())
        .merge(keys::router())
        .merge(agents::router())
        .merge(runs::router())
        .merge(durable::router())
        .merge(memory::router())
        .merge(connections::router())
        .merge(tools::router())
        .merge(audit::router())
        .merge(usage::router())
        .merge(webhooks::router())
        .merge(triggers::router())
        .merge(hooks::router())
}

/// The API with its middleware.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let (v1, _) = v1_routes().split_for_parts();
    let v1 = v1
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::rate_limit,
        ));
    let (ops_routes, _) = OpenApiRouter::new().merge(ops::router()).split_for_parts();
    Router::new()
        .nest("/v1", v1)
        .merge(ops_routes)
        .fallback(|| async { ApiError::NotFound("no such route; see /v1/openapi.json".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(axum::middleware::from_fn(extract::header_size_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::track,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

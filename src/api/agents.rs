//! Agents and their immutable versions: upload (gzip, zip, or a JSON files map), list,
//! get. A package that does not validate is refused with 422 naming the file and why.

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::doc::Problem;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery};
use super::json::{is_json, parse_json, read_body};
use super::page::{list, Listed, PageQuery};
use super::{audit, AppState};
use crate::ids::now_ms;
use crate::package::{AgentPackage, PackageError, PackageLimits};
use crate::store::{Agent, AgentVersion, PutVersion};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents))
        .routes(routes!(get_agent))
        .routes(routes!(list_versions))
        .routes(routes!(
            upload,
            get_version,
            super::versions::update_version,
            super::versions::delete_version
        ))
}

/// The `{scope}/{name}` of an agent's paths, as documented (the handlers read them
/// through `ApiPath`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct AgentPath {
    /// Package scope, without the `@`.
    scope: String,
    /// Package name.
    name: String,
}

/// `@scope/name` from the path segments.
pub fn agent_name(scope: &str, name: &str) -> String {
    format!("@{scope}/{name}")
}

pub fn package_problem(e: &PackageError) -> ApiError {
    let mut extra = Map::new();
    if let Some(file) = &e.file {
        extra.insert("file".into(), json!(file));
    }
    extra.insert("reason".into(), json!(e.reason));
    ApiError::Unprocessable {
        title: "Invalid agent package",
        detail: e.to_string(),
        extra: Some(extra),
    }
}

/// A package as JSON: `agent.json`'s content and every other file as text.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "manifest": { "name": "@acme/hello", "version": "1.0.0", "entry": "main.js",
        "input": { "type": "object", "properties": { "name": { "type": "string" } }, "required": ["name"] } },
    "files": { "main.js": "export default async (input, ctx) => ({ greeting: `Hello, ${input.name}!` });" }
}))]
struct JsonUpload {
    /// The content of `agent.json`.
    #[schema(value_type = Object)]
    manifest: Value,
    /// Path → file content (UTF-8 text).
    files: BTreeMap<String, String>,
}

/// A package as a `.tar.gz` or `.zip` archive holding `agent.json` at its root.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
struct PackageArchive(Vec<u8>);

/// A version, as listed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({ "name": "@acme/hello", "version": "1.0.0",
    "digest": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "description": "Says hello", "created_at": 1764892800000_i64 }))]
pub struct VersionSummary {
    /// `@scope/name`.
    pub name: String,
    pub version: String,
    /// The package's content digest: the same upload twice is the same version.
    pub digest: String,
    pub description: Option<String>,
    pub created_at: i64,
    /// When it was deprecated: `latest` skips it, a run may still pin it.
    pub deprecated_at: Option<i64>,
}

/// A version with its manifest.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({ "name": "@acme/hello", "version": "1.0.0", "digest": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "description": "Says hello", "created_at": 1764892800000_i64,
    "manifest": { "name": "@acme/hello", "version": "1.0.0", "entry": "main.js" } }))]
pub struct VersionDetail {
    #[serde(flatten)]
    pub summary: VersionSummary,
    /// The version's `agent.json`.
    #[schema(value_type = Object)]
    pub manifest: Value,
}

/// An agent: its name and latest version.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({ "name": "@acme/hello", "created_at": 1764892800000_i64,
    "latest_version": "1.0.0", "description": "Says hello" }))]
pub struct AgentView {
    pub name: String,
    pub created_at: i64,
    /// The highest semver version that is not deprecated.
    pub latest_version: Option<String>,
    pub description: Option<String>,
}

/// The stored version of a package checked by [`AgentPackage`]: the one way a version
/// record is built (uploads and `atoll dev`'s deploys).
pub fn version_record(app_id: &str, package: &AgentPackage) -> serde_json::Result<AgentVersion> {
    let files: Map<String, Value> = package
        .files
        .iter()
        .map(|(k, v)| (k.clone(), json!(v.as_ref())))
        .collect();
    Ok(AgentVersion {
        app_id: app_id.to_owned(),
        name: package.manifest.name.clone(),
        version: package.manifest.version.to_string(),
        manifest: serde_json::to_value(&package.manifest)?,
        files: Value::Object(files),
        digest: package.digest.clone(),
        created_at: now_ms(),
        deprecated_at: None,
    })
}

/// Upload a package version. Every module is parsed at upload (a syntax error is a 422
/// naming file, line and column); versions are immutable: the same content again answers
/// 200 with the stored version, other content 409.
#[utoipa::path(put, path = "/agents/{scope}/{name}/versions/{version}", operation_id = "upload_version", tag = "agents",
    summary = "Upload a package version (gzip, zip or JSON files map)",
    security(("bearer" = ["agents:write"])),
    params(
        AgentPath,
        ("version" = String, Path, description = "Semver version, as in agent.json"),
    ),
    request_body(content(
        (JsonUpload = "application/json"),
        (PackageArchive = "application/gzip"),
        (PackageArchive = "application/zip"),
    )),
    responses(
        (status = 201, description = "Created", body = VersionSummary),
        (status = 200, description = "This content was already this version", body = VersionSummary),
        (status = 409, response = Problem),
        (status = 422, response = Problem),
    ))]
async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, name, version)): ApiPath<(String, String, String)>,
    request: Request,
) -> ApiResult<(StatusCode, Json<VersionSummary>)> {
    let (_org_id, app_id) = caller.app("agents:write")?;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let body = read_body(request, &()).await?;
    let limits = PackageLimits::default();
    let package = match content_type.as_str() {
        "application/gzip" | "application/x-gzip" | "application/x-tar+gzip" | "application/zip" | "application/x-zip-compressed" => {
            AgentPackage::from_archive_bytes(&body, &limits)
        }
        ct if is_json(Some(ct)) => {
            let upload: JsonUpload = parse_json(&body)?;
            AgentPackage::from_files(upload.manifest, upload.files, &limits)
        }
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "upload a package as application/gzip, application/zip, or application/json { manifest, files }".into(),
            ))
        }
    }
    .map_err(|e| package_problem(&e))?;

    let full_name = agent_name(&scope, &name);
    if package.manifest.name != full_name || package.manifest.version.to_string() != version {
        return Err(ApiError::unprocessable(
            "Name or version mismatch",
            format!(
                "the path says {full_name}@{version} but agent.json says {}@{}",
                package.manifest.name, package.manifest.version
            ),
        ));
    }
    // Every module parses and links (in a sandbox process), or the upload is refused.
    match state.runs.sandbox().check_package(&package).await {
        Ok(None) => {}
        Ok(Some(error)) => {
            return Err(ApiError::unprocessable("Invalid agent package", error));
        }
        Err(why) => {
            tracing::warn!(%why, "a package could not be checked");
            return Err(ApiError::Unavailable(
                "the package could not be checked right now; upload it again".into(),
            ));
        }
    }
    let record =
        version_record(&app_id, &package).map_err(|e| ApiError::Internal(e.to_string()))?;
    let (status, record) = match state.store.put_agent_version(&record).await? {
        PutVersion::Created => (StatusCode::CREATED, record),
        // The same content again: the version as stored, unchanged.
        PutVersion::Unchanged => (
            StatusCode::OK,
            state
                .store
                .get_agent_version(&app_id, &record.name, &record.version)
                .await?
                .unwrap_or(record),
        ),
        PutVersion::Deleted => {
            return Err(ApiError::Conflict(format!(
                "{full_name}@{version} was deleted; a version number is never reused, upload a new version"
            )))
        }
        PutVersion::Conflict => {
            return Err(ApiError::Conflict(format!(
                "{full_name}@{version} already exists with other content; versions are immutable, upload a new version"
            )))
        }
    };
    if status == StatusCode::CREATED {
        state
            .latest_versions
            .invalidate(&(app_id.clone(), full_name.clone()));
        audit::record(
            &state,
            &caller,
            Some(&app_id),
            "agent_version.create",
            &format!("{full_name}@{version}"),
            json!({ "digest": record.digest }),
        )
        .await?;
    }
    Ok((status, Json(version_summary(&record))))
}

/// The manifest's description, read through the typed manifest (validated at upload).
fn description_of(v: &AgentVersion) -> Option<String> {
    crate::package::Manifest::from_json(&v.manifest)
        .ok()
        .and_then(|m| m.description)
}

pub(super) fn version_summary(v: &AgentVersion) -> VersionSummary {
    VersionSummary {
        name: v.name.clone(),
        version: v.version.clone(),
        digest: v.digest.clone(),
        description: description_of(v),
        created_at: v.created_at,
        deprecated_at: v.deprecated_at,
    }
}

/// List the app's agents.
#[utoipa::path(get, path = "/agents", tag = "agents", summary = "List agents",
    security(("bearer" = ["agents:read"])), params(PageQuery),
    responses((status = 200, body = Listed<Agent>)))]
async fn list_agents(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<Agent>>> {
    let (_org, app_id) = caller.app("agents:read")?;
    let page = q.page()?;
    let agents = state.store.list_agents(&app_id, &page).await?;
    Ok(Json(list(agents, &page, |a| {
        (a.created_at, a.name.clone())
    })))
}

/// The highest semver version of an agent, if it has any.
pub async fn latest_version(
    state: &AppState,
    app_id: &str,
    name: &str,
) -> ApiResult<Option<AgentVersion>> {
    let key = (app_id.to_owned(), name.to_owned());
    if let Some(v) = state.latest_versions.get(&key) {
        return Ok(Some(v));
    }
    let latest = latest_uncached(state, app_id, name).await?;
    if let Some(v) = &latest {
        state.latest_versions.insert(key, v.clone());
    }
    Ok(latest)
}

async fn latest_uncached(
    state: &AppState,
    app_id: &str,
    name: &str,
) -> ApiResult<Option<AgentVersion>> {
    Ok(state.store.latest_agent_version(app_id, name).await?)
}

/// Get an agent with its latest version.
#[utoipa::path(get, path = "/agents/{scope}/{name}", tag = "agents", summary = "Get an agent",
    security(("bearer" = ["agents:read"])),
    params(AgentPath),
    responses((status = 200, body = AgentView), (status = 404, response = Problem)))]
async fn get_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<AgentView>> {
    let (_org, app_id) = caller.app("agents:read")?;
    let full_name = agent_name(&scope, &name);
    let agent = state
        .store
        .get_agent(&app_id, &full_name)
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))?;
    let latest = latest_version(&state, &app_id, &full_name).await?;
    Ok(Json(AgentView {
        name: agent.name,
        created_at: agent.created_at,
        latest_version: latest.as_ref().map(|v| v.version.clone()),
        description: latest.as_ref().and_then(description_of),
    }))
}

/// Every version of an agent (one page).
#[utoipa::path(get, path = "/agents/{scope}/{name}/versions", tag = "agents", summary = "List versions",
    security(("bearer" = ["agents:read"])),
    params(AgentPath),
    responses((status = 200, body = Listed<VersionSummary>), (status = 404, response = Problem)))]
async fn list_versions(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<Listed<VersionSummary>>> {
    let (_org, app_id) = caller.app("agents:read")?;
    let full_name = agent_name(&scope, &name);
    state
        .store
        .get_agent(&app_id, &full_name)
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))?;
    let versions = state.store.list_agent_versions(&app_id, &full_name).await?;
    let data = versions.iter().map(version_summary).collect();
    Ok(Json(Listed {
        data,
        next_cursor: None,
    }))
}

/// Get a version with its manifest.
#[utoipa::path(get, path = "/agents/{scope}/{name}/versions/{version}", tag = "agents", summary = "Get a version",
    security(("bearer" = ["agents:read"])),
    params(AgentPath,
        ("version" = String, Path, description = "Semver version")),
    responses((status = 200, body = VersionDetail), (status = 404, response = Problem)))]
async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, name, version)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<VersionDetail>> {
    let (_org, app_id) = caller.app("agents:read")?;
    let v = state
        .store
        .get_agent_version(&app_id, &agent_name(&scope, &name), &version)
        .await?
        .ok_or_else(|| ApiError::not_found("agent version"))?;
    Ok(Json(VersionDetail {
        summary: version_summary(&v),
        manifest: v.manifest,
    }))
}

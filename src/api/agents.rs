//! Agents and their immutable versions: upload (gzip, zip, or a JSON files map), list,
//! get. A package that does not validate is refused with 422 naming the file and why.

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery};
use super::json::{is_json, parse_json, read_body};
use super::page::{list, PageQuery};
use super::{audit, AppState};
use crate::ids::now_ms;
use crate::package::{AgentPackage, PackageError, PackageLimits};
use crate::store::{AgentVersion, PutVersion};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agents", get(list_agents))
        .route("/agents/{scope}/{name}", get(get_agent))
        .route("/agents/{scope}/{name}/versions", get(list_versions))
        .route(
            "/agents/{scope}/{name}/versions/{version}",
            put(upload).get(get_version),
        )
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonUpload {
    manifest: Value,
    files: BTreeMap<String, String>,
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
    })
}

async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, name, version)): ApiPath<(String, String, String)>,
    request: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
    let status = match state.store.put_agent_version(&record).await? {
        PutVersion::Created => StatusCode::CREATED,
        PutVersion::Unchanged => StatusCode::OK,
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

fn version_summary(v: &AgentVersion) -> Value {
    json!({
        "name": v.name,
        "version": v.version,
        "digest": v.digest,
        "description": description_of(v),
        "created_at": v.created_at,
    })
}

async fn list_agents(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    let (_org, app_id) = caller.app("agents:read")?;
    let page = q.page()?;
    let agents = state.store.list_agents(&app_id, &page).await?;
    Ok(Json(list(&agents, &page, |a| {
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

async fn get_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (_org, app_id) = caller.app("agents:read")?;
    let full_name = agent_name(&scope, &name);
    let agent = state
        .store
        .get_agent(&app_id, &full_name)
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))?;
    let latest = latest_version(&state, &app_id, &full_name).await?;
    Ok(Json(json!({
        "name": agent.name,
        "created_at": agent.created_at,
        "latest_version": latest.as_ref().map(|v| v.version.clone()),
        "description": latest.as_ref().and_then(description_of),
    })))
}

async fn list_versions(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (_org, app_id) = caller.app("agents:read")?;
    let full_name = agent_name(&scope, &name);
    state
        .store
        .get_agent(&app_id, &full_name)
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))?;
    let versions = state.store.list_agent_versions(&app_id, &full_name).await?;
    let data: Vec<Value> = versions.iter().map(version_summary).collect();
    Ok(Json(json!({ "data": data, "next_cursor": null })))
}

async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, name, version)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let (_org, app_id) = caller.app("agents:read")?;
    let v = state
        .store
        .get_agent_version(&app_id, &agent_name(&scope, &name), &version)
        .await?
        .ok_or_else(|| ApiError::not_found("agent version"))?;
    let mut out = version_summary(&v);
    out["manifest"] = v.manifest.clone();
    Ok(Json(out))
}

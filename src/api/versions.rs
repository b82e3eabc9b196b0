//! A version's life after upload: deprecated (and back), or deleted while no run that
//! has not ended uses it. Either way `latest` moves back to the highest version left.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::agents::AgentPath;
use super::agents::{agent_name, version_summary, VersionSummary};
use super::auth::Caller;
use super::doc::Problem;
use super::error::{ApiError, ApiResult};
use super::extract::ApiPath;
use super::json::ApiJson;
use super::{audit, AppState};
use crate::hooks::trigger::TriggerConfig;
use crate::ids::now_ms;
use crate::store::{DeleteVersion, Page};

/// 404 before anything is recorded for a version that is not there.
async fn exists(state: &AppState, app_id: &str, agent: &str, version: &str) -> ApiResult<()> {
    super::extract::check_text("version", version)?;
    state
        .store
        .get_agent_version(app_id, agent, version)
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("agent version"))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "deprecated": true }))]
pub(super) struct VersionUpdate {
    /// Deprecated versions are skipped by `latest`; runs may still pin them.
    deprecated: bool,
}

/// Deprecate a version (or undeprecate it): `latest` moves to the highest version that
/// is not deprecated. Runs that pin it keep working.
#[utoipa::path(patch, path = "/agents/{scope}/{name}/versions/{version}", tag = "agents",
    operation_id = "update_version", summary = "Deprecate or undeprecate a version",
    security(("bearer" = ["agents:write"])),
    params(AgentPath,
        ("version" = String, Path, description = "Semver version")),
    request_body = VersionUpdate,
    responses((status = 200, body = VersionSummary), (status = 404, response = Problem)))]
pub(super) async fn update_version(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, name, version)): ApiPath<(String, String, String)>,
    ApiJson(body): ApiJson<VersionUpdate>,
) -> ApiResult<Json<VersionSummary>> {
    let (_org, app_id) = caller.app("agents:write")?;
    caller.require_not_impersonating("agent versions")?;
    let agent = agent_name(&scope, &name);
    exists(&state, &app_id, &agent, &version).await?;
    let target = format!("{agent}@{version}");
    let action = if body.deprecated {
        "agent_version.deprecate"
    } else {
        "agent_version.undeprecate"
    };
    let at = body.deprecated.then(now_ms);
    if !state
        .store
        .set_agent_version_deprecated(&app_id, &agent, &version, at)
        .await?
    {
        return Err(ApiError::not_found("agent version"));
    }
    audit::record(&state, &caller, Some(&app_id), action, &target, json!({})).await?;
    state
        .latest_versions
        .invalidate(&(app_id.clone(), agent.clone()));
    let stored = state
        .store
        .get_agent_version(&app_id, &agent, &version)
        .await?
        .ok_or_else(|| ApiError::not_found("agent version"))?;
    Ok(Json(version_summary(&stored)))
}

/// Delete a version that no run that has not ended uses (queued, running or waiting:
/// a waiting durable run replays the same version) and no trigger pins. Its number is
/// never given to other content again.
#[utoipa::path(delete, path = "/agents/{scope}/{name}/versions/{version}", tag = "agents",
    operation_id = "delete_version", summary = "Delete a version no run or trigger uses",
    security(("bearer" = ["agents:write"])),
    params(AgentPath,
        ("version" = String, Path, description = "Semver version", example = "1.0.0")),
    responses((status = 204, description = "Deleted"), (status = 404, response = Problem),
        (status = 409, response = Problem)))]
pub(super) async fn delete_version(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, name, version)): ApiPath<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let (_org, app_id) = caller.app("agents:write")?;
    caller.require_not_impersonating("agent versions")?;
    let agent = agent_name(&scope, &name);
    exists(&state, &app_id, &agent, &version).await?;
    // An agent has at most 50 triggers (`triggers::MAX_TRIGGERS_PER_AGENT`): one page.
    let triggers = state
        .store
        .list_triggers(
            &app_id,
            &agent,
            &Page {
                limit: 200,
                after: None,
            },
        )
        .await?;
    // A trigger whose config does not read is taken to pin it: never delete under one.
    let pinned_by = triggers
        .iter()
        .find(|t| TriggerConfig::of(t).map_or(true, |c| c.version() == Some(version.as_str())));
    if let Some(trigger) = pinned_by {
        return Err(ApiError::Conflict(format!(
            "trigger {} runs this version; delete the trigger (or make one for another \
             version) first",
            trigger.id
        )));
    }
    let target = format!("{agent}@{version}");
    match state
        .store
        .delete_agent_version(&app_id, &agent, &version, now_ms())
        .await?
    {
        DeleteVersion::Deleted => {
            state.latest_versions.invalidate(&(app_id.clone(), agent));
            audit::record(
                &state,
                &caller,
                Some(&app_id),
                "agent_version.delete",
                &target,
                json!({}),
            )
            .await?;
            Ok(StatusCode::NO_CONTENT)
        }
        DeleteVersion::NotFound => Err(ApiError::not_found("agent version")),
        DeleteVersion::InUse => Err(ApiError::Conflict(
            "a run that has not ended uses this version; wait for it to end (or cancel it), \
             or deprecate the version instead"
                .into(),
        )),
    }
}

//! What a trigger is configured with, and firing one.
//!
//! A firing is identified by a key (the sender's delivery id, or the cron's scheduled
//! time); the store keeps one row per (trigger, key) written with the run, so a firing
//! starts at most one run however many nodes or repeats race for it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::signature::Verify;
use crate::ids::now_ms;
use crate::quota::Decision;
use crate::runs::{NewRun, RunError, RunService};
use crate::store::{AuditEvent, Firing, RunRow, StoreError, TriggerKind, TriggerRow};

/// A trigger's settings, as created and as stored (`config`), tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TriggerConfig {
    Webhook(WebhookTrigger),
    Cron(CronTrigger),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookTrigger {
    pub verify: Verify,
    /// A JSON Pointer (RFC 6901) to the part of the body that is the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_pointer: Option<String>,
    /// The agent version to run (default: the latest when the request comes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The verification secret, when the sender chose it (Stripe does); else one is
    /// made. Never stored in the config: it is sealed apart.
    #[serde(default, skip_serializing)]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CronTrigger {
    /// A 5-field cron expression, e.g. `*/5 * * * *`.
    pub schedule: String,
    /// An IANA time zone (default UTC); DST is handled.
    #[serde(default = "utc")]
    pub timezone: String,
    /// The input of every run it starts (checked against the agent's input schema).
    #[serde(default)]
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

fn utc() -> String {
    "UTC".into()
}

impl TriggerConfig {
    pub fn kind(&self) -> TriggerKind {
        match self {
            TriggerConfig::Webhook(_) => TriggerKind::Webhook,
            TriggerConfig::Cron(_) => TriggerKind::Cron,
        }
    }

    pub fn version(&self) -> Option<&str> {
        match self {
            TriggerConfig::Webhook(w) => w.version.as_deref(),
            TriggerConfig::Cron(c) => c.version.as_deref(),
        }
    }

    /// The config of a stored trigger.
    pub fn of(row: &TriggerRow) -> Result<TriggerConfig, StoreError> {
        serde_json::from_value(row.config.clone())
            .map_err(|e| StoreError::Corrupt(format!("trigger {} config: {e}", row.id)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FireError {
    #[error("the agent has no version {0}")]
    NoVersion(String),
    #[error(transparent)]
    Run(#[from] RunError),
}

impl From<StoreError> for FireError {
    fn from(e: StoreError) -> Self {
        FireError::Run(RunError::Store(e))
    }
}

/// Starts the trigger's agent with `input`, once for `key`: a key that already fired
/// returns the run it started. Admission (quotas, input schema) applies as for an API call.
pub async fn fire(
    runs: &RunService,
    trigger: &TriggerRow,
    version: Option<&str>,
    key: String,
    input: Value,
) -> Result<(RunRow, Decision), FireError> {
    let store = runs.store();
    let found = match version {
        Some(v) => {
            store
                .get_agent_version(&trigger.app_id, &trigger.agent, v)
                .await?
        }
        None => {
            store
                .latest_agent_version(&trigger.app_id, &trigger.agent)
                .await?
        }
    };
    let version =
        found.ok_or_else(|| FireError::NoVersion(version.unwrap_or("(any)").to_owned()))?;
    let source = format!("{}:{}", trigger.kind.as_str(), trigger.id);
    let audit = AuditEvent::by_system(
        &trigger.org_id,
        &trigger.app_id,
        "run.create",
        "",
        json!({ "agent": trigger.agent, "version": version.version, "trigger": source }),
        now_ms(),
    );
    Ok(runs
        .create(NewRun {
            org_id: trigger.org_id.clone(),
            app_id: trigger.app_id.clone(),
            version,
            input,
            end_user: None,
            metadata: None,
            trigger: source,
            audit: Some(audit),
            firing: Some(Firing {
                trigger_id: trigger.id.clone(),
                key,
            }),
        })
        .await?)
}

/// The additional authenticated data a trigger's secret is sealed with.
pub fn trigger_secret_aad(trigger_id: &str) -> String {
    format!("trigger:{trigger_id}")
}

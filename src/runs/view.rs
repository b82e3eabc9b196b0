//! A run as the API and webhook payloads show it.

use serde::Serialize;
use serde_json::Value;

use crate::store::{RunRow, RunStatus};

/// A run as the API shows it: the record without the node's lease.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "id": "run_01hx", "org_id": "org_01hx", "app_id": "app_01hx", "agent": "@acme/hello",
    "version": "1.0.0", "end_user": null, "trigger": "api", "status": "succeeded",
    "input": { "name": "Ada" }, "output": { "greeting": "hello Ada" }, "error": null,
    "metadata": null, "usage": { "cpu_ms": 1.2, "wall_ms": 4, "heap_peak_bytes": 1048576,
        "llm_tokens_in": 0, "llm_tokens_out": 0, "fetches": 0 },
    "attempt": 1, "created_at": 1764892800000_i64, "started_at": 1764892800002_i64,
    "finished_at": 1764892800006_i64
}))]
pub struct RunView {
    pub id: String,
    pub org_id: String,
    pub app_id: String,
    pub agent: String,
    pub version: String,
    pub end_user: Option<String>,
    pub trigger: String,
    pub status: RunStatus,
    pub input: Value,
    pub output: Option<Value>,
    #[schema(value_type = Option<crate::sandbox::RunError>)]
    pub error: Option<Value>,
    pub metadata: Option<Value>,
    #[schema(value_type = Option<crate::sandbox::Usage>)]
    pub usage: Option<Value>,
    pub attempt: i32,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// What a `waiting` run waits for (`GET /v1/runs/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitView>,
    /// Entries in its journal (`GET /v1/runs/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_length: Option<i64>,
}

/// A parked run's wait: the signal's name (`ctx.waitFor`), and when it wakes up anyway
/// (a sleep's end, or the wait's timeout).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WaitView {
    pub signal: Option<String>,
    pub wake_at: Option<i64>,
}

impl From<RunRow> for RunView {
    fn from(r: RunRow) -> Self {
        RunView {
            id: r.id,
            org_id: r.org_id,
            app_id: r.app_id,
            agent: r.agent,
            version: r.version,
            end_user: r.end_user,
            trigger: r.trigger,
            status: r.status,
            input: r.input,
            output: r.output,
            error: r.error,
            metadata: r.metadata,
            usage: r.usage,
            attempt: r.attempt,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            wait: None,
            journal_length: None,
        }
    }
}

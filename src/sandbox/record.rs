//! What a run produces: its status, output, error and usage, plus the events it emits.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::status::RunStatus;

/// Why a run did not succeed. The string forms are part of the product contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The agent threw, or its promise rejected.
    AgentError,
    /// The input did not match the manifest's `input` schema.
    InputInvalid,
    /// The output did not match `output`, or was not JSON-serialisable.
    OutputInvalid,
    /// Output or state over the size limit.
    OutputTooLarge,
    /// The package did not load (bad import, syntax error, missing entry...).
    PackageInvalid,
    CpuLimit,
    MemoryLimit,
    /// Wall clock exceeded; the run's status is `timed_out`.
    Timeout,
    FetchLimit,
    Cancelled,
    /// The sandbox itself failed; never the agent's fault.
    Internal,
    /// What hosted the run died or was given up on (a worker thread another run
    /// blocked); not this run's fault, and safe to retry.
    SandboxCrashed,
    /// A resumed run asked for another host call than its journal holds there.
    ReplayMismatch,
    /// The run's journal outgrew its limit.
    JournalTooLarge,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AgentError => "agent_error",
            ErrorCode::InputInvalid => "input_invalid",
            ErrorCode::OutputInvalid => "output_invalid",
            ErrorCode::OutputTooLarge => "output_too_large",
            ErrorCode::PackageInvalid => "package_invalid",
            ErrorCode::CpuLimit => "cpu_limit",
            ErrorCode::MemoryLimit => "memory_limit",
            ErrorCode::Timeout => "timeout",
            ErrorCode::FetchLimit => "fetch_limit",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::Internal => "internal",
            ErrorCode::SandboxCrashed => "sandbox_crashed",
            ErrorCode::ReplayMismatch => "replay_mismatch",
            ErrorCode::JournalTooLarge => "journal_too_large",
        }
    }

    /// The status a run ends in when it fails with this code.
    pub fn status(self) -> RunStatus {
        match self {
            ErrorCode::Timeout => RunStatus::TimedOut,
            ErrorCode::Cancelled => RunStatus::Cancelled,
            _ => RunStatus::Failed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({ "code": "timeout", "message": "the run exceeded its 60000 ms wall-clock limit" }))]
pub struct RunError {
    /// Why the run ended (`timeout`, `cpu_limit`, `memory_limit`, `agent_error`,
    /// `sandbox_crashed`, `node_lost`, ...; docs/sandbox-api.md lists them all).
    #[schema(value_type = String)]
    pub code: ErrorCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

impl RunError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RunError {
            code,
            message: message.into(),
            stack: None,
        }
    }
}

/// Resources a run consumed (SPEC §5 run record `usage`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    pub cpu_ms: f64,
    pub wall_ms: f64,
    pub heap_peak_bytes: u64,
    pub llm_tokens_in: u64,
    pub llm_tokens_out: u64,
    pub fetches: u32,
}

/// The result of one run, as the sandbox hands it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub output: Option<Value>,
    pub error: Option<RunError>,
    /// The state the agent set with `ctx.setState`, if it succeeded and set one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<Value>,
    pub usage: Usage,
}

impl RunOutcome {
    pub fn failed(error: RunError, usage: Usage) -> Self {
        RunOutcome {
            status: error.code.status(),
            output: None,
            error: Some(error),
            state: None,
            usage,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.status == RunStatus::Succeeded
    }

    pub fn error_code(&self) -> Option<ErrorCode> {
        self.error.as_ref().map(|e| e.code)
    }
}

/// The kinds of run events (SPEC §5 "SSE events").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "status")]
    Status,
    #[serde(rename = "log")]
    Log,
    #[serde(rename = "emit")]
    Emit,
    #[serde(rename = "llm.delta")]
    LlmDelta,
    #[serde(rename = "tool.call")]
    ToolCall,
    #[serde(rename = "tool.result")]
    ToolResult,
    #[serde(rename = "fetch")]
    Fetch,
    #[serde(rename = "output")]
    Output,
    #[serde(rename = "error")]
    Error,
    #[serde(rename = "log_truncated")]
    LogTruncated,
    #[serde(rename = "end")]
    End,
    /// The run parked on a sleep or a signal (its isolate ended).
    #[serde(rename = "waiting")]
    Waiting,
    /// A parked run started again (it replays its journal, then goes on live).
    #[serde(rename = "resumed")]
    Resumed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Status => "status",
            EventKind::Log => "log",
            EventKind::Emit => "emit",
            EventKind::LlmDelta => "llm.delta",
            EventKind::ToolCall => "tool.call",
            EventKind::ToolResult => "tool.result",
            EventKind::Fetch => "fetch",
            EventKind::Output => "output",
            EventKind::Error => "error",
            EventKind::LogTruncated => "log_truncated",
            EventKind::End => "end",
            EventKind::Waiting => "waiting",
            EventKind::Resumed => "resumed",
        }
    }
}

/// One event of a run; `seq` increases strictly within a run, starting at 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    pub run_id: String,
    pub seq: u64,
    pub kind: EventKind,
    pub data: Value,
}

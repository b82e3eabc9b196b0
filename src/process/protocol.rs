//! The wire between the server and a sandbox process: one Unix socket, frames of a
//! 4-byte big-endian length and a `postcard` body. JSON values travel as JSON text
//! ([`Json`]) because postcard, being schema-driven, cannot carry self-describing data.
//!
//! Everything the child sends is untrusted: the server decodes it into these types,
//! bounded by [`MAX_FRAME_BYTES`], and checks each request against the run's grant.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::codec::LengthDelimitedCodec;

use crate::host::Tenant;
use crate::package::MemoryScope;
use crate::sandbox::{EventKind, PoolConfig, RunGrant};

use super::lockdown::LockdownReport;

/// Largest frame either side accepts: a 10 MiB response body or a 5 MiB package with
/// room to spare.
pub const MAX_FRAME_BYTES: usize = 32 * 1024 * 1024;

/// The framing both sides use.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

pub fn encode<T: Serialize>(message: &T) -> Result<Bytes, postcard::Error> {
    postcard::to_allocvec(message).map(Bytes::from)
}

pub fn decode<'a, T: Deserialize<'a>>(frame: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(frame)
}

/// A JSON value as its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Json(pub String);

impl Json {
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Json {
        Json(serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned()))
    }

    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    pub fn value(&self) -> Value {
        self.parse().unwrap_or(Value::Null)
    }
}

/// Server → child.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    /// The first frame: how to size the pool, and the startup snapshot the server made
    /// (so children do not each spend ~270 ms making their own).
    Hello {
        pool: PoolConfig,
        #[serde(with = "serde_bytes")]
        snapshot: Vec<u8>,
    },
    Run(Box<RunSpec>),
    /// The answer to [`ToServer::NeedPackage`].
    Package(Box<PackageSpec>),
    Cancel {
        run: String,
    },
    Reply {
        call: u64,
        answer: Answer,
        /// The host went over the run's memory budget serving the call.
        over_budget: bool,
        /// When it was answered (journaled with it): the run's clock moves to it.
        at: i64,
    },
    /// A token delta of an LLM call still in flight.
    Delta {
        call: u64,
        text: String,
    },
    /// Take no more runs; exit once the ones in flight are done.
    Drain,
    /// Parse and link a package's modules (an upload), without running them.
    Check {
        check: u64,
        manifest: Json,
        files: Vec<(String, String)>,
    },
}

/// A run as the child needs it: no services, no secrets; the package by digest.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunSpec {
    pub run_id: String,
    pub digest: String,
    pub tenant: Tenant,
    pub input: Json,
    pub state: Option<Json>,
    pub grant: RunGrant,
    pub trigger: String,
    pub attempt: u32,
    /// A journaled run's seed and start (its replayable randomness and clock).
    pub clock: Option<([u8; 32], i64)>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PackageSpec {
    pub digest: String,
    /// The manifest, as [`crate::package::Manifest`] serialises.
    pub manifest: Json,
    pub files: Vec<(String, String)>,
}

/// Child → server.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToServer {
    /// Sent once the lockdown is in place, before any JS runs.
    Ready {
        lockdown: LockdownReport,
    },
    /// The child does not hold this run's package yet.
    NeedPackage {
        run: String,
    },
    Event {
        run: String,
        kind: EventKind,
        data: Json,
    },
    Call {
        call: u64,
        run: String,
        request: HostRequest,
    },
    Outcome {
        run: String,
        outcome: Json,
    },
    Stats(ChildStats),
    Log {
        level: u8,
        line: String,
    },
    /// The run cleared the JS timer it asked for in `call`.
    ClearTimer {
        run: String,
        call: u64,
    },
    /// How a `Check` went: the first module that does not parse or link, if any.
    Checked {
        check: u64,
        /// The first module that fails, or why the check could not run.
        answer: Result<Option<String>, String>,
    },
}

/// What the child's pool reports about itself, every few hundred milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ChildStats {
    pub threads_alive: u32,
    pub isolates_created: u64,
    pub isolates_alive: u32,
    pub runs_completed: u64,
    pub threads_abandoned: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemoryAction {
    Get,
    Set,
    Delete,
    List,
}

/// A host call. The tenant is not in it: the server knows whose run it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HostRequest {
    Memory {
        action: MemoryAction,
        scope: MemoryScope,
        key: String,
        value: Option<Json>,
        limit: u32,
    },
    Tool {
        name: String,
        args: Json,
    },
    Llm {
        request: Json,
    },
    Fetch {
        connection: Option<String>,
        method: String,
        url: String,
        headers: Vec<(String, String)>,
        #[serde(with = "serde_bytes")]
        body: Option<Vec<u8>>,
        /// The fetch standard's `redirect` option.
        redirect: crate::broker::Redirect,
    },
    /// `ctx.sleep` / `ctx.waitFor` (a [`crate::host::WaitRequest`]).
    Wait {
        request: Json,
    },
    /// A JS timer (`setTimeout`, one tick of `setInterval`) of a journaled run: answered
    /// when it is due, so its firing is journaled and ordered like any answer. `at` is
    /// the run's clock when it was set: a timer asked again on resume is due at
    /// `at + ms`, not `ms` later.
    Timer {
        ms: u64,
        at: i64,
    },
}

impl HostRequest {
    /// What kind of call this is, for spans and logs (no arguments: they may be secret).
    pub fn kind(&self) -> &'static str {
        match self {
            HostRequest::Memory { action, .. } => match action {
                MemoryAction::Get => "memory.get",
                MemoryAction::Set => "memory.set",
                MemoryAction::Delete => "memory.delete",
                MemoryAction::List => "memory.list",
            },
            HostRequest::Tool { .. } => "tool",
            HostRequest::Llm { .. } => "llm",
            HostRequest::Fetch { .. } => "fetch",
            HostRequest::Wait { .. } => "wait",
            HostRequest::Timer { .. } => "timer",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Answer {
    Value(Json),
    Refused { code: String, message: String },
    Fetched(Box<Fetched>),
    FetchFailed(FetchFailure),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fetched {
    pub status: u16,
    pub status_text: String,
    pub headers: Vec<(String, String)>,
    pub url: String,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    pub redirected: bool,
}

/// A failed fetch, keeping the two kinds the sandbox treats specially.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FetchFailure {
    TooLarge { limit: u64 },
    OverBudget { limit_mb: u64 },
    Other { code: String, message: String },
}

/// Whether a child may publish an event of this kind: its terminal events (`output`,
/// `error`, `end`, a final `status`) are the server's to write, from the outcome, so a
/// child can neither forge an ending nor write one twice.
pub fn relayed(kind: EventKind, data: &Value) -> bool {
    match kind {
        EventKind::Output | EventKind::Error | EventKind::End => false,
        EventKind::Status => data.get("status").and_then(Value::as_str) == Some("running"),
        _ => true,
    }
}

//! What the sandbox asks of the rest of atoll, as small traits.
//!
//! Ops never reach a database, a provider or the network directly: they call these
//! traits with the run's tenant, after checking its grant. The control plane plugs in
//! PostgreSQL/Redis/provider-backed implementations; [`memory`] has the in-process ones
//! used by `atoll exec` and the tests.

pub mod memory;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::broker::{FetchError, FetchLimits, FetchRequest, FetchResponse};
use crate::package::MemoryScope;
use crate::sandbox::record::RunEvent;

/// Who a run acts for. Every host call carries it, so every implementation can scope
/// what it touches to one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tenant {
    pub org_id: String,
    pub app_id: String,
    /// The app's `external_id` of the end-user the run acts for, if any.
    pub end_user: Option<String>,
}

/// A failure of a host service, as the agent sees it: a code and a message that never
/// carries secrets or internals.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct HostError {
    pub code: &'static str,
    pub message: String,
}

impl HostError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        HostError {
            code,
            message: message.into(),
        }
    }

    /// The answer of a capability that this deployment does not provide.
    pub fn unavailable(what: &str) -> Self {
        HostError::new(
            "capability_unavailable",
            format!("{what} is not configured on this atoll host"),
        )
    }
}

/// Where a memory key lives: one namespace per (tenant, scope).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemoryNamespace {
    pub org_id: String,
    pub app_id: String,
    pub scope: MemoryScope,
    /// Set for `end_user` scope only.
    pub end_user: Option<String>,
}

#[async_trait]
pub trait MemoryStore: Send + Sync {
    async fn get(&self, ns: &MemoryNamespace, key: &str) -> Result<Option<Value>, HostError>;
    async fn set(&self, ns: &MemoryNamespace, key: &str, value: Value) -> Result<(), HostError>;
    async fn delete(&self, ns: &MemoryNamespace, key: &str) -> Result<bool, HostError>;
    /// Keys in `ns` starting with `prefix`, in order, at most `limit`.
    async fn list(
        &self,
        ns: &MemoryNamespace,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, HostError>;
}

/// The state a run starts from and leaves for the next run of the same agent and
/// end-user.
#[async_trait]
pub trait StateStore: Send + Sync {
    async fn load(&self, tenant: &Tenant, agent: &str) -> Result<Option<Value>, HostError>;
    async fn save(&self, tenant: &Tenant, agent: &str, state: Value) -> Result<(), HostError>;
}

#[async_trait]
pub trait ToolInvoker: Send + Sync {
    /// Calls the app's tool `name`; the invoker validates `args` and the result against
    /// the tool's schemas.
    async fn call(&self, tenant: &Tenant, name: &str, args: Value) -> Result<Value, HostError>;
}

/// A chat request as the agent wrote it (`ctx.llm.chat`), after the grant check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatRequest {
    /// `provider/model`.
    pub model: String,
    pub messages: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    /// Cap on the answer's tokens; providers that require one (Anthropic) get a default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChatUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatResponse {
    pub message: Value,
    #[serde(default)]
    pub tool_calls: Vec<Value>,
    #[serde(default)]
    pub usage: ChatUsage,
}

/// Receives streamed token deltas while a chat is in flight.
pub type DeltaSink = Arc<dyn Fn(&str) + Send + Sync>;

#[async_trait]
pub trait LlmClient: Send + Sync {
    async fn chat(
        &self,
        tenant: &Tenant,
        request: ChatRequest,
        deltas: DeltaSink,
    ) -> Result<ChatResponse, HostError>;
}

/// `ctx.sleep(ms)` (no `name`) or `ctx.waitFor(name, { timeout_ms, schema })`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The sleep's length, or the wait's timeout (0: none).
    #[serde(default)]
    pub ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
}

impl WaitRequest {
    /// Longest signal name, as the API takes it.
    pub const MAX_NAME_BYTES: usize = 128;
    /// Longest sleep or wait timeout: a year.
    pub const MAX_MS: u64 = 365 * 24 * 3_600_000;
    /// Largest schema, as JSON.
    pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;

    /// What a wait may ask, checked in the sandbox and again on the server (which trusts
    /// no sandbox process).
    pub fn check(&self) -> Result<(), HostError> {
        let bad = |why: String| Err(HostError::new("bad_request", why));
        if let Some(name) = &self.name {
            if name.is_empty()
                || name.len() > Self::MAX_NAME_BYTES
                || name.chars().any(char::is_control)
            {
                return bad(format!(
                    "a signal name is 1 to {} printable bytes",
                    Self::MAX_NAME_BYTES
                ));
            }
        }
        if self.ms > Self::MAX_MS {
            return bad("a wait is at most a year".into());
        }
        if self
            .schema
            .as_ref()
            .is_some_and(|s| s.to_string().len() > Self::MAX_SCHEMA_BYTES)
        {
            return bad(format!(
                "a wait's schema is at most {} KiB",
                Self::MAX_SCHEMA_BYTES >> 10
            ));
        }
        Ok(())
    }
}

/// Sleeps and signal waits. On a server they park the run (its isolate ends and it
/// resumes by replay); elsewhere a sleep sleeps and a signal cannot arrive.
#[async_trait]
pub trait Waiter: Send + Sync {
    /// The signal's payload, or null after a sleep.
    async fn wait(&self, tenant: &Tenant, request: WaitRequest) -> Result<Value, HostError>;

    /// A JS timer (the run's `id` for it) of a journaled run: answers when it is due,
    /// or with the code `cleared` once [`Waiter::clear_timer`] cleared it.
    async fn timer(&self, _id: u32, ms: u64) -> Result<(), HostError> {
        tokio::time::sleep(std::time::Duration::from_millis(
            ms.min(WaitRequest::MAX_MS),
        ))
        .await;
        Ok(())
    }

    /// Clears a timer set by [`Waiter::timer`].
    fn clear_timer(&self, _id: u32) {}
}

/// A journaled host call: what was asked at a position and the answer given, encoded
/// by the sandbox protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalRecord {
    pub op: String,
    pub digest: String,
    pub answer: Vec<u8>,
    /// When it was answered (the run's clock moves to it).
    pub at: i64,
}

/// What a live wait comes to.
#[derive(Debug, Clone)]
pub enum WaitDecision {
    /// Answered now: a signal's payload (null after a sleep), or a refusal such as
    /// `wait_timeout`. It is journaled like any answer.
    Resolved(Result<Value, HostError>),
    /// The run parks: its isolate is ended, and it resumes by replay.
    Suspend,
}

/// The journal of one run, kept by the server: a sandbox process's host calls are
/// answered from it while a resumed run replays, and recorded in it, before the isolate
/// sees them, once it is live.
#[async_trait]
pub trait RunJournal: Send + Sync {
    /// What position `seq` holds, while the replay has not passed the journal's end.
    fn recorded(&self, seq: u64) -> Option<JournalRecord>;
    /// Waits until the replayed answer at `seq` may be given: after every answer that came
    /// before it in the journaled run (concurrent calls complete in their journaled order).
    async fn turn(&self, seq: u64) -> Result<(), HostError>;
    /// Records the live answer at `seq`; an error fails the run with its code.
    async fn record(&self, seq: u64, record: JournalRecord) -> Result<(), HostError>;
    /// Waits until every answer the journal held when this execution started was given
    /// (a replay that never asks for one of them fails, as [`RunJournal::turn`] does).
    async fn replayed(&self) -> Result<(), HostError>;
    /// Replaces the answer recorded at `seq` (a JS timer the run cleared as it fired:
    /// the run ignored the firing, and so must its replay).
    async fn replace(&self, seq: u64, answer: Vec<u8>);
    /// A live `ctx.sleep` / `ctx.waitFor` at `seq`.
    async fn wait(&self, seq: u64, request: &WaitRequest) -> WaitDecision;
    /// The replay asked `asked` at `seq`, where the journal holds something else: the
    /// run fails with `replay_mismatch`.
    fn mismatch(&self, seq: u64, journaled: &str, asked: &str);
    /// Set once the run stops taking host calls (it parks, or it is failing).
    fn halted(&self) -> Option<HostError>;
    /// Whether a resumed run is still replaying, having asked `asked` calls so far: its
    /// events (logs, emits) were sent by an earlier execution already.
    fn replaying(&self, asked: u64) -> bool;
}

/// Says whether a host (of the first URL or a redirect hop) may be fetched.
pub type HostCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Outbound HTTP for `fetch`. The op has already checked the manifest's host grant;
/// `allow_host` re-checks every redirect hop.
#[async_trait]
pub trait Fetcher: Send + Sync {
    async fn fetch(
        &self,
        tenant: &Tenant,
        connection: Option<&str>,
        request: FetchRequest,
        limits: &FetchLimits,
        allow_host: HostCheck,
    ) -> Result<FetchResponse, FetchError>;
}

/// Receives every event of every run, in order per run. Must not block: implementations
/// hand events to a channel or buffer.
pub trait EventSink: Send + Sync {
    fn publish(&self, event: RunEvent);
}

/// The time and randomness a journaled run sees, both decided by the server so that a
/// replay sees them again: the clock starts at the run's journaled start and moves only
/// to the time each host call was answered (recorded with the answer); random bytes come
/// from a ChaCha20 stream seeded by the run's journaled seed. Between two host calls the
/// clock stands still, as in Cloudflare Workers.
pub struct RunClock {
    seed: [u8; 32],
    start_ms: i64,
    now: std::sync::atomic::AtomicI64,
    rng: std::sync::Mutex<rand_chacha::ChaCha20Rng>,
}

impl RunClock {
    pub fn new(seed: [u8; 32], start_ms: i64) -> RunClock {
        use rand_chacha::rand_core::SeedableRng;
        RunClock {
            seed,
            start_ms,
            now: std::sync::atomic::AtomicI64::new(start_ms),
            rng: std::sync::Mutex::new(rand_chacha::ChaCha20Rng::from_seed(seed)),
        }
    }

    /// The seed and the start, for the sandbox process that runs the isolate.
    pub fn spec(&self) -> ([u8; 32], i64) {
        (self.seed, self.start_ms)
    }

    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }

    pub fn now_ms(&self) -> i64 {
        self.now.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A host call was answered at `at`.
    pub fn advance(&self, at: i64) {
        self.now.fetch_max(at, std::sync::atomic::Ordering::AcqRel);
    }

    pub fn fill(&self, buf: &mut [u8]) {
        use rand_chacha::rand_core::RngCore;
        self.rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fill_bytes(buf);
    }
}

/// The services one run may use. Cheap to clone.
#[derive(Clone)]
pub struct HostServices {
    pub memory: Arc<dyn MemoryStore>,
    pub tools: Arc<dyn ToolInvoker>,
    pub llm: Arc<dyn LlmClient>,
    pub fetcher: Arc<dyn Fetcher>,
    pub events: Arc<dyn EventSink>,
    pub waits: Arc<dyn Waiter>,
    /// Replayable time and randomness (a journaled run in a sandbox process); None: the
    /// real clock and the operating system's randomness.
    pub clock: Option<Arc<RunClock>>,
}

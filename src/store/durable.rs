//! What the store keeps for durable runs: each run's journal (the answer to every host
//! call, in order), the signals sent to it, and the wait a `waiting` run is parked on.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Millis, StoreResult};

/// One journal position: the host call asked there and the answer it got (encoded by
/// the sandbox protocol; opaque here).
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub run_id: String,
    pub seq: i64,
    /// The call's kind (`fetch`, `memory.get`, `wait`, ...).
    pub op: String,
    /// SHA-256 of the call as asked: a replay that asks something else is a mismatch.
    pub digest: String,
    /// The order the answer came in among the run's calls (concurrent calls complete out
    /// of the order they were asked).
    pub rank: i64,
    pub answer: Vec<u8>,
    pub created_at: Millis,
}

/// A journal entry without its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalIndexEntry {
    pub seq: i64,
    pub op: String,
    pub created_at: Millis,
    pub bytes: i64,
}

/// What a waiting run waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunWait {
    pub run_id: String,
    /// The journal position of the wait.
    pub seq: i64,
    /// The signal's name (`ctx.waitFor`); None for `ctx.sleep`.
    pub name: Option<String>,
    /// The JSON Schema the signal's payload must match.
    pub schema: Option<Value>,
    /// When the sleep ends or the wait times out (None: never).
    pub wake_at: Option<Millis>,
    pub created_at: Millis,
}

/// A signal sent to a run, not yet taken by a wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub id: String,
    pub run_id: String,
    pub name: String,
    pub payload: Value,
    pub created_at: Millis,
}

#[async_trait]
pub trait DurableStore: Send + Sync {
    /// Appends journal entries of the run's `attempt`; positions already stored are left
    /// as they are, and an execution whose attempt is over (it outlived its lease and the
    /// run was requeued) appends nothing.
    async fn append_journal(&self, entries: &[JournalEntry], attempt: i32) -> StoreResult<()>;
    /// Replaces the answer journaled at a position (a JS timer cleared as it fired: its
    /// firing is replayed as the clear the run acted on); like appends, only while the run
    /// is at `attempt`.
    async fn replace_journal_answer(
        &self,
        run_id: &str,
        seq: i64,
        answer: &[u8],
        attempt: i32,
    ) -> StoreResult<()>;
    /// A run's journal, in order.
    async fn journal(&self, run_id: &str) -> StoreResult<Vec<JournalEntry>>;
    /// How many entries a run's journal has.
    async fn journal_length(&self, run_id: &str) -> StoreResult<i64>;
    /// Up to `limit` calls of a run's journal after position `after`, in order, with
    /// their answers' sizes but not the answers (what `GET /v1/runs/{id}/journal` lists).
    async fn journal_index(
        &self,
        run_id: &str,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<JournalIndexEntry>>;

    /// Keeps a signal for the run (first come, first taken, per name), unless the run
    /// already holds `max_open` signals it has not taken, or their payloads and this one
    /// would pass `max_open_bytes`: false then, and nothing is kept. Checked and added
    /// under the run's row lock, so concurrent signals cannot pass the caps together.
    async fn add_signal(
        &self,
        signal: &Signal,
        max_open: i64,
        max_open_bytes: i64,
    ) -> StoreResult<bool>;
    /// Takes the oldest signal of this name for the wait at `seq`: marks it consumed by
    /// that position, once. A signal already taken by `seq` (a replay after a crash
    /// between taking and journaling) is returned again.
    async fn take_signal(&self, run_id: &str, name: &str, seq: i64) -> StoreResult<Option<Value>>;

    /// Parks a running run of this attempt: status `waiting`, no lease, the wait stored
    /// (and announced to webhooks). False if the run is not running this attempt.
    async fn suspend_run(&self, run_id: &str, attempt: i32, wait: &RunWait) -> StoreResult<bool>;
    /// The wait a run is parked on (or was, before it resumed).
    async fn run_wait(&self, run_id: &str) -> StoreResult<Option<RunWait>>;
    /// Puts a waiting run back in the queue, to resume by replay; false if it is not
    /// waiting (another node resumed it, or it was cancelled).
    async fn resume_run(&self, run_id: &str) -> StoreResult<bool>;
    /// Puts a run that was just resumed back to waiting (its slots could not be taken);
    /// false if a node claimed it meanwhile.
    async fn unresume_run(&self, run_id: &str) -> StoreResult<bool>;
    /// Signals kept for a run and not taken yet.
    async fn open_signals(&self, run_id: &str) -> StoreResult<i64>;
    /// Waiting runs whose wake-up time has come, as (run id, app id).
    async fn due_waits(&self, now: Millis, limit: u32) -> StoreResult<Vec<(String, String)>>;
    /// Runs of an app that are `waiting` now.
    async fn count_waiting(&self, app_id: &str) -> StoreResult<i64>;
    /// Moves a wait's wake-up time (a resume that could not start yet tries again then).
    async fn set_wake(&self, run_id: &str, wake_at: Millis) -> StoreResult<()>;
}

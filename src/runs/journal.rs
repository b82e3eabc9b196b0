//! One run's journal on the server (the [`RunJournal`] a sandbox process's host calls go
//! through): what the replay answers from, what live answers are recorded in, the
//! run's replayable clock and seed, and the decision a live wait comes to.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tracing::warn;

use crate::host::{HostError, JournalRecord, RunClock, RunJournal, WaitDecision, WaitRequest};
use crate::ids::now_ms;
use crate::sandbox::RunCanceller;
use crate::store::{JournalEntry, RunRow, RunWait, Store};

/// How long a replayed answer waits for the answers journaled before it to be asked.
const REPLAY_ORDER_WAIT: Duration = Duration::from_secs(5);
/// Sleeps shorter than this are slept in place, not parked.
const PARK_AFTER_MS: u64 = 1_000;

enum Halt {
    Parked(RunWait),
    Failed(HostError),
}

/// One run's journal on the server.
pub(crate) struct StoredJournal {
    run_id: String,
    /// The attempt this execution belongs to: its appends are refused once it is over.
    attempt: i32,
    store: Arc<dyn Store>,
    limit_bytes: u64,
    /// What the journal held when this execution started, by position.
    replay: std::collections::HashMap<u64, JournalEntry>,
    /// One past the highest position the journal holds (positions may have holes: a call
    /// that never got its answer recorded is asked live again).
    replay_end: u64,
    /// The wait this run was parked on when it resumed.
    parked_on: Option<RunWait>,
    /// The seed and start, until they are stored with the first answer.
    unsaved: Mutex<Vec<JournalEntry>>,
    bytes: AtomicU64,
    halt: Mutex<Option<Halt>>,
    canceller: OnceLock<RunCanceller>,
    /// The rank of the next replayed answer to give, and who waits for it.
    next_rank: AtomicU64,
    ranked: tokio::sync::Notify,
    /// The rank the next live answer gets (after every replayed one).
    live_rank: AtomicU64,
    /// One past the highest rank replayed: the replay is over once `next_rank` reaches it.
    replay_rank_end: u64,
    /// Held while entries are stored: the seed and start go with the first, never after
    /// a later one (a concurrent answer's single-statement append could commit first).
    saving: tokio::sync::Mutex<()>,
    /// The run's replayable clock and randomness, from its journaled seed and start.
    clock: Arc<RunClock>,
    /// The `ctx.state` the run started with: journaled with its seed, so a resumed run
    /// sees what its first execution saw, not what another run saved since.
    start_state: Option<Value>,
}

/// What an entry costs against the journal's limit: its answer and a fixed share for
/// the row around it (so a flood of tiny answers is bounded too).
fn entry_cost(answer_bytes: usize) -> u64 {
    answer_bytes as u64 + 256
}

/// The journal position that holds a run's seed and start (before every call's).
const CLOCK_SEQ: i64 = -1;

impl StoredJournal {
    /// `state` is the agent's state as the store holds it now: what a first execution
    /// starts with (a resumed one starts with the state its journal holds). Every answer
    /// is stored before the run sees it; the seed, start and state go first — before the
    /// run starts for a `durable` agent (it resumes after its node died), with the first
    /// answer otherwise, so a run that makes no host call and never waits writes none.
    pub async fn load(
        store: Arc<dyn Store>,
        row: &RunRow,
        durable: bool,
        limit_bytes: u64,
        state: Option<Value>,
    ) -> Result<StoredJournal, crate::store::StoreError> {
        let mut replay = store.journal(&row.id).await?;
        // A run that parked on its very first call has an empty journal: the wait row
        // is what says it resumes.
        let parked_on = store.run_wait(&row.id).await?;
        let stored_clock = match replay.first() {
            Some(first) if first.seq == CLOCK_SEQ => Some(replay.remove(0)),
            _ => None,
        };
        let bytes = replay.iter().map(|e| entry_cost(e.answer.len())).sum();
        let replay_end = replay.iter().map(|e| e.seq + 1).max().unwrap_or(0).max(0) as u64;
        let replay: std::collections::HashMap<u64, JournalEntry> = replay
            .into_iter()
            .map(|e| (e.seq.max(0) as u64, e))
            .collect();
        let live_rank = replay
            .values()
            .map(|e| e.rank + 1)
            .max()
            .unwrap_or(0)
            .max(0) as u64;
        // The run's seed and start: journaled at its first execution, read back after.
        let mut unsaved = Vec::new();
        let (seed, start, start_state) =
            match stored_clock.as_ref().and_then(|e| clock_of(&e.answer)) {
                // An entry from before states were journaled holds none: the state now.
                Some((seed, start, journaled)) => (seed, start, journaled.unwrap_or(state)),
                None => {
                    let mut seed = [0u8; 32];
                    getrandom::getrandom(&mut seed).map_err(|e| {
                        crate::store::StoreError::Database(format!("no randomness for a seed: {e}"))
                    })?;
                    let start = now_ms();
                    let mut answer = seed.to_vec();
                    answer.extend_from_slice(&start.to_le_bytes());
                    answer.extend_from_slice(&serde_json::to_vec(&state).unwrap_or_default());
                    let entry = JournalEntry {
                        run_id: row.id.clone(),
                        seq: CLOCK_SEQ,
                        op: "clock".into(),
                        digest: String::new(),
                        rank: -1,
                        answer,
                        created_at: start,
                    };
                    if durable {
                        store
                            .append_journal(std::slice::from_ref(&entry), row.attempt)
                            .await?;
                    } else {
                        unsaved.push(entry);
                    }
                    (seed, start, state)
                }
            };
        Ok(StoredJournal {
            run_id: row.id.clone(),
            attempt: row.attempt,
            store,
            limit_bytes,
            replay,
            replay_end,
            parked_on,
            unsaved: Mutex::new(unsaved),
            bytes: AtomicU64::new(bytes),
            halt: Mutex::new(None),
            canceller: OnceLock::new(),
            next_rank: AtomicU64::new(0),
            ranked: tokio::sync::Notify::new(),
            live_rank: AtomicU64::new(live_rank),
            replay_rank_end: live_rank,
            saving: tokio::sync::Mutex::new(()),
            clock: Arc::new(RunClock::new(seed, start)),
            start_state,
        })
    }

    /// The `ctx.state` this execution starts with.
    pub fn start_state(&self) -> Option<Value> {
        self.start_state.clone()
    }

    /// The replayable clock and randomness this run's isolate gets.
    pub fn clock(&self) -> Arc<RunClock> {
        self.clock.clone()
    }

    /// Whether this execution resumes a run that ran before.
    pub fn resumes(&self) -> bool {
        self.replay_end > 0 || self.parked_on.is_some()
    }

    pub fn set_canceller(&self, canceller: RunCanceller) {
        let _ = self.canceller.set(canceller);
    }

    /// The wait the run parked on, once it has.
    pub fn parked(&self) -> Option<RunWait> {
        match &*self.halt.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(Halt::Parked(wait)) => Some(wait.clone()),
            _ => None,
        }
    }

    /// Stops the run: no further host call is served. A failing run's isolate is ended
    /// at once; a parked one ends by itself (its wait answered `suspended`, every later
    /// call refused, its wall clock the bound).
    fn halt(&self, halt: Halt) {
        let failing = matches!(halt, Halt::Failed(_));
        {
            let mut current = self.halt.lock().unwrap_or_else(|p| p.into_inner());
            if current.is_some() {
                return;
            }
            *current = Some(halt);
        }
        if failing {
            if let Some(canceller) = self.canceller.get() {
                canceller.cancel();
            }
        }
    }

    fn fail(&self, code: &'static str, message: String) -> HostError {
        let e = HostError::new(code, message);
        self.halt(Halt::Failed(e.clone()));
        e
    }

    /// Stores `entry` (if any) and the seed and start not stored yet.
    async fn save(&self, entry: Option<JournalEntry>) -> Result<(), HostError> {
        let _saving = self.saving.lock().await;
        let mut unsaved =
            std::mem::take(&mut *self.unsaved.lock().unwrap_or_else(|p| p.into_inner()));
        unsaved.extend(entry);
        if unsaved.is_empty() {
            return Ok(());
        }
        self.store
            .append_journal(&unsaved, self.attempt)
            .await
            .map_err(|e| {
                warn!(run = %self.run_id, error = %e, "could not store a run's journal");
                HostError::new("internal", "the run's journal could not be stored")
            })
    }

    async fn park(&self, wait: RunWait) -> WaitDecision {
        if let Err(e) = self.save(None).await {
            return WaitDecision::Resolved(Err(e));
        }
        self.halt(Halt::Parked(wait));
        WaitDecision::Suspend
    }

    /// The wait this run was parked on, if it is the one at `seq`.
    fn earlier_wait(&self, seq: u64) -> Option<&RunWait> {
        self.parked_on.as_ref().filter(|w| w.seq == seq as i64)
    }
}

#[async_trait]
impl RunJournal for StoredJournal {
    fn recorded(&self, seq: u64) -> Option<JournalRecord> {
        let entry = self.replay.get(&seq)?;
        (entry.seq == seq as i64).then(|| JournalRecord {
            op: entry.op.clone(),
            digest: entry.digest.clone(),
            answer: entry.answer.clone(),
            at: entry.created_at,
        })
    }

    async fn turn(&self, seq: u64) -> Result<(), HostError> {
        let Some(rank) = self.replay.get(&seq).map(|e| e.rank.max(0) as u64) else {
            return Ok(());
        };
        let waited = tokio::time::timeout(REPLAY_ORDER_WAIT, async {
            loop {
                let notified = self.ranked.notified();
                if self.next_rank.load(Ordering::Acquire) >= rank {
                    return;
                }
                notified.await;
            }
        })
        .await;
        if waited.is_err() {
            let missing = self.next_rank.load(Ordering::Acquire);
            let position = self
                .replay
                .values()
                .find(|e| e.rank as u64 == missing)
                .map_or(-1, |e| e.seq);
            return Err(self.fail(
                "replay_mismatch",
                format!("on resume the run never asked for journal position {position}, which the journaled run had answered before position {seq}"),
            ));
        }
        self.next_rank.fetch_max(rank + 1, Ordering::AcqRel);
        self.ranked.notify_waiters();
        Ok(())
    }

    async fn record(&self, seq: u64, record: JournalRecord) -> Result<(), HostError> {
        let cost = entry_cost(record.answer.len());
        let total = self.bytes.fetch_add(cost, Ordering::AcqRel) + cost;
        if total > self.limit_bytes {
            return Err(self.fail(
                "journal_too_large",
                format!(
                    "the run's journal is over its {} MiB limit",
                    self.limit_bytes >> 20
                ),
            ));
        }
        let entry = JournalEntry {
            run_id: self.run_id.clone(),
            seq: seq as i64,
            op: record.op,
            digest: record.digest,
            rank: self.live_rank.fetch_add(1, Ordering::AcqRel) as i64,
            answer: record.answer,
            created_at: record.at,
        };
        // Stored before the run sees it: a replay must not make the call again, whether
        // the run parks later, parked already (a call made before its wait, answered
        // after it) or its node dies.
        self.save(Some(entry))
            .await
            .inspect_err(|e| self.halt(Halt::Failed(e.clone())))
    }

    async fn replayed(&self) -> Result<(), HostError> {
        loop {
            let notified = self.ranked.notified();
            if self.next_rank.load(Ordering::Acquire) >= self.replay_rank_end {
                return Ok(());
            }
            if let Some(halt) = self.halted() {
                return Err(halt);
            }
            notified.await;
        }
    }

    async fn replace(&self, seq: u64, answer: Vec<u8>) {
        if let Err(e) = self
            .store
            .replace_journal_answer(&self.run_id, seq as i64, &answer, self.attempt)
            .await
        {
            warn!(run = %self.run_id, seq, error = %e, "could not replace a journal answer");
            self.fail("internal", "the run's journal could not be stored".into());
        }
    }

    async fn wait(&self, seq: u64, request: &WaitRequest) -> WaitDecision {
        let now = now_ms();
        let earlier = self.earlier_wait(seq);
        let Some(name) = &request.name else {
            if request.ms < PARK_AFTER_MS && earlier.is_none() {
                tokio::time::sleep(Duration::from_millis(request.ms)).await;
                return WaitDecision::Resolved(Ok(Value::Null));
            }
            let wake_at = earlier
                .and_then(|w| w.wake_at)
                .unwrap_or(now.saturating_add(request.ms as i64));
            if wake_at <= now {
                return WaitDecision::Resolved(Ok(Value::Null));
            }
            return self
                .park(self.wait_row(seq, None, None, Some(wake_at), now))
                .await;
        };
        match self.store.take_signal(&self.run_id, name, seq as i64).await {
            Ok(Some(payload)) => {
                if let Some(schema) = &request.schema {
                    if let Err(why) = crate::package::check_against_schema(schema, &payload) {
                        return WaitDecision::Resolved(Err(HostError::new(
                            "signal_invalid",
                            format!("the signal {name} does not match the wait's schema: {why}"),
                        )));
                    }
                }
                return WaitDecision::Resolved(Ok(payload));
            }
            Ok(None) => {}
            Err(e) => {
                warn!(run = %self.run_id, error = %e, "could not read a run's signals");
                return WaitDecision::Resolved(Err(
                    self.fail("internal", "the run's signals could not be read".into())
                ));
            }
        }
        let deadline = earlier
            .map(|w| w.wake_at)
            .unwrap_or_else(|| (request.ms > 0).then(|| now.saturating_add(request.ms as i64)));
        if deadline.is_some_and(|at| at <= now) {
            return WaitDecision::Resolved(Err(HostError::new(
                "wait_timeout",
                format!("no signal {name} came within {} ms", request.ms),
            )));
        }
        let wait = self.wait_row(
            seq,
            Some(name.clone()),
            request.schema.clone(),
            deadline,
            now,
        );
        self.park(wait).await
    }

    fn mismatch(&self, seq: u64, journaled: &str, asked: &str) {
        self.fail(
            "replay_mismatch",
            format!(
                "on resume the run asked for {asked} at journal position {seq}, where the journal holds {journaled}; the agent's code path must not depend on anything the journal does not cover"
            ),
        );
    }

    fn replaying(&self, asked: u64) -> bool {
        self.resumes() && asked <= self.replay_end
    }

    fn halted(&self) -> Option<HostError> {
        match &*self.halt.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(Halt::Parked(_)) => Some(HostError::new(
                "suspended",
                "the run waits without an isolate; it resumes by replay",
            )),
            Some(Halt::Failed(e)) => Some(e.clone()),
            None => None,
        }
    }
}

impl StoredJournal {
    fn wait_row(
        &self,
        seq: u64,
        name: Option<String>,
        schema: Option<Value>,
        wake_at: Option<i64>,
        now: i64,
    ) -> RunWait {
        RunWait {
            run_id: self.run_id.clone(),
            seq: seq as i64,
            name,
            schema,
            wake_at,
            created_at: now,
        }
    }
}

/// What a clock entry holds: the seed, the start and the run's starting state as JSON
/// (`None` for an entry written before states were journaled).
type ClockEntry = ([u8; 32], i64, Option<Option<Value>>);

/// The seed, start and starting state a clock entry holds.
fn clock_of(answer: &[u8]) -> Option<ClockEntry> {
    let seed: [u8; 32] = answer.get(..32)?.try_into().ok()?;
    let start = i64::from_le_bytes(answer.get(32..40)?.try_into().ok()?);
    let state = match answer.get(40..) {
        None | Some([]) => None,
        Some(json) => Some(serde_json::from_slice(json).ok()?),
    };
    Some((seed, start, state))
}

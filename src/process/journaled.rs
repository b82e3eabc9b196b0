//! Host calls through a run's journal: while a resumed run replays, each call is answered
//! with what the journal holds at its position (and must ask the same thing: anything
//! else fails the run with `replay_mismatch`); past the journal's end each live answer is
//! recorded before the child sees it. Waits are decided here too: answered now, or the
//! run parks.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::host_side::dispatch;
use super::protocol::{self, Answer, HostRequest, Json};
use super::remote::RemoteRun;
use crate::host::{DeltaSink, HostError, JournalRecord, RunJournal, WaitDecision, WaitRequest};
use crate::ids::now_ms;

fn refused(e: HostError) -> Answer {
    Answer::Refused {
        code: e.code.to_owned(),
        message: e.message,
    }
}

/// What identifies a call: the digest of its encoding. A timer's `at` is left out: it
/// is the clock the run read when it set the timer, which may have moved on by the
/// answers that came in the same turn of its event loop, differently on replay.
fn digest(request: &HostRequest) -> String {
    let bytes = match request {
        HostRequest::Timer { ms, .. } => protocol::encode(&HostRequest::Timer { ms: *ms, at: 0 }),
        _ => protocol::encode(request),
    }
    .unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

/// Journals a timer the run cleared before it was due, at its position: a replay answers
/// it `cleared` instead of firing it.
pub(super) async fn record_cleared(journal: &dyn RunJournal, seq: u64, ms: u64) {
    let Ok(answer) = protocol::encode(&super::timers::cleared()) else {
        return;
    };
    let record = JournalRecord {
        op: "timer".to_owned(),
        digest: digest(&HostRequest::Timer { ms, at: 0 }),
        answer: answer.to_vec(),
        at: now_ms(),
    };
    // A failure fails the run (the journal says so); nothing to answer here.
    let _ = journal.record(seq, record).await;
}

/// The answer to a call and when it was given: replayed calls keep their journaled time.
pub(super) async fn answer(
    run: &RemoteRun,
    seq: u64,
    request: HostRequest,
    deltas: DeltaSink,
) -> (Answer, i64) {
    let Some(journal) = run.journal.clone() else {
        if let HostRequest::Timer { ms, .. } = request {
            tokio::time::sleep(Duration::from_millis(ms.min(WaitRequest::MAX_MS))).await;
            let answer = match run.timers.fire(seq).await {
                Some(_gate) => Answer::Value(Json("null".into())),
                None => super::timers::cleared(),
            };
            return (answer, now_ms());
        }
        return (dispatch(run, request, deltas).await, now_ms());
    };
    if let Some(recorded) = journal.recorded(seq) {
        let at = recorded.at;
        let answer = replayed(journal.as_ref(), seq, &request, recorded);
        // Answered in the order the journaled run got its answers.
        if let Err(e) = journal.turn(seq).await {
            return (refused(e), at);
        }
        if matches!(request, HostRequest::Timer { .. }) && run.timers.fire(seq).await.is_none() {
            return (super::timers::cleared(), at);
        }
        return (answer, at);
    }
    live(run, journal.as_ref(), seq, request, deltas).await
}

fn replayed(
    journal: &dyn RunJournal,
    seq: u64,
    request: &HostRequest,
    recorded: JournalRecord,
) -> Answer {
    if let Some(halt) = journal.halted() {
        return refused(halt);
    }
    let op = request.kind();
    if recorded.op != op || recorded.digest != digest(request) {
        journal.mismatch(seq, &recorded.op, op);
        return refused(HostError::new(
            "replay_mismatch",
            format!(
                "position {seq} of the journal holds {}, the run asked {op}",
                recorded.op
            ),
        ));
    }
    protocol::decode::<Answer>(&recorded.answer).unwrap_or_else(|_| {
        refused(HostError::new(
            "internal",
            "a journal entry does not decode",
        ))
    })
}

/// A call past the journal's end: served, then recorded (with the time the run's clock
/// moves to) before it is answered.
async fn live(
    run: &RemoteRun,
    journal: &dyn RunJournal,
    seq: u64,
    mut request: HostRequest,
    deltas: DeltaSink,
) -> (Answer, i64) {
    if let Some(halt) = journal.halted() {
        return (refused(halt), now_ms());
    }
    let op = request.kind();
    let asked = digest(&request);
    // A due timer's firing is recorded under its run's timer gate (see `timers`).
    let mut _timer_gate = None;
    let answer = match &mut request {
        HostRequest::Timer { ms, at } => {
            let ms = (*ms).min(WaitRequest::MAX_MS);
            // Asked again by a resumed run (it was pending when the run parked): due
            // when it was due before, at once if that has passed.
            let due_in = if journal.replaying(seq) {
                // Not before every journaled answer was given: firing in the middle of
                // the replay would make calls at positions the journal holds others at.
                if let Err(e) = journal.replayed().await {
                    return (refused(e), now_ms());
                }
                let due = at.saturating_add(ms as i64);
                due.saturating_sub(now_ms()).max(0) as u64
            } else {
                ms
            };
            tokio::time::sleep(Duration::from_millis(due_in)).await;
            _timer_gate = run.timers.fire(seq).await;
            if _timer_gate.is_none() {
                return (super::timers::cleared(), now_ms());
            }
            Answer::Value(Json("null".into()))
        }
        HostRequest::Wait { request } => {
            let wait = match request.parse::<WaitRequest>() {
                Ok(wait) => wait,
                Err(e) => {
                    let e = HostError::new("bad_request", format!("a wait is not valid: {e}"));
                    return (refused(e), now_ms());
                }
            };
            // The child checked it too, but a child is not trusted.
            if let Err(e) = wait.check() {
                return (refused(e), now_ms());
            }
            match journal.wait(seq, &wait).await {
                WaitDecision::Suspend => {
                    let e = HostError::new(
                        "suspended",
                        "the run waits without an isolate; it resumes by replay",
                    );
                    return (refused(e), now_ms());
                }
                WaitDecision::Resolved(Ok(value)) => Answer::Value(Json::of(&value)),
                WaitDecision::Resolved(Err(e)) => refused(e),
            }
        }
        HostRequest::Fetch { headers, .. } => {
            // A call in flight when a node dies is made again on replay: the receiver
            // can tell the two apart by this key.
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("idempotency-key"))
            {
                headers.push((
                    "idempotency-key".into(),
                    format!("{}/{seq}", run.shared.run_id()),
                ));
            }
            dispatch(run, request, deltas).await
        }
        _ => dispatch(run, request, deltas).await,
    };
    let at = now_ms();
    let encoded = match protocol::encode(&answer) {
        Ok(bytes) => bytes.to_vec(),
        Err(_) => {
            let e = HostError::new("internal", "an answer does not encode");
            return (refused(e), at);
        }
    };
    let record = JournalRecord {
        op: op.to_owned(),
        digest: asked,
        answer: encoded,
        at,
    };
    match journal.record(seq, record).await {
        Ok(()) => (answer, at),
        Err(e) => (refused(e), at),
    }
}

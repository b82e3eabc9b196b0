//! A journaled run's JS timers (`setTimeout`, `setInterval`), on the server: each is a
//! host call answered when it is due, so its firing is journaled and ordered against the
//! run's other answers, and a replay fires it in the same place without waiting again.
//! They take none of the child's call permits (a pending timer is not work in flight),
//! but a run has at most [`Timers::MAX_PENDING`] of them, and they stop with the run.

use std::sync::Arc;

use super::protocol::{Answer, HostRequest, ToChild};
use super::remote::Child;
use super::remote_run::{PendingTimer, Timers};
use crate::host::DeltaSink;
use crate::ids::now_ms;
use crate::sandbox::shared::lock;

/// What a timer's call is answered when the run cleared it before it fired.
pub(super) fn cleared() -> Answer {
    Answer::Refused {
        code: "cleared".into(),
        message: "the timer was cleared".into(),
    }
}

impl Child {
    /// Answers a call at once (a refusal, or a cleared timer).
    pub(super) fn reply(&self, call: u64, answer: Answer) {
        let _ = self.out.send(ToChild::Reply {
            call,
            answer,
            over_budget: false,
            at: now_ms(),
        });
    }

    /// The child set a timer (`request` is a [`HostRequest::Timer`]).
    pub(super) fn set_timer(&self, call: u64, run_id: &str, request: HostRequest) {
        let refuse = |code: &str, message: String| Answer::Refused {
            code: code.into(),
            message,
        };
        let Some(run) = self.run(run_id) else {
            let message = "this run is not hosted by this sandbox process".into();
            return self.reply(call, refuse("no_such_run", message));
        };
        let HostRequest::Timer { ms, .. } = request else {
            return self.reply(call, refuse("bad_request", "not a timer".into()));
        };
        let mut table = lock(&run.timers.table);
        if table.stopped {
            drop(table);
            return self.reply(call, refuse("suspended", "the run has ended".into()));
        }
        if table.pending.contains_key(&call) {
            // A child reusing a call id would leave a task nobody can stop.
            drop(table);
            let message = "this call id is in use".into();
            return self.reply(call, refuse("bad_request", message));
        }
        if table.pending.len() >= Timers::MAX_PENDING {
            drop(table);
            let message = format!(
                "a run has at most {} timers pending; clear some first",
                Timers::MAX_PENDING
            );
            return self.reply(call, refuse("too_many_timers", message));
        }
        // Positions follow the order the child asked: this runs in its channel's order.
        let seq = run
            .next_op
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let out = self.out.clone();
        let serving = run.clone();
        // Spawned under the table's lock: it cannot fire (nor the run stop) before it is
        // in the table.
        let task = tokio::spawn(async move {
            let deltas: DeltaSink = Arc::new(|_: &str| {});
            let (answer, over_budget, at) =
                super::host_side::serve(&serving, seq, request, deltas).await;
            let _ = out.send(ToChild::Reply {
                call,
                answer,
                over_budget,
                at,
            });
        });
        table.pending.insert(
            call,
            PendingTimer {
                seq,
                ms,
                task: task.abort_handle(),
            },
        );
    }

    /// The run cleared the timer of `call`. Not yet due: it does not fire, and the clear
    /// is journaled at its position (a replay must not fire it either). Due already (its
    /// firing crossed the clear on the channel): the journaled firing becomes the clear
    /// the run acted on. Anything else (an unknown call) is ignored.
    pub(super) fn clear_timer(&self, call: u64, run_id: &str) {
        let Some(run) = self.run(run_id) else {
            return;
        };
        let (pending, fired) = {
            let mut table = lock(&run.timers.table);
            let pending = table.pending.remove(&call);
            let fired = match pending {
                Some(_) => None,
                None => table
                    .fired
                    .iter()
                    .position(|(c, _)| *c == call)
                    .and_then(|i| table.fired.remove(i)),
            };
            (pending, fired)
        };
        let journal = run.journal.clone();
        if let Some(timer) = pending {
            // A replayed timer answers from the journal in its turn (out of the table, it
            // answers `cleared`): stopping it would stall the answers ranked after it.
            let replayed = journal
                .as_ref()
                .is_some_and(|j| j.recorded(timer.seq).is_some());
            if replayed {
                return;
            }
            timer.task.abort();
            self.reply(call, cleared());
            let Some(journal) = journal else {
                return;
            };
            tokio::spawn(async move {
                let _gate = run.timers.gate.lock().await;
                super::journaled::record_cleared(journal.as_ref(), timer.seq, timer.ms).await;
            });
        } else if let (Some((_, seq)), Some(journal)) = (fired, journal) {
            tokio::spawn(async move {
                let _gate = run.timers.gate.lock().await;
                if let Ok(answer) = super::protocol::encode(&cleared()) {
                    journal.replace(seq, answer.to_vec()).await;
                }
            });
        }
    }
}

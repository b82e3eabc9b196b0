//! A host call from a child, taken by the server: bounded per run and per child, then
//! served on a task of its own (`host_side`), in the order the child asked.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::protocol::{Answer, HostRequest, ToChild};
use super::remote::Child;
use super::remote_run::CallCounted;
use crate::host::DeltaSink;

/// Host calls one run may have in flight: past that its calls are refused at once, so
/// that one run cannot hold the child's permits (and stall its neighbours' calls).
const MAX_CALLS_PER_RUN: u32 = 256;

impl Child {
    /// Takes the call; waits for one of the child's `calls` permits (back-pressure on a
    /// child that floods), then serves it on a task.
    pub(super) async fn take_call(
        &self,
        call: u64,
        run_id: &str,
        request: HostRequest,
        calls: &Arc<Semaphore>,
    ) {
        let Some(run) = self.run(run_id) else {
            let answer = Answer::Refused {
                code: "no_such_run".into(),
                message: "this run is not hosted by this sandbox process".into(),
            };
            return self.reply(call, answer);
        };
        if run.calls_in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_CALLS_PER_RUN {
            run.calls_in_flight.fetch_sub(1, Ordering::AcqRel);
            let answer = Answer::Refused {
                code: "too_many_calls".into(),
                message: format!(
                    "a run has at most {MAX_CALLS_PER_RUN} host calls in flight; await some first"
                ),
            };
            return self.reply(call, answer);
        }
        let counted = CallCounted(run.clone());
        let Ok(permit) = calls.clone().acquire_owned().await else {
            return;
        };
        // Positions follow the order the child asked (its channel is ordered), before
        // the calls run concurrently.
        let seq = run.next_op.fetch_add(1, Ordering::AcqRel);
        let out = self.out.clone();
        tokio::spawn(async move {
            let deltas_out = out.clone();
            let deltas: DeltaSink = Arc::new(move |text: &str| {
                let _ = deltas_out.send(ToChild::Delta {
                    call,
                    text: text.to_owned(),
                });
            });
            let (answer, over_budget, at) =
                super::host_side::serve(&run, seq, request, deltas).await;
            drop(counted);
            let _ = out.send(ToChild::Reply {
                call,
                answer,
                over_budget,
                at,
            });
            drop(permit);
        });
    }
}

//! Waiting for a run to end (`?wait=`, a cancel's answer): in memory when it ends on
//! this node, by its `end` event on the bus when it ends elsewhere, with a read of the
//! record as the fallback.

use std::sync::Arc;
use std::time::Duration;

use super::{Inner, NewRun, RunError, RunService};
use crate::ids::new_id;
use crate::quota::Decision;
use crate::store::RunRow;

/// A `wait`'s place in [`Inner::waiters`], given up when the wait ends however it ends.
struct Waiting<'a> {
    inner: &'a Inner,
    run_id: &'a str,
}

impl<'a> Waiting<'a> {
    fn register(
        inner: &'a Inner,
        run_id: &'a str,
        told: tokio::sync::oneshot::Sender<Arc<RunRow>>,
    ) -> Waiting<'a> {
        let mut waiters = inner.waiters.lock().unwrap_or_else(|p| p.into_inner());
        waiters.entry(run_id.to_owned()).or_default().push(told);
        Waiting { inner, run_id }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut waiters = self.inner.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = waiters.get_mut(self.run_id) {
            list.retain(|w| !w.is_closed());
            if list.is_empty() {
                waiters.remove(self.run_id);
            }
        }
    }
}

impl RunService {
    /// [`RunService::create`], then waits up to `timeout` for the run to end: its latest
    /// record (the created one if waiting fails). The waiter is registered before the
    /// run exists, so an ending on this node cannot be missed and the wait starts
    /// without reading the run back. `created` is called as soon as the run is stored
    /// (before the wait, which a client going away cuts short).
    pub async fn create_and_wait(
        &self,
        new: NewRun,
        timeout: Duration,
        created: impl FnOnce(),
    ) -> Result<(RunRow, Decision), RunError> {
        let id = new_id("run");
        let (told, ended_here) = tokio::sync::oneshot::channel();
        let _waiting = Waiting::register(&self.inner, &id, told);
        let live = self.inner.cfg.bus.subscribe(&id).await.ok();
        let (row, rate) = match self.create_as(id.clone(), new).await {
            Ok(created) => created,
            Err(e) => {
                // Closed before the registration goes, so that it leaves no entry.
                drop(ended_here);
                return Err(e);
            }
        };
        created();
        let deadline = tokio::time::Instant::now() + timeout;
        let app_id = row.app_id.clone();
        match self
            .until_ended(&app_id, &id, Some(row.clone()), ended_here, live, deadline)
            .await
        {
            Ok(latest) => Ok((latest.unwrap_or(row), rate)),
            Err(e) => {
                tracing::warn!(run = %id, error = %e, "waiting for a run failed; answering 202");
                Ok((row, rate))
            }
        }
    }

    /// Waits up to `timeout` for a run to finish; returns its latest record.
    pub async fn wait(
        &self,
        app_id: &str,
        run_id: &str,
        timeout: Duration,
    ) -> Result<Option<RunRow>, RunError> {
        // Subscribe first so an ending between the read and the wait is seen: in memory
        // when the run ends on this node, else by its `end` event.
        let (told, ended_here) = tokio::sync::oneshot::channel();
        let _waiting = Waiting::register(&self.inner, run_id, told);
        let live = self.inner.cfg.bus.subscribe(run_id).await.ok();
        let deadline = tokio::time::Instant::now() + timeout;
        self.until_ended(app_id, run_id, None, ended_here, live, deadline)
            .await
    }

    /// The wait itself, once subscribed: `known` is a record read (or written) after
    /// subscribing, which saves the first read.
    async fn until_ended(
        &self,
        app_id: &str,
        run_id: &str,
        mut known: Option<RunRow>,
        mut ended_here: tokio::sync::oneshot::Receiver<Arc<RunRow>>,
        mut live: Option<futures::stream::BoxStream<'static, crate::bus::BusEvent>>,
        deadline: tokio::time::Instant,
    ) -> Result<Option<RunRow>, RunError> {
        let store = &self.inner.cfg.store;
        loop {
            let row = match known.take() {
                Some(row) => row,
                None => match store.get_run(app_id, run_id).await? {
                    Some(row) => row,
                    None => return Ok(None),
                },
            };
            if row.status.is_final() || tokio::time::Instant::now() >= deadline {
                return Ok(Some(row));
            }
            let ended_elsewhere = async {
                match live.as_mut() {
                    Some(stream) => {
                        use futures::StreamExt;
                        while let Some(event) = stream.next().await {
                            if event.kind == "end" {
                                return;
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    None => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            };
            let next = async {
                tokio::select! {
                    finish = &mut ended_here => finish.ok(),
                    () = ended_elsewhere => None,
                }
            };
            if let Ok(Some(finished)) = tokio::time::timeout_at(deadline, next).await {
                // The record as this node stored it (the row read above may predate the
                // run's start).
                return Ok(Some(Arc::unwrap_or_clone(finished)));
            }
        }
    }
}

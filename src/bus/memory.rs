//! In-process fan-out: one broadcast channel per run with live subscribers. [`RedisBus`]
//! reuses the same [`Hub`] for the subscribers on its node.
//!
//! [`RedisBus`]: super::RedisBus

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::broadcast::{self, error::RecvError};

use super::{BusError, BusEvent, EventBus, SUBSCRIBER_BUFFER};

/// The runs with subscribers on this node. A run's entry exists exactly while someone may
/// still listen; it is removed when the last subscriber leaves.
pub(crate) struct Hub {
    runs: Mutex<HashMap<String, broadcast::Sender<BusEvent>>>,
    buffer: usize,
}

impl Hub {
    pub(crate) fn new(buffer: usize) -> Self {
        Hub {
            runs: Mutex::new(HashMap::new()),
            buffer: buffer.max(1),
        }
    }

    /// Never held across an await, and a panic elsewhere leaves the map usable.
    fn runs(&self) -> MutexGuard<'_, HashMap<String, broadcast::Sender<BusEvent>>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a subscriber to `run_id`; `true` when this created the run's entry (so the
    /// caller must start listening upstream).
    pub(crate) fn join(&self, run_id: &str) -> (broadcast::Receiver<BusEvent>, bool) {
        let mut runs = self.runs();
        if let Some(sender) = runs.get(run_id) {
            return (sender.subscribe(), false);
        }
        let (sender, receiver) = broadcast::channel(self.buffer);
        runs.insert(run_id.to_owned(), sender);
        (receiver, true)
    }

    /// Hands `event` to this node's subscribers of `run_id`; `false` when there are none.
    pub(crate) fn deliver(&self, run_id: &str, event: BusEvent) -> bool {
        match self.runs().get(run_id) {
            // A send error means every receiver is gone; cleanup of the entry is under way.
            Some(sender) => sender.send(event).is_ok(),
            None => false,
        }
    }

    /// Removes `run_id`'s entry if nobody listens any more; `true` when no entry remains.
    pub(crate) fn leave_if_idle(&self, run_id: &str) -> bool {
        let mut runs = self.runs();
        match runs.get(run_id) {
            Some(sender) if sender.receiver_count() > 0 => false,
            Some(_) => {
                runs.remove(run_id);
                true
            }
            None => true,
        }
    }

    /// Drops every entry, which ends every subscriber's stream once it has read what was
    /// already delivered; returns how many runs were open.
    pub(crate) fn close_all(&self) -> usize {
        let mut runs = self.runs();
        let open = runs.len();
        runs.clear();
        open
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.runs().len()
    }
}

/// A subscriber's state; `on_leave` runs after its receiver is gone, so the hub sees the
/// subscriber as left.
struct Live {
    run_id: String,
    receiver: Option<broadcast::Receiver<BusEvent>>,
    on_leave: Option<Box<dyn FnOnce() + Send>>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.receiver.take();
        if let Some(on_leave) = self.on_leave.take() {
            on_leave();
        }
    }
}

/// Turns a receiver into the stream handed to callers; it ends rather than skip events,
/// and keeps answering `None` once ended.
pub(crate) fn live_stream(
    run_id: &str,
    receiver: broadcast::Receiver<BusEvent>,
    on_leave: impl FnOnce() + Send + 'static,
) -> BoxStream<'static, BusEvent> {
    let live = Live {
        run_id: run_id.to_owned(),
        receiver: Some(receiver),
        on_leave: Some(Box::new(on_leave)),
    };
    stream::unfold(live, |mut live| async move {
        let received = live.receiver.as_mut()?.recv().await;
        match received {
            Ok(event) => Some((event, live)),
            Err(RecvError::Lagged(missed)) => {
                let run_id = &live.run_id;
                tracing::warn!(%run_id, missed, "live subscriber fell behind; ending its stream");
                None
            }
            Err(RecvError::Closed) => None,
        }
    })
    // Fused: callers may poll again after the end (a bare unfold would panic).
    .fuse()
    .boxed()
}

/// Fan-out within this process, for a single node.
#[derive(Clone)]
pub struct MemoryBus {
    hub: Arc<Hub>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBus {
    pub fn new() -> Self {
        Self::with_buffer(SUBSCRIBER_BUFFER)
    }

    /// A bus whose subscribers may fall `buffer` events behind before their stream ends.
    pub fn with_buffer(buffer: usize) -> Self {
        MemoryBus {
            hub: Arc::new(Hub::new(buffer)),
        }
    }

    #[cfg(test)]
    pub(crate) fn open_runs(&self) -> usize {
        self.hub.len()
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn publish(&self, event: &BusEvent) -> Result<(), BusError> {
        self.hub.deliver(&event.run_id, event.clone());
        Ok(())
    }

    async fn subscribe(&self, run_id: &str) -> Result<BoxStream<'static, BusEvent>, BusError> {
        let (receiver, _) = self.hub.join(run_id);
        // Weak, so dropping the bus drops the hub and ends its streams, as with Redis.
        let hub = Arc::downgrade(&self.hub);
        let id = run_id.to_owned();
        Ok(live_stream(run_id, receiver, move || {
            if let Some(hub) = hub.upgrade() {
                hub.leave_if_idle(&id);
            }
        }))
    }
}

//! Cross-node fan-out of live run events, for SSE streams served by any node.
//!
//! The bus only carries events to whoever listens now; the store keeps them. A stream from
//! [`EventBus::subscribe`] may end early (its subscriber fell more than
//! [`SUBSCRIBER_BUFFER`] events behind, or the node lost its Redis connection) — it never
//! skips events silently. A caller that sees a stream end before the run's `end` event
//! fills the gap from the store by `seq` and subscribes again (or closes the SSE response
//! and lets the client resume with `Last-Event-ID`). Dropping the last handle of a bus
//! ends all its streams.
//!
//! Events of one run arrive in publish order as long as one task publishes that run's
//! events and awaits each `publish` (a run lives on one node, so it does).

mod memory;
mod redis;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

pub use self::memory::MemoryBus;
pub use self::redis::RedisBus;

/// Events a subscriber may fall behind by before its stream is ended.
pub const SUBSCRIBER_BUFFER: usize = 1024;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BusEvent {
    pub run_id: String,
    pub seq: i64,
    pub kind: String,
    pub data: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("event bus unavailable: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("event could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("event bus has shut down")]
    Closed,
}

#[async_trait]
pub trait EventBus: Send + Sync {
    /// Sends `event` to every current subscriber of its run on any node; with none it is
    /// dropped (the store has it).
    async fn publish(&self, event: &BusEvent) -> Result<(), BusError>;

    /// Live events of one run from now on (a stream that ends when dropped; once it has
    /// ended it keeps yielding `None`). Every event
    /// published after this returns is delivered, so subscribe first, then read the store
    /// and skip live events whose `seq` was already sent. (With Redis, an event published
    /// just before the call may also arrive; the `seq` check covers it.)
    async fn subscribe(&self, run_id: &str) -> Result<BoxStream<'static, BusEvent>, BusError>;
}

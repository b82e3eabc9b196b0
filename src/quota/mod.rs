//! Rate limits, budgets and concurrency slots behind one trait, shared by every node.
//!
//! [`RedisQuotas`] keeps the counters in Redis so every node sees the same numbers;
//! [`MemoryQuotas`] keeps them in this process for a single node. Both give the same
//! answers to the same calls (one test suite runs against both).
//!
//! # Semantics callers rely on
//! - Windows are fixed and start at the first counted hit (or first `add`), not on clock
//!   boundaries. For calendar periods put the period in the key (`cpu:org_1:2026-11-24`).
//! - Hits, budgets and slots live in separate namespaces: the same `key` string used with
//!   [`Quotas::hit`] and [`Quotas::add`] names two different counters.
//! - A refused hit is not counted, so the counter is the number of accepted hits and a limit
//!   raised mid-window takes effect at once.
//! - Errors mean the store could not be reached; whether to fail open or closed is the
//!   caller's choice.

mod memory;
mod redis;
#[cfg(test)]
mod tests;

use std::time::Duration;

use async_trait::async_trait;

pub use self::memory::MemoryQuotas;
pub use self::redis::RedisQuotas;

/// The answer to one quota question, ready to become `ratelimit-*` and `retry-after` headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// seconds until the window resets
    pub reset_secs: u64,
    /// when refused: seconds to wait
    pub retry_after_secs: u64,
}

impl Decision {
    /// Builds the answer from what is used and how long until it frees up; both backends
    /// go through here so their rounding is identical.
    pub(crate) fn new(allowed: bool, limit: u64, used: u64, until_reset: Duration) -> Self {
        let reset_secs = ceil_secs(until_reset);
        Decision {
            allowed,
            limit,
            remaining: limit.saturating_sub(used),
            reset_secs,
            // A refusal always asks for at least a second so clients never retry in a loop.
            retry_after_secs: if allowed { 0 } else { reset_secs.max(1) },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("quota store unavailable: {0}")]
    Redis(#[from] ::redis::RedisError),
}

#[async_trait]
pub trait Quotas: Send + Sync {
    /// Counts one hit on `key` in a fixed window of `window` and says whether it is within
    /// `limit` (request rate, runs per minute). Refused hits are not counted.
    async fn hit(&self, key: &str, limit: u64, window: Duration) -> Result<Decision, QuotaError>;

    /// Adds `amount` to a budget counter over `window` (CPU-ms per day, LLM tokens per day)
    /// — recording always succeeds; `check_budget` reads it. Returns the new total.
    async fn add(&self, key: &str, amount: u64, window: Duration) -> Result<u64, QuotaError>;

    /// Whether the budget still has room: allowed while the total is below `limit`. With no
    /// spending yet, `reset_secs` is the full `window` (it starts at the first `add`).
    async fn check_budget(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
    ) -> Result<Decision, QuotaError>;

    /// Concurrency slots (concurrent runs per org/app/end-user): takes one of `limit` slots
    /// for `holder` (a run id); slots expire after `ttl` so a dead node's slots come back.
    /// Calling it again for a holder that already has a slot succeeds and renews its `ttl`
    /// (a heartbeat for long runs). When refused, `retry_after_secs` is the time until the
    /// earliest held slot expires — an upper bound, since slots are usually released sooner.
    async fn acquire_slot(
        &self,
        key: &str,
        holder: &str,
        limit: u64,
        ttl: Duration,
    ) -> Result<Decision, QuotaError>;

    /// Frees `holder`'s slot; freeing a slot that is not held is fine.
    async fn release_slot(&self, key: &str, holder: &str) -> Result<(), QuotaError>;

    /// Checks that the store answers (for `/readyz`).
    async fn ping(&self) -> Result<(), QuotaError>;
}

/// Longest window or ttl honoured; longer ones are cut to it so deadlines never overflow.
const MAX_SPAN: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Clamps a window or ttl to 1 ms ..= [`MAX_SPAN`]: Redis deletes a key given a zero expiry.
pub(crate) fn span(d: Duration) -> Duration {
    d.clamp(Duration::from_millis(1), MAX_SPAN)
}

fn ceil_secs(d: Duration) -> u64 {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    ms.div_ceil(1000)
}

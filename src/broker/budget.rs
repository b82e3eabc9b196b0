//! Bytes the host holds on behalf of one run — response bodies being read, bodies waiting
//! for the isolate to take them — counted against the run's memory budget, so memory the
//! heap does not see is bounded too.
//!
//! The sandbox makes a run's budget current around every host call it makes
//! ([`charged_to`]); whatever the broker buffers while serving that call is reserved
//! from it ([`current`]), so fetch, HTTP tools and every other caller of the broker are
//! charged without each threading a parameter through.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug)]
struct Inner {
    limit: u64,
    used: AtomicU64,
    /// Sticky: once a reservation was refused the run is over its budget for good.
    exceeded: AtomicBool,
}

/// One run's host-side memory budget. Cheap to clone; clones share the count.
#[derive(Debug, Clone)]
pub struct HostMemory(Arc<Inner>);

/// The budget refused a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the run holds more than its {limit_mb} MiB of memory in host-side buffers")]
pub struct OverBudget {
    pub limit_mb: u64,
}

impl HostMemory {
    pub fn new(limit_bytes: u64) -> HostMemory {
        HostMemory(Arc::new(Inner {
            limit: limit_bytes,
            used: AtomicU64::new(0),
            exceeded: AtomicBool::new(false),
        }))
    }

    /// Bytes held right now.
    pub fn used(&self) -> u64 {
        self.0.used.load(Ordering::Acquire)
    }

    /// Whether a reservation was ever refused.
    pub fn exceeded(&self) -> bool {
        self.0.exceeded.load(Ordering::Acquire)
    }

    /// Marks the budget spent: a sandbox process learns this way that the server went over
    /// the run's budget while serving one of its calls.
    pub fn mark_exceeded(&self) {
        self.0.exceeded.store(true, Ordering::Release);
    }

    /// Reserves `bytes`, released when the reservation is dropped.
    pub fn reserve(&self, bytes: u64) -> Result<Reservation, OverBudget> {
        let mut reservation = Reservation {
            memory: self.clone(),
            bytes: 0,
        };
        reservation.grow(bytes)?;
        Ok(reservation)
    }

    fn take(&self, bytes: u64) -> Result<(), OverBudget> {
        let inner = &self.0;
        let taken = inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|&total| total <= inner.limit)
            });
        if taken.is_err() {
            inner.exceeded.store(true, Ordering::Release);
            return Err(OverBudget {
                limit_mb: inner.limit / (1024 * 1024),
            });
        }
        Ok(())
    }
}

/// Bytes held against a [`HostMemory`] until dropped.
#[derive(Debug)]
pub struct Reservation {
    memory: HostMemory,
    bytes: u64,
}

impl Reservation {
    /// Holds `more` bytes too.
    pub fn grow(&mut self, more: u64) -> Result<(), OverBudget> {
        self.memory.take(more)?;
        self.bytes += more;
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.memory.0.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

tokio::task_local! {
    static CURRENT: HostMemory;
}

/// Runs `work` with `memory` as the budget that broker buffers are charged to.
pub async fn charged_to<F: Future>(memory: HostMemory, work: F) -> F::Output {
    CURRENT.scope(memory, work).await
}

/// The budget of the run being served, if a run is being served.
pub fn current() -> Option<HostMemory> {
    CURRENT.try_with(HostMemory::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_bounded_and_released() {
        let memory = HostMemory::new(100);
        let a = memory.reserve(60).expect("fits");
        assert_eq!(memory.used(), 60);
        assert!(memory.reserve(41).is_err(), "61 + 41 > 100");
        assert!(memory.exceeded(), "a refusal is remembered");
        let mut b = memory.reserve(40).expect("fits exactly");
        assert!(b.grow(1).is_err());
        drop(a);
        b.grow(60).expect("room again");
        assert_eq!(memory.used(), 100);
        drop(b);
        assert_eq!(memory.used(), 0);
    }

    #[tokio::test]
    async fn the_current_budget_is_the_one_in_scope() {
        assert!(current().is_none());
        let memory = HostMemory::new(10);
        let seen = charged_to(memory.clone(), async {
            tokio::task::yield_now().await;
            current().map(|m| m.reserve(10).map(|r| r.bytes()))
        })
        .await;
        assert_eq!(seen, Some(Ok(10)));
        assert_eq!(memory.used(), 0);
    }
}

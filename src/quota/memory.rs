//! Quotas in this process, for a single node: the same rules as Redis over moka caches.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::ops::compute::Op;
use moka::policy::Expiry;
use moka::sync::Cache;

use super::{span, Decision, QuotaError, Quotas};

/// Quotas kept in memory. Every update goes through moka's per-key compute, which runs one
/// closure at a time per key, so checks are as atomic as the Redis scripts. Entries are
/// evicted when their window or last slot ends, so idle keys cost nothing.
#[derive(Clone)]
pub struct MemoryQuotas {
    rates: Cache<String, Counter>,
    budgets: Cache<String, Counter>,
    slots: Cache<String, Slots>,
}

#[derive(Clone)]
struct Counter {
    value: u64,
    ends: Instant,
}

#[derive(Clone)]
struct Slots {
    /// holder → when its slot expires
    holders: HashMap<String, Instant>,
}

/// Values that know when they stop mattering.
trait Deadline {
    fn deadline(&self) -> Instant;
}

impl Deadline for Counter {
    fn deadline(&self) -> Instant {
        self.ends
    }
}

impl Deadline for Slots {
    fn deadline(&self) -> Instant {
        // the set lives as long as its longest slot, as in Redis
        self.holders
            .values()
            .max()
            .copied()
            .unwrap_or_else(Instant::now)
    }
}

/// Evicts each entry at its own deadline (moka otherwise knows only cache-wide TTLs).
struct AtDeadline;

impl<V: Deadline> Expiry<String, V> for AtDeadline {
    fn expire_after_create(&self, _key: &String, value: &V, now: Instant) -> Option<Duration> {
        Some(value.deadline().saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &V,
        now: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.deadline().saturating_duration_since(now))
    }
}

impl Default for MemoryQuotas {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryQuotas {
    pub fn new() -> Self {
        // No size bound on purpose: evicting a live counter or slot set would lift a limit.
        MemoryQuotas {
            rates: Cache::builder().expire_after(AtDeadline).build(),
            budgets: Cache::builder().expire_after(AtDeadline).build(),
            slots: Cache::builder().expire_after(AtDeadline).build(),
        }
    }
}

/// The counter still in its window, if any; moka may not have evicted a stale one yet.
fn live(entry: Option<moka::Entry<String, Counter>>, now: Instant) -> Option<Counter> {
    entry.map(|e| e.into_value()).filter(|c| c.ends > now)
}

#[async_trait]
impl Quotas for MemoryQuotas {
    async fn hit(&self, key: &str, limit: u64, window: Duration) -> Result<Decision, QuotaError> {
        let now = Instant::now();
        let mut answer = Decision::new(false, limit, limit, span(window));
        self.rates.entry_by_ref(key).and_compute_with(|entry| {
            let mut counter = live(entry, now).unwrap_or(Counter {
                value: 0,
                ends: now + span(window),
            });
            let allowed = counter.value < limit;
            if allowed {
                counter.value += 1;
            }
            answer = Decision::new(allowed, limit, counter.value, counter.ends - now);
            if allowed {
                Op::Put(counter)
            } else {
                Op::Nop
            }
        });
        Ok(answer)
    }

    async fn add(&self, key: &str, amount: u64, window: Duration) -> Result<u64, QuotaError> {
        let now = Instant::now();
        let mut total = amount;
        self.budgets.entry_by_ref(key).and_compute_with(|entry| {
            let mut counter = live(entry, now).unwrap_or(Counter {
                value: 0,
                ends: now + span(window),
            });
            counter.value = counter.value.saturating_add(amount);
            total = counter.value;
            Op::Put(counter)
        });
        Ok(total)
    }

    async fn check_budget(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
    ) -> Result<Decision, QuotaError> {
        let now = Instant::now();
        let (used, until_reset) = match self.budgets.get(key).filter(|c| c.ends > now) {
            Some(counter) => (counter.value, counter.ends - now),
            None => (0, span(window)),
        };
        Ok(Decision::new(used < limit, limit, used, until_reset))
    }

    async fn acquire_slot(
        &self,
        key: &str,
        holder: &str,
        limit: u64,
        ttl: Duration,
    ) -> Result<Decision, QuotaError> {
        let now = Instant::now();
        let mut answer = Decision::new(false, limit, limit, span(ttl));
        self.slots.entry_by_ref(key).and_compute_with(|entry| {
            let mut holders = entry.map(|e| e.into_value().holders).unwrap_or_default();
            holders.retain(|_, expires| *expires > now);
            if holders.contains_key(holder) || (holders.len() as u64) < limit {
                holders.insert(holder.to_owned(), now + span(ttl));
                answer = Decision::new(true, limit, holders.len() as u64, Duration::ZERO);
                return Op::Put(Slots { holders });
            }
            let wait = holders
                .values()
                .min()
                .map_or(span(ttl), |first| first.saturating_duration_since(now));
            answer = Decision::new(false, limit, holders.len() as u64, wait);
            if holders.is_empty() {
                Op::Remove
            } else {
                Op::Put(Slots { holders })
            }
        });
        Ok(answer)
    }

    async fn release_slot(&self, key: &str, holder: &str) -> Result<(), QuotaError> {
        self.slots.entry_by_ref(key).and_compute_with(|entry| {
            let Some(entry) = entry else {
                return Op::Nop;
            };
            let mut holders = entry.into_value().holders;
            holders.remove(holder);
            if holders.is_empty() {
                Op::Remove
            } else {
                Op::Put(Slots { holders })
            }
        });
        Ok(())
    }

    async fn ping(&self) -> Result<(), QuotaError> {
        Ok(())
    }
}

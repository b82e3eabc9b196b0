//! Webhooks out and triggers in (SPEC §5).
//!
//! - `signature`: Standard Webhooks signing and the inbound schemes (standard, GitHub,
//!   Stripe, plain HMAC), all constant-time.
//! - `deliver`: the per-node deliverer: claims due deliveries from the store, signs and
//!   sends them under the broker's address policy, records every attempt and schedules
//!   retries.
//! - `schedule`: cron expressions in IANA time zones.
//! - `trigger`: what a trigger is configured with, and firing one (a run that starts at
//!   most once per firing).
//! - `cron`: the per-node loop that fires due cron triggers.
//!
//! The deliveries themselves are written by the store, in the transaction of the run
//! change they announce (`crate::store::HookStore`).

pub mod cron;
pub mod deliver;
pub mod schedule;
pub mod signature;
pub mod trigger;

//! The isolate sandbox: runs agent packages, many at once, one fresh isolate per run,
//! under hard limits.
//!
//! - [`pool`]: worker threads, the bounded queue, submission and cancellation handles.
//! - `worker`: one thread's event loop hosting many isolates, blank isolates made ahead
//!   of demand, and thread retirement after a lifetime budget of isolates.
//! - [`isolate`]: creating, entering and disposing one `JsRuntime`.
//! - [`run`]: executing one run and deciding its outcome.
//! - [`limits`]: the enforcer — CPU/wall budgets per poll, the watchdog, breaches.
//! - [`grant`]: what a run may do and the limits it runs under.
//! - [`scope`]: per-run state the ops consult.
//! - [`shared`]: per-run state shared across threads — breach, deadline, events, answer.
//! - [`snapshot`]: runtime-js evaluated once into a startup snapshot.
//! - [`loader`]: serves the package's own modules and nothing else.
//! - `ops`: the `atoll` extension (ops by capability + runtime-js).
//! - [`record`]: outcomes, error codes and events.

pub mod check;
mod cpu;
pub mod grant;
pub mod isolate;
pub mod limits;
pub mod loader;
mod ops;
pub mod pool;
pub mod record;
pub mod run;
pub mod scope;
mod scrub;
pub mod shared;
pub mod snapshot;
mod worker;

pub use grant::{Limits, RunGrant};

/// Whether isolates are scrubbed before disposal (QuickJS only; `ATOLL_NO_SCRUB=1` turns
/// it off, see `scrub`). Always false on V8, which needs no scrub.
pub fn heap_scrub_enabled() -> bool {
    #[cfg(feature = "quickjs")]
    return scrub::enabled();
    #[cfg(not(feature = "quickjs"))]
    return false;
}

/// Turns the heap scrub on or off for this process (a no-op on V8).
pub fn set_heap_scrub(on: bool) {
    #[cfg(feature = "quickjs")]
    scrub::set_enabled(on);
    #[cfg(not(feature = "quickjs"))]
    let _ = on;
}
pub use pool::{Pool, PoolConfig, PoolError, PoolStats, RunCanceller, RunHandle};
pub use record::{ErrorCode, EventKind, RunError, RunEvent, RunOutcome, RunStatus, Usage};
pub use run::RunRequest;

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
pub use pool::{Pool, PoolConfig, PoolError, PoolStats, RunCanceller, RunHandle};
pub use record::{ErrorCode, EventKind, RunError, RunEvent, RunOutcome, RunStatus, Usage};
pub use run::RunRequest;

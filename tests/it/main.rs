//! Integration tests: real agent packages from `agents/` on a real pool, real HTTP on
//! loopback, and the `atoll` binary itself.

mod api;
mod blocking;
mod capabilities;
mod client_cli;
mod common;
mod dev_cli;
mod exec_cli;
mod faults;
mod hostile;
mod lifecycle;
mod pool;
mod traces;

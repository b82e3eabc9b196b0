//! atoll: a self-hosted runtime where JavaScript agents run sandboxed, stateful and
//! multi-tenant. Every run gets its own isolate, reaches only what its grant allows, and
//! is measured against hard limits.
//!
//! # Layout
//! - [`package`]: agent packages — `agent.json`, archives, import rules, schemas.
//! - [`sandbox`]: the isolate host — worker pool, one fresh isolate per run, ops by
//!   capability, the limit enforcer and its watchdog.
//! - [`host`]: what the sandbox asks of the rest of the system (memory, tools, LLMs,
//!   fetch, events) as small traits, with in-memory implementations.
//! - [`broker`]: outbound HTTP on behalf of agents — host allow-lists, address
//!   classification, DNS pinning, redirects, size caps.
//! - [`cli`]: the `atoll` command line.

pub mod broker;
pub mod cli;
pub mod host;
pub mod package;
pub mod sandbox;

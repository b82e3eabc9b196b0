//! atoll: a self-hosted runtime where JavaScript agents run sandboxed, stateful and
//! multi-tenant. Every run gets its own isolate, reaches only what its grant allows, and
//! is measured against hard limits.
//!
//! # Layout
//! - [`package`]: agent packages — `agent.json`, archives, import rules, schemas.
//! - [`sandbox`]: the isolate host — worker pool, one fresh isolate per run, ops by
//!   capability, the limit enforcer and its watchdog.
//! - [`process`]: sandbox processes — locked-down children of the server that host the
//!   isolates, the channel to them, recycling and crash containment.
//! - [`host`]: what the sandbox asks of the rest of the system (memory, tools, LLMs,
//!   fetch, events) as small traits, with in-memory implementations.
//! - [`llm`]: LLM providers (OpenAI-compatible, Anthropic) with streaming and retries.
//! - [`broker`]: outbound HTTP on behalf of agents — host allow-lists, address
//!   classification, DNS pinning, redirects, size caps.
//! - [`store`]: persistence (PostgreSQL or embedded SQLite) behind one trait.
//! - [`quota`]: rate limits, quotas and concurrency slots (Redis or in-process).
//! - [`bus`]: live fan-out of run events across nodes (Redis or in-process).
//! - [`runs`]: runs as durable work — queue, leases, recovery, outcomes.
//! - [`status`]: the one run status type, shared by all of the above.
//! - [`api`]: the HTTP API.
//! - [`ids`]: record ids and the clock, for every layer.
//! - [`config`]: server configuration.
//! - [`server`]: assembling and running the server.
//! - [`cli`]: the `atoll` command line.
//! - [`telemetry`]: logs (text or JSON) and OTLP traces.

pub mod api;
pub mod broker;
pub mod bus;
pub mod cli;
pub mod config;
pub mod hooks;
pub mod host;
pub mod ids;
pub mod llm;
pub mod package;
pub mod process;
pub mod quota;
pub mod runs;
pub mod sandbox;
pub mod server;
pub mod status;
pub mod store;
pub mod telemetry;

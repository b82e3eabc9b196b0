//! Outbound fetch for agents: the host performs the HTTP request, never the sandbox.
//!
//! # Layout
//! - `addr`: address classes and the operator's allow list ([`AddressPolicy`]).
//! - `host`: matching hosts against `permissions.fetch` patterns ([`host_allowed`]).
//! - `destination`: where a connection's credential may go (hosts with ports, scheme),
//!   checked before every credentialed request and when a connection is saved.
//! - `redact`: [`redact::Redactor`], the one scrubber of secrets and their derived forms.
//! - `escapes`: the escapes the redactor looks through (a decoded view of a text).
//! - `scrub`: a credentialed response decoded and scrubbed before the agent sees it.
//! - `resolve`: the DNS resolver that hands only permitted addresses to the connector.
//! - `request`: checks on the agent's request and the redirect rewrite rules.
//! - `fetch`: [`HttpFetcher`], which ties them together with limits and redirects.
//! - `agent`: [`HttpFetcher`] as the sandbox's `Fetcher` (no connections).
//! - `brokered`: the server's `Fetcher` — connections looked up, opened and injected.
//! - `tools`: HTTP tools and their invoker.
//! - [`budget`]: the run's host-side memory budget that buffered bodies are charged to.
//! - `secrets`: sealing secrets at rest under rotating master keys ([`secrets::MasterKeys`]).
//! - `connection`: the connection model, its public view and credential injection.
//! - `oauth`: OAuth2 client-credentials tokens, cached ([`oauth::TokenCache`]).

pub mod addr;
mod agent;
pub mod brokered;
pub mod budget;
pub mod connection;
pub mod destination;
mod escapes;
pub mod fetch;
pub mod host;
pub mod oauth;
pub mod redact;
mod request;
pub mod resolve;
pub mod scrub;
pub mod secrets;
pub mod tools;

#[cfg(test)]
mod testutil;

pub use addr::{classify, AddressClass, AddressPolicy, BadCidr};
pub use brokered::{connection_aad, BrokeredFetcher};
pub use fetch::{FetchError, FetchLimits, FetchRequest, FetchResponse, HttpFetcher, Redirect};
pub use host::host_allowed;
pub use resolve::{Lookup, SystemLookup};

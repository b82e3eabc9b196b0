//! Outbound fetch for agents: the host performs the HTTP request, never the sandbox.
//!
//! # Layout
//! - `addr`: address classes and the operator's allow list ([`AddressPolicy`]).
//! - `host`: matching hosts against `permissions.fetch` patterns ([`host_allowed`]).
//! - `resolve`: the DNS resolver that hands only permitted addresses to the connector.
//! - `request`: checks on the agent's request and the redirect rewrite rules.
//! - `fetch`: [`HttpFetcher`], which ties them together with limits and redirects.
//! - `agent`: [`HttpFetcher`] as the sandbox's `Fetcher`.

pub mod addr;
mod agent;
pub mod fetch;
pub mod host;
mod request;
pub mod resolve;

#[cfg(test)]
mod testutil;

pub use addr::{classify, AddressClass, AddressPolicy, BadCidr};
pub use fetch::{FetchError, FetchLimits, FetchRequest, FetchResponse, HttpFetcher};
pub use host::host_allowed;
pub use resolve::{Lookup, SystemLookup};

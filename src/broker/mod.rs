//! TEMPORARY broker API (replaced by the full fetcher).
use std::time::Duration;
#[derive(Debug, Clone)]
pub struct FetchRequest { pub method: String, pub url: url::Url, pub headers: Vec<(String, String)>, pub body: Option<bytes::Bytes> }
#[derive(Debug, Clone)]
pub struct FetchResponse { pub status: u16, pub status_text: String, pub headers: Vec<(String, String)>, pub url: String, pub body: bytes::Bytes, pub redirected: bool }
#[derive(Debug, Clone)]
pub struct FetchLimits { pub max_response_bytes: u64, pub timeout: Duration, pub max_redirects: u8 }
#[derive(Debug, thiserror::Error)]
pub enum FetchError { #[error("host not allowed: {0}")] HostNotAllowed(String), #[error("too large: {limit}")] TooLarge { limit: u64 }, #[error("network: {0}")] Network(String) }
impl FetchError { pub fn code(&self) -> &'static str { match self { FetchError::HostNotAllowed(_) => "fetch_host_not_allowed", FetchError::TooLarge { .. } => "fetch_limit", FetchError::Network(_) => "fetch_network" } } }
pub fn host_allowed(patterns: &[String], host: &str) -> bool { patterns.iter().any(|p| p.eq_ignore_ascii_case(host) || p.strip_prefix("*.").is_some_and(|d| host.ends_with(&format!(".{d}")))) }
pub struct AddressPolicy;
impl AddressPolicy { pub fn parse(_l: &[String]) -> Result<Self, String> { Ok(AddressPolicy) } }
pub struct HttpFetcher;
impl HttpFetcher { pub fn new(_p: AddressPolicy) -> Result<Self, String> { Ok(HttpFetcher) } }
#[async_trait::async_trait]
impl crate::host::Fetcher for HttpFetcher {
    async fn fetch(&self, _t: &crate::host::Tenant, _c: Option<&str>, _r: FetchRequest, _l: &FetchLimits, _a: &(dyn Fn(&str) -> bool + Sync)) -> Result<FetchResponse, FetchError> { Err(FetchError::Network("temporary".into())) }
}

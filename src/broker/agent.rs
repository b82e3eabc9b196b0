//! The sandbox's [`Fetcher`](crate::host::Fetcher) over [`HttpFetcher`]: plain fetches go
//! out directly; fetches naming a connection need the credential broker, which this
//! fetcher does not have, so they are refused rather than sent without the credential.

use async_trait::async_trait;

use super::{FetchError, FetchLimits, FetchRequest, FetchResponse, HttpFetcher};
use crate::host::{Fetcher, HostCheck, Tenant};

#[async_trait]
impl Fetcher for HttpFetcher {
    async fn fetch(
        &self,
        _tenant: &Tenant,
        connection: Option<&str>,
        request: FetchRequest,
        limits: &FetchLimits,
        allow_host: HostCheck,
    ) -> Result<FetchResponse, FetchError> {
        if let Some(name) = connection {
            return Err(FetchError::BadRequest(format!(
                "connection '{name}' is not available: this host has no credential broker configured"
            )));
        }
        HttpFetcher::fetch(self, request, limits, &*allow_host).await
    }
}

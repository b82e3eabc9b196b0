//! The fetcher runs actually get: plain fetches go straight to [`HttpFetcher`]; a fetch
//! naming a connection gets that connection's credential injected on the host — the
//! end-user's own connection if it has one, else the app's — after the connection's host
//! list is checked. The secret is opened only here, for one request.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::connection::{inject, BrokerError, Connection, ConnectionSecret};
use super::destination::patterns;
use super::oauth::TokenCache;
use super::scrub;
use super::secrets::MasterKeys;
use super::{FetchError, FetchLimits, FetchRequest, FetchResponse, HttpFetcher};
use crate::host::{Fetcher, HostCheck, Tenant};
use crate::store::{ConnectionRow, Store};

/// What binds a sealed secret to its row: a ciphertext copied to another app, name or
/// end-user does not open.
pub fn connection_aad(app_id: &str, name: &str, end_user: &str) -> String {
    format!("{app_id}/connection/{name}/{end_user}")
}

pub struct BrokeredFetcher {
    pub store: Arc<dyn Store>,
    pub keys: Option<Arc<MasterKeys>>,
    pub tokens: Arc<TokenCache>,
    pub http: Arc<HttpFetcher>,
}

impl BrokeredFetcher {
    /// The connection a run of `tenant` sees under `name`, opened.
    pub async fn connection(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<Option<(ConnectionRow, Connection)>, FetchError> {
        let unavailable = |message: String| FetchError::Connection {
            code: "secret_unavailable",
            message,
        };
        let mut row = None;
        if let Some(end_user) = &tenant.end_user {
            row = self
                .store
                .get_connection(&tenant.app_id, name, end_user)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
        }
        if row.is_none() {
            row = self
                .store
                .get_connection(&tenant.app_id, name, "")
                .await
                .map_err(|e| unavailable(e.to_string()))?;
        }
        let Some(row) = row else {
            return Ok(None);
        };
        let keys = self.keys.as_ref().ok_or_else(|| {
            unavailable("secrets are unavailable: the operator has not set ATOLL_MASTER_KEY".into())
        })?;
        let plaintext = keys
            .open(
                &row.sealed,
                &connection_aad(&row.app_id, &row.name, &row.end_user),
            )
            .map_err(|_| {
                unavailable(format!(
                    "connection '{name}' cannot be opened with the current master keys"
                ))
            })?;
        let secret: ConnectionSecret = serde_json::from_slice(&plaintext)
            .map_err(|_| unavailable(format!("connection '{name}' is corrupt")))?;
        let hosts: Vec<String> = row
            .public
            .get("hosts")
            .and_then(|h| serde_json::from_value(h.clone()).ok())
            .unwrap_or_default();
        let allow_http = row
            .public
            .get("allow_http")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let connection = Connection {
            name: name.to_owned(),
            hosts,
            allow_http,
            secret,
        };
        Ok(Some((row, connection)))
    }
}

#[async_trait]
impl Fetcher for BrokeredFetcher {
    async fn fetch(
        &self,
        tenant: &Tenant,
        connection: Option<&str>,
        request: FetchRequest,
        limits: &FetchLimits,
        allow_host: HostCheck,
    ) -> Result<FetchResponse, FetchError> {
        let Some(name) = connection else {
            return self.http.fetch(request, limits, &*allow_host).await;
        };
        let (_, connection) =
            self.connection(tenant, name)
                .await?
                .ok_or_else(|| FetchError::Connection {
                    code: "connection_not_found",
                    message: format!("connection '{name}' does not exist for this app"),
                })?;
        self.send(&connection, request, limits, allow_host).await
    }
}

impl BrokeredFetcher {
    /// Sends `request` with `connection`'s credential: the connection's checks (hosts,
    /// scheme, port) first, then the fetcher's (grant, address policy, pinning); every
    /// error and every byte of the answer goes through the connection's redactor.
    pub async fn send(
        &self,
        connection: &Connection,
        mut request: FetchRequest,
        limits: &FetchLimits,
        allow_host: HostCheck,
    ) -> Result<FetchResponse, FetchError> {
        // Asked for identity so that the body can be scrubbed (decoded anyway if a
        // server compresses regardless).
        request
            .headers
            .retain(|(n, _)| !n.trim().eq_ignore_ascii_case("accept-encoding"));
        request
            .headers
            .push(("accept-encoding".into(), "identity".into()));
        let refused = |e: BrokerError| FetchError::Connection {
            code: e.code(),
            message: e.to_string(),
        };
        // Without its redactor the credential is not sent.
        let redactor = connection
            .redactor(&[])
            .map_err(|e| FetchError::Connection {
                code: "secret_unavailable",
                message: e.to_string(),
            })?;
        let injected = inject(connection, &mut request, &self.tokens, &self.http)
            .await
            .map_err(|e| redactor.fetch_error(refused(e)))?;
        let redactor = connection
            .redactor(&injected)
            .map_err(|e| FetchError::Connection {
                code: "secret_unavailable",
                message: e.to_string(),
            })?;
        // Redirects may not carry the credential beyond the connection's own hosts (and it
        // is dropped when a hop changes origin: scheme, host or port).
        let hosts = patterns(&connection.hosts);
        let allow = move |host: &str| allow_host(host) && super::host_allowed(&hosts, host);
        let mut response = self
            .http
            .fetch(request, limits, &allow)
            .await
            .map_err(|e| redactor.fetch_error(e))?;
        scrub::response(&mut response, &redactor, limits.max_response_bytes)
            .map_err(|e| redactor.fetch_error(e))?;
        Ok(response)
    }
}

#[cfg(test)]
#[path = "brokered_tests.rs"]
mod tests;

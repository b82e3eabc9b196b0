//! The deliverer: each node claims due deliveries from the store, signs them (Standard
//! Webhooks), sends them under the broker's address policy without following redirects,
//! and records every attempt with its outcome.
//!
//! A slow endpoint holds back nobody else: a node sends at most `per_endpoint` deliveries
//! to one endpoint at once and `max_inflight` in all, each attempt bounded by `timeout`;
//! runs never wait for a delivery (they only wrote a row).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, TimeZone, Utc};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::signature::sign_standard;
use crate::broker::addr::AddressPolicy;
use crate::broker::fetch::checked_client_builder;
use crate::broker::resolve::{fixed_addrs, permitted, Lookup, PolicyResolver};
use crate::broker::secrets::MasterKeys;
use crate::ids::now_ms;
use crate::runs::RunView;
use crate::store::{
    AttemptOutcome, ClaimedDelivery, Delivery, DeliveryAttempt, DeliveryClaim, Millis, Store,
    WebhookEndpoint,
};

/// Bytes of an endpoint's answer kept in the delivery log.
const RESPONSE_KEPT: usize = 1024;

/// How long after its start an attempt's lease ends (the attempt itself is bounded by
/// `timeout`): a node that dies mid-send leaves the delivery due again by then.
const LEASE_MARGIN: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct DelivererConfig {
    pub node_id: String,
    /// The wait after each failed attempt; one more attempt than delays in all.
    pub retry_delays: Vec<Duration>,
    /// A 2xx within this is a success.
    pub timeout: Duration,
    pub per_endpoint: usize,
    pub max_inflight: usize,
    /// How often the store is asked for due deliveries.
    pub poll: Duration,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub disable_after: Duration,
}

/// About 8 attempts over a day: now, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_RETRY_DELAYS: &str = "5s,5m,30m,2h,5h,10h,10h";

/// A comma-separated list of durations (`5s,5m,2h`).
pub fn parse_delays(text: &str) -> Result<Vec<Duration>, String> {
    text.split(',')
        .map(|d| humantime::parse_duration(d.trim()).map_err(|e| format!("{d:?}: {e}")))
        .collect()
}

/// The additional authenticated data a webhook endpoint's secret is sealed with.
pub fn secret_aad(endpoint_id: &str) -> String {
    format!("webhook:{endpoint_id}")
}

/// The body of a delivery: the same bytes on every attempt.
pub fn body(delivery: &Delivery) -> Vec<u8> {
    let timestamp = Utc
        .timestamp_millis_opt(delivery.event_at)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    let payload = json!({
        "type": delivery.event.as_str(),
        "timestamp": timestamp,
        "data": RunView::from(delivery.run.clone()),
    });
    payload.to_string().into_bytes()
}

/// The endpoint's signing secrets: the current one, and the previous one while its
/// overlap lasts.
pub fn signing_secrets(
    keys: &MasterKeys,
    endpoint: &WebhookEndpoint,
    now: Millis,
) -> Result<Vec<String>, String> {
    let aad = secret_aad(&endpoint.id);
    let open = |sealed: &str| {
        keys.open(sealed, &aad)
            .map_err(|e| format!("cannot open the endpoint's secret: {e}"))
            .and_then(|b| String::from_utf8(b).map_err(|_| "secret is not text".to_owned()))
    };
    let mut secrets = vec![open(&endpoint.secret)?];
    if let (Some(previous), Some(until)) = (&endpoint.previous_secret, endpoint.previous_until) {
        if until > now {
            secrets.push(open(previous)?);
        }
    }
    Ok(secrets)
}

/// Checks that `url` may receive webhooks: http(s), and a host whose addresses the
/// policy permits (resolved now; the sending client checks again at every delivery).
pub async fn check_destination(resolver: &PolicyResolver, url: &Url) -> Result<(), String> {
    if !matches!(url.scheme(), "https" | "http") {
        return Err("the URL is http:// or https://".into());
    }
    let host = url.host_str().ok_or("the URL has no host")?;
    resolver
        .resolve_checked(host)
        .await
        .map(|_| ())
        .map_err(|e| format!("{e}; webhooks go to public addresses unless the operator allows others (ATOLL_ALLOW_NET)"))
}

pub struct Deliverer {
    store: Arc<dyn Store>,
    keys: Option<Arc<MasterKeys>>,
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    cfg: DelivererConfig,
    /// Deliveries this node is sending, per endpoint.
    busy: Mutex<HashMap<String, usize>>,
    inflight: AtomicUsize,
}

impl Deliverer {
    pub fn new(
        store: Arc<dyn Store>,
        keys: Option<Arc<MasterKeys>>,
        policy: AddressPolicy,
        lookup: Arc<dyn Lookup>,
        cfg: DelivererConfig,
    ) -> Result<Arc<Deliverer>, String> {
        let policy = Arc::new(policy);
        let client = checked_client_builder(policy.clone(), lookup)
            .connect_timeout(cfg.timeout)
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(Arc::new(Deliverer {
            store,
            keys,
            client,
            policy,
            cfg,
            busy: Mutex::new(HashMap::new()),
            inflight: AtomicUsize::new(0),
        }))
    }

    /// Claims and sends until `stop`; attempts under way finish (or their lease lapses).
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.cfg.poll) => {}
            }
            if let Err(e) = self.claim_and_send().await {
                tracing::warn!(error = %e, "webhooks: claiming deliveries failed; retrying");
            }
        }
    }

    async fn claim_and_send(self: &Arc<Self>) -> Result<(), crate::store::StoreError> {
        let free = self
            .cfg
            .max_inflight
            .saturating_sub(self.inflight.load(Ordering::Acquire));
        if free == 0 {
            return Ok(());
        }
        let busy = self.busy.lock().map(|b| b.clone()).unwrap_or_default();
        let now = now_ms();
        let lease_until = now + (self.cfg.timeout + LEASE_MARGIN).as_millis() as i64;
        let claimed = self
            .store
            .claim_deliveries(&DeliveryClaim {
                node: &self.cfg.node_id,
                now,
                lease_until,
                max: free,
                per_endpoint: self.cfg.per_endpoint,
                busy: &busy,
            })
            .await?;
        for delivery in claimed {
            self.enter(&delivery.endpoint.id);
            let this = self.clone();
            tokio::spawn(async move {
                this.deliver(&delivery).await;
                this.leave(&delivery.endpoint.id);
            });
        }
        Ok(())
    }

    fn enter(&self, endpoint: &str) {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut busy) = self.busy.lock() {
            *busy.entry(endpoint.to_owned()).or_default() += 1;
        }
    }

    fn leave(&self, endpoint: &str) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
        if let Ok(mut busy) = self.busy.lock() {
            if let Some(n) = busy.get_mut(endpoint) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    busy.remove(endpoint);
                }
            }
        }
    }

    /// One attempt, recorded with its outcome.
    async fn deliver(&self, claimed: &ClaimedDelivery) {
        let d = &claimed.delivery;
        let at = now_ms();
        let started = Instant::now();
        let answer = self.attempt(claimed, at).await;
        let latency_ms = started.elapsed().as_millis() as i64;
        let number = d.attempts + 1;
        let outcome = match &answer {
            Ok((code, _)) if (200..300).contains(code) => AttemptOutcome::Delivered,
            Ok((410, _)) => AttemptOutcome::Gone,
            _ => match self.cfg.retry_delays.get(d.attempts.max(0) as usize) {
                Some(delay) => AttemptOutcome::Retry(now_ms() + jittered(*delay)),
                None => AttemptOutcome::Exhausted,
            },
        };
        let (status_code, response, error) = match answer {
            Ok((code, text)) => (Some(code), Some(text), None),
            Err(why) => (None, None, Some(why)),
        };
        match outcome {
            AttemptOutcome::Delivered => tracing::info!(
                delivery = %d.id, endpoint = %d.endpoint_id, event = d.event.as_str(),
                attempt = number, latency_ms, "webhook delivered"
            ),
            _ => tracing::warn!(
                delivery = %d.id, endpoint = %d.endpoint_id, event = d.event.as_str(),
                attempt = number, status = ?status_code, error = ?error, ?outcome,
                "webhook attempt failed"
            ),
        }
        let attempt = DeliveryAttempt {
            attempt: number,
            at,
            status_code,
            latency_ms,
            response,
            error,
        };
        let disable_after = self.cfg.disable_after.as_millis() as i64;
        match self
            .store
            .finish_attempt(&self.cfg.node_id, claimed, &attempt, outcome, disable_after)
            .await
        {
            Ok(Some(reason)) => tracing::warn!(
                endpoint = %d.endpoint_id, url = %claimed.endpoint.url, %reason,
                "webhook endpoint disabled"
            ),
            Ok(None) => {}
            // The lease lapses and the delivery is tried again (same webhook-id).
            Err(e) => {
                tracing::warn!(delivery = %d.id, error = %e, "recording a webhook attempt failed")
            }
        }
    }

    /// Sends once: the status and the first KiB of the answer, or why there was none.
    async fn attempt(
        &self,
        claimed: &ClaimedDelivery,
        at: Millis,
    ) -> Result<(u16, String), String> {
        let keys = self
            .keys
            .as_ref()
            .ok_or("cannot sign: the operator has not set ATOLL_MASTER_KEY")?;
        let secrets = signing_secrets(keys, &claimed.endpoint, at)?;
        let url = Url::parse(&claimed.endpoint.url).map_err(|e| format!("bad URL: {e}"))?;
        // Literal addresses never reach the resolver: check them here, every time.
        if let Some(host) = url.host_str() {
            if let Some(addrs) = fixed_addrs(host) {
                permitted(host, addrs, &self.policy).map_err(|e| e.to_string())?;
            }
        }
        let body = body(&claimed.delivery);
        let timestamp = at / 1000;
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let signature = sign_standard(&refs, &claimed.delivery.id, timestamp, &body)
            .ok_or("the endpoint's secret is not a whsec_ secret")?;
        let send = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &claimed.delivery.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send();
        let mut resp = match tokio::time::timeout(self.cfg.timeout, send).await {
            Err(_) => return Err(format!("no answer within {:?}", self.cfg.timeout)),
            Ok(Err(e)) => return Err(describe(&e)),
            Ok(Ok(resp)) => resp,
        };
        let code = resp.status().as_u16();
        let mut kept = Vec::new();
        let read = async {
            while kept.len() < RESPONSE_KEPT {
                match resp.chunk().await {
                    Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                    _ => break,
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
        kept.truncate(RESPONSE_KEPT);
        Ok((code, String::from_utf8_lossy(&kept).into_owned()))
    }
}

/// A reqwest error with its causes (the address refusal is a cause of a connect error).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `delay` ± 20 %, so endpoints that failed together do not retry together.
fn jittered(delay: Duration) -> i64 {
    let mut b = [0u8; 2];
    let unit = match getrandom::getrandom(&mut b) {
        Ok(()) => f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX),
        Err(_) => 0.5,
    };
    (delay.as_millis() as f64 * (0.8 + 0.4 * unit)) as i64
}

/// A new secret sealed for an endpoint: (plaintext shown once, sealed stored).
pub fn new_sealed_secret(keys: &MasterKeys, endpoint_id: &str) -> Result<(String, String), String> {
    let secret = super::signature::new_secret().map_err(|e| format!("no randomness: {e}"))?;
    let sealed = keys
        .seal(secret.as_bytes(), &secret_aad(endpoint_id))
        .map_err(|e| e.to_string())?;
    Ok((secret, sealed))
}

#[cfg(test)]
#[path = "deliver_tests.rs"]
mod tests;

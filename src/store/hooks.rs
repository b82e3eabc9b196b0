//! What the store keeps for webhooks out and triggers in: endpoints, their durable
//! deliveries and attempts, triggers and the run each firing started.
//!
//! Deliveries are written by the store itself, in the transaction of the run's state
//! change they announce (`claim_*` for `run.started`, `finish_run` for the endings): a
//! crash can neither lose one nor announce a change that did not happen.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AuditEvent, Millis, Page, RunRow, RunStatus, StoreResult};

/// An event a webhook endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum WebhookEvent {
    #[serde(rename = "run.started")]
    RunStarted,
    #[serde(rename = "run.waiting")]
    RunWaiting,
    #[serde(rename = "run.succeeded")]
    RunSucceeded,
    #[serde(rename = "run.failed")]
    RunFailed,
    #[serde(rename = "run.timed_out")]
    RunTimedOut,
    #[serde(rename = "run.cancelled")]
    RunCancelled,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 6] = [
        WebhookEvent::RunStarted,
        WebhookEvent::RunWaiting,
        WebhookEvent::RunSucceeded,
        WebhookEvent::RunFailed,
        WebhookEvent::RunTimedOut,
        WebhookEvent::RunCancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::RunStarted => "run.started",
            WebhookEvent::RunWaiting => "run.waiting",
            WebhookEvent::RunSucceeded => "run.succeeded",
            WebhookEvent::RunFailed => "run.failed",
            WebhookEvent::RunTimedOut => "run.timed_out",
            WebhookEvent::RunCancelled => "run.cancelled",
        }
    }

    pub fn parse(name: &str) -> Option<WebhookEvent> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// The event that announces a run reaching `status`.
    pub fn of_status(status: RunStatus) -> Option<WebhookEvent> {
        match status {
            RunStatus::Queued => None,
            RunStatus::Running => Some(WebhookEvent::RunStarted),
            RunStatus::Waiting => Some(WebhookEvent::RunWaiting),
            RunStatus::Succeeded => Some(WebhookEvent::RunSucceeded),
            RunStatus::Failed => Some(WebhookEvent::RunFailed),
            RunStatus::TimedOut => Some(WebhookEvent::RunTimedOut),
            RunStatus::Cancelled => Some(WebhookEvent::RunCancelled),
        }
    }
}

/// An outbound webhook endpoint of an app.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEndpoint {
    pub id: String,
    pub org_id: String,
    pub app_id: String,
    pub url: String,
    pub description: Option<String>,
    /// None: every event.
    pub events: Option<Vec<WebhookEvent>>,
    /// None: every agent of the app.
    pub agents: Option<Vec<String>>,
    /// The signing secret, sealed with the master key.
    pub secret: String,
    /// The secret before the last rotation, sealed; it also signs until `previous_until`.
    pub previous_secret: Option<String>,
    pub previous_until: Option<Millis>,
    pub created_at: Millis,
    /// When the current run of failed attempts began (cleared by a success).
    pub failing_since: Option<Millis>,
    pub disabled_at: Option<Millis>,
    pub disabled_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or in one, while leased).
    Pending,
    Succeeded,
    /// No attempt left, or its endpoint was disabled.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "succeeded" => Some(DeliveryStatus::Succeeded),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One event for one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The `webhook-id`, the same on every attempt.
    pub id: String,
    pub endpoint_id: String,
    pub app_id: String,
    pub event: WebhookEvent,
    pub run_id: String,
    /// The run as it was when the event happened.
    pub run: RunRow,
    pub event_at: Millis,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<Millis>,
    pub created_at: Millis,
}

/// One try at sending a delivery, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeliveryAttempt {
    pub attempt: i32,
    pub at: i64,
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    /// The first KiB of the answer.
    pub response: Option<String>,
    /// Why nothing was answered (refused address, timeout, connection error).
    pub error: Option<String>,
}

/// What an attempt leads to, as the deliverer decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; try again at this time.
    Retry(Millis),
    /// Failed and no attempt is left.
    Exhausted,
    /// The endpoint answered 410 Gone: it is disabled.
    Gone,
}

/// A delivery claimed by a node for one attempt, with what sending it needs.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery: Delivery,
    pub endpoint: WebhookEndpoint,
}

/// What a node asks for when it claims deliveries: at most `max` in all, and per
/// endpoint at most `per_endpoint` minus what `busy` says it already sends there, leased
/// to `node` until `lease_until`.
#[derive(Debug, Clone)]
pub struct DeliveryClaim<'a> {
    pub node: &'a str,
    pub now: Millis,
    pub lease_until: Millis,
    pub max: usize,
    pub per_endpoint: usize,
    pub busy: &'a std::collections::HashMap<String, usize>,
}

/// What a manual retry found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDelivery {
    Scheduled,
    NotFound,
    EndpointDisabled,
    /// A node is sending it right now.
    InFlight,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    Webhook,
    Cron,
}

impl TriggerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Webhook => "webhook",
            TriggerKind::Cron => "cron",
        }
    }
}

/// A trigger of an agent: `config` holds its kind's settings (verify scheme, input
/// pointer, version; or schedule, time zone, input).
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerRow {
    pub id: String,
    pub org_id: String,
    pub app_id: String,
    pub agent: String,
    pub kind: TriggerKind,
    pub config: Value,
    /// The verification secret of a webhook trigger, sealed.
    pub secret: Option<String>,
    pub paused_at: Option<Millis>,
    /// The next scheduled firing of a cron trigger.
    pub next_fire_at: Option<Millis>,
    pub created_at: Millis,
}

/// What makes a triggered run unique: the sender's delivery id, or a cron's scheduled
/// time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    pub trigger_id: String,
    pub key: String,
}

/// What [`HookStore::insert_fired_run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    Started,
    /// The firing had started this run already.
    Existing(String),
    /// The trigger was paused (or deleted) meanwhile: nothing was written.
    Paused,
}

#[async_trait]
pub trait HookStore: Send + Sync {
    async fn create_webhook(&self, endpoint: &WebhookEndpoint) -> StoreResult<()>;
    async fn get_webhook(&self, app_id: &str, id: &str) -> StoreResult<Option<WebhookEndpoint>>;
    /// Newest first.
    async fn list_webhooks(&self, app_id: &str, page: &Page) -> StoreResult<Vec<WebhookEndpoint>>;
    /// Deletes the endpoint with its deliveries; false if none.
    async fn delete_webhook(&self, app_id: &str, id: &str) -> StoreResult<bool>;
    /// Makes `secret` current; the current one keeps signing until `previous_until`.
    async fn rotate_webhook_secret(
        &self,
        app_id: &str,
        id: &str,
        secret: &str,
        previous_until: Millis,
    ) -> StoreResult<bool>;

    /// Leases due deliveries of enabled endpoints to a node (see [`DeliveryClaim`]). Two
    /// nodes never hold the same delivery.
    async fn claim_deliveries(
        &self,
        claim: &DeliveryClaim<'_>,
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Records an attempt of a delivery `node` holds and applies its outcome. A failure
    /// after the endpoint has failed for `disable_after` ms, or a 410, disables the
    /// endpoint (and fails its pending deliveries) with an audit event; returns the
    /// reason when it did. Nothing changes if the lease was lost.
    async fn finish_attempt(
        &self,
        node: &str,
        claimed: &ClaimedDelivery,
        attempt: &DeliveryAttempt,
        outcome: AttemptOutcome,
        disable_after: Millis,
    ) -> StoreResult<Option<String>>;
    /// An endpoint's deliveries, newest first, each with its attempts.
    async fn list_deliveries(
        &self,
        app_id: &str,
        endpoint_id: &str,
        page: &Page,
    ) -> StoreResult<Vec<(Delivery, Vec<DeliveryAttempt>)>>;
    /// Makes a delivery due now again (whatever its status).
    async fn retry_delivery(
        &self,
        app_id: &str,
        endpoint_id: &str,
        delivery_id: &str,
        now: Millis,
    ) -> StoreResult<RetryDelivery>;

    /// Deletes finished deliveries (with their attempts) and firing rows created before
    /// `before`; the number of rows deleted.
    async fn purge_hooks(&self, before: Millis) -> StoreResult<u64>;

    async fn create_trigger(&self, trigger: &TriggerRow) -> StoreResult<()>;
    /// A trigger of one agent of the app.
    async fn get_trigger(
        &self,
        app_id: &str,
        agent: &str,
        id: &str,
    ) -> StoreResult<Option<TriggerRow>>;
    /// A trigger by id alone: for `POST /v1/hooks/{id}`, where the id and the signature
    /// are the only credentials.
    async fn find_trigger(&self, id: &str) -> StoreResult<Option<TriggerRow>>;
    async fn list_triggers(
        &self,
        app_id: &str,
        agent: &str,
        page: &Page,
    ) -> StoreResult<Vec<TriggerRow>>;
    async fn delete_trigger(&self, app_id: &str, agent: &str, id: &str) -> StoreResult<bool>;
    /// Replaces a webhook trigger's sealed secret.
    async fn set_trigger_secret(
        &self,
        app_id: &str,
        agent: &str,
        id: &str,
        secret: &str,
    ) -> StoreResult<bool>;
    /// Pauses (`paused_at` set) or resumes a trigger, setting its next firing.
    async fn set_trigger_paused(
        &self,
        app_id: &str,
        agent: &str,
        id: &str,
        paused_at: Option<Millis>,
        next_fire_at: Option<Millis>,
    ) -> StoreResult<bool>;
    /// Cron triggers not paused whose next firing is at or before `now`.
    async fn due_cron_triggers(&self, now: Millis, limit: u32) -> StoreResult<Vec<TriggerRow>>;
    /// Moves a cron trigger's next firing from `expected` to `next` (None: it never fires
    /// again); false if another node moved it first.
    async fn advance_trigger(
        &self,
        id: &str,
        expected: Millis,
        next: Option<Millis>,
    ) -> StoreResult<bool>;
    /// The run a firing started, if one did.
    async fn firing_run(&self, firing: &Firing) -> StoreResult<Option<String>>;
    /// Inserts a run started by a firing with its firing row and audit event, in one
    /// transaction, while the trigger exists and is not paused. When the firing already
    /// started a run, nothing is written and that run is named.
    async fn insert_fired_run(
        &self,
        run: &RunRow,
        audit: Option<&AuditEvent>,
        firing: &Firing,
    ) -> StoreResult<Fired>;
}

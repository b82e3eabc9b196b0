//! [`HookStore`] and [`DurableStore`] for [`SqlStore`], delegating to `webhooks`,
//! `deliveries`, `triggers` and `durable`.

use async_trait::async_trait;

use super::{deliveries, durable, triggers, webhooks, SqlStore};
use crate::store::*;

#[async_trait]
impl HookStore for SqlStore {
    async fn create_webhook(&self, endpoint: &WebhookEndpoint) -> StoreResult<()> {
        webhooks::create_webhook(&self.pool, endpoint).await
    }
    async fn get_webhook(&self, app_id: &str, id: &str) -> StoreResult<Option<WebhookEndpoint>> {
        webhooks::get_webhook(&self.pool, app_id, id).await
    }
    async fn list_webhooks(&self, app_id: &str, page: &Page) -> StoreResult<Vec<WebhookEndpoint>> {
        webhooks::list_webhooks(&self.pool, app_id, page).await
    }
    async fn delete_webhook(&self, app_id: &str, id: &str) -> StoreResult<bool> {
        webhooks::delete_webhook(&self.pool, app_id, id).await
    }
    async fn rotate_webhook_secret(
        &self,
        app_id: &str,
        id: &str,
        secret: &str,
        previous_until: Millis,
    ) -> StoreResult<bool> {
        webhooks::rotate_webhook_secret(&self.pool, app_id, id, secret, previous_until).await
    }
    async fn claim_deliveries(
        &self,
        claim: &DeliveryClaim<'_>,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        deliveries::claim_deliveries(&self.pool, self.backend, claim).await
    }
    async fn finish_attempt(
        &self,
        node: &str,
        claimed: &ClaimedDelivery,
        attempt: &DeliveryAttempt,
        outcome: AttemptOutcome,
        disable_after: Millis,
    ) -> StoreResult<Option<String>> {
        deliveries::finish_attempt(&self.pool, node, claimed, attempt, outcome, disable_after).await
    }
    async fn list_deliveries(
        &self,
        app_id: &str,
        endpoint_id: &str,
        page: &Page,
    ) -> StoreResult<Vec<(Delivery, Vec<DeliveryAttempt>)>> {
        deliveries::list_deliveries(&self.pool, app_id, endpoint_id, page).await
    }
    async fn retry_delivery(
        &self,
        app_id: &str,
        endpoint_id: &str,
        delivery_id: &str,
        now: Millis,
    ) -> StoreResult<RetryDelivery> {
        deliveries::retry_delivery(&self.pool, app_id, endpoint_id, delivery_id, now).await
    }

    async fn purge_hooks(&self, before: Millis) -> StoreResult<u64> {
        deliveries::purge_hooks(&self.pool, before).await
    }

    async fn create_trigger(&self, trigger: &TriggerRow) -> StoreResult<()> {
        triggers::create_trigger(&self.pool, trigger).await
    }
    async fn get_trigger(
        &self,
        app_id: &str,
        agent: &str,
        id: &str,
    ) -> StoreResult<Option<TriggerRow>> {
        triggers::get_trigger(&self.pool, app_id, agent, id).await
    }
    async fn find_trigger(&self, id: &str) -> StoreResult<Option<TriggerRow>> {
        triggers::find_trigger(&self.pool, id).await
    }
    async fn list_triggers(
        &self,
        app_id: &str,
        agent: &str,
        page: &Page,
    ) -> StoreResult<Vec<TriggerRow>> {
        triggers::list_triggers(&self.pool, app_id, agent, page).await
    }
    async fn delete_trigger(&self, app_id: &str, agent: &str, id: &str) -> StoreResult<bool> {
        triggers::delete_trigger(&self.pool, app_id, agent, id).await
    }
    async fn set_trigger_secret(
        &self,
        app_id: &str,
        agent: &str,
        id: &str,
        secret: &str,
    ) -> StoreResult<bool> {
        triggers::set_trigger_secret(&self.pool, app_id, agent, id, secret).await
    }
    async fn set_trigger_paused(
        &self,
        app_id: &str,
        agent: &str,
        id: &str,
        paused_at: Option<Millis>,
        next_fire_at: Option<Millis>,
    ) -> StoreResult<bool> {
        triggers::set_trigger_paused(&self.pool, app_id, agent, id, paused_at, next_fire_at).await
    }
    async fn due_cron_triggers(&self, now: Millis, limit: u32) -> StoreResult<Vec<TriggerRow>> {
        triggers::due_cron_triggers(&self.pool, now, limit).await
    }
    async fn advance_trigger(
        &self,
        id: &str,
        expected: Millis,
        next: Option<Millis>,
    ) -> StoreResult<bool> {
        triggers::advance_trigger(&self.pool, id, expected, next).await
    }
    async fn firing_run(&self, firing: &Firing) -> StoreResult<Option<String>> {
        triggers::firing_run(&self.pool, firing).await
    }
    async fn insert_fired_run(
        &self,
        run: &RunRow,
        audit: Option<&AuditEvent>,
        firing: &Firing,
    ) -> StoreResult<Fired> {
        triggers::insert_fired_run(&self.pool, run, audit, firing).await
    }
}

#[async_trait]
impl DurableStore for SqlStore {
    async fn append_journal(&self, entries: &[JournalEntry], attempt: i32) -> StoreResult<()> {
        durable::append_journal(&self.pool, entries, attempt).await
    }
    async fn replace_journal_answer(
        &self,
        run_id: &str,
        seq: i64,
        answer: &[u8],
        attempt: i32,
    ) -> StoreResult<()> {
        durable::replace_journal_answer(&self.pool, run_id, seq, answer, attempt).await
    }
    async fn journal(&self, run_id: &str) -> StoreResult<Vec<JournalEntry>> {
        durable::journal(&self.pool, run_id).await
    }
    async fn journal_index(
        &self,
        run_id: &str,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<JournalIndexEntry>> {
        durable::journal_index(&self.pool, run_id, after, limit).await
    }
    async fn journal_length(&self, run_id: &str) -> StoreResult<i64> {
        durable::journal_length(&self.pool, run_id).await
    }
    async fn add_signal(
        &self,
        signal: &Signal,
        max_open: i64,
        max_open_bytes: i64,
    ) -> StoreResult<bool> {
        durable::add_signal(&self.pool, signal, max_open, max_open_bytes).await
    }
    async fn take_signal(
        &self,
        run_id: &str,
        name: &str,
        seq: i64,
    ) -> StoreResult<Option<serde_json::Value>> {
        durable::take_signal(&self.pool, run_id, name, seq).await
    }
    async fn suspend_run(&self, run_id: &str, attempt: i32, wait: &RunWait) -> StoreResult<bool> {
        durable::suspend_run(&self.pool, run_id, attempt, wait).await
    }
    async fn run_wait(&self, run_id: &str) -> StoreResult<Option<RunWait>> {
        durable::run_wait(&self.pool, run_id).await
    }
    async fn resume_run(&self, run_id: &str) -> StoreResult<bool> {
        durable::resume_run(&self.pool, run_id).await
    }
    async fn unresume_run(&self, run_id: &str) -> StoreResult<bool> {
        durable::unresume_run(&self.pool, run_id).await
    }
    async fn open_signals(&self, run_id: &str) -> StoreResult<i64> {
        durable::open_signals(&self.pool, run_id).await
    }
    async fn due_waits(&self, now: Millis, limit: u32) -> StoreResult<Vec<(String, String)>> {
        durable::due_waits(&self.pool, now, limit).await
    }
    async fn count_waiting(&self, app_id: &str) -> StoreResult<i64> {
        durable::count_waiting(&self.pool, app_id).await
    }
    async fn set_wake(&self, run_id: &str, wake_at: Millis) -> StoreResult<()> {
        durable::set_wake(&self.pool, run_id, wake_at).await
    }
}

//! `FaultyStore` as a [`HookStore`]: webhook and trigger rows pass through untouched.

use async_trait::async_trait;
use atoll::store::*;

use super::FaultyStore;

#[async_trait]
impl HookStore for FaultyStore {
    async fn create_webhook(&self, endpoint: &WebhookEndpoint) -> StoreResult<()> {
        self.inner.create_webhook(endpoint).await
    }
    async fn get_webhook(&self, app_id: &str, id: &str) -> StoreResult<Option<WebhookEndpoint>> {
        self.inner.get_webhook(app_id, id).await
    }
    async fn list_webhooks(&self, app_id: &str, page: &Page) -> StoreResult<Vec<WebhookEndpoint>> {
        self.inner.list_webhooks(app_id, page).await
    }
    async fn delete_webhook(&self, app_id: &str, id: &str) -> StoreResult<bool> {
        self.inner.delete_webhook(app_id, id).await
    }
    async fn rotate_webhook_secret(
        &self,
        app_id: &str,
        id: &str,
        secret: &str,
        previous_until: Millis,
    ) -> StoreResult<bool> {
        self.inner
            .rotate_webhook_secret(app_id, id, secret, previous_until)
            .await
    }
    async fn claim_deliveries(
        &self,
        claim: &DeliveryClaim<'_>,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        self.inner.claim_deliveries(claim).await
    }
    async fn finish_attempt(
        &self,
        node: &str,
        claimed: &ClaimedDelivery,
        attempt: &DeliveryAttempt,
        outcome: AttemptOutcome,
        disable_after: Millis,
    ) -> StoreResult<Option<String>> {
        self.inner
            .finish_attempt(node, claimed, attempt, outcome, disable_after)
            .await
    }
    async fn list_deliveries(
        &self,
        app_id: &str,
        endpoint_id: &str,
        page: &Page,
    ) -> StoreResult<Vec<(Delivery, Vec<DeliveryAttempt>)>> {
        self.inner.list_deliveries(app_id, endpoint_id, page).await
    }
    async fn retry_delivery(
        &self,
        app_id: &str,
        endpoint_id: &str,
        delivery_id: &str,
        now: Millis,
    ) -> StoreResult<RetryDelivery> {
        self.inner
            .retry_delivery(app_id, endpoint_id, delivery_id, now)
            .await
    }

    async fn purge_hooks(&self, before: Millis) -> StoreResult<u64> {
        self.inner.purge_hooks(before).await
    }

    async fn create_trigger(&self, trigger: &TriggerRow) -> StoreResult<()> {
        self.inner.create_trigger(trigger).await
    }
    async fn get_trigger(
        &self,
        app_id: &str,
        agent: &str,
        id: &str,
    ) -> StoreResult<Option<TriggerRow>> {
        self.inner.get_trigger(app_id, agent, id).await
    }
    async fn find_trigger(&self, id: &str) -> StoreResult<Option<TriggerRow>> {
        self.inner.find_trigger(id).await
    }
    async fn list_triggers(
        &self,
        app_id: &str,
        agent: &str,
        page: &Page,
    ) -> StoreResult<Vec<TriggerRow>> {
        self.inner.list_triggers(app_id, agent, page).await
    }
    async fn delete_trigger(&self, app_id: &str, agent: &str, id: &str) -> StoreResult<bool> {
        self.inner.delete_trigger(app_id, agent, id).await
    }
    async fn set_trigger_secret(
        &self,
        app_id: &str,
        agent: &str,
        id: &str,
        secret: &str,
    ) -> StoreResult<bool> {
        self.inner
            .set_trigger_secret(app_id, agent, id, secret)
            .await
    }
    async fn set_trigger_paused(
        &self,
        app_id: &str,
        agent: &str,
        id: &str,
        paused_at: Option<Millis>,
        next_fire_at: Option<Millis>,
    ) -> StoreResult<bool> {
        self.inner
            .set_trigger_paused(app_id, agent, id, paused_at, next_fire_at)
            .await
    }
    async fn due_cron_triggers(&self, now: Millis, limit: u32) -> StoreResult<Vec<TriggerRow>> {
        self.inner.due_cron_triggers(now, limit).await
    }
    async fn advance_trigger(
        &self,
        id: &str,
        expected: Millis,
        next: Option<Millis>,
    ) -> StoreResult<bool> {
        self.inner.advance_trigger(id, expected, next).await
    }
    async fn firing_run(&self, firing: &Firing) -> StoreResult<Option<String>> {
        self.inner.firing_run(firing).await
    }
    async fn insert_fired_run(
        &self,
        run: &RunRow,
        audit: Option<&AuditEvent>,
        firing: &Firing,
    ) -> StoreResult<Fired> {
        self.inner.insert_fired_run(run, audit, firing).await
    }
}

#[async_trait]
impl DurableStore for FaultyStore {
    async fn append_journal(&self, entries: &[JournalEntry], attempt: i32) -> StoreResult<()> {
        self.inner.append_journal(entries, attempt).await
    }
    async fn replace_journal_answer(
        &self,
        run_id: &str,
        seq: i64,
        answer: &[u8],
        attempt: i32,
    ) -> StoreResult<()> {
        self.inner
            .replace_journal_answer(run_id, seq, answer, attempt)
            .await
    }
    async fn journal(&self, run_id: &str) -> StoreResult<Vec<JournalEntry>> {
        self.inner.journal(run_id).await
    }
    async fn journal_index(
        &self,
        run_id: &str,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<JournalIndexEntry>> {
        self.inner.journal_index(run_id, after, limit).await
    }
    async fn journal_length(&self, run_id: &str) -> StoreResult<i64> {
        self.inner.journal_length(run_id).await
    }
    async fn add_signal(
        &self,
        signal: &Signal,
        max_open: i64,
        max_open_bytes: i64,
    ) -> StoreResult<bool> {
        self.inner
            .add_signal(signal, max_open, max_open_bytes)
            .await
    }
    async fn take_signal(
        &self,
        run_id: &str,
        name: &str,
        seq: i64,
    ) -> StoreResult<Option<serde_json::Value>> {
        self.inner.take_signal(run_id, name, seq).await
    }
    async fn suspend_run(&self, run_id: &str, attempt: i32, wait: &RunWait) -> StoreResult<bool> {
        self.pause("suspend_run").await;
        self.inner.suspend_run(run_id, attempt, wait).await
    }
    async fn run_wait(&self, run_id: &str) -> StoreResult<Option<RunWait>> {
        self.inner.run_wait(run_id).await
    }
    async fn resume_run(&self, run_id: &str) -> StoreResult<bool> {
        self.inner.resume_run(run_id).await
    }
    async fn unresume_run(&self, run_id: &str) -> StoreResult<bool> {
        self.inner.unresume_run(run_id).await
    }
    async fn open_signals(&self, run_id: &str) -> StoreResult<i64> {
        self.inner.open_signals(run_id).await
    }
    async fn due_waits(&self, now: Millis, limit: u32) -> StoreResult<Vec<(String, String)>> {
        self.inner.due_waits(now, limit).await
    }
    async fn count_waiting(&self, app_id: &str) -> StoreResult<i64> {
        self.inner.count_waiting(app_id).await
    }
    async fn set_wake(&self, run_id: &str, wake_at: Millis) -> StoreResult<()> {
        self.inner.set_wake(run_id, wake_at).await
    }
}

//! Fan-out through Redis pub/sub: `PUBLISH <prefix>:run:<run_id>`, and one shared
//! subscriber connection per node that hands messages to the node's local [`Hub`].
//!
//! One connection per node, not one per subscription: a node may serve thousands of SSE
//! streams, and each would otherwise hold a Redis connection and pay a connect on every
//! subscribe. The cost is bookkeeping: a run is SUBSCRIBEd when its first local subscriber
//! arrives and UNSUBSCRIBEd when its last leaves. All of those commands go through one
//! control task, so a leave and a re-join of the same run can never cross.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::{mpsc, oneshot};

use super::memory::{live_stream, Hub};
use super::{BusError, BusEvent, EventBus, SUBSCRIBER_BUFFER};

/// Calls sit on the request path: while Redis is away each one waits for a single quick
/// reconnect try (about two seconds at worst), then fails, instead of queueing behind the
/// crate's default backoff of ten seconds or so.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500))
}

/// Work for the control task, which alone subscribes and unsubscribes.
enum Control {
    Join {
        run_id: String,
        reply: oneshot::Sender<Result<BoxStream<'static, BusEvent>, BusError>>,
    },
    /// A subscriber left, or a message came for a run nobody here listens to.
    Leave(String),
}

/// Run events shared by every node through one Redis.
///
/// Pub/sub is fire-and-forget: events published while this node's subscriber connection is
/// down are lost to it, so on a disconnection every live stream on this node is ended (the
/// connection itself comes back on its own, and callers resubscribe).
#[derive(Clone)]
pub struct RedisBus {
    publisher: ConnectionManager,
    /// Only the control task uses it; kept here so tests can find its connection.
    #[cfg_attr(not(test), allow(dead_code))]
    subscriber: ConnectionManager,
    control: mpsc::UnboundedSender<Control>,
    prefix: Arc<str>,
}

impl RedisBus {
    /// Connects the publisher and this node's subscriber connection (RESP3, needs Redis 6+);
    /// channels are named `<prefix>:run:<run_id>`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BusError> {
        let info = url.into_connection_info()?;
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let publisher =
            ConnectionManager::new_with_config(Client::open(info.clone())?, manager_config())
                .await?;

        let hub = Arc::new(Hub::new(SUBSCRIBER_BUFFER));
        let (control, requests) = mpsc::unbounded_channel();
        let pushes = Pushes {
            hub: hub.clone(),
            channel_prefix: channel(prefix, ""),
            // Weak: the connection owns this sender, and a strong one would keep the
            // control task (which owns the connection) alive forever.
            control: control.downgrade(),
        };
        // No automatic resubscription: after a reconnect the hub starts empty too.
        let config = manager_config().set_push_sender(move |push| pushes.handle(push));
        let client = Client::open(info.set_redis_settings(resp3))?;
        let subscriber = ConnectionManager::new_with_config(client, config).await?;

        let weak = control.downgrade();
        tokio::spawn(run_control(
            subscriber.clone(),
            hub,
            prefix.to_owned(),
            requests,
            weak,
        ));
        Ok(RedisBus {
            publisher,
            subscriber,
            control,
            prefix: prefix.into(),
        })
    }

    /// The Redis `CLIENT ID` of this node's subscriber connection.
    #[cfg(test)]
    pub(crate) async fn subscriber_id(&self) -> Result<i64, BusError> {
        let mut conn = self.subscriber.clone();
        Ok(redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut conn)
            .await?)
    }
}

fn channel(prefix: &str, run_id: &str) -> String {
    format!("{prefix}:run:{run_id}")
}

/// Handles what the subscriber connection pushes; must not block. The redis crate forwards
/// pushes through a task of its own, so they can trail command replies: a message sent just
/// before a leave and re-join of a run may reach the new subscriber (hence dedupe by seq).
struct Pushes {
    hub: Arc<Hub>,
    channel_prefix: String,
    control: mpsc::WeakUnboundedSender<Control>,
}

impl Pushes {
    fn handle(&self, push: PushInfo) -> Result<(), Infallible> {
        match push.kind {
            PushKind::Message => self.message(&push.data),
            PushKind::Disconnection => {
                let ended = self.hub.close_all();
                if ended > 0 {
                    tracing::warn!(
                        ended,
                        "lost the Redis subscriber connection; ended live run streams"
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn message(&self, data: &[Value]) {
        let [Value::BulkString(channel), Value::BulkString(payload)] = data else {
            return;
        };
        let Some(run_id) = std::str::from_utf8(channel)
            .ok()
            .and_then(|c| c.strip_prefix(&self.channel_prefix))
        else {
            return;
        };
        let event = match serde_json::from_slice::<BusEvent>(payload) {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(%run_id, %err, "dropped an undecodable run event");
                return;
            }
        };
        if !self.hub.deliver(run_id, event) {
            // Nobody here listens (a leave raced this message, or a subscription outlived a
            // reconnect): let the control task unsubscribe if that still holds.
            if let Some(control) = self.control.upgrade() {
                let _ = control.send(Control::Leave(run_id.to_owned()));
            }
        }
    }
}

/// Applies joins and leaves one at a time, so the hub and the connection's subscriptions
/// agree. Ends when every `RedisBus` clone is gone (streams hold only weak senders), which
/// drops the connection and the hub and so ends any streams left.
async fn run_control(
    mut conn: ConnectionManager,
    hub: Arc<Hub>,
    prefix: String,
    mut requests: mpsc::UnboundedReceiver<Control>,
    control: mpsc::WeakUnboundedSender<Control>,
) {
    while let Some(request) = requests.recv().await {
        match request {
            Control::Join { run_id, reply } => {
                let (receiver, created) = hub.join(&run_id);
                // The stream is built here so that a caller who stops waiting drops a
                // stream whose leave still reaches this task.
                let control = control.clone();
                let id = run_id.clone();
                let stream = live_stream(&run_id, receiver, move || {
                    if let Some(control) = control.upgrade() {
                        let _ = control.send(Control::Leave(id));
                    }
                });
                let joined = if created {
                    match conn.subscribe(channel(&prefix, &run_id)).await {
                        Ok(()) => Ok(stream),
                        // Dropping the stream queues a leave, which undoes the join.
                        Err(err) => Err(BusError::from(err)),
                    }
                } else {
                    Ok(stream)
                };
                let _ = reply.send(joined);
            }
            Control::Leave(run_id) => {
                if hub.leave_if_idle(&run_id) {
                    if let Err(err) = conn.unsubscribe(channel(&prefix, &run_id)).await {
                        tracing::warn!(%run_id, %err, "could not unsubscribe from a run");
                    }
                }
            }
        }
    }
}

#[async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, event: &BusEvent) -> Result<(), BusError> {
        let payload = serde_json::to_string(event)?;
        let mut conn = self.publisher.clone();
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel(&self.prefix, &event.run_id))
            .arg(payload)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn subscribe(&self, run_id: &str) -> Result<BoxStream<'static, BusEvent>, BusError> {
        let (reply, joined) = oneshot::channel();
        let join = Control::Join {
            run_id: run_id.to_owned(),
            reply,
        };
        self.control.send(join).map_err(|_| BusError::Closed)?;
        joined.await.map_err(|_| BusError::Closed)?
    }
}

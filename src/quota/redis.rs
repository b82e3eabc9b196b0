//! Quotas in Redis: each check is one Lua script, so it is atomic across all nodes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use super::{span, Decision, QuotaError, Quotas};

/// Counts a hit unless the window is full; starts the window on its first counted hit.
/// Returns {allowed, count, ms until the window resets}.
const HIT: &str = r"
local limit = tonumber(ARGV[1])
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local allowed = 0
if count < limit then
  count = redis.call('INCR', KEYS[1])
  allowed = 1
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  -- no key (limit 0) or a key that lost its expiry: give it one whole window
  if allowed == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  ttl = tonumber(ARGV[2])
end
return {allowed, count, ttl}
";

/// Adds to a budget; starts the window on the first add. Returns the new total.
const ADD: &str = r"
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return total
";

/// Reads a budget and its time left together. Returns {total, ms until reset or -1}.
const BUDGET: &str = r"
local total = tonumber(redis.call('GET', KEYS[1]) or '0')
return {total, redis.call('PTTL', KEYS[1])}
";

/// A sorted set of holder → expiry (ms, Redis clock). Drops expired holders, then renews
/// the caller's slot or takes a free one. Returns {allowed, held, ms until one frees}.
const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
local mine = redis.call('ZSCORE', KEYS[1], ARGV[1])
if mine or held < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  if not mine then held = held + 1 end
  -- the set lives as long as its longest slot, so an abandoned key goes away on its own
  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
  return {1, held, 0}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then return {0, held, ttl} end
return {0, held, tonumber(first[2]) - now}
";

/// Quotas shared by every node through one Redis.
///
/// Uses a [`ConnectionManager`]: one multiplexed connection that reconnects by itself;
/// calls made while Redis is away fail fast with [`QuotaError`] instead of hanging.
#[derive(Clone)]
pub struct RedisQuotas {
    conn: ConnectionManager,
    prefix: Arc<str>,
    scripts: Arc<Scripts>,
}

struct Scripts {
    hit: Script,
    add: Script,
    budget: Script,
    acquire: Script,
}

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

impl RedisQuotas {
    /// Connects to `url`; every key is put under `prefix` (`<prefix>:rate:<key>`,
    /// `<prefix>:budget:<key>`, `<prefix>:slots:<key>`).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, QuotaError> {
        let conn = ConnectionManager::new_with_config(Client::open(url)?, manager_config()).await?;
        Ok(RedisQuotas {
            conn,
            prefix: prefix.into(),
            scripts: Arc::new(Scripts {
                hit: Script::new(HIT),
                add: Script::new(ADD),
                budget: Script::new(BUDGET),
                acquire: Script::new(ACQUIRE),
            }),
        })
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}:{kind}:{key}", self.prefix)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(span(d).as_millis()).unwrap_or(u64::MAX)
}

/// Script replies are signed; negative never means anything but "none" here.
fn duration_ms(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait]
impl Quotas for RedisQuotas {
    async fn hit(&self, key: &str, limit: u64, window: Duration) -> Result<Decision, QuotaError> {
        let mut conn = self.conn.clone();
        let (allowed, used, ttl): (i64, i64, i64) = self
            .scripts
            .hit
            .key(self.key("rate", key))
            .arg(limit)
            .arg(millis(window))
            .invoke_async(&mut conn)
            .await?;
        Ok(Decision::new(
            allowed == 1,
            limit,
            count(used),
            duration_ms(ttl),
        ))
    }

    async fn add(&self, key: &str, amount: u64, window: Duration) -> Result<u64, QuotaError> {
        let mut conn = self.conn.clone();
        let total: i64 = self
            .scripts
            .add
            .key(self.key("budget", key))
            .arg(amount)
            .arg(millis(window))
            .invoke_async(&mut conn)
            .await?;
        Ok(count(total))
    }

    async fn check_budget(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
    ) -> Result<Decision, QuotaError> {
        let mut conn = self.conn.clone();
        let (used, ttl): (i64, i64) = self
            .scripts
            .budget
            .key(self.key("budget", key))
            .invoke_async(&mut conn)
            .await?;
        let used = count(used);
        let until_reset = if ttl < 0 {
            span(window)
        } else {
            duration_ms(ttl)
        };
        Ok(Decision::new(used < limit, limit, used, until_reset))
    }

    async fn acquire_slot(
        &self,
        key: &str,
        holder: &str,
        limit: u64,
        ttl: Duration,
    ) -> Result<Decision, QuotaError> {
        let mut conn = self.conn.clone();
        let (allowed, held, wait): (i64, i64, i64) = self
            .scripts
            .acquire
            .key(self.key("slots", key))
            .arg(holder)
            .arg(limit)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await?;
        Ok(Decision::new(
            allowed == 1,
            limit,
            count(held),
            duration_ms(wait),
        ))
    }

    async fn release_slot(&self, key: &str, holder: &str) -> Result<(), QuotaError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("ZREM")
            .arg(self.key("slots", key))
            .arg(holder)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), QuotaError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

//! The child's side of the host services: each trait of [`crate::host`] as a call over
//! the channel. A proxy is made per run, so the server knows whose call it is; the
//! server, not the proxy, decides the tenant and checks the grant.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::protocol::{Answer, FetchFailure, HostRequest, Json, MemoryAction, ToServer};
use crate::broker::budget::{self, OverBudget};
use crate::broker::{FetchError, FetchLimits, FetchRequest, FetchResponse};
use crate::host::{
    ChatRequest, ChatResponse, DeltaSink, EventSink, Fetcher, HostCheck, HostError, HostServices,
    LlmClient, MemoryNamespace, MemoryStore, RunClock, Tenant, ToolInvoker, WaitRequest, Waiter,
};
use crate::sandbox::shared::lock;
use crate::sandbox::RunEvent;

struct Pending {
    reply: oneshot::Sender<(Answer, bool, i64)>,
    deltas: Option<DeltaSink>,
}

/// The child's end of the channel, shared by every run it hosts.
pub struct Link {
    out: mpsc::UnboundedSender<ToServer>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_call: AtomicU64,
}

/// Removes a call's entry when its caller stops waiting (the run was terminated).
struct CallGuard<'a>(&'a Link, u64);

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        lock(&self.0.pending).remove(&self.1);
    }
}

impl Link {
    pub fn new(out: mpsc::UnboundedSender<ToServer>) -> Arc<Link> {
        Arc::new(Link {
            out,
            pending: Mutex::new(HashMap::new()),
            next_call: AtomicU64::new(1),
        })
    }

    pub fn send(&self, message: ToServer) -> bool {
        self.out.send(message).is_ok()
    }

    /// A reply from the server.
    pub fn answer(&self, call: u64, answer: Answer, over_budget: bool, at: i64) {
        if let Some(pending) = lock(&self.pending).remove(&call) {
            let _ = pending.reply.send((answer, over_budget, at));
        }
    }

    /// A delta of an LLM call in flight.
    pub fn delta(&self, call: u64, text: &str) {
        let sink = lock(&self.pending)
            .get(&call)
            .and_then(|p| p.deltas.clone());
        if let Some(sink) = sink {
            sink(text);
        }
    }

    /// A new call id.
    fn next_call(&self) -> u64 {
        self.next_call.fetch_add(1, Ordering::Relaxed)
    }

    async fn call(
        &self,
        run: &str,
        request: HostRequest,
        deltas: Option<DeltaSink>,
    ) -> Result<(Answer, i64), HostError> {
        self.call_as(self.next_call(), run, request, deltas).await
    }

    async fn call_as(
        &self,
        call: u64,
        run: &str,
        request: HostRequest,
        deltas: Option<DeltaSink>,
    ) -> Result<(Answer, i64), HostError> {
        let (reply, answer) = oneshot::channel();
        lock(&self.pending).insert(call, Pending { reply, deltas });
        let _guard = CallGuard(self, call);
        let sent = self.send(ToServer::Call {
            call,
            run: run.to_owned(),
            request,
        });
        let gone = || {
            HostError::new(
                "sandbox_unavailable",
                "the server closed the sandbox channel",
            )
        };
        if !sent {
            return Err(gone());
        }
        let (answer, over_budget, at) = answer.await.map_err(|_| gone())?;
        if over_budget {
            // The server's buffers for this call went over the run's budget: the run
            // ends `memory_limit`, as if the bytes had been held here.
            if let Some(memory) = budget::current() {
                memory.mark_exceeded();
            }
        }
        Ok((answer, at))
    }

    /// The host services of one run; with a clock, its time follows the answers' times.
    pub fn services(self: &Arc<Self>, run: &str, clock: Option<Arc<RunClock>>) -> HostServices {
        let proxy = Arc::new(Proxy {
            link: self.clone(),
            run: run.to_owned(),
            clock: clock.clone(),
            timers: Mutex::new(TimerCalls::default()),
        });
        HostServices {
            memory: proxy.clone(),
            tools: proxy.clone(),
            llm: proxy.clone(),
            fetcher: proxy.clone(),
            events: proxy.clone(),
            waits: proxy,
            clock,
        }
    }
}

/// Error codes are `&'static str` on the host side; the few distinct ones a server sends
/// are interned once.
pub fn intern(code: &str) -> &'static str {
    static CODES: OnceLock<Mutex<std::collections::HashSet<&'static str>>> = OnceLock::new();
    let mut codes = lock(CODES.get_or_init(Default::default));
    if let Some(known) = codes.get(code) {
        return known;
    }
    let leaked: &'static str = Box::leak(code.to_owned().into_boxed_str());
    codes.insert(leaked);
    leaked
}

struct Proxy {
    link: Arc<Link>,
    run: String,
    clock: Option<Arc<RunClock>>,
    timers: Mutex<TimerCalls>,
}

/// The calls serving a run's JS timers, by the run's id for each timer.
#[derive(Default)]
struct TimerCalls {
    pending: HashMap<u32, u64>,
    /// Lately answered: a timer the run clears after its firing came, but before its
    /// callback ran, was journaled as fired, and the server must hear of the clear.
    fired: std::collections::VecDeque<(u32, u64)>,
}

/// As many answered timers as the server remembers (see `remote_run::Timers`).
const FIRED_KEPT: usize = 1_000;

impl Proxy {
    /// A call's answer, the run's clock moved to when it was given.
    async fn answered(
        &self,
        request: HostRequest,
        deltas: Option<DeltaSink>,
    ) -> Result<Answer, HostError> {
        let (answer, at) = self.link.call(&self.run, request, deltas).await?;
        if let Some(clock) = &self.clock {
            clock.advance(at);
        }
        Ok(answer)
    }

    async fn value(
        &self,
        request: HostRequest,
        deltas: Option<DeltaSink>,
    ) -> Result<Value, HostError> {
        match self.answered(request, deltas).await? {
            Answer::Value(json) => json
                .parse()
                .map_err(|_| HostError::new("internal", "the server's answer is not JSON")),
            Answer::Refused { code, message } => Err(HostError::new(intern(&code), message)),
            _ => Err(HostError::new(
                "internal",
                "unexpected answer from the server",
            )),
        }
    }

    async fn memory(
        &self,
        action: MemoryAction,
        ns: &MemoryNamespace,
        key: &str,
        value: Option<Value>,
        limit: usize,
    ) -> Result<Value, HostError> {
        let request = HostRequest::Memory {
            action,
            scope: ns.scope,
            key: key.to_owned(),
            value: value.as_ref().map(Json::of),
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
        };
        self.value(request, None).await
    }
}

#[async_trait]
impl MemoryStore for Proxy {
    async fn get(&self, ns: &MemoryNamespace, key: &str) -> Result<Option<Value>, HostError> {
        let value = self.memory(MemoryAction::Get, ns, key, None, 0).await?;
        Ok((!value.is_null()).then_some(value))
    }
    async fn set(&self, ns: &MemoryNamespace, key: &str, value: Value) -> Result<(), HostError> {
        self.memory(MemoryAction::Set, ns, key, Some(value), 0)
            .await
            .map(|_| ())
    }
    async fn delete(&self, ns: &MemoryNamespace, key: &str) -> Result<bool, HostError> {
        let deleted = self.memory(MemoryAction::Delete, ns, key, None, 0).await?;
        Ok(deleted.as_bool().unwrap_or(false))
    }
    async fn list(
        &self,
        ns: &MemoryNamespace,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, HostError> {
        let keys = self
            .memory(MemoryAction::List, ns, prefix, None, limit)
            .await?;
        serde_json::from_value(keys).map_err(|_| HostError::new("internal", "bad key list"))
    }
}

#[async_trait]
impl Waiter for Proxy {
    async fn wait(&self, _tenant: &Tenant, request: WaitRequest) -> Result<Value, HostError> {
        let request = HostRequest::Wait {
            request: Json::of(&request),
        };
        self.value(request, None).await
    }

    async fn timer(&self, id: u32, ms: u64) -> Result<(), HostError> {
        let at = self
            .clock
            .as_ref()
            .map_or_else(crate::ids::now_ms, |c| c.now_ms());
        let call = self.link.next_call();
        {
            let mut timers = lock(&self.timers);
            // A `setInterval` re-arms from the handler of its last tick: that tick was
            // taken by the run, a clear from now on is this call's.
            timers.fired.retain(|(i, _)| *i != id);
            timers.pending.insert(id, call);
        }
        let request = HostRequest::Timer { ms, at };
        let answered = self.link.call_as(call, &self.run, request, None).await;
        {
            let mut timers = lock(&self.timers);
            timers.pending.remove(&id);
            if timers.fired.len() >= FIRED_KEPT {
                timers.fired.pop_front();
            }
            timers.fired.push_back((id, call));
        }
        let (answer, at) = answered?;
        if let Some(clock) = &self.clock {
            clock.advance(at);
        }
        match answer {
            Answer::Value(_) => Ok(()),
            Answer::Refused { code, message } => Err(HostError::new(intern(&code), message)),
            _ => Err(HostError::new(
                "internal",
                "unexpected answer from the server",
            )),
        }
    }

    fn clear_timer(&self, id: u32) {
        let call = {
            let mut timers = lock(&self.timers);
            let fired = timers.fired.iter().rposition(|(i, _)| *i == id);
            timers.pending.remove(&id).or_else(|| {
                fired
                    .and_then(|i| timers.fired.remove(i))
                    .map(|(_, call)| call)
            })
        };
        if let Some(call) = call {
            self.link.send(ToServer::ClearTimer {
                run: self.run.clone(),
                call,
            });
        }
    }
}

#[async_trait]
impl ToolInvoker for Proxy {
    async fn call(&self, _tenant: &Tenant, name: &str, args: Value) -> Result<Value, HostError> {
        let request = HostRequest::Tool {
            name: name.to_owned(),
            args: Json::of(&args),
        };
        self.value(request, None).await
    }
}

#[async_trait]
impl LlmClient for Proxy {
    async fn chat(
        &self,
        _tenant: &Tenant,
        request: ChatRequest,
        deltas: DeltaSink,
    ) -> Result<ChatResponse, HostError> {
        let request = HostRequest::Llm {
            request: Json::of(&request),
        };
        let answer = self.value(request, Some(deltas)).await?;
        serde_json::from_value(answer)
            .map_err(|_| HostError::new("internal", "the server's chat answer is malformed"))
    }
}

#[async_trait]
impl Fetcher for Proxy {
    async fn fetch(
        &self,
        _tenant: &Tenant,
        connection: Option<&str>,
        request: FetchRequest,
        _limits: &FetchLimits,
        _allow_host: HostCheck,
    ) -> Result<FetchResponse, FetchError> {
        let call = HostRequest::Fetch {
            connection: connection.map(str::to_owned),
            method: request.method,
            url: request.url.to_string(),
            headers: request.headers,
            body: request.body.map(|b| b.to_vec()),
            redirect: request.redirect,
        };
        let answer = self
            .answered(call, None)
            .await
            .map_err(|e| FetchError::Network(e.message))?;
        match answer {
            Answer::Fetched(f) => Ok(FetchResponse {
                status: f.status,
                status_text: f.status_text,
                headers: f.headers,
                url: f.url,
                body: f.body.into(),
                redirected: f.redirected,
            }),
            Answer::FetchFailed(FetchFailure::TooLarge { limit }) => {
                Err(FetchError::TooLarge { limit })
            }
            Answer::FetchFailed(FetchFailure::OverBudget { limit_mb }) => {
                Err(FetchError::OverBudget(OverBudget { limit_mb }))
            }
            Answer::FetchFailed(FetchFailure::Other { code, message })
            | Answer::Refused { code, message } => Err(FetchError::Connection {
                code: intern(&code),
                message,
            }),
            Answer::Value(_) => Err(FetchError::Network(
                "unexpected answer from the server".into(),
            )),
        }
    }
}

impl EventSink for Proxy {
    fn publish(&self, event: RunEvent) {
        if super::protocol::relayed(event.kind, &event.data) {
            self.link.send(ToServer::Event {
                run: self.run.clone(),
                kind: event.kind,
                data: Json::of(&event.data),
            });
        }
    }
}

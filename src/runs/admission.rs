//! Admission: every quota rule of atoll, with the quota backend's keys spelled here only.
//!
//! | rule | key | counted / released |
//! |---|---|---|
//! | requests per minute per API key | `req:{fingerprint}` | [`Admission::request`] |
//! | runs per minute per end-user, app, org | `runs:eu:{app}:{user}`, `runs:app:{app}`, `runs:org:{org}` | [`Admission::admit_run`] |
//! | CPU-ms per day per app | `cpu:app:{app}` | checked at admission, spent in [`Admission::release`] |
//! | concurrent runs per app, end-user | `concurrent:app:{app}`, `concurrent:eu:{app}:{user}` | taken at admission, freed in [`Admission::release`] |
//! | LLM tokens per day per app | `tokens:app:{app}` | [`Admission::tokens_left`], [`Admission::spend_tokens`] |
//!
//! A [`Permit`] is plain data (app, end-user, run id), so it travels with the stored run
//! to whichever node finishes it, and can be rebuilt from the run record after a restart.

use std::sync::Arc;
use std::time::Duration;

use crate::quota::{Decision, QuotaError, Quotas};
use crate::store::RunRow;

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

/// One counter in the quota backend. The only place its key string is built.
#[derive(Debug, Clone, PartialEq, Eq)]
enum QuotaKey<'a> {
    Requests { fingerprint: &'a str },
    OrgRuns { org: &'a str },
    AppRuns { app: &'a str },
    EndUserRuns { app: &'a str, end_user: &'a str },
    AppSlots { app: &'a str },
    EndUserSlots { app: &'a str, end_user: &'a str },
    AppCpu { app: &'a str },
    AppTokens { app: &'a str },
}

impl QuotaKey<'_> {
    fn key(&self) -> String {
        match self {
            QuotaKey::Requests { fingerprint } => format!("req:{fingerprint}"),
            QuotaKey::OrgRuns { org } => format!("runs:org:{org}"),
            QuotaKey::AppRuns { app } => format!("runs:app:{app}"),
            QuotaKey::EndUserRuns { app, end_user } => format!("runs:eu:{app}:{end_user}"),
            QuotaKey::AppSlots { app } => format!("concurrent:app:{app}"),
            QuotaKey::EndUserSlots { app, end_user } => format!("concurrent:eu:{app}:{end_user}"),
            QuotaKey::AppCpu { app } => format!("cpu:app:{app}"),
            QuotaKey::AppTokens { app } => format!("tokens:app:{app}"),
        }
    }
}

/// The configured limits (`ATOLL_*`, see the README's configuration table).
#[derive(Debug, Clone)]
pub struct AdmissionLimits {
    pub requests_per_minute: u64,
    pub org_runs_per_minute: u64,
    pub app_runs_per_minute: u64,
    pub end_user_runs_per_minute: u64,
    pub concurrent_runs_per_app: u64,
    pub concurrent_runs_per_end_user: u64,
    pub cpu_ms_per_day: u64,
    pub llm_tokens_per_day: u64,
    /// How long a slot outlives a run whose node died without releasing it.
    pub slot_ttl: Duration,
}

/// Why a run or request was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Over a limit: `what` names it for the client, `decision` becomes the headers.
    #[error("{what} limit reached")]
    Limit {
        what: &'static str,
        decision: Decision,
    },
    /// The quota backend did not answer.
    #[error(transparent)]
    Backend(#[from] QuotaError),
}

/// The right of one run to hold its concurrency slots; given back by [`Admission::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    pub run_id: String,
    pub app_id: String,
    pub end_user: Option<String>,
}

impl Permit {
    /// The permit a stored run holds (it was admitted when created).
    pub fn of(row: &RunRow) -> Permit {
        Permit {
            run_id: row.id.clone(),
            app_id: row.app_id.clone(),
            end_user: row.end_user.clone(),
        }
    }
}

/// Who asks to start a run.
pub struct RunTenant<'a> {
    pub org_id: &'a str,
    pub app_id: &'a str,
    pub end_user: Option<&'a str>,
}

#[derive(Clone)]
pub struct Admission {
    quotas: Arc<dyn Quotas>,
    limits: Arc<AdmissionLimits>,
}

impl Admission {
    pub fn new(quotas: Arc<dyn Quotas>, limits: AdmissionLimits) -> Admission {
        Admission {
            quotas,
            limits: Arc::new(limits),
        }
    }

    pub fn quotas(&self) -> &Arc<dyn Quotas> {
        &self.quotas
    }

    /// Counts one API request of the key with this fingerprint.
    pub async fn request(&self, fingerprint: &str) -> Result<Decision, Refused> {
        let key = QuotaKey::Requests { fingerprint };
        let d = self.hit(&key, self.limits.requests_per_minute).await?;
        refuse_unless(d, "requests per minute")
    }

    /// Admits a new run: the CPU budget (a read), then the slots, then the rates from
    /// the narrowest tenant outwards (so a refused end-user does not use up its app's or
    /// org's minute). Slots come before rates so that a client retrying a concurrency
    /// refusal every second does not spend the run rate its app shares with everyone.
    /// Returns the permit and the tightest run rate, for the answer's `ratelimit-*`.
    pub async fn admit_run(
        &self,
        who: &RunTenant<'_>,
        run_id: &str,
    ) -> Result<(Permit, Decision), Refused> {
        let l = &self.limits;
        let cpu = QuotaKey::AppCpu { app: who.app_id }.key();
        let d = self
            .quotas
            .check_budget(&cpu, l.cpu_ms_per_day, DAY)
            .await?;
        refuse_unless(d, "CPU milliseconds per day")?;
        let permit = self.take_slots(who, run_id).await?;
        match self.charge_run_rates(who).await {
            Ok(tightest) => Ok((permit, tightest)),
            Err(refused) => {
                // Not admitted: the slots taken above go back.
                self.release(permit, 0).await;
                Err(refused)
            }
        }
    }

    /// One run against each run rate, narrowest first; the tightest of them.
    async fn charge_run_rates(&self, who: &RunTenant<'_>) -> Result<Decision, Refused> {
        let l = &self.limits;
        let (app, org) = (who.app_id, who.org_id);
        let mut rates = Vec::with_capacity(3);
        if let Some(end_user) = who.end_user {
            let key = QuotaKey::EndUserRuns { app, end_user };
            let d = self.hit(&key, l.end_user_runs_per_minute).await?;
            rates.push(refuse_unless(d, "end-user runs per minute")?);
        }
        let d = self
            .hit(&QuotaKey::AppRuns { app }, l.app_runs_per_minute)
            .await?;
        rates.push(refuse_unless(d, "app runs per minute")?);
        let d = self
            .hit(&QuotaKey::OrgRuns { org }, l.org_runs_per_minute)
            .await?;
        rates.push(refuse_unless(d, "org runs per minute")?);
        Ok(rates.into_iter().min_by_key(|d| d.remaining).unwrap_or(d))
    }

    /// Takes a run's concurrency slots (app, and end-user): at admission, and again when a
    /// parked run resumes (a waiting run holds none).
    pub async fn take_slots(&self, who: &RunTenant<'_>, run_id: &str) -> Result<Permit, Refused> {
        let l = &self.limits;
        let app = who.app_id;
        let permit = Permit {
            run_id: run_id.to_owned(),
            app_id: app.to_owned(),
            end_user: who.end_user.map(str::to_owned),
        };
        let key = QuotaKey::AppSlots { app }.key();
        let d = self
            .quotas
            .acquire_slot(&key, run_id, l.concurrent_runs_per_app, l.slot_ttl)
            .await?;
        refuse_unless(soon(d), "concurrent runs per app")?;
        if let Some(end_user) = who.end_user {
            let key = QuotaKey::EndUserSlots { app, end_user }.key();
            let limit = l.concurrent_runs_per_end_user;
            let taken = self
                .quotas
                .acquire_slot(&key, run_id, limit, l.slot_ttl)
                .await;
            if !matches!(taken, Ok(d) if d.allowed) {
                // Not admitted: the app slot taken above goes back.
                self.release(permit, 0).await;
                return Err(match taken {
                    Ok(decision) => Refused::Limit {
                        what: "concurrent runs per end-user",
                        decision: soon(decision),
                    },
                    Err(e) => e.into(),
                });
            }
        }
        Ok(permit)
    }

    /// Gives a run's permit back, whatever its ending: frees its slots and spends the CPU
    /// it used. Best effort — slots expire by themselves if the backend is away.
    pub async fn release(&self, permit: Permit, cpu_ms: u64) {
        let app = permit.app_id.as_str();
        let q = &self.quotas;
        if cpu_ms > 0 {
            let _ = q.add(&QuotaKey::AppCpu { app }.key(), cpu_ms, DAY).await;
        }
        let _ = q
            .release_slot(&QuotaKey::AppSlots { app }.key(), &permit.run_id)
            .await;
        if let Some(end_user) = permit.end_user.as_deref() {
            let key = QuotaKey::EndUserSlots { app, end_user }.key();
            let _ = q.release_slot(&key, &permit.run_id).await;
        }
    }

    /// Whether the app may still call an LLM today.
    pub async fn tokens_left(&self, app: &str) -> Result<Decision, Refused> {
        let key = QuotaKey::AppTokens { app }.key();
        let limit = self.limits.llm_tokens_per_day;
        let d = self.quotas.check_budget(&key, limit, DAY).await?;
        refuse_unless(d, "LLM tokens per day")
    }

    /// Records the tokens an LLM call used (best effort).
    pub async fn spend_tokens(&self, app: &str, tokens: u64) {
        let key = QuotaKey::AppTokens { app }.key();
        let _ = self.quotas.add(&key, tokens, DAY).await;
    }

    async fn hit(&self, key: &QuotaKey<'_>, limit: u64) -> Result<Decision, QuotaError> {
        self.quotas.hit(&key.key(), limit, MINUTE).await
    }
}

/// A slot frees when a run ends, usually long before the earliest slot's ttl (the upper
/// bound the quota backend reports): a refused client is asked back in a second.
fn soon(mut decision: Decision) -> Decision {
    if !decision.allowed {
        decision.retry_after_secs = 1;
    }
    decision
}

fn refuse_unless(decision: Decision, what: &'static str) -> Result<Decision, Refused> {
    if decision.allowed {
        Ok(decision)
    } else {
        Err(Refused::Limit { what, decision })
    }
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;

//! Who is calling: the API key from `Authorization: Bearer atl_...`, what it may do
//! (kind and scopes), and for app keys the end-user it acts for (`x-atoll-end-user`).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::AppState;
use crate::store::KeyKind;

/// Every scope a key may carry. `*` grants them all.
pub const SCOPES: &[&str] = &[
    "apps:read",
    "apps:write",
    "keys:read",
    "keys:write",
    "agents:read",
    "agents:write",
    "runs:read",
    "runs:write",
    "memory:read",
    "memory:write",
    "connections:read",
    "connections:write",
    "audit:read",
    "usage:read",
    "webhooks:read",
    "webhooks:write",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// The operator (admin key from config): creates orgs.
    Admin,
    Org {
        org_id: String,
    },
    App {
        org_id: String,
        app_id: String,
    },
}

#[derive(Debug, Clone)]
pub struct Caller {
    /// None for the admin key.
    pub key_id: Option<String>,
    pub principal: Principal,
    pub scopes: Vec<String>,
    /// The end-user an app key acts for (`x-atoll-end-user`).
    pub end_user: Option<String>,
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The fewest characters after `atl_` an operator's admin key may have.
pub const MIN_ADMIN_KEY_CHARS: usize = 24;

/// Refuses an admin key that is not `atl_` followed by at least
/// [`MIN_ADMIN_KEY_CHARS`] letters, digits, `_` or `-`: the server does not start with
/// a key anyone could guess, or one no client could send in a header.
pub fn check_admin_key(key: &str) -> Result<(), String> {
    let body = key.strip_prefix("atl_").unwrap_or("");
    let well_formed = body.len() >= MIN_ADMIN_KEY_CHARS
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "ATOLL_ADMIN_KEY must be `atl_` followed by at least {MIN_ADMIN_KEY_CHARS} \
             letters, digits, '_' or '-' (this one is {} characters{}); generate one with \
             `echo atl_$(head -c 30 /dev/urandom | base32 | tr -d = | tr A-Z a-z)`, or \
             unset it to run without an admin key",
            key.chars().count(),
            if key.starts_with("atl_") {
                ""
            } else {
                " and does not start with atl_"
            }
        ))
    }
}

/// A new API key secret: `atl_` + 40 random base32-ish characters.
pub fn new_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 25];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let body: String = bytes
        .iter()
        .flat_map(|b| [ALPHABET[(b >> 3) as usize], ALPHABET[(b & 7) as usize]])
        .take(40)
        .map(char::from)
        .collect();
    Ok(format!("atl_{body}"))
}

/// Scopes over what every end-user of an app shares (its agents, tools, keys, apps) or
/// reports on all of them (audit, usage): a request acting for one end-user
/// (`x-atoll-end-user`) may not use them, whatever its key carries.
const APP_ONLY_SCOPES: &[&str] = &[
    "apps:write",
    "keys:read",
    "keys:write",
    "agents:write",
    "audit:read",
    "usage:read",
    "webhooks:read",
    "webhooks:write",
];

impl Caller {
    pub fn require_scope(&self, scope: &str) -> Result<(), ApiError> {
        if !(self.principal == Principal::Admin
            || self.scopes.iter().any(|s| s == "*" || s == scope))
        {
            return Err(ApiError::Forbidden(format!(
                "this API key lacks the scope '{scope}'"
            )));
        }
        if APP_ONLY_SCOPES.contains(&scope) {
            self.require_not_impersonating(&format!("'{scope}'"))?;
        }
        Ok(())
    }

    /// The end-user this request acts on, the one rule for every endpoint: with
    /// `x-atoll-end-user` set, an `end_user` given anywhere else (path, query or body)
    /// must equal it, or the request is refused (403); without the header the parameter
    /// decides (None: the app itself).
    pub fn acting_end_user(&self, param: Option<&str>) -> Result<Option<String>, ApiError> {
        if let Some(asked) = param {
            super::extract::check_text("end_user", asked)?;
        }
        match (&self.end_user, param) {
            (Some(bound), Some(asked)) if asked != bound => Err(ApiError::Forbidden(format!(
                "this request acts for end-user '{bound}' (x-atoll-end-user); end_user \
                 '{asked}' must be the same, or drop x-atoll-end-user to act as the app"
            ))),
            (Some(bound), _) => Ok(Some(bound.clone())),
            (None, asked) => Ok(asked.map(str::to_owned)),
        }
    }

    /// Whether a record owned by `owner` (None or empty: the app itself) is visible to
    /// this caller: everything without `x-atoll-end-user`, only that end-user's own
    /// records with it. Records it may not see answer as if they did not exist.
    pub fn sees(&self, owner: Option<&str>) -> bool {
        match &self.end_user {
            None => true,
            Some(bound) => owner == Some(bound.as_str()),
        }
    }

    /// For what belongs to the whole app (its shared memory, agents, tools, keys, audit,
    /// usage): a caller acting for an end-user touches that end-user's data only, so it
    /// is refused (403).
    pub fn require_not_impersonating(&self, what: &str) -> Result<(), ApiError> {
        match &self.end_user {
            None => Ok(()),
            Some(bound) => Err(ApiError::Forbidden(format!(
                "{what} belongs to the whole app, not to end-user '{bound}' \
                 (x-atoll-end-user); send this request as the app, without x-atoll-end-user"
            ))),
        }
    }

    /// The (org, app) an app-level endpoint acts on: app keys only.
    pub fn app(&self, scope: &str) -> Result<(String, String), ApiError> {
        self.require_scope(scope)?;
        match &self.principal {
            Principal::App { org_id, app_id } => Ok((org_id.clone(), app_id.clone())),
            _ => Err(ApiError::Forbidden(
                "this endpoint acts on one app: use an app key (create one with POST /v1/api-keys)"
                    .into(),
            )),
        }
    }

    /// The app a read of runs, events or usage acts on: an app key's own app (naming
    /// another `app_id` answers 404, as for any other tenant's data), or for an org key
    /// the `app_id` it names, which must be one of its org's apps (an org dashboard reads
    /// every app's runs this way).
    pub async fn app_to_read(
        &self,
        state: &AppState,
        scope: &str,
        app_id: Option<&str>,
    ) -> Result<(String, String), ApiError> {
        self.require_scope(scope)?;
        match (&self.principal, app_id) {
            (Principal::App { org_id, app_id }, asked) => match asked {
                Some(asked) if asked != app_id => Err(ApiError::not_found("app")),
                _ => Ok((org_id.clone(), app_id.clone())),
            },
            (Principal::Org { org_id }, Some(asked)) => {
                super::extract::check_text("app_id", asked)?;
                state
                    .store
                    .get_app(org_id, asked)
                    .await?
                    .ok_or_else(|| ApiError::not_found("app"))?;
                Ok((org_id.clone(), asked.to_owned()))
            }
            (Principal::Org { .. }, None) => Err(ApiError::BadRequest(
                "an org key reads one app's runs at a time: add ?app_id= (GET /v1/apps lists them)"
                    .into(),
            )),
            (Principal::Admin, _) => Err(ApiError::Forbidden(
                "the admin key manages orgs only; use an org key for this".into(),
            )),
        }
    }

    /// The org an org-level endpoint acts on: org or app keys.
    pub fn org(&self, scope: &str) -> Result<String, ApiError> {
        self.require_scope(scope)?;
        match &self.principal {
            Principal::Org { org_id } | Principal::App { org_id, .. } => Ok(org_id.clone()),
            Principal::Admin => Err(ApiError::Forbidden(
                "the admin key manages orgs only; use an org key for this".into(),
            )),
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    token.starts_with("atl_").then_some(token.trim())
}

/// The scope idempotency records and rate limits are kept under: a hash of the key.
pub fn key_fingerprint(parts: &Parts) -> Option<String> {
    bearer(parts).map(|t| hash_secret(t)[..32].to_owned())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Already authenticated by the idempotency middleware for this request.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let secret = bearer(parts).ok_or(ApiError::Unauthorized)?;
        let hash = hash_secret(secret);
        if state.admin_key_hash.as_deref() == Some(hash.as_str()) {
            return Ok(Caller {
                key_id: None,
                principal: Principal::Admin,
                scopes: vec!["*".into()],
                end_user: None,
            });
        }
        let key = state
            .store
            .find_api_key(&hash)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let principal = match (key.kind, key.app_id.clone()) {
            (KeyKind::App, Some(app_id)) => Principal::App {
                org_id: key.org_id.clone(),
                app_id,
            },
            (KeyKind::Org, _) => Principal::Org {
                org_id: key.org_id.clone(),
            },
            (KeyKind::App, None) => {
                return Err(ApiError::Internal(format!("app key {} has no app", key.id)))
            }
        };
        let end_user = match parts.headers.get("x-atoll-end-user") {
            None => None,
            Some(value) => {
                let Principal::App { .. } = principal else {
                    return Err(ApiError::Forbidden(
                        "only app keys may act for an end-user".into(),
                    ));
                };
                let external = value
                    .to_str()
                    .ok()
                    .map(str::trim)
                    .filter(|v| !v.is_empty() && v.len() <= 256)
                    .ok_or_else(|| {
                        ApiError::BadRequest(
                            "x-atoll-end-user must be 1 to 256 visible characters".into(),
                        )
                    })?;
                super::extract::check_text("x-atoll-end-user", external)?;
                Some(external.to_owned())
            }
        };
        Ok(Caller {
            key_id: Some(key.id),
            principal,
            scopes: key.scopes,
            end_user,
        })
    }
}

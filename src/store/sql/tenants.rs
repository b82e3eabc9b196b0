//! Orgs, apps, API keys, end-users and audit events.

use sqlx::any::AnyRow;
use sqlx::AnyPool;

use super::util::{col, json_col, json_text, keyset, limit};
use crate::store::{
    ApiKey, App, AuditEvent, EndUser, KeyKind, KeyRevoke, Millis, Org, Page, RevokeRule,
    StoreError, StoreResult,
};

pub(super) async fn create_org(pool: &AnyPool, org: &Org) -> StoreResult<()> {
    sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&org.id)
        .bind(&org.name)
        .bind(org.created_at)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn get_org(pool: &AnyPool, id: &str) -> StoreResult<Option<Org>> {
    let row = sqlx::query("SELECT id, name, created_at FROM orgs WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.map(|r| {
        Ok(Org {
            id: col(&r, "id")?,
            name: col(&r, "name")?,
            created_at: col(&r, "created_at")?,
        })
    })
    .transpose()
}

macro_rules! app_columns {
    () => {
        "id, org_id, name, settings, created_at"
    };
}

fn app_from_row(r: &AnyRow) -> StoreResult<App> {
    Ok(App {
        id: col(r, "id")?,
        org_id: col(r, "org_id")?,
        name: col(r, "name")?,
        settings: json_col(r, "settings")?,
        created_at: col(r, "created_at")?,
    })
}

pub(super) async fn create_app(pool: &AnyPool, app: &App) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO apps (id, org_id, name, settings, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&app.id)
    .bind(&app.org_id)
    .bind(&app.name)
    .bind(json_text(&app.settings))
    .bind(app.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn get_app(pool: &AnyPool, org_id: &str, id: &str) -> StoreResult<Option<App>> {
    let sql = concat!(
        "SELECT ",
        app_columns!(),
        " FROM apps WHERE org_id = $1 AND id = $2"
    );
    let row = sqlx::query(sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(app_from_row).transpose()
}

pub(super) async fn list_apps(pool: &AnyPool, org_id: &str, page: &Page) -> StoreResult<Vec<App>> {
    let (before_at, before_id) = keyset(page);
    let sql = concat!(
        "SELECT ",
        app_columns!(),
        " FROM apps
         WHERE org_id = $1 AND (created_at, id) < ($2, $3)
         ORDER BY created_at DESC, id DESC
         LIMIT $4"
    );
    let rows = sqlx::query(sql)
        .bind(org_id)
        .bind(before_at)
        .bind(before_id)
        .bind(limit(page.limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(app_from_row).collect()
}

macro_rules! key_columns {
    () => {
        "id, org_id, app_id, kind, name, prefix, scopes, created_at, revoked_at"
    };
}

fn kind_text(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Org => "org",
        KeyKind::App => "app",
    }
}

fn key_from_row(r: &AnyRow) -> StoreResult<ApiKey> {
    let kind: String = col(r, "kind")?;
    let kind = match kind.as_str() {
        "org" => KeyKind::Org,
        "app" => KeyKind::App,
        other => {
            return Err(StoreError::Corrupt(format!(
                "unknown API key kind {other:?}"
            )))
        }
    };
    Ok(ApiKey {
        id: col(r, "id")?,
        org_id: col(r, "org_id")?,
        app_id: col(r, "app_id")?,
        kind,
        name: col(r, "name")?,
        prefix: col(r, "prefix")?,
        scopes: json_col(r, "scopes")?,
        created_at: col(r, "created_at")?,
        revoked_at: col(r, "revoked_at")?,
    })
}

pub(super) async fn create_api_key(pool: &AnyPool, key: &ApiKey, hash: &str) -> StoreResult<()> {
    let scopes = serde_json::to_string(&key.scopes)
        .map_err(|e| StoreError::Corrupt(format!("API key scopes: {e}")))?;
    sqlx::query(
        "INSERT INTO api_keys
             (id, org_id, app_id, kind, name, prefix, scopes, hash, created_at, revoked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&key.id)
    .bind(&key.org_id)
    .bind(&key.app_id)
    .bind(kind_text(key.kind))
    .bind(&key.name)
    .bind(&key.prefix)
    .bind(scopes)
    .bind(hash)
    .bind(key.created_at)
    .bind(key.revoked_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn find_api_key(pool: &AnyPool, hash: &str) -> StoreResult<Option<ApiKey>> {
    let sql = concat!(
        "SELECT ",
        key_columns!(),
        " FROM api_keys WHERE hash = $1 AND revoked_at IS NULL"
    );
    let row = sqlx::query(sql).bind(hash).fetch_optional(pool).await?;
    row.as_ref().map(key_from_row).transpose()
}

pub(super) async fn list_api_keys(
    pool: &AnyPool,
    org_id: &str,
    app_id: Option<&str>,
    page: &Page,
) -> StoreResult<Vec<ApiKey>> {
    let (before_at, before_id) = keyset(page);
    let sql = concat!(
        "SELECT ",
        key_columns!(),
        " FROM api_keys
         WHERE org_id = $1 AND ($2 IS NULL OR app_id = $2) AND (created_at, id) < ($3, $4)
         ORDER BY created_at DESC, id DESC
         LIMIT $5"
    );
    let rows = sqlx::query(sql)
        .bind(org_id)
        .bind(app_id)
        .bind(before_at)
        .bind(before_id)
        .bind(limit(page.limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(key_from_row).collect()
}

/// True when the key exists in this org (and app); revoking twice keeps the first time.
pub(super) async fn revoke_api_key(
    pool: &AnyPool,
    org_id: &str,
    app_id: Option<&str>,
    id: &str,
    at: Millis,
    rule: RevokeRule,
) -> StoreResult<KeyRevoke> {
    let mut tx = pool.begin().await?;
    // A write first: SQLite then holds its write lock for the whole transaction (a read
    // first could not upgrade while another revoke reads); PostgreSQL locks the key.
    sqlx::query("UPDATE api_keys SET id = id WHERE id = $1 AND org_id = $2")
        .bind(id)
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
    let found = sqlx::query(
        "SELECT app_id, kind, revoked_at FROM api_keys
         WHERE org_id = $1 AND ($2 IS NULL OR app_id = $2) AND id = $3",
    )
    .bind(org_id)
    .bind(app_id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(found) = found else {
        return Ok(KeyRevoke::NotFound);
    };
    let key_app: Option<String> = col(&found, "app_id")?;
    let kind: String = col(&found, "kind")?;
    let revoked: Option<Millis> = col(&found, "revoked_at")?;
    if let (RevokeRule::KeepAppReachable, Some(key_app), "app", None) =
        (rule, key_app, kind.as_str(), revoked)
    {
        // The app's row lock until commit (PostgreSQL; SQLite already holds its write
        // lock): of two revokes of an app's last two keys, the second sees the first.
        sqlx::query("UPDATE apps SET id = id WHERE id = $1")
            .bind(&key_app)
            .execute(&mut *tx)
            .await?;
        // Only a `*` key can make any other key again (a key grants at most its own
        // scopes), so only one of those keeps the app reachable. Scopes are stored as a
        // JSON array of strings: `"*"` appears in it exactly when the key has `*`.
        let other = sqlx::query(
            "SELECT id FROM api_keys
             WHERE app_id = $1 AND id <> $2 AND kind = 'app' AND revoked_at IS NULL
               AND scopes LIKE '%\"*\"%'
             LIMIT 1",
        )
        .bind(&key_app)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if other.is_none() {
            return Ok(KeyRevoke::LastKeyOfApp);
        }
    }
    sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
        .bind(id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(KeyRevoke::Revoked)
}

pub(super) async fn upsert_end_user(
    pool: &AnyPool,
    app_id: &str,
    external_id: &str,
    new_id: &str,
    now: Millis,
) -> StoreResult<EndUser> {
    // Insert-or-nothing, then read: whoever inserted first, both callers see one row.
    sqlx::query(
        "INSERT INTO end_users (id, app_id, external_id, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (app_id, external_id) DO NOTHING",
    )
    .bind(new_id)
    .bind(app_id)
    .bind(external_id)
    .bind(now)
    .execute(pool)
    .await?;
    let row = sqlx::query(
        "SELECT id, app_id, external_id, created_at FROM end_users
         WHERE app_id = $1 AND external_id = $2",
    )
    .bind(app_id)
    .bind(external_id)
    .fetch_one(pool)
    .await?;
    Ok(EndUser {
        id: col(&row, "id")?,
        app_id: col(&row, "app_id")?,
        external_id: col(&row, "external_id")?,
        created_at: col(&row, "created_at")?,
    })
}

macro_rules! audit_columns {
    () => {
        "id, org_id, app_id, key_id, action, target, detail, created_at"
    };
}

pub(super) async fn append_audit<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    e: &AuditEvent,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, org_id, app_id, key_id, action, target, detail, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&e.id)
    .bind(&e.org_id)
    .bind(&e.app_id)
    .bind(&e.key_id)
    .bind(&e.action)
    .bind(&e.target)
    .bind(json_text(&e.detail))
    .bind(e.created_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Audit events of the org (all of its apps too) when `app_id` is None, else of one app.
pub(super) async fn list_audit(
    pool: &AnyPool,
    org_id: &str,
    app_id: Option<&str>,
    page: &Page,
) -> StoreResult<Vec<AuditEvent>> {
    let (before_at, before_id) = keyset(page);
    let sql = concat!(
        "SELECT ",
        audit_columns!(),
        " FROM audit_events
         WHERE org_id = $1 AND ($2 IS NULL OR app_id = $2) AND (created_at, id) < ($3, $4)
         ORDER BY created_at DESC, id DESC
         LIMIT $5"
    );
    let rows = sqlx::query(sql)
        .bind(org_id)
        .bind(app_id)
        .bind(before_at)
        .bind(before_id)
        .bind(limit(page.limit))
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEvent {
                id: col(r, "id")?,
                org_id: col(r, "org_id")?,
                app_id: col(r, "app_id")?,
                key_id: col(r, "key_id")?,
                action: col(r, "action")?,
                target: col(r, "target")?,
                detail: json_col(r, "detail")?,
                created_at: col(r, "created_at")?,
            })
        })
        .collect()
}

//! Connections and tools of an app.

use sqlx::AnyPool;

use super::util::{col, json_col, json_text};
use crate::store::{ConnectionRow, StoreResult, ToolRow};

fn connection(row: &sqlx::any::AnyRow) -> StoreResult<ConnectionRow> {
    Ok(ConnectionRow {
        app_id: col(row, "app_id")?,
        name: col(row, "name")?,
        end_user: col(row, "end_user")?,
        public: json_col(row, "public")?,
        sealed: col(row, "sealed")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

fn tool(row: &sqlx::any::AnyRow) -> StoreResult<ToolRow> {
    Ok(ToolRow {
        app_id: col(row, "app_id")?,
        name: col(row, "name")?,
        spec: json_col(row, "spec")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

pub(super) async fn put_connection(pool: &AnyPool, c: &ConnectionRow) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO connections (app_id, name, end_user, public, sealed, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (app_id, name, end_user)
         DO UPDATE SET public = excluded.public, sealed = excluded.sealed, updated_at = excluded.updated_at",
    )
    .bind(&c.app_id)
    .bind(&c.name)
    .bind(&c.end_user)
    .bind(json_text(&c.public))
    .bind(&c.sealed)
    .bind(c.created_at)
    .bind(c.updated_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn get_connection(
    pool: &AnyPool,
    app_id: &str,
    name: &str,
    end_user: &str,
) -> StoreResult<Option<ConnectionRow>> {
    let row =
        sqlx::query("SELECT * FROM connections WHERE app_id = $1 AND name = $2 AND end_user = $3")
            .bind(app_id)
            .bind(name)
            .bind(end_user)
            .fetch_optional(pool)
            .await?;
    row.as_ref().map(connection).transpose()
}

pub(super) async fn list_connections(
    pool: &AnyPool,
    app_id: &str,
) -> StoreResult<Vec<ConnectionRow>> {
    let rows = sqlx::query(
        "SELECT * FROM connections WHERE app_id = $1 ORDER BY name, end_user LIMIT 1000",
    )
    .bind(app_id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(connection).collect()
}

pub(super) async fn delete_connection(
    pool: &AnyPool,
    app_id: &str,
    name: &str,
    end_user: &str,
) -> StoreResult<bool> {
    let done =
        sqlx::query("DELETE FROM connections WHERE app_id = $1 AND name = $2 AND end_user = $3")
            .bind(app_id)
            .bind(name)
            .bind(end_user)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn put_tool(pool: &AnyPool, t: &ToolRow) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tools (app_id, name, spec, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (app_id, name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
    )
    .bind(&t.app_id)
    .bind(&t.name)
    .bind(json_text(&t.spec))
    .bind(t.created_at)
    .bind(t.updated_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn get_tool(
    pool: &AnyPool,
    app_id: &str,
    name: &str,
) -> StoreResult<Option<ToolRow>> {
    let row = sqlx::query("SELECT * FROM tools WHERE app_id = $1 AND name = $2")
        .bind(app_id)
        .bind(name)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(tool).transpose()
}

pub(super) async fn list_tools(pool: &AnyPool, app_id: &str) -> StoreResult<Vec<ToolRow>> {
    let rows = sqlx::query("SELECT * FROM tools WHERE app_id = $1 ORDER BY name LIMIT 1000")
        .bind(app_id)
        .fetch_all(pool)
        .await?;
    rows.iter().map(tool).collect()
}

pub(super) async fn delete_tool(pool: &AnyPool, app_id: &str, name: &str) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM tools WHERE app_id = $1 AND name = $2")
        .bind(app_id)
        .bind(name)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

//! Helpers shared by the SQL modules: error mapping, typed column reads, JSON columns and
//! keyset bounds.

use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;
use sqlx::Row;

use crate::store::{Millis, Page, StoreError, StoreResult};

impl From<sqlx::Error> for StoreError {
    /// Unique violations become [`StoreError::Conflict`] naming the constraint (PostgreSQL)
    /// or the columns (SQLite); decode failures mean the stored row is not what the schema
    /// promised ([`StoreError::Corrupt`]); everything else is a [`StoreError::Database`].
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation => {
                let what = match db.constraint() {
                    Some(name) => name.to_owned(),
                    None => db
                        .message()
                        .strip_prefix("UNIQUE constraint failed: ")
                        .unwrap_or(db.message())
                        .to_owned(),
                };
                StoreError::Conflict(what)
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Database(e.to_string()),
        }
    }
}

/// A typed column, or `Corrupt` naming the column.
pub(super) fn col<'r, T>(row: &'r AnyRow, name: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name)
        .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
}

/// A JSON column stored as text.
pub(super) fn json_col<T: DeserializeOwned>(row: &AnyRow, name: &str) -> StoreResult<T> {
    let text: String = col(row, name)?;
    serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("column {name} is not valid JSON: {e}")))
}

/// A nullable JSON column stored as text.
pub(super) fn opt_json_col(row: &AnyRow, name: &str) -> StoreResult<Option<Value>> {
    let text: Option<String> = col(row, name)?;
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| StoreError::Corrupt(format!("column {name} is not valid JSON: {e}")))
    })
    .transpose()
}

/// An `i32` stored in a BIGINT/INTEGER column.
pub(super) fn i32_col(row: &AnyRow, name: &str) -> StoreResult<i32> {
    let n: i64 = col(row, name)?;
    i32::try_from(n).map_err(|_| StoreError::Corrupt(format!("column {name}: {n} is out of range")))
}

pub(super) fn json_text(v: &Value) -> String {
    v.to_string()
}

pub(super) fn opt_json_text(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(json_text)
}

/// The exclusive upper bound of a newest-first keyset page, for
/// `WHERE (created_at, id) < ($n, $m)`. Without `after`, the bound lies past every row
/// (`i64::MAX`, and no id sorts below the empty string), so one statement serves the first
/// page and the next ones.
pub(super) fn keyset(page: &Page) -> (Millis, String) {
    page.after.clone().unwrap_or((Millis::MAX, String::new()))
}

pub(super) fn limit(n: u32) -> i64 {
    i64::from(n)
}

/// The smallest string greater than every string that starts with `prefix` (bytewise /
/// code-point order), or None when there is none (empty prefix, or only `char::MAX`).
pub(super) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_char() {
        assert_eq!(prefix_end("abc").as_deref(), Some("abd"));
        assert_eq!(prefix_end("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_end("x\u{10FFFF}").as_deref(), Some("y"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
    }
}

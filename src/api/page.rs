//! `?limit=&cursor=` pagination: opaque cursors over (created_at, id) keysets.

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::store::Page;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::BadRequest("limit is 1 to 200".into()));
        }
        let after = match &self.cursor {
            None => None,
            Some(c) => Some(decode(c).ok_or_else(|| {
                ApiError::BadRequest("cursor is not one this server gave out".into())
            })?),
        };
        Ok(Page { limit, after })
    }
}

fn decode(cursor: &str) -> Option<(i64, String)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (at, id) = text.split_once(':')?;
    super::extract::check_text("cursor", id).ok()?;
    Some((at.parse().ok()?, id.to_owned()))
}

pub fn encode(created_at: i64, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{created_at}:{id}"))
}

/// `{ data, next_cursor }`: a next cursor only when the page is full.
pub fn list<T: serde::Serialize>(
    items: &[T],
    page: &Page,
    key: impl Fn(&T) -> (i64, String),
) -> Value {
    let next = (items.len() as u32 >= page.limit)
        .then(|| {
            items.last().map(|last| {
                let (at, id) = key(last);
                encode(at, &id)
            })
        })
        .flatten();
    json!({ "data": items, "next_cursor": next })
}

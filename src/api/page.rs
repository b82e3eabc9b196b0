//! `?limit=&cursor=` pagination: opaque cursors over (created_at, id) keysets.

use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use crate::store::Page;

#[derive(Debug, Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
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

/// One page of a list: `next_cursor` is set when there may be more.
#[derive(Debug, Serialize, ToSchema)]
pub struct Listed<T> {
    pub data: Vec<T>,
    /// Pass as `?cursor=` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `{ data, next_cursor }`: a next cursor only when the page is full.
pub fn list<T>(items: Vec<T>, page: &Page, key: impl Fn(&T) -> (i64, String)) -> Listed<T> {
    let next_cursor = (items.len() as u32 >= page.limit)
        .then(|| {
            items.last().map(|last| {
                let (at, id) = key(last);
                encode(at, &id)
            })
        })
        .flatten();
    Listed {
        data: items,
        next_cursor,
    }
}

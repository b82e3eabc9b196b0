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

/// Stored rows shown through `view`: a row that no longer reads (a config written by
/// another version, say) is logged and left out rather than failing the whole list;
/// the next cursor still comes from the rows, so paging goes on past it.
pub fn readable<R, T>(
    rows: Vec<R>,
    page: &Page,
    key: impl Fn(&R) -> (i64, String),
    view: impl Fn(&R) -> Result<T, ApiError>,
    what: &str,
) -> Listed<T> {
    let next_cursor = (rows.len() as u32 >= page.limit)
        .then(|| {
            rows.last().map(|last| {
                let (at, id) = key(last);
                encode(at, &id)
            })
        })
        .flatten();
    let data = rows
        .iter()
        .filter_map(|row| match view(row) {
            Ok(v) => Some(v),
            Err(e) => {
                let (_, id) = key(row);
                tracing::warn!(%id, error = %e, "a stored {what} does not read; left out of the list");
                None
            }
        })
        .collect();
    Listed { data, next_cursor }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_that_does_not_read_is_left_out_and_paging_goes_on() {
        let rows = vec![(3_i64, "c"), (2, "bad"), (1, "a")];
        let page = Page {
            limit: 3,
            after: None,
        };
        let listed = readable(
            rows,
            &page,
            |r| (r.0, r.1.to_owned()),
            |r| {
                if r.1 == "bad" {
                    Err(ApiError::Internal("does not read".into()))
                } else {
                    Ok(r.1.to_owned())
                }
            },
            "thing",
        );
        assert_eq!(listed.data, vec!["c", "a"]);
        // The page was full of rows: the cursor is there, from the last row.
        assert_eq!(listed.next_cursor, Some(encode(1, "a")));
    }
}

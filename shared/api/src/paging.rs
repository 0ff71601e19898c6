use hourbridge_store::{Cursor, Page};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ApiError;

/// Largest page a client may ask for.
pub const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;

/// A page of a list: `{"items": [...], "next_cursor": null | "..."}`. Pass `next_cursor` back
/// as `cursor` for the next page; `null` means this was the last one.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T: ToSchema> {
    /// The records.
    pub items: Vec<T>,
    /// Cursor of the next page, or `null`.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> List<T> {
    /// From a store page.
    pub fn from_page(page: Page<T>) -> Self {
        Self {
            items: page.items.into_iter().map(|(t, _)| t).collect(),
            next_cursor: page.next.map(|c| c.as_str().to_owned()),
        }
    }
}

/// Parses `limit` (1 to 1000, default 100) and `cursor`.
pub(crate) fn paging(
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<(usize, Option<Cursor>), ApiError> {
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::new(
                    http::StatusCode::BAD_REQUEST,
                    "invalid_limit",
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                ));
            }
        },
    };
    let cursor = cursor.map(Cursor::parse).transpose()?;
    Ok((limit, cursor))
}

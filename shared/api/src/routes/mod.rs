pub(crate) mod connect;
pub(crate) mod customers;
pub(crate) mod health;
pub(crate) mod integrations;
pub(crate) mod people;
pub(crate) mod person_links;
pub(crate) mod projects;
pub(crate) mod providers;
pub mod webhooks;
pub(crate) mod worklogs;
pub(crate) mod workspaces;

use serde::Deserialize;
use utoipa::IntoParams;

/// `limit` and `cursor`, as strings so a bad value gets our own error code.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

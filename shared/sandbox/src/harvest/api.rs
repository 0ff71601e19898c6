//! Harvest's HTTP surface. Error choices where the docs are silent:
//! * missing, unknown or non-Harvest `Harvest-Account-Id` → **404** (what Airbyte reports);
//! * unparsable query values (`per_page=abc`, `from=yesterday`, bad `cursor`) → 400;
//!   `per_page` outside 1..=2000 and `page` < 1 → 422 (documented for `per_page`);
//! * every non-OAuth error body is `{"message": "..."}` (the documented 422 shape); 401 is the
//!   OAuth-style `{"error":"invalid_token","error_description":...}`;
//! * time-entry writes: see [`create_entry`], [`update_entry`] and [`delete_entry`]; where the
//!   reference gives no status the choice is marked UNCONFIRMED there.

use std::ops::Range;
use std::time::Instant;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, NaiveTime, Timelike, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{
    Entry, EntryExtra, EntryPatch, ExternalReference, HarvestControl, HarvestState,
    NewHarvestEntry, Project, User,
};
use crate::common::{
    Day, Injected, Params, SecondsTs, bearer, external_origin, found, json_response, parse_bool,
    parse_date, parse_datetime, plain, raw_json_response, truncate_body, with_retry_after,
};
use crate::json_writer::Obj;

/// Where the Harvest emulation is mounted inside the sandbox server.
const PREFIX: &str = "/harvest";
const MAX_PER_PAGE: u64 = 2000;

/// Builds the Harvest routes (mounted under [`PREFIX`] by the sandbox).
pub(crate) fn router(h: HarvestControl) -> Router {
    let api = Router::new()
        .route("/users", get(list_users))
        .route("/users/me", get(users_me))
        .route("/users/{id}", get(one_user))
        .route("/projects", get(list_projects))
        .route("/projects/{id}", get(one_project))
        .route("/company", get(company))
        .route("/time_entries", get(list_entries).post(create_entry))
        .route(
            "/time_entries/{id}",
            get(one_entry).patch(update_entry).delete(delete_entry),
        )
        .fallback(|| async { message(StatusCode::NOT_FOUND, "Not Found") })
        .layer(middleware::from_fn_with_state(h.clone(), gate));
    Router::new()
        .route("/id/oauth2/authorize", get(authorize))
        .route("/id/api/v2/oauth2/token", post(token))
        .route("/id/api/v2/accounts", get(accounts))
        .nest("/api/v2", api)
        .with_state(h)
}

type Reply = Result<Response, Reject>;

fn message(status: StatusCode, text: &str) -> Response {
    json_response(status, &serde_json::json!({ "message": text }))
}

/// Why a request is refused; rendered in Harvest's shapes.
#[derive(Debug)]
enum Reject {
    /// `{"message": ...}` with this status.
    Message(StatusCode, String),
    /// Missing, unknown, expired or revoked bearer token.
    InvalidToken,
    /// Over the rate budget: 429 with `Retry-After` seconds.
    Throttled(u64),
    /// A fault queued through the control handle.
    Injected(Injected),
}

impl Reject {
    fn msg(status: StatusCode, text: impl Into<String>) -> Self {
        Reject::Message(status, text.into())
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        match self {
            Reject::Message(status, text) => message(status, &text),
            Reject::InvalidToken => json_response(
                StatusCode::UNAUTHORIZED,
                &serde_json::json!({
                    "error": "invalid_token",
                    "error_description": "The access token provided is expired, revoked, malformed or invalid for other reasons.",
                }),
            ),
            Reject::Throttled(secs) | Reject::Injected(Injected::RateLimited(secs)) => {
                with_retry_after(
                    message(
                        StatusCode::TOO_MANY_REQUESTS,
                        "This request has been throttled.",
                    ),
                    secs,
                )
            }
            Reject::Injected(Injected::Fail(status)) => {
                let r = message(
                    status,
                    status.canonical_reason().unwrap_or("Injected failure"),
                );
                if status == StatusCode::TOO_MANY_REQUESTS {
                    with_retry_after(r, 1)
                } else {
                    r
                }
            }
        }
    }
}

/// The account a request was admitted for.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    account: u64,
}

/// Everything every data-API request goes through: counting, latency, queued faults, the
/// required headers, the token, the account and the rate budget; malformed bodies on the way out.
async fn gate(State(h): State<HarvestControl>, mut req: Request, next: Next) -> Response {
    let latency = h.with(|s| {
        s.common.requests += 1;
        s.common.faults.latency
    });
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match h.with(|s| admit(s, req.headers())) {
        Ok(ctx) => {
            req.extensions_mut().insert(ctx);
        }
        Err(r) => return r.into_response(),
    }
    let resp = next.run(req).await;
    if resp.status().is_success() && h.with(|s| s.common.faults.take_malformed()) {
        return truncate_body(resp).await;
    }
    resp
}

fn admit(s: &mut HarvestState, headers: &HeaderMap) -> Result<Ctx, Reject> {
    if let Some(fault) = s.common.faults.take_injected() {
        tracing::debug!(%fault, "harvest sandbox: injected fault");
        return Err(Reject::Injected(fault));
    }
    let has_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty());
    if !has_agent {
        return Err(Reject::msg(
            StatusCode::BAD_REQUEST,
            "Missing User-Agent header. Send your application name and a contact, e.g. 'MyApp (me@example.com)'.",
        ));
    }
    let token = bearer(headers).ok_or(Reject::InvalidToken)?;
    let now = Instant::now();
    if s.common.oauth.access(token, now).is_none() {
        return Err(Reject::InvalidToken);
    }
    let account = headers
        .get("harvest-account-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|id| {
            s.accounts
                .iter()
                .any(|a| a.id == *id && a.product == "harvest")
        })
        .ok_or_else(|| {
            Reject::msg(
                StatusCode::NOT_FOUND,
                "Harvest-Account-Id is missing or names no Harvest account of this token",
            )
        })?;
    s.common
        .limiter
        .check(token, now)
        .map_err(Reject::Throttled)?;
    Ok(Ctx { account })
}

// ---------------------------------------------------------------------------------------------
// Harvest ID: OAuth and accounts

async fn authorize(State(h): State<HarvestControl>, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    let target = h.with(|s| {
        let scope = format!("harvest:{}", s.data_account);
        s.common.oauth.authorize(&p, &[("scope", scope)])
    });
    match target {
        Ok(location) => found(&location),
        Err(why) => plain(StatusCode::BAD_REQUEST, &why),
    }
}

async fn token(State(h): State<HarvestControl>, headers: HeaderMap, body: Bytes) -> Response {
    h.with(|s| {
        s.common.token_requests += 1;
        if let Some(status) = s.common.faults.take_oauth_failure() {
            return plain(status, "injected token endpoint failure");
        }
        let account = s.data_account;
        match s.common.oauth.token(&headers, &body, &mut |_| {
            HarvestControl::mint_access_token(account)
        }) {
            Ok(answer) => json_response(StatusCode::OK, &answer),
            Err(e) => e.into_response(),
        }
    })
}

async fn accounts(State(h): State<HarvestControl>, headers: HeaderMap) -> Response {
    h.with(|s| {
        if bearer(&headers).and_then(|t| s.common.oauth.access(t, Instant::now())).is_none() {
            return Reject::InvalidToken.into_response();
        }
        let user = match s.me() {
            Some(u) => serde_json::json!({
                "id": u.id, "first_name": u.first_name, "last_name": u.last_name, "email": u.email,
            }),
            None => serde_json::json!({
                "id": 1, "first_name": "Sandbox", "last_name": "Admin", "email": "admin@sandbox.test",
            }),
        };
        let accounts: Vec<_> = s
            .accounts
            .iter()
            .map(|a| serde_json::json!({ "id": a.id, "name": a.name, "product": a.product }))
            .collect();
        json_response(StatusCode::OK, &serde_json::json!({ "user": user, "accounts": accounts }))
    })
}

// ---------------------------------------------------------------------------------------------
// Query parsing

fn bad(name: &str, value: &str) -> Reject {
    Reject::msg(
        StatusCode::BAD_REQUEST,
        format!("Invalid value {value:?} for parameter {name}"),
    )
}

fn opt<T>(p: &Params, name: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>, Reject> {
    p.get(name)
        .map(|v| parse(v).ok_or_else(|| bad(name, v)))
        .transpose()
}

fn opt_u64(p: &Params, name: &str) -> Result<Option<u64>, Reject> {
    opt(p, name, |v| v.parse().ok())
}

fn per_page(p: &Params) -> Result<u64, Reject> {
    let n = opt(p, "per_page", |v| v.parse::<i64>().ok())?.unwrap_or(MAX_PER_PAGE as i64);
    if !(1..=MAX_PER_PAGE as i64).contains(&n) {
        return Err(Reject::msg(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("per_page must be between 1 and {MAX_PER_PAGE}, got {n}"),
        ));
    }
    Ok(n as u64)
}

fn page(p: &Params) -> Result<u64, Reject> {
    let n = opt(p, "page", |v| v.parse::<i64>().ok())?.unwrap_or(1);
    if n < 1 {
        return Err(Reject::msg(
            StatusCode::UNPROCESSABLE_ENTITY,
            "page must be 1 or greater",
        ));
    }
    Ok(n as u64)
}

/// A link to `path` with the request's own filters plus `set`, keys sorted like Harvest's.
fn link(path: &str, p: &Params, set: &[(&str, String)]) -> String {
    let mut pairs: Vec<(&str, &str)> = p
        .pairs()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "page" | "per_page" | "ref" | "cursor"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(set.iter().map(|(k, v)| (*k, v.as_str())))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{path}?{query}")
}

fn api_path(s: &HarvestState, headers: &HeaderMap, resource: &str) -> String {
    format!(
        "{}{PREFIX}/api/v2/{resource}",
        external_origin(headers, &s.common.origin)
    )
}

// ---------------------------------------------------------------------------------------------
// Paging

#[derive(Debug, Serialize)]
struct Links {
    first: String,
    next: Option<String>,
    previous: Option<String>,
    last: String,
}

#[derive(Debug, Serialize)]
struct PageMeta {
    per_page: u64,
    total_pages: u64,
    total_entries: u64,
    next_page: Option<u64>,
    previous_page: Option<u64>,
    page: Option<u64>,
    links: Links,
}

#[derive(Debug, Serialize)]
struct Listing<'a, T: Serialize> {
    #[serde(flatten)]
    items: Named<'a, T>,
    #[serde(flatten)]
    meta: PageMeta,
}

/// `{"<key>": [...]}`; a map so one struct serves users, projects and time entries.
#[derive(Debug)]
struct Named<'a, T> {
    key: &'static str,
    items: &'a [T],
}

impl<T: Serialize> Serialize for Named<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.key, self.items)?;
        m.end()
    }
}

fn page_links(path: &str, p: &Params, per_page: u64, total_pages: u64) -> (String, String) {
    let pp = per_page.to_string();
    (
        link(
            path,
            p,
            &[
                ("page", "1".into()),
                ("per_page", pp.clone()),
                ("ref", "first".into()),
            ],
        ),
        link(
            path,
            p,
            &[
                ("page", total_pages.to_string()),
                ("per_page", pp),
                ("ref", "last".into()),
            ],
        ),
    )
}

/// Page-number paging (`/time_entries`): meta for `page` of `total` matching rows.
fn numbered_meta(path: &str, p: &Params, page: u64, per_page: u64, total: u64) -> PageMeta {
    let total_pages = total.div_ceil(per_page).max(1);
    let (first, last) = page_links(path, p, per_page, total_pages);
    let at = |n: u64, r: &str| {
        link(
            path,
            p,
            &[
                ("page", n.to_string()),
                ("per_page", per_page.to_string()),
                ("ref", r.into()),
            ],
        )
    };
    let next_page = (page < total_pages).then_some(page + 1);
    let previous_page = (page > 1).then(|| (page - 1).min(total_pages));
    PageMeta {
        per_page,
        total_pages,
        total_entries: total,
        next_page,
        previous_page,
        page: Some(page),
        links: Links {
            first,
            next: next_page.map(|n| at(n, "next")),
            previous: previous_page.map(|n| at(n, "previous")),
            last,
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cursor {
    After(u64),
    Before(u64),
}

fn encode_cursor(c: Cursor) -> String {
    let json = match c {
        Cursor::After(id) => serde_json::json!({ "after": { "id": id } }),
        Cursor::Before(id) => serde_json::json!({ "before": { "id": id } }),
    };
    URL_SAFE_NO_PAD.encode(json.to_string())
}

fn decode_cursor(raw: &str) -> Option<Cursor> {
    let normalized: String = raw
        .trim_end_matches('=')
        .chars()
        .map(|c| {
            if c == '+' {
                '-'
            } else if c == '/' {
                '_'
            } else {
                c
            }
        })
        .collect();
    let v: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(normalized).ok()?).ok()?;
    if let Some(id) = v.pointer("/after/id").and_then(|i| i.as_u64()) {
        return Some(Cursor::After(id));
    }
    v.pointer("/before/id")
        .and_then(|i| i.as_u64())
        .map(Cursor::Before)
}

/// Cursor paging (`/users`, `/projects`) over `ids` (newest first). `page` still works, as
/// the deprecated alternative; `cursor` wins when both are sent.
fn cursor_page(
    path: &str,
    p: &Params,
    ids: &[u64],
    per_page: u64,
) -> Result<(Range<usize>, PageMeta), Reject> {
    let n = ids.len();
    let pp = per_page as usize;
    let total_pages = (n as u64).div_ceil(per_page).max(1);
    let (start, end, numbered) = match p.get("cursor") {
        Some(raw) => match decode_cursor(raw).ok_or_else(|| bad("cursor", raw))? {
            Cursor::After(id) => {
                let start = ids.iter().position(|x| *x < id).unwrap_or(n);
                (start, (start + pp).min(n), None)
            }
            Cursor::Before(id) => {
                let end = ids.iter().position(|x| *x <= id).unwrap_or(n);
                (end.saturating_sub(pp), end, None)
            }
        },
        None => {
            let page = page(p)?;
            let start = ((page - 1) as usize).saturating_mul(pp).min(n);
            (start, (start + pp).min(n), Some(page))
        }
    };
    let (page, next_page, previous_page) = match numbered {
        Some(page) => (
            Some(page),
            (page < total_pages).then_some(page + 1),
            (page > 1).then_some(page - 1),
        ),
        // Harvest leaves page numbers null on middle cursor pages.
        None if start == 0 => (Some(1), (total_pages > 1).then_some(2), None),
        None if end >= n => (
            Some(total_pages),
            None,
            (total_pages > 1).then(|| total_pages - 1),
        ),
        None => (None, None, None),
    };
    let (first, last) = page_links(path, p, per_page, total_pages);
    let cursor_link = |c: Cursor, r: &str| {
        link(
            path,
            p,
            &[
                ("cursor", encode_cursor(c)),
                ("per_page", per_page.to_string()),
                ("ref", r.into()),
            ],
        )
    };
    let links = Links {
        first,
        next: (end < n && end > 0).then(|| cursor_link(Cursor::After(ids[end - 1]), "next_cursor")),
        previous: (start > 0 && start < n)
            .then(|| cursor_link(Cursor::Before(ids[start]), "previous_cursor")),
        last,
    };
    let meta = PageMeta {
        per_page,
        total_pages,
        total_entries: n as u64,
        next_page,
        previous_page,
        page,
        links,
    };
    Ok((start..end, meta))
}

// ---------------------------------------------------------------------------------------------
// Users

async fn list_users(
    State(h): State<HarvestControl>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    h.with(|s| users_page(s, ctx, &p, &headers))
        .unwrap_or_else(IntoResponse::into_response)
}

fn users_page(s: &HarvestState, ctx: Ctx, p: &Params, headers: &HeaderMap) -> Reply {
    let is_active = opt(p, "is_active", parse_bool)?;
    let since = opt(p, "updated_since", parse_datetime)?;
    let per_page = per_page(p)?;
    let users: Vec<&User> = if ctx.account == s.data_account {
        s.users
            .values()
            .rev()
            .filter(|u| is_active.is_none_or(|a| u.is_active == a))
            .filter(|u| since.is_none_or(|t| u.updated_at.0 >= t))
            .collect()
    } else {
        Vec::new()
    };
    let ids: Vec<u64> = users.iter().map(|u| u.id).collect();
    let (range, meta) = cursor_page(&api_path(s, headers, "users"), p, &ids, per_page)?;
    Ok(json_response(
        StatusCode::OK,
        &Listing {
            items: Named {
                key: "users",
                items: &users[range],
            },
            meta,
        },
    ))
}

async fn users_me(State(h): State<HarvestControl>) -> Response {
    h.with(|s| match s.me() {
        Some(u) => json_response(StatusCode::OK, u),
        None => message(StatusCode::NOT_FOUND, "Not Found"),
    })
}

async fn one_user(
    State(h): State<HarvestControl>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Response {
    h.with(|s| {
        match id
            .parse::<u64>()
            .ok()
            .filter(|_| ctx.account == s.data_account)
            .and_then(|id| s.users.get(&id))
        {
            Some(u) => json_response(StatusCode::OK, u),
            None => message(StatusCode::NOT_FOUND, "Not Found"),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Projects

#[derive(Debug, Serialize)]
struct ClientRef<'a> {
    id: u64,
    name: &'a str,
    currency: &'a str,
}

#[derive(Debug, Serialize)]
struct ProjectView<'a> {
    id: u64,
    name: &'a str,
    code: &'a str,
    is_active: bool,
    is_billable: bool,
    is_fixed_fee: bool,
    bill_by: &'static str,
    hourly_rate: Option<f64>,
    budget: Option<f64>,
    budget_by: &'static str,
    budget_is_monthly: bool,
    notify_when_over_budget: bool,
    over_budget_notification_percentage: f64,
    over_budget_notification_date: Option<NaiveDate>,
    show_budget_to_all: bool,
    cost_budget: Option<f64>,
    cost_budget_include_expenses: bool,
    fee: Option<f64>,
    notes: &'static str,
    starts_on: Option<NaiveDate>,
    ends_on: Option<NaiveDate>,
    created_at: SecondsTs,
    updated_at: SecondsTs,
    client: ClientRef<'a>,
}

fn project_view<'a>(s: &'a HarvestState, p: &'a Project) -> ProjectView<'a> {
    let client = s.clients.get(&p.client_id);
    ProjectView {
        id: p.id,
        name: &p.name,
        code: &p.code,
        is_active: p.is_active,
        is_billable: true,
        is_fixed_fee: false,
        bill_by: "Project",
        hourly_rate: Some(100.0),
        budget: None,
        budget_by: "none",
        budget_is_monthly: false,
        notify_when_over_budget: false,
        over_budget_notification_percentage: 80.0,
        over_budget_notification_date: None,
        show_budget_to_all: false,
        cost_budget: None,
        cost_budget_include_expenses: false,
        fee: None,
        notes: "",
        starts_on: p.starts_on,
        ends_on: p.ends_on,
        created_at: SecondsTs(p.created_at),
        updated_at: SecondsTs(p.updated_at),
        client: ClientRef {
            id: p.client_id,
            name: client.map_or("", |c| c.name.as_str()),
            currency: client.map_or("EUR", |c| c.currency),
        },
    }
}

async fn list_projects(
    State(h): State<HarvestControl>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    h.with(|s| projects_page(s, ctx, &p, &headers))
        .unwrap_or_else(IntoResponse::into_response)
}

fn projects_page(s: &HarvestState, ctx: Ctx, p: &Params, headers: &HeaderMap) -> Reply {
    let is_active = opt(p, "is_active", parse_bool)?;
    let client_id = opt_u64(p, "client_id")?;
    let since = opt(p, "updated_since", parse_datetime)?;
    let per_page = per_page(p)?;
    let projects: Vec<ProjectView<'_>> = if ctx.account == s.data_account {
        s.projects
            .values()
            .rev()
            .filter(|x| is_active.is_none_or(|a| x.is_active == a))
            .filter(|x| client_id.is_none_or(|c| x.client_id == c))
            .filter(|x| since.is_none_or(|t| x.updated_at >= t))
            .map(|x| project_view(s, x))
            .collect()
    } else {
        Vec::new()
    };
    let ids: Vec<u64> = projects.iter().map(|x| x.id).collect();
    let (range, meta) = cursor_page(&api_path(s, headers, "projects"), p, &ids, per_page)?;
    Ok(json_response(
        StatusCode::OK,
        &Listing {
            items: Named {
                key: "projects",
                items: &projects[range],
            },
            meta,
        },
    ))
}

async fn one_project(
    State(h): State<HarvestControl>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Response {
    h.with(|s| {
        match id
            .parse::<u64>()
            .ok()
            .filter(|_| ctx.account == s.data_account)
            .and_then(|id| s.projects.get(&id))
        {
            Some(p) => json_response(StatusCode::OK, &project_view(s, p)),
            None => message(StatusCode::NOT_FOUND, "Not Found"),
        }
    })
}

async fn company(State(h): State<HarvestControl>, Extension(ctx): Extension<Ctx>) -> Response {
    h.with(|s| {
        let name = s
            .accounts
            .iter()
            .find(|a| a.id == ctx.account)
            .map_or("", |a| a.name.as_str());
        json_response(
            StatusCode::OK,
            &serde_json::json!({
                "base_uri": "https://acme.harvestapp.com",
                "full_domain": "acme.harvestapp.com",
                "name": name,
                "is_active": true,
                "week_start_day": "Monday",
                "wants_timestamp_timers": false,
                "time_format": "hours_minutes",
                "date_format": "%Y-%m-%d",
                "plan_type": "simple-v4",
                "clock": "24h",
                "currency_code_display": "iso_code_none",
                "currency_symbol_display": "symbol_before",
                "decimal_symbol": ".",
                "thousands_separator": ",",
                "color_scheme": "orange",
                "weekly_capacity": 126_000,
                "expense_feature": true,
                "invoice_feature": true,
                "estimate_feature": true,
                "approval_feature": true,
                "team_feature": true,
                "saml_sign_in_required": false,
                "day_entry_notes_required": false,
            }),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Time entries

#[derive(Debug, Serialize)]
struct IdName<'a> {
    id: u64,
    name: &'a str,
}

#[derive(Debug, Serialize)]
struct UserAssignment {
    id: u64,
    is_project_manager: bool,
    is_active: bool,
    use_default_rates: bool,
    budget: Option<f64>,
    created_at: SecondsTs,
    updated_at: SecondsTs,
    hourly_rate: f64,
}

#[derive(Debug, Serialize)]
struct TaskAssignment {
    id: u64,
    billable: bool,
    is_active: bool,
    created_at: SecondsTs,
    updated_at: SecondsTs,
    hourly_rate: f64,
    budget: Option<f64>,
}

#[derive(Debug, Serialize)]
struct EntryView<'a> {
    id: u64,
    spent_date: Day,
    user: IdName<'a>,
    client: IdName<'a>,
    project: IdName<'a>,
    task: IdName<'a>,
    user_assignment: UserAssignment,
    task_assignment: TaskAssignment,
    external_reference: Option<ExternalRefView<'a>>,
    invoice: Option<()>,
    hours: f64,
    hours_without_timer: f64,
    rounded_hours: f64,
    notes: Option<&'a str>,
    is_locked: bool,
    locked_reason: Option<&'static str>,
    is_closed: bool,
    is_billed: bool,
    timer_started_at: Option<SecondsTs>,
    started_time: Option<String>,
    ended_time: Option<String>,
    is_running: bool,
    billable: bool,
    budgeted: bool,
    billable_rate: Option<f64>,
    cost_rate: Option<f64>,
    created_at: SecondsTs,
    updated_at: SecondsTs,
}

#[derive(Debug, Serialize)]
struct ExternalRefView<'a> {
    id: &'a str,
    group_id: Option<&'a str>,
    account_id: Option<&'a str>,
    permalink: Option<&'a str>,
    /// Harvest names the linking service; the sandbox uses the permalink's host.
    service: Option<String>,
    service_icon_url: Option<&'static str>,
}

fn external_ref_view(r: &ExternalReference) -> ExternalRefView<'_> {
    ExternalRefView {
        id: &r.id,
        group_id: r.group_id.as_deref(),
        account_id: r.account_id.as_deref(),
        permalink: r.permalink.as_deref(),
        service: r
            .permalink
            .as_deref()
            .and_then(|p| url::Url::parse(p).ok())
            .and_then(|u| u.host_str().map(str::to_owned)),
        service_icon_url: None,
    }
}

/// `started_time` as shown: the one written through the API, else a timer's start.
fn started_time(e: &Entry) -> Option<String> {
    e.extra
        .as_ref()
        .and_then(|x| x.started_time.clone())
        .or_else(|| {
            e.timer_started_at
                .map(|t: DateTime<Utc>| t.format("%H:%M").to_string())
        })
}

fn round2(h: f64) -> f64 {
    (h * 100.0).round() / 100.0
}

fn entry_view<'a>(s: &'a HarvestState, e: &'a Entry) -> EntryView<'a> {
    let user = s.users.get(&e.user_id);
    let project = s.projects.get(&e.project_id);
    let client = project.and_then(|p| s.clients.get(&p.client_id));
    let task_name = s.tasks.get(&e.task_id).copied().unwrap_or("");
    let assigned_at = SecondsTs(project.map_or(e.created_at, |p| p.created_at));
    let hours = round2(e.hours);
    EntryView {
        id: e.id,
        spent_date: Day(e.spent_date),
        user: IdName {
            id: e.user_id,
            name: user.map_or("", |u| u.name.as_str()),
        },
        client: IdName {
            id: client.map_or(0, |c| c.id),
            name: client.map_or("", |c| c.name.as_str()),
        },
        project: IdName {
            id: e.project_id,
            name: project.map_or("", |p| p.name.as_str()),
        },
        task: IdName {
            id: e.task_id,
            name: task_name,
        },
        user_assignment: UserAssignment {
            id: 390_000_000 + (e.project_id % 10_000) * 10_000 + e.user_id % 10_000,
            is_project_manager: false,
            is_active: true,
            use_default_rates: true,
            budget: None,
            created_at: assigned_at,
            updated_at: assigned_at,
            hourly_rate: 100.0,
        },
        task_assignment: TaskAssignment {
            id: 455_000_000 + (e.project_id % 10_000) * 100 + e.task_id % 100,
            billable: true,
            is_active: true,
            created_at: assigned_at,
            updated_at: assigned_at,
            hourly_rate: 100.0,
            budget: None,
        },
        external_reference: e
            .extra
            .as_ref()
            .and_then(|x| x.external_reference.as_ref())
            .map(external_ref_view),
        invoice: None,
        hours,
        hours_without_timer: hours,
        // The demo account rounds up to the next quarter hour.
        rounded_hours: ((hours * 4.0) - 1e-9).ceil().max(0.0) / 4.0,
        notes: e.notes.as_deref(),
        is_locked: e.is_locked,
        locked_reason: e
            .is_locked
            .then_some("Item Approved and Locked for this Time Period"),
        is_closed: e.is_locked,
        is_billed: false,
        timer_started_at: e.timer_started_at.map(SecondsTs),
        started_time: started_time(e),
        ended_time: e.extra.as_ref().and_then(|x| x.ended_time.clone()),
        is_running: e.is_running,
        billable: true,
        budgeted: true,
        billable_rate: Some(100.0),
        cost_rate: Some(50.0),
        created_at: SecondsTs(e.created_at),
        updated_at: SecondsTs(e.updated_at),
    }
}

impl EntryView<'_> {
    /// The same JSON as the serde derive (a unit test holds them equal), written through
    /// [`Obj`] because this runs for every entry of every page.
    fn write_json(&self, out: &mut String) {
        let id_name = |o: &mut Obj<'_>, k: &str, v: &IdName<'_>| {
            o.obj(k, |x| {
                x.u64("id", v.id).str("name", v.name);
            });
        };
        let ua = &self.user_assignment;
        let ta = &self.task_assignment;
        let mut o = Obj::begin(out);
        o.u64("id", self.id).date("spent_date", self.spent_date.0);
        id_name(&mut o, "user", &self.user);
        id_name(&mut o, "client", &self.client);
        id_name(&mut o, "project", &self.project);
        id_name(&mut o, "task", &self.task);
        o.obj("user_assignment", |x| {
            x.u64("id", ua.id)
                .bool("is_project_manager", ua.is_project_manager)
                .bool("is_active", ua.is_active)
                .bool("use_default_rates", ua.use_default_rates)
                .opt_f64("budget", ua.budget)
                .ts("created_at", ua.created_at.0)
                .ts("updated_at", ua.updated_at.0)
                .f64("hourly_rate", ua.hourly_rate);
        })
        .obj("task_assignment", |x| {
            x.u64("id", ta.id)
                .bool("billable", ta.billable)
                .bool("is_active", ta.is_active)
                .ts("created_at", ta.created_at.0)
                .ts("updated_at", ta.updated_at.0)
                .f64("hourly_rate", ta.hourly_rate)
                .opt_f64("budget", ta.budget);
        });
        match &self.external_reference {
            Some(r) => o.obj("external_reference", |x| {
                x.str("id", r.id)
                    .opt_str("group_id", r.group_id)
                    .opt_str("account_id", r.account_id)
                    .opt_str("permalink", r.permalink)
                    .opt_str("service", r.service.as_deref())
                    .opt_str("service_icon_url", r.service_icon_url);
            }),
            None => o.null("external_reference"),
        };
        o.null("invoice")
            .f64("hours", self.hours)
            .f64("hours_without_timer", self.hours_without_timer)
            .f64("rounded_hours", self.rounded_hours)
            .opt_str("notes", self.notes)
            .bool("is_locked", self.is_locked)
            .opt_str("locked_reason", self.locked_reason)
            .bool("is_closed", self.is_closed)
            .bool("is_billed", self.is_billed)
            .opt_ts("timer_started_at", self.timer_started_at.map(|t| t.0))
            .opt_str("started_time", self.started_time.as_deref())
            .opt_str("ended_time", self.ended_time.as_deref())
            .bool("is_running", self.is_running)
            .bool("billable", self.billable)
            .bool("budgeted", self.budgeted)
            .opt_f64("billable_rate", self.billable_rate)
            .opt_f64("cost_rate", self.cost_rate)
            .ts("created_at", self.created_at.0)
            .ts("updated_at", self.updated_at.0);
        o.end();
    }
}

/// The documented `/time_entries` filters.
#[derive(Debug, Default)]
struct EntryFilter {
    user_id: Option<u64>,
    client_id: Option<u64>,
    project_id: Option<u64>,
    task_id: Option<u64>,
    external_reference_id: Option<String>,
    is_running: Option<bool>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    updated_since: Option<DateTime<Utc>>,
}

impl EntryFilter {
    fn parse(p: &Params) -> Result<Self, Reject> {
        Ok(EntryFilter {
            user_id: opt_u64(p, "user_id")?,
            client_id: opt_u64(p, "client_id")?,
            project_id: opt_u64(p, "project_id")?,
            task_id: opt_u64(p, "task_id")?,
            external_reference_id: p.get("external_reference_id").map(str::to_owned),
            is_running: opt(p, "is_running", parse_bool)?,
            from: opt(p, "from", parse_date)?,
            to: opt(p, "to", parse_date)?,
            updated_since: opt(p, "updated_since", parse_datetime)?,
        })
    }

    fn matches(&self, s: &HarvestState, e: &Entry) -> bool {
        self.user_id.is_none_or(|v| e.user_id == v)
            && self.project_id.is_none_or(|v| e.project_id == v)
            && self.task_id.is_none_or(|v| e.task_id == v)
            && self.external_reference_id.as_deref().is_none_or(|v| {
                e.extra
                    .as_ref()
                    .and_then(|x| x.external_reference.as_ref())
                    .is_some_and(|r| r.id == v)
            })
            && self.is_running.is_none_or(|v| e.is_running == v)
            && self.from.is_none_or(|d| e.spent_date >= d)
            && self.to.is_none_or(|d| e.spent_date <= d)
            && self.updated_since.is_none_or(|t| e.updated_at >= t)
            && self.client_id.is_none_or(|c| {
                s.projects
                    .get(&e.project_id)
                    .is_some_and(|p| p.client_id == c)
            })
    }
}

async fn list_entries(
    State(h): State<HarvestControl>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    h.with(|s| entries_page(s, ctx, &p, &headers))
        .unwrap_or_else(IntoResponse::into_response)
}

fn entries_page(s: &mut HarvestState, ctx: Ctx, p: &Params, headers: &HeaderMap) -> Reply {
    let filter = EntryFilter::parse(p)?;
    let per_page = per_page(p)?;
    let page = page(p)?;
    s.sorted_entries();
    let s = &*s;
    let skip = (page - 1).saturating_mul(per_page);
    let mut total = 0u64;
    let mut window = Vec::with_capacity(per_page as usize);
    if ctx.account == s.data_account {
        for e in s.entries.iter().filter(|e| filter.matches(s, e)) {
            if total >= skip && total - skip < per_page {
                window.push(entry_view(s, e));
            }
            total += 1;
        }
    }
    let meta = numbered_meta(
        &api_path(s, headers, "time_entries"),
        p,
        page,
        per_page,
        total,
    );
    let mut body = String::with_capacity(window.len() * 1200 + 1024);
    body.push_str("{\"time_entries\":[");
    for (i, view) in window.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        view.write_json(&mut body);
    }
    body.push_str("],");
    // The meta object without its opening brace continues the same object.
    let meta = serde_json::to_string(&meta).unwrap_or_else(|_| "{}".to_owned());
    body.push_str(meta.strip_prefix('{').unwrap_or("}"));
    Ok(raw_json_response(StatusCode::OK, body))
}

async fn one_entry(
    State(h): State<HarvestControl>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Response {
    h.with(|s| {
        let found = id
            .parse::<u64>()
            .ok()
            .filter(|_| ctx.account == s.data_account)
            .and_then(|id| s.entries.iter().find(|e| e.id == id));
        match found {
            Some(e) => {
                let mut body = String::with_capacity(1200);
                entry_view(s, e).write_json(&mut body);
                raw_json_response(StatusCode::OK, body)
            }
            None => message(StatusCode::NOT_FOUND, "Not Found"),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Writing time entries

/// A POST/PATCH body's fields.
type Fields = serde_json::Map<String, Value>;

/// Reads a write's body. Harvest takes JSON (`Content-Type: application/json`) or form data
/// (reference §1.1); form fields nest like Rails' (`external_reference[id]=…`). Any other or a
/// missing `Content-Type` (multipart included, which the sandbox does not parse) is refused
/// with **415**: UNCONFIRMED, Harvest's answer is not documented. Malformed JSON is a 400, like
/// an unparsable query value.
fn body_fields(headers: &HeaderMap, body: &[u8]) -> Result<Fields, Reject> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match media.as_deref() {
        Some("application/json") => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Fields::new());
            }
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(m)) => Ok(m),
                Ok(_) => Err(Reject::msg(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "The request body must be a JSON object",
                )),
                Err(e) => Err(Reject::msg(
                    StatusCode::BAD_REQUEST,
                    format!("The request body is not valid JSON: {e}"),
                )),
            }
        }
        Some("application/x-www-form-urlencoded") => {
            let mut m = Fields::new();
            for (k, v) in url::form_urlencoded::parse(body) {
                let nested = k
                    .strip_suffix(']')
                    .and_then(|k| k.split_once('['))
                    .filter(|(outer, inner)| !outer.is_empty() && !inner.is_empty());
                match nested {
                    Some((outer, inner)) => {
                        let slot = m
                            .entry(outer.to_owned())
                            .or_insert_with(|| Value::Object(Fields::new()));
                        if let Value::Object(o) = slot {
                            o.insert(inner.to_owned(), Value::String(v.into_owned()));
                        }
                    }
                    None => {
                        m.insert(k.into_owned(), Value::String(v.into_owned()));
                    }
                }
            }
            Ok(m)
        }
        _ => Err(Reject::msg(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send the body as Content-Type: application/json (or application/x-www-form-urlencoded)",
        )),
    }
}

/// A 422 in Harvest's documented shape (`{"message": ...}`).
fn invalid(text: impl Into<String>) -> Reject {
    Reject::msg(StatusCode::UNPROCESSABLE_ENTITY, text)
}

/// An id field: a number or a numeric string (form data). `null` is blank.
fn id_field(f: &Fields, k: &str) -> Result<Option<u64>, Reject> {
    match f.get(k) {
        None => Ok(None),
        Some(Value::Null) => Err(invalid(format!("{k} can't be blank"))),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| invalid(format!("{k} must be an id, got {n}"))),
        Some(Value::String(v)) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| invalid(format!("{k} must be an id, got {v:?}"))),
        Some(v) => Err(invalid(format!("{k} must be an id, got {v}"))),
    }
}

fn date_field(f: &Fields, k: &str) -> Result<Option<NaiveDate>, Reject> {
    match f.get(k) {
        None => Ok(None),
        Some(Value::Null) => Err(invalid(format!("{k} can't be blank"))),
        Some(Value::String(v)) => parse_date(v.trim())
            .map(Some)
            .ok_or_else(|| invalid(format!("{k} must be a date like 2017-12-31, got {v:?}"))),
        Some(v) => Err(invalid(format!(
            "{k} must be a date like 2017-12-31, got {v}"
        ))),
    }
}

/// `hours`: a number or numeric string, not negative; `null` counts as absent.
fn hours_field(f: &Fields) -> Result<Option<f64>, Reject> {
    let h = match f.get("hours") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(v)) if v.trim().is_empty() => return Ok(None),
        Some(Value::String(v)) => v.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match h {
        Some(h) if h.is_finite() && h >= 0.0 => Ok(Some(h)),
        _ => Err(invalid(format!(
            "hours must be a number of hours, 0 or more, got {}",
            f["hours"]
        ))),
    }
}

/// A nullable text field: `Some(None)` clears it.
fn text_field(f: &Fields, k: &str) -> Result<Option<Option<String>>, Reject> {
    match f.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(v)) => Ok(Some(Some(v.clone()))),
        Some(Value::Number(n)) => Ok(Some(Some(n.to_string()))),
        Some(v) => Err(invalid(format!("{k} must be a string, got {v}"))),
    }
}

/// A Harvest "time": `"14:59"` or `"2:59pm"` (reference §1.8).
fn parse_clock(v: &str) -> Option<NaiveTime> {
    let t = v.trim().to_ascii_lowercase();
    let (body, pm) = match (t.strip_suffix("pm"), t.strip_suffix("am")) {
        (Some(b), _) => (b.trim_end(), Some(true)),
        (_, Some(b)) => (b.trim_end(), Some(false)),
        _ => (t.as_str(), None),
    };
    let (h, m) = body.split_once(':')?;
    if m.len() != 2 || h.is_empty() || h.len() > 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    let h = match pm {
        None => h,
        Some(_) if !(1..=12).contains(&h) => return None,
        Some(pm) => h % 12 + if pm { 12 } else { 0 },
    };
    NaiveTime::from_hms_opt(h, m, 0)
}

/// `started_time` / `ended_time`, kept as `"HH:MM"` (the demo account's 24 h clock). `null`
/// or `""` clears it.
fn time_field(f: &Fields, k: &str) -> Result<Option<Option<String>>, Reject> {
    match f.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(v)) if v.trim().is_empty() => Ok(Some(None)),
        Some(Value::String(v)) => parse_clock(v)
            .map(|t| Some(Some(t.format("%H:%M").to_string())))
            .ok_or_else(|| {
                invalid(format!(
                    "{k} must be a time like \"14:59\" or \"2:59pm\", got {v:?}"
                ))
            }),
        Some(v) => Err(invalid(format!(
            "{k} must be a time like \"14:59\", got {v}"
        ))),
    }
}

/// `external_reference {id, group_id, account_id, permalink}`; `null` removes it. The sandbox
/// requires `id` (which subfields Harvest requires is UNCONFIRMED, reference §1.10).
fn external_reference_field(f: &Fields) -> Result<Option<Option<ExternalReference>>, Reject> {
    let o = match f.get("external_reference") {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(None)),
        Some(Value::Object(o)) => o,
        Some(v) => {
            return Err(invalid(format!(
                "external_reference must be an object with an id, got {v}"
            )));
        }
    };
    let sub = |k: &str| -> Result<Option<String>, Reject> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(v)) => Ok(Some(v.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(v) => Err(invalid(format!(
                "external_reference.{k} must be a string, got {v}"
            ))),
        }
    };
    let id = sub("id")?
        .filter(|id| !id.is_empty())
        .ok_or_else(|| invalid("external_reference.id can't be blank"))?;
    Ok(Some(Some(ExternalReference {
        id,
        group_id: sub("group_id")?,
        account_id: sub("account_id")?,
        permalink: sub("permalink")?,
    })))
}

/// Hours between two `"HH:MM"` times of one day.
fn span_hours(started: &str, ended: &str) -> Result<f64, Reject> {
    let minutes = |t: &str| parse_clock(t).map(|t| i64::from(t.hour() * 60 + t.minute()));
    match (minutes(started), minutes(ended)) {
        (Some(a), Some(b)) if b >= a => Ok(round2((b - a) as f64 / 60.0)),
        // UNCONFIRMED: what Harvest does with an end before the start is not documented.
        _ => Err(invalid(format!(
            "ended_time ({ended}) must not be before started_time ({started})"
        ))),
    }
}

/// The project must exist in the account and be active. Writing time to an archived project
/// is refused with 422 (UNCONFIRMED: the reference only documents the rule for deletes).
fn check_project(s: &HarvestState, ctx: Ctx, id: u64) -> Result<(), Reject> {
    match s
        .projects
        .get(&id)
        .filter(|_| ctx.account == s.data_account)
    {
        None => Err(invalid(format!("project_id {id} names no project"))),
        Some(p) if !p.is_active => Err(invalid(format!(
            "Project {id} is archived; time cannot be tracked on it"
        ))),
        Some(_) => Ok(()),
    }
}

/// The task must exist and be active; every task is assigned to every sandbox project.
fn check_task(s: &HarvestState, id: u64) -> Result<(), Reject> {
    if !s.tasks.contains_key(&id) {
        return Err(invalid(format!("task_id {id} names no task")));
    }
    if s.archived_tasks.contains(&id) {
        return Err(invalid(format!(
            "Task {id} is archived; time cannot be tracked on it"
        )));
    }
    Ok(())
}

fn is_admin(s: &HarvestState) -> bool {
    s.me()
        .is_some_and(|u| u.access_roles.contains(&"administrator"))
}

/// Whether the acting user (the token's, [`HarvestState::me`]) may write `owner`'s time:
/// their own, or anyone's as an administrator (reference §1.3, §1.10). Managers' rights over
/// teammates are not modelled (the sandbox has no teams).
fn may_write_for(s: &HarvestState, owner: u64) -> Result<(), Reject> {
    if s.me().is_some_and(|u| u.id == owner) || is_admin(s) {
        return Ok(());
    }
    Err(Reject::msg(
        StatusCode::FORBIDDEN,
        "You do not have permission to write other users' time entries",
    ))
}

fn entry_response(s: &HarvestState, id: u64, status: StatusCode) -> Reply {
    let e = s
        .entry(id)
        .ok_or_else(|| Reject::msg(StatusCode::NOT_FOUND, "Not Found"))?;
    let mut body = String::with_capacity(1200);
    entry_view(s, e).write_json(&mut body);
    Ok(raw_json_response(status, body))
}

/// The entry `raw` names in the request's account, else 404.
fn existing_entry(s: &HarvestState, ctx: Ctx, raw: &str) -> Result<u64, Reject> {
    raw.parse::<u64>()
        .ok()
        .filter(|_| ctx.account == s.data_account)
        .filter(|id| s.entry(*id).is_some())
        .ok_or_else(|| Reject::msg(StatusCode::NOT_FOUND, "Not Found"))
}

/// `POST /v2/time_entries` (reference §1.10): `project_id`, `task_id` and `spent_date` are
/// required; `user_id` defaults to the token's user; `hours`, or `started_time` with an
/// optional `ended_time`; `notes`, `external_reference`. Without `hours` or an `ended_time`
/// the entry is a running timer. **201** with the entry as `GET` shows it; **422**
/// `{"message"}` for a missing or invalid field, an unknown or archived project or task, or an
/// unknown user; **403** for another user's time unless the token's user is an administrator.
async fn create_entry(
    State(h): State<HarvestControl>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    body_fields(&headers, &body)
        .and_then(|f| h.with(|s| create(s, ctx, &f)))
        .unwrap_or_else(IntoResponse::into_response)
}

fn create(s: &mut HarvestState, ctx: Ctx, f: &Fields) -> Reply {
    let project_id = id_field(f, "project_id")?;
    let task_id = id_field(f, "task_id")?;
    let spent_date = date_field(f, "spent_date")?;
    let (Some(project_id), Some(task_id), Some(spent_date)) = (project_id, task_id, spent_date)
    else {
        let missing: Vec<&str> = [
            ("project_id", project_id.is_none()),
            ("task_id", task_id.is_none()),
            ("spent_date", spent_date.is_none()),
        ]
        .into_iter()
        .filter_map(|(k, absent)| absent.then_some(k))
        .collect();
        return Err(invalid(format!("{} can't be blank", missing.join(", "))));
    };
    check_project(s, ctx, project_id)?;
    check_task(s, task_id)?;
    let user_id = match id_field(f, "user_id")? {
        Some(u) => u,
        None => s
            .me()
            .map(|u| u.id)
            .ok_or_else(|| invalid("user_id can't be blank (the account has no users)"))?,
    };
    if !s.users.contains_key(&user_id) {
        return Err(invalid(format!("user_id {user_id} names no user")));
    }
    may_write_for(s, user_id)?;
    let hours = hours_field(f)?;
    let started = time_field(f, "started_time")?.flatten();
    let ended = time_field(f, "ended_time")?.flatten();
    let notes = text_field(f, "notes")?.flatten();
    let external_reference = external_reference_field(f)?.flatten();
    if ended.is_some() && started.is_none() {
        return Err(invalid("ended_time needs a started_time"));
    }
    let (hours, is_running) = match (hours, &started, &ended) {
        (Some(h), _, _) => (h, false),
        (None, Some(a), Some(b)) => (span_hours(a, b)?, false),
        // Duration mode without hours, or a start without an end: a running timer at 0 h.
        _ => (0.0, true),
    };
    let id = s.insert_entry(
        NewHarvestEntry {
            project_id,
            user_id,
            spent_date,
            hours,
            notes,
            is_running,
        },
        task_id,
        Utc::now(),
    );
    let extra = EntryExtra {
        started_time: started,
        ended_time: ended,
        external_reference,
    };
    if extra != EntryExtra::default()
        && let Some(e) = s.entry_mut(id)
    {
        e.extra = Some(Box::new(extra));
    }
    entry_response(s, id, StatusCode::CREATED)
}

/// `PATCH /v2/time_entries/{id}` (reference §1.9): changes any of `project_id`, `task_id`,
/// `spent_date`, `started_time`, `ended_time`, `hours`, `notes`, `external_reference` and
/// bumps `updated_at` (so `updated_since` sees it). New start/end times without `hours`
/// recompute the hours, and an `ended_time` stops a running timer. **200** with the entry;
/// **404** unknown id; **422** invalid field or unknown/archived project or task; **403**
/// another user's entry unless the token's user is an administrator.
async fn update_entry(
    State(h): State<HarvestControl>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    body_fields(&headers, &body)
        .and_then(|f| h.with(|s| update(s, ctx, &id, &f)))
        .unwrap_or_else(IntoResponse::into_response)
}

fn update(s: &mut HarvestState, ctx: Ctx, raw_id: &str, f: &Fields) -> Reply {
    let id = existing_entry(s, ctx, raw_id)?;
    let Some(e) = s.entry(id) else {
        return Err(Reject::msg(StatusCode::NOT_FOUND, "Not Found"));
    };
    may_write_for(s, e.user_id)?;
    let mut p = EntryPatch {
        project_id: id_field(f, "project_id")?,
        task_id: id_field(f, "task_id")?,
        spent_date: date_field(f, "spent_date")?,
        hours: hours_field(f)?,
        notes: text_field(f, "notes")?,
        started_time: time_field(f, "started_time")?,
        ended_time: time_field(f, "ended_time")?,
        external_reference: external_reference_field(f)?,
        is_running: None,
    };
    if let Some(project) = p.project_id {
        check_project(s, ctx, project)?;
    }
    if let Some(task) = p.task_id {
        check_task(s, task)?;
    }
    if p.started_time.is_some() || p.ended_time.is_some() {
        let start = p.started_time.clone().unwrap_or_else(|| started_time(e));
        let end = p
            .ended_time
            .clone()
            .unwrap_or_else(|| e.extra.as_ref().and_then(|x| x.ended_time.clone()));
        if let (Some(a), Some(b)) = (&start, &end) {
            let span = span_hours(a, b)?;
            p.hours = p.hours.or(Some(span));
            if e.is_running {
                p.is_running = Some(false);
            }
            // A stopped timer keeps the start it showed.
            p.started_time = Some(start);
        }
    }
    s.patch_entry(id, p);
    entry_response(s, id, StatusCode::OK)
}

/// `DELETE /v2/time_entries/{id}` (reference §1.9): **200** with an empty body (the success
/// code is not in the reference; Harvest's docs answer 200 OK); **404** unknown id. Refused,
/// as the reference says, for a closed entry unless the token's user is an administrator
/// (**403**) and for an entry whose project or task is archived (**422**); both statuses are
/// UNCONFIRMED (the reference names the rule, not the code).
async fn delete_entry(
    State(h): State<HarvestControl>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Response {
    h.with(|s| delete(s, ctx, &id))
        .unwrap_or_else(IntoResponse::into_response)
}

fn delete(s: &mut HarvestState, ctx: Ctx, raw_id: &str) -> Reply {
    let id = existing_entry(s, ctx, raw_id)?;
    let Some(e) = s.entry(id) else {
        return Err(Reject::msg(StatusCode::NOT_FOUND, "Not Found"));
    };
    may_write_for(s, e.user_id)?;
    if e.is_locked && !is_admin(s) {
        return Err(Reject::msg(
            StatusCode::FORBIDDEN,
            "This time entry is closed (approved); only an administrator can delete it",
        ));
    }
    if s.projects.get(&e.project_id).is_some_and(|p| !p.is_active) {
        return Err(invalid(
            "The time entry's project is archived; restore it to delete the entry",
        ));
    }
    if s.archived_tasks.contains(&e.task_id) {
        return Err(invalid(
            "The time entry's task is archived; restore it to delete the entry",
        ));
    }
    s.remove_entry(id);
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_accept_standard_base64() {
        assert_eq!(
            decode_cursor(&encode_cursor(Cursor::After(4088310))),
            Some(Cursor::After(4088310))
        );
        // The reference fixture's cursor.
        assert_eq!(
            decode_cursor("eyJhZnRlciI6eyJpZCI6NDA4ODMxMH19"),
            Some(Cursor::After(4088310))
        );
        assert_eq!(
            decode_cursor("eyJiZWZvcmUiOnsiaWQiOjQxMTU1MDJ9fQ"),
            Some(Cursor::Before(4115502))
        );
        assert_eq!(decode_cursor("not a cursor"), None);
    }

    #[test]
    fn hand_written_entry_json_equals_the_serde_derive() {
        let mut s = HarvestState::new(crate::Seed::Demo);
        let quoted = s.entries[0].id;
        if let Some(e) = s.entry_mut(quoted) {
            e.notes = Some("say \"hi\"\n\ttab".into());
        }
        let linked = s.entries[1].id;
        if let Some(e) = s.entry_mut(linked) {
            e.extra = Some(Box::new(EntryExtra {
                started_time: Some("09:00".into()),
                ended_time: Some("10:30".into()),
                external_reference: Some(ExternalReference {
                    id: "wl-1".into(),
                    group_id: None,
                    account_id: Some("7".into()),
                    permalink: Some("https://host.test/logs/1".into()),
                }),
            }));
        }
        for e in &s.entries {
            let view = entry_view(&s, e);
            let mut out = String::new();
            view.write_json(&mut out);
            let written: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(written, serde_json::to_value(&view).unwrap(), "{out}");
        }
    }

    #[test]
    fn clock_times_parse_in_both_harvest_formats() {
        let t = |v: &str| parse_clock(v).map(|t| t.format("%H:%M").to_string());
        assert_eq!(t("14:59").as_deref(), Some("14:59"));
        assert_eq!(t("9:05").as_deref(), Some("09:05"));
        assert_eq!(t("2:59pm").as_deref(), Some("14:59"));
        assert_eq!(t("12:00am").as_deref(), Some("00:00"));
        assert_eq!(t("12:30 PM").as_deref(), Some("12:30"));
        for bad in ["24:00", "13:00pm", "9", "9:5", "noon", ""] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn links_keep_filters_and_sort_keys() {
        let p = Params::parse("to=2025-02-28&project_id=7&page=1&from=2025-02-01");
        let l = link(
            "http://h/x",
            &p,
            &[
                ("page", "2".into()),
                ("per_page", "3".into()),
                ("ref", "next".into()),
            ],
        );
        assert_eq!(
            l,
            "http://h/x?from=2025-02-01&page=2&per_page=3&project_id=7&ref=next&to=2025-02-28"
        );
    }
}

//! Hubstaff's HTTP surface. Error bodies are `{"code","error_code","error"}` with the
//! documented ranges (10000 auth, 11000 validation, 12000 resource, 13000 rate limit, 15000
//! system), except a rejected bearer token, which answers the OAuth-style
//! `{"error":"invalid_token","error_description":...}` seen on the live API.

use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{NaiveDate, Utc};
use serde::Serialize;

use super::{Daily, HubstaffControl, HubstaffState, Member, ORGANIZATION_ID, Project, User};
use crate::common::{
    Injected, MicrosTs, Params, bearer, external_origin, found, json_response, parse_bool,
    parse_date, plain, random_string, truncate_body, with_retry_after,
};

/// Where the Hubstaff emulation is mounted inside the sandbox server.
const PREFIX: &str = "/hubstaff";
const DEFAULT_PAGE_LIMIT: u64 = 100;
const MAX_PAGE_LIMIT: u64 = 500;
/// `date[start]..=date[stop]` may cover at most this many days.
const MAX_DAILY_WINDOW_DAYS: i64 = 31;

/// Builds the Hubstaff routes (mounted under [`PREFIX`] by the sandbox).
pub(crate) fn router(h: HubstaffControl) -> Router {
    let api = Router::new()
        .route("/organizations", get(organizations))
        .route("/organizations/{org}/members", get(members))
        .route("/organizations/{org}/projects", get(projects))
        .route("/organizations/{org}/activities/daily", get(org_daily))
        .route(
            "/projects/{project_id}/activities/daily",
            get(project_daily),
        )
        .route("/users/me", get(users_me))
        .fallback(|| async { not_found("Not found").into_response() })
        .layer(middleware::from_fn_with_state(h.clone(), gate));
    Router::new()
        .route("/account/authorizations/new", get(authorize))
        .route("/account/access_tokens", post(token))
        .route("/account/.well-known/openid-configuration", get(discovery))
        .nest("/api/v2", api)
        .with_state(h)
}

type Reply = Result<Response, Reject>;

/// Why a request is refused; rendered in Hubstaff's shapes.
#[derive(Debug)]
enum Reject {
    /// `{"code","error_code","error"}` with this status (and `Retry-After` when throttled).
    Api {
        status: StatusCode,
        code: &'static str,
        error_code: u32,
        text: String,
        retry_after: Option<u64>,
    },
    /// A bearer token that is unknown, expired or revoked.
    InvalidToken,
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        match self {
            Reject::Api {
                status,
                code,
                error_code,
                text,
                retry_after,
            } => {
                let r = json_response(
                    status,
                    &serde_json::json!({ "code": code, "error_code": error_code, "error": text }),
                );
                match retry_after {
                    Some(secs) => with_retry_after(r, secs),
                    None => r,
                }
            }
            Reject::InvalidToken => json_response(
                StatusCode::UNAUTHORIZED,
                &serde_json::json!({
                    "error": "invalid_token",
                    "error_description": "The access token is invalid, expired or revoked",
                }),
            ),
        }
    }
}

fn error(status: StatusCode, code: &'static str, error_code: u32, text: &str) -> Reject {
    Reject::Api {
        status,
        code,
        error_code,
        text: text.to_owned(),
        retry_after: None,
    }
}

fn invalid_param(text: &str) -> Reject {
    error(StatusCode::BAD_REQUEST, "invalid_params", 11001, text)
}

fn not_found(text: &str) -> Reject {
    error(StatusCode::NOT_FOUND, "not_found", 12001, text)
}

fn rate_limited(secs: u64) -> Reject {
    Reject::Api {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: "rate_limit_exceeded",
        error_code: 13001,
        text: "Rate limit exceeded".to_owned(),
        retry_after: Some(secs),
    }
}

async fn gate(State(h): State<HubstaffControl>, req: Request, next: Next) -> Response {
    let latency = h.with(|s| {
        s.common.requests += 1;
        s.common.faults.latency
    });
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Err(r) = h.with(|s| admit(s, req.headers())) {
        return r.into_response();
    }
    let resp = next.run(req).await;
    if resp.status().is_success() && h.with(|s| s.common.faults.take_malformed()) {
        return truncate_body(resp).await;
    }
    resp
}

fn admit(s: &mut HubstaffState, headers: &HeaderMap) -> Result<(), Reject> {
    if let Some(fault) = s.common.faults.take_injected() {
        tracing::debug!(%fault, "hubstaff sandbox: injected fault");
        return Err(match fault {
            Injected::Fail(status) if status == StatusCode::TOO_MANY_REQUESTS => rate_limited(1),
            Injected::Fail(status) => error(
                status,
                "server_error",
                15001,
                status.canonical_reason().unwrap_or("Injected failure"),
            ),
            Injected::RateLimited(secs) => rate_limited(secs),
        });
    }
    let Some(token) = bearer(headers) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "not_authorized",
            10001,
            "Authentication required",
        ));
    };
    let now = Instant::now();
    let client = s
        .common
        .oauth
        .access(token, now)
        .map(|g| g.client_id.clone())
        .ok_or(Reject::InvalidToken)?;
    // Hubstaff budgets per application, so every token of one OAuth client shares a window.
    s.common.limiter.check(&client, now).map_err(rate_limited)
}

// ---------------------------------------------------------------------------------------------
// Account server: OAuth / OpenID Connect

async fn authorize(State(h): State<HubstaffControl>, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    match h.with(|s| s.common.oauth.authorize(&p, &[])) {
        Ok(location) => found(&location),
        Err(why) => plain(StatusCode::BAD_REQUEST, &why),
    }
}

/// A JWT-shaped access token (as Hubstaff issues) with `exp`, `aud` and `scope` claims. The
/// signature is random: clients may read claims but have no key to verify against.
fn mint_jwt(issuer: &str, subject: Option<u64>, client_id: &str, ttl_secs: u64) -> String {
    let now = Utc::now().timestamp();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT","kid":"sandbox"}"#);
    let claims = serde_json::json!({
        "iss": issuer,
        "sub": subject.map(|id| id.to_string()),
        "aud": client_id,
        "iat": now,
        "exp": now.saturating_add(i64::try_from(ttl_secs).unwrap_or(i64::MAX / 2)),
        "scope": "openid profile email hubstaff:read hubstaff:write",
        "jti": random_string(24),
    });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.{}", random_string(86))
}

async fn token(State(h): State<HubstaffControl>, headers: HeaderMap, body: Bytes) -> Response {
    h.with(|s| {
        s.common.token_requests += 1;
        if let Some(status) = s.common.faults.take_oauth_failure() {
            return plain(status, "injected token endpoint failure");
        }
        let issuer = format!(
            "{}{PREFIX}/account",
            external_origin(&headers, &s.common.origin)
        );
        let subject = s.me().map(|u| u.id);
        let ttl = s.common.oauth.ttl.as_secs();
        match s.common.oauth.token(&headers, &body, &mut |client| {
            mint_jwt(&issuer, subject, client, ttl)
        }) {
            Ok(answer) => json_response(StatusCode::OK, &answer),
            Err(e) => e.into_response(),
        }
    })
}

async fn discovery(State(h): State<HubstaffControl>, headers: HeaderMap) -> Response {
    let base = h.with(|s| {
        format!(
            "{}{PREFIX}/account",
            external_origin(&headers, &s.common.origin)
        )
    });
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}/authorizations/new"),
            "token_endpoint": format!("{base}/access_tokens"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "scopes_supported": ["openid", "profile", "email", "hubstaff:read", "hubstaff:write"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256", "plain"],
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Parameters and paging

#[derive(Debug, Clone, Copy, Serialize)]
struct Pagination {
    next_page_start_id: u64,
}

/// `page_start_id` (default 0) and `page_limit` (default 100, at most 500).
fn paging(p: &Params) -> Result<(u64, usize), Reject> {
    let start = match p.get("page_start_id") {
        None => 0,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| invalid_param(&format!("page_start_id is invalid: {v:?}")))?,
    };
    let limit = match p.get("page_limit") {
        None => DEFAULT_PAGE_LIMIT,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE_LIMIT).contains(n))
            .ok_or_else(|| {
                invalid_param(&format!(
                    "page_limit must be between 1 and {MAX_PAGE_LIMIT}, got {v:?}"
                ))
            })?,
    };
    Ok((start, limit as usize))
}

/// Rows with id >= `start` (ascending), at most `limit`, plus where the next page starts.
fn page_of<'a, T: 'a>(
    rows: impl Iterator<Item = &'a T>,
    id: impl Fn(&T) -> u64,
    (start, limit): (u64, usize),
) -> (Vec<&'a T>, Option<Pagination>) {
    let mut rows = rows.filter(|r| id(r) >= start);
    let page: Vec<&T> = rows.by_ref().take(limit).collect();
    let next = rows.next().map(|r| Pagination {
        next_page_start_id: id(r),
    });
    (page, next)
}

/// Every value of a Rails-style array parameter (`name[]=1&name[]=2`) as ids.
fn ids(p: &Params, name: &str) -> Result<Vec<u64>, Reject> {
    p.all(name)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| invalid_param(&format!("{name} contains an invalid id: {v:?}")))
        })
        .collect()
}

fn includes(p: &Params, what: &str) -> bool {
    p.all("include[]").any(|v| v == what)
}

fn organization(raw: &str) -> Result<(), Reject> {
    match raw.parse::<u64>() {
        Ok(ORGANIZATION_ID) => Ok(()),
        _ => Err(not_found("Organization not found")),
    }
}

// ---------------------------------------------------------------------------------------------
// Organizations, members, projects, users

async fn organizations(State(h): State<HubstaffControl>) -> Response {
    h.with(|s| {
        json_response(
            StatusCode::OK,
            &serde_json::json!({ "organizations": [{
                "id": ORGANIZATION_ID,
                "name": s.org_name,
                "status": "active",
                "created_at": MicrosTs(s.org_created_at),
                "updated_at": MicrosTs(s.org_created_at),
                "metadata": {},
            }]}),
        )
    })
}

async fn users_me(State(h): State<HubstaffControl>) -> Response {
    h.with(|s| match s.me() {
        Some(u) => json_response(StatusCode::OK, &serde_json::json!({ "user": u })),
        None => not_found("User not found").into_response(),
    })
}

#[derive(Debug, Serialize)]
struct MembersBody<'a> {
    members: Vec<&'a Member>,
    #[serde(skip_serializing_if = "Option::is_none")]
    users: Option<Vec<&'a User>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pagination: Option<Pagination>,
}

async fn members(State(h): State<HubstaffControl>, Path(org): Path<String>, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    h.with(|s| members_page(s, &org, &p))
        .unwrap_or_else(IntoResponse::into_response)
}

fn members_page(s: &HubstaffState, org: &str, p: &Params) -> Reply {
    organization(org)?;
    let include_removed = match p.get("include_removed") {
        None => false,
        Some(v) => parse_bool(v)
            .ok_or_else(|| invalid_param(&format!("include_removed is invalid: {v:?}")))?,
    };
    let user_ids = ids(p, "user_ids[]")?;
    let rows = s
        .members
        .values()
        .filter(|m| include_removed || m.removed_at.is_none())
        .filter(|m| user_ids.is_empty() || user_ids.contains(&m.user_id));
    let (members, pagination) = page_of(rows, |m| m.user_id, paging(p)?);
    let users = includes(p, "users").then(|| {
        members
            .iter()
            .filter_map(|m| s.users.get(&m.user_id))
            .collect()
    });
    Ok(json_response(
        StatusCode::OK,
        &MembersBody {
            members,
            users,
            pagination,
        },
    ))
}

#[derive(Debug, Serialize)]
struct ProjectsBody<'a> {
    projects: Vec<&'a Project>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pagination: Option<Pagination>,
}

async fn projects(State(h): State<HubstaffControl>, Path(org): Path<String>, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    h.with(|s| projects_page(s, &org, &p))
        .unwrap_or_else(IntoResponse::into_response)
}

fn projects_page(s: &HubstaffState, org: &str, p: &Params) -> Reply {
    organization(org)?;
    let status = p.get("status").unwrap_or("active");
    if !matches!(status, "active" | "archived" | "all") {
        return Err(invalid_param(&format!(
            "status must be active, archived or all, got {status:?}"
        )));
    }
    let wanted = ids(p, "project_ids[]")?;
    let rows = s
        .projects
        .values()
        .filter(|x| status == "all" || x.status == status)
        .filter(|x| wanted.is_empty() || wanted.contains(&x.id));
    let (projects, pagination) = page_of(rows, |x| x.id, paging(p)?);
    Ok(json_response(
        StatusCode::OK,
        &ProjectsBody {
            projects,
            pagination,
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// Daily activities

#[derive(Debug, Serialize)]
struct DailyView {
    id: u64,
    date: NaiveDate,
    user_id: u64,
    project_id: u64,
    task_id: Option<u64>,
    keyboard: u32,
    mouse: u32,
    overall: u32,
    tracked: u32,
    input_tracked: u32,
    manual: u32,
    idle: u32,
    resumed: u32,
    billable: u32,
    work_break: u32,
    created_at: MicrosTs,
    updated_at: MicrosTs,
}

fn daily_view(d: &Daily) -> DailyView {
    let t = d.tracked;
    // Fixed proportions keep the counters plausible (each a subset of `tracked`) and stable.
    DailyView {
        id: d.id,
        date: d.date,
        user_id: d.user_id,
        project_id: d.project_id,
        task_id: d.task_id,
        keyboard: t / 5 * 2,
        mouse: t / 20 * 11,
        overall: t / 10 * 7,
        tracked: t,
        input_tracked: t,
        manual: 0,
        idle: t / 50,
        resumed: 0,
        billable: t,
        work_break: 0,
        created_at: MicrosTs(d.created_at),
        updated_at: MicrosTs(d.updated_at),
    }
}

#[derive(Debug, Serialize)]
struct DailyBody<'a> {
    daily_activities: Vec<DailyView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    users: Option<Vec<&'a User>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    projects: Option<Vec<&'a Project>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pagination: Option<Pagination>,
}

fn required_date(p: &Params, name: &str) -> Result<NaiveDate, Reject> {
    let v = p
        .get(name)
        .ok_or_else(|| invalid_param(&format!("{name} is required")))?;
    parse_date(v)
        .ok_or_else(|| invalid_param(&format!("{name} must be a date (YYYY-MM-DD), got {v:?}")))
}

async fn org_daily(
    State(h): State<HubstaffControl>,
    Path(org): Path<String>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    h.with(|s| organization(&org).and_then(|()| daily_page(s, None, &p)))
        .unwrap_or_else(IntoResponse::into_response)
}

async fn project_daily(
    State(h): State<HubstaffControl>,
    Path(project): Path<String>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    h.with(|s| {
        let project = project
            .parse::<u64>()
            .ok()
            .filter(|id| s.projects.contains_key(id))
            .ok_or_else(|| not_found("Project not found"))?;
        daily_page(s, Some(project), &p)
    })
    .unwrap_or_else(IntoResponse::into_response)
}

/// `date[stop]` is inclusive and the window is at most 31 days, counting both ends.
fn daily_page(s: &HubstaffState, project: Option<u64>, p: &Params) -> Reply {
    let start = required_date(p, "date[start]")?;
    let stop = required_date(p, "date[stop]")?;
    if stop < start {
        return Err(invalid_param("date[stop] must not be before date[start]"));
    }
    if (stop - start).num_days() + 1 > MAX_DAILY_WINDOW_DAYS {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_params",
            11002,
            &format!("date range must not exceed {MAX_DAILY_WINDOW_DAYS} days"),
        ));
    }
    let users = ids(p, "user_ids[]")?;
    let projects = ids(p, "project_ids[]")?;
    let tasks = ids(p, "task_ids[]")?;
    let rows = s.dailies.values().filter(|d| {
        d.date >= start
            && d.date <= stop
            && project.is_none_or(|id| d.project_id == id)
            && (projects.is_empty() || projects.contains(&d.project_id))
            && (users.is_empty() || users.contains(&d.user_id))
            && (tasks.is_empty() || d.task_id.is_some_and(|t| tasks.contains(&t)))
    });
    let (page, pagination) = page_of(rows, |d| d.id, paging(p)?);
    let mut user_ids: Vec<u64> = page.iter().map(|d| d.user_id).collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    let mut project_ids: Vec<u64> = page.iter().map(|d| d.project_id).collect();
    project_ids.sort_unstable();
    project_ids.dedup();
    let body = DailyBody {
        daily_activities: page.into_iter().map(daily_view).collect(),
        users: includes(p, "users")
            .then(|| user_ids.iter().filter_map(|id| s.users.get(id)).collect()),
        projects: (project.is_none() && includes(p, "projects")).then(|| {
            project_ids
                .iter()
                .filter_map(|id| s.projects.get(id))
                .collect()
        }),
        pagination,
    };
    Ok(json_response(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_of_reports_the_first_id_of_the_next_page() {
        let rows = [3u64, 5, 8, 13];
        let (page, next) = page_of(rows.iter(), |r| *r, (4, 2));
        assert_eq!(page, [&5, &8]);
        assert_eq!(next.map(|n| n.next_page_start_id), Some(13));
        let (page, next) = page_of(rows.iter(), |r| *r, (13, 2));
        assert_eq!(page, [&13]);
        assert!(next.is_none());
    }

    #[test]
    fn jwt_claims_are_readable() {
        let t = mint_jwt("http://x/hubstaff/account", Some(7), "app", 60);
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], "app");
        assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
    }
}

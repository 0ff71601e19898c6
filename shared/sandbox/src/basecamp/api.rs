//! Basecamp's HTTP surface: Launchpad and the per-account `bc3` API. Paths end in `.json` and
//! take flat (`/todos/{id}.json`) and bucket (`/buckets/{project}/todos/{id}.json`) forms, so the
//! account API is routed by hand rather than by axum's matcher.

use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri, header};
use axum::routing::{any, get, post};
use chrono::{Duration as ChronoDuration, NaiveDate, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    Account, BasecampControl, BasecampState, BasecampStatus, Entry, MillisTs, Person, Project,
    Todo, Todolist, Webhook, format_hours, parse_hours,
};
use crate::common::{
    Injected, Params, bearer, bump, external_origin, found, json_response, parse_bool, parse_date,
    plain, truncate_body, with_retry_after,
};

/// Where the Basecamp emulation is mounted inside the sandbox server.
const PREFIX: &str = "/basecamp";

/// Webhook types Basecamp documents.
const WEBHOOK_TYPES: &[&str] = &[
    "Comment",
    "Client::Approval::Response",
    "Client::Forward",
    "Client::Reply",
    "CloudFile",
    "Document",
    "GoogleDocument",
    "Inbox::Forward",
    "Kanban::Card",
    "Kanban::Step",
    "Message",
    "Question",
    "Question::Answer",
    "Schedule::Entry",
    "Todo",
    "Todolist",
    "Upload",
    "Vault",
];

/// Builds the Basecamp routes (mounted under [`PREFIX`] by the sandbox).
pub(crate) fn router(h: BasecampControl) -> Router {
    Router::new()
        .route("/launchpad/authorization/new", get(authorize))
        .route("/launchpad/authorization/token", post(token))
        .route("/launchpad/authorization.json", get(authorization))
        .route("/api/{*rest}", any(api))
        .with_state(h)
}

/// Why a request is refused.
#[derive(Debug)]
enum Reject {
    /// `{"error": ...}` with this status.
    Error(StatusCode, String),
    /// Missing, unknown, expired or revoked bearer token.
    InvalidToken,
    /// No such account, or not a `bc3` one.
    NotFound,
    /// The account is inactive: 404 with `Reason: Account Inactive`.
    Inactive,
    /// Over the budget.
    Throttled(u64),
    /// A queued fault.
    Injected(Injected),
}

fn error(status: StatusCode, text: impl Into<String>) -> Reject {
    Reject::Error(status, text.into())
}

fn not_found() -> Reject {
    Reject::NotFound
}

fn unprocessable(text: impl Into<String>) -> Reject {
    error(StatusCode::UNPROCESSABLE_ENTITY, text)
}

impl Reject {
    fn into_response(self) -> Response<Body> {
        match self {
            Reject::Error(status, text) => json_response(status, &json!({ "error": text })),
            Reject::InvalidToken => {
                let mut r = plain(StatusCode::UNAUTHORIZED, "HTTP Token: Access denied.\n");
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"Basecamp\""),
                );
                r
            }
            Reject::NotFound => {
                json_response(StatusCode::NOT_FOUND, &json!({ "error": "Not Found" }))
            }
            Reject::Inactive => {
                let mut r = json_response(StatusCode::NOT_FOUND, &json!({ "error": "Not Found" }));
                r.headers_mut()
                    .insert("reason", HeaderValue::from_static("Account Inactive"));
                r
            }
            Reject::Throttled(secs) | Reject::Injected(Injected::RateLimited(secs)) => {
                with_retry_after(
                    json_response(
                        StatusCode::TOO_MANY_REQUESTS,
                        &json!({ "error": "Too many requests" }),
                    ),
                    secs,
                )
            }
            Reject::Injected(Injected::Fail(status)) => {
                let r = json_response(
                    status,
                    &json!({ "error": status.canonical_reason().unwrap_or("Injected failure") }),
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

/// A successful answer before finishing (ETag, paging headers).
struct Out {
    status: StatusCode,
    body: Option<Value>,
    link: Option<String>,
    total: Option<usize>,
}

impl Out {
    fn ok(body: Value) -> Self {
        Out {
            status: StatusCode::OK,
            body: Some(body),
            link: None,
            total: None,
        }
    }

    fn created(body: Value) -> Self {
        Out {
            status: StatusCode::CREATED,
            ..Out::ok(body)
        }
    }

    fn no_content() -> Self {
        Out {
            status: StatusCode::NO_CONTENT,
            body: None,
            link: None,
            total: None,
        }
    }
}

type Reply = Result<Out, Reject>;

// ---------------------------------------------------------------------------------------------
// Launchpad

/// `type=web_server` (legacy) or `response_type=code`; auto-consents.
async fn authorize(State(h): State<BasecampControl>, uri: Uri) -> Response<Body> {
    let mut p = Params::from_uri(&uri);
    match (p.get("type"), p.get("response_type")) {
        (Some("web_server"), None) => {
            let mut raw = uri.query().unwrap_or("").to_owned();
            raw.push_str("&response_type=code");
            p = Params::parse(&raw);
        }
        (None | Some("web_server"), Some(_)) => {}
        _ => {
            return plain(
                StatusCode::BAD_REQUEST,
                "type=web_server or response_type=code is required",
            );
        }
    }
    match h.with(|s| s.common.oauth.authorize(&p, &[])) {
        Ok(location) => found(&location),
        Err(why) => plain(StatusCode::BAD_REQUEST, &why),
    }
}

/// Parameters may come in the query (Basecamp's own examples) or a form body; the legacy
/// `type=web_server|refresh` stands for the matching `grant_type`. HTTP Basic is refused.
async fn token(
    State(h): State<BasecampControl>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    h.with(|s| {
        s.common.token_requests += 1;
        if let Some(status) = s.common.faults.take_oauth_failure() {
            return plain(status, "injected token endpoint failure");
        }
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("basic "));
        if basic {
            return json_response(
                StatusCode::UNAUTHORIZED,
                &json!({
                    "error": "invalid_client",
                    "error_description": "Launchpad takes client_id and client_secret as request parameters, not HTTP Basic",
                }),
            );
        }
        let mut pairs: Vec<(String, String)> = Params::from_uri(&uri).pairs().to_vec();
        pairs.extend(
            Params::parse(std::str::from_utf8(&body).unwrap_or(""))
                .pairs()
                .iter()
                .cloned(),
        );
        if let Some(i) = pairs.iter().position(|(k, _)| k == "type") {
            let (_, legacy) = pairs.remove(i);
            let grant = match legacy.as_str() {
                "web_server" => "authorization_code",
                "refresh" => "refresh_token",
                _ => "unsupported",
            };
            if !pairs.iter().any(|(k, _)| k == "grant_type") {
                pairs.push(("grant_type".into(), grant.into()));
            }
        }
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let mut form_headers = HeaderMap::new();
        form_headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        match s.common.oauth.token(&form_headers, form.as_bytes(), &mut |_| {
            BasecampControl::mint_access_token()
        }) {
            Ok(answer) => json_response(StatusCode::OK, &answer),
            Err(e) => e.into_response(),
        }
    })
}

async fn authorization(State(h): State<BasecampControl>, headers: HeaderMap) -> Response<Body> {
    h.with(|s| {
        if !has_user_agent(&headers) {
            return missing_user_agent().into_response();
        }
        if bearer(&headers)
            .and_then(|t| s.common.oauth.access(t, Instant::now()))
            .is_none()
        {
            return Reject::InvalidToken.into_response();
        }
        let origin = format!(
            "{}{PREFIX}/api",
            external_origin(&headers, &s.common.origin)
        );
        let (id, first, last, email) = s.identity.clone();
        let accounts: Vec<Value> = s
            .accounts
            .values()
            .map(|a| {
                json!({
                    "product": a.product,
                    "id": a.id,
                    "name": a.name,
                    "href": format!("{origin}/{}", a.id),
                    "app_href": format!("https://3.basecamp.com/{}", a.id),
                })
            })
            .collect();
        let expires_at = Utc::now()
            + ChronoDuration::from_std(s.common.oauth.ttl).unwrap_or(ChronoDuration::days(14));
        json_response(
            StatusCode::OK,
            &json!({
                "expires_at": MillisTs(expires_at),
                "identity": {
                    "id": id, "first_name": first, "last_name": last, "email_address": email,
                },
                "accounts": accounts,
            }),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// The account API: admission

fn has_user_agent(headers: &HeaderMap) -> bool {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty())
}

fn missing_user_agent() -> Reject {
    error(
        StatusCode::BAD_REQUEST,
        "Missing User-Agent header. Name your app and a contact, e.g. 'MyApp (me@example.com)'.",
    )
}

async fn api(
    State(h): State<BasecampControl>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let latency = h.with(|s| {
        s.common.requests += 1;
        s.common.faults.latency
    });
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let write = method == Method::POST || method == Method::PUT || method == Method::DELETE;
    let resp = h.with(|s| match serve(s, &method, &uri, &headers, &body) {
        Ok(r) if write && r.status().is_success() && take_lost(&mut s.lose_answers) => {
            let status = StatusCode::from_u16(s.lose_answers.1).unwrap_or(StatusCode::BAD_GATEWAY);
            json_response(status, &json!({ "error": "Bad Gateway" }))
        }
        Ok(r) => {
            if r.status() == StatusCode::NOT_MODIFIED {
                s.not_modified += 1;
            }
            r
        }
        Err(r) => r.into_response(),
    });
    if resp.status().is_success()
        && resp.status() != StatusCode::NO_CONTENT
        && h.with(|s| s.common.faults.take_malformed())
    {
        return truncate_body(resp).await;
    }
    resp
}

/// Takes one queued "applied, answer lost" fault.
fn take_lost(lost: &mut (u32, u16)) -> bool {
    let hit = lost.0 > 0;
    lost.0 = lost.0.saturating_sub(1);
    hit
}

/// The request as the handlers see it.
struct Req<'a> {
    method: &'a Method,
    account: u64,
    /// `http://host/basecamp/api/{account}`.
    base: String,
    /// Path below the account, `.json` removed, split on `/`.
    segs: Vec<&'a str>,
    params: Params,
    body: &'a [u8],
}

fn serve(
    s: &mut BasecampState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response<Body>, Reject> {
    if let Some(fault) = s.common.faults.take_injected() {
        tracing::debug!(%fault, "basecamp sandbox: injected fault");
        return Err(Reject::Injected(fault));
    }
    if !has_user_agent(headers) {
        return Err(missing_user_agent());
    }
    let token = bearer(headers).ok_or(Reject::InvalidToken)?;
    let now = Instant::now();
    if s.common.oauth.access(token, now).is_none() {
        return Err(Reject::InvalidToken);
    }
    // Nested routers see the path without the mount point; accept both.
    let path = uri.path();
    let path = path
        .strip_prefix(PREFIX)
        .unwrap_or(path)
        .strip_prefix("/api/")
        .unwrap_or("");
    let mut parts = path.splitn(2, '/');
    let account: u64 = parts
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(not_found)?;
    let acct = s.accounts.get(&account).ok_or_else(not_found)?;
    if acct.product != "bc3" {
        return Err(not_found());
    }
    if !acct.active {
        return Err(Reject::Inactive);
    }
    s.common
        .limiter
        .check(&format!("account:{account}"), now)
        .map_err(Reject::Throttled)?;
    if *method == Method::POST || *method == Method::PUT {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json; charset=utf-8",
            ));
        }
    }
    let rest = parts.next().unwrap_or("");
    let Some(rest) = rest.strip_suffix(".json") else {
        return Err(not_found());
    };
    let base = format!(
        "{}{PREFIX}/api/{account}",
        external_origin(headers, &s.common.origin)
    );
    let req = Req {
        method,
        account,
        base,
        segs: rest.split('/').collect(),
        params: Params::from_uri(uri),
        body,
    };
    let out = dispatch(s, &req)?;
    Ok(finish(out, &req, headers))
}

/// Serializes, adds paging headers and, on GETs, the ETag (answering 304 to a matching
/// `If-None-Match`).
fn finish(out: Out, req: &Req<'_>, headers: &HeaderMap) -> Response<Body> {
    let Some(body) = out.body else {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = out.status;
        return r;
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut builder = Response::builder()
        .status(out.status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8");
    if let Some(total) = out.total {
        builder = builder.header("x-total-count", total);
    }
    if let Some(link) = &out.link {
        builder = builder.header(header::LINK, link);
    }
    if *req.method == Method::GET {
        let digest = Sha256::digest(&bytes);
        let tag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let etag = format!("W/\"{tag}\"");
        builder = builder.header(header::ETAG, &etag);
        let matches = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
        if matches {
            return builder
                .status(StatusCode::NOT_MODIFIED)
                .body(Body::empty())
                .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "build failed"));
        }
    }
    builder
        .body(Body::from(bytes))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "build failed"))
}

fn id(seg: &str) -> Result<u64, Reject> {
    seg.parse().map_err(|_| not_found())
}

fn dispatch(s: &mut BasecampState, r: &Req<'_>) -> Reply {
    let m = r.method.as_str();
    // Bucket forms are the same resources; the project id must still match.
    let segs: Vec<&str> = match r.segs.as_slice() {
        ["buckets", p, rest @ ..] if !rest.is_empty() && rest[0] != "webhooks" => {
            let p = id(p)?;
            let inner = rest.to_vec();
            if let [kind, rid, ..] = inner.as_slice()
                && matches!(*kind, "todos" | "todolists" | "todosets")
                && s.project_of_recording(id(rid)?) != Some(p)
            {
                return Err(not_found());
            }
            inner
        }
        other => other.to_vec(),
    };
    match (m, segs.as_slice()) {
        ("GET", ["account"]) => {
            let a = &s.accounts[&r.account];
            Ok(Out::ok(account_json(a)))
        }
        ("GET", ["projects"]) => list_projects(s, r),
        ("GET", ["projects", p]) => {
            let p = project(s, r, id(p)?)?;
            Ok(Out::ok(project_json(&r.base, r.account, p)))
        }
        ("GET", ["projects", p, "people"]) => {
            let p = project(s, r, id(p)?)?;
            let people: Vec<&Person> = p.people.iter().filter_map(|i| s.people.get(i)).collect();
            Ok(paged(r, people.len(), |range| {
                people[range]
                    .iter()
                    .map(|x| person_json(&r.base, x))
                    .collect()
            })?)
        }
        ("GET", ["people"]) => {
            let people: Vec<&Person> = s
                .people
                .values()
                .filter(|p| p.account == r.account)
                .collect();
            paged(r, people.len(), |range| {
                people[range]
                    .iter()
                    .map(|x| person_json(&r.base, x))
                    .collect()
            })
        }
        ("GET", ["people", p]) => {
            let p = s
                .people
                .get(&id(p)?)
                .filter(|p| p.account == r.account)
                .ok_or_else(not_found)?;
            Ok(Out::ok(person_json(&r.base, p)))
        }
        ("GET", ["my", "profile"]) => {
            let me = s.me(r.account).ok_or_else(not_found)?;
            Ok(Out::ok(person_json(&r.base, &s.people[&me])))
        }
        ("GET", ["todosets", t]) => {
            let t = id(t)?;
            let p = s
                .projects
                .values()
                .find(|p| p.todoset_id == t && p.account == r.account)
                .ok_or_else(not_found)?;
            Ok(Out::ok(todoset_json(&r.base, p, s)))
        }
        ("GET", ["todosets", t, "todolists"]) => {
            let t = id(t)?;
            let p = s
                .projects
                .values()
                .find(|p| p.todoset_id == t && p.account == r.account)
                .ok_or_else(not_found)?
                .id;
            let status = status_param(&r.params)?;
            let lists: Vec<&Todolist> = s
                .lists
                .values()
                .filter(|l| l.project == p && l.group_of.is_none() && l.status == status)
                .collect();
            paged(r, lists.len(), |range| {
                lists[range]
                    .iter()
                    .map(|l| list_json(&r.base, s, l))
                    .collect()
            })
        }
        ("GET", ["todolists", l]) => {
            let l = list(s, r, id(l)?)?;
            Ok(Out::ok(list_json(&r.base, s, l)))
        }
        ("GET", ["todolists", l, "groups"]) => {
            let l = list(s, r, id(l)?)?.id;
            let status = status_param(&r.params)?;
            let groups: Vec<&Todolist> = s
                .lists
                .values()
                .filter(|g| g.group_of == Some(l) && g.status == status)
                .collect();
            paged(r, groups.len(), |range| {
                groups[range]
                    .iter()
                    .map(|g| list_json(&r.base, s, g))
                    .collect()
            })
        }
        ("GET", ["todolists", l, "todos"]) => {
            let l = list(s, r, id(l)?)?.id;
            let status = status_param(&r.params)?;
            let completed = match r.params.get("completed") {
                None => false,
                Some(v) => parse_bool(v).ok_or_else(|| {
                    error(StatusCode::BAD_REQUEST, format!("invalid completed {v:?}"))
                })?,
            };
            let todos: Vec<&Todo> = s
                .todos
                .values()
                .filter(|t| t.list == l && t.status == status && t.completed == completed)
                .collect();
            paged(r, todos.len(), |range| {
                todos[range]
                    .iter()
                    .map(|t| todo_json(&r.base, s, t))
                    .collect()
            })
        }
        ("GET", ["todos", t]) => {
            let t = s
                .todos
                .get(&id(t)?)
                .filter(|t| in_account(s, t.project, r.account))
                .ok_or_else(not_found)?;
            Ok(Out::ok(todo_json(&r.base, s, t)))
        }
        ("GET", ["projects", p, "timesheet"]) => {
            let p = project(s, r, id(p)?)?.id;
            entries_page(s, r, |e| e.project == p)
        }
        ("GET", ["recordings", rec, "timesheet"])
        | ("GET", ["projects", _, "recordings", rec, "timesheet"]) => {
            let rec = recording(s, r, id(rec)?)?;
            entries_page(s, r, |e| e.recording == rec)
        }
        ("POST", ["recordings", rec, "timesheet", "entries"])
        | ("POST", ["projects", _, "recordings", rec, "timesheet", "entries"]) => {
            let rec = recording(s, r, id(rec)?)?;
            create_entry(s, r, rec)
        }
        ("GET", ["timesheet_entries", e]) => {
            let e = entry(s, r, id(e)?)?;
            Ok(Out::ok(entry_json(&r.base, s, e)))
        }
        ("PUT", ["timesheet_entries", e]) => update_entry(s, r, id(e)?),
        ("DELETE", ["timesheet_entries", e]) => {
            let e = entry(s, r, id(e)?)?.id;
            s.entries.remove(&e);
            s.timesheet_writes += 1;
            Ok(Out::no_content())
        }
        ("GET", ["reports", "timesheet"]) => report(s, r),
        ("GET", ["buckets", p, "webhooks"]) => {
            let p = project(s, r, id(p)?)?.id;
            let hooks: Vec<Value> = s
                .webhooks
                .values()
                .filter(|w| w.project == p)
                .map(|w| webhook_json(&r.base, w, false))
                .collect();
            Ok(Out::ok(Value::Array(hooks)))
        }
        ("POST", ["buckets", p, "webhooks"]) => {
            let p = project(s, r, id(p)?)?.id;
            create_webhook(s, r, p)
        }
        ("GET", ["webhooks", w]) | ("GET", ["buckets", _, "webhooks", w]) => {
            let w = webhook(s, r, id(w)?)?;
            Ok(Out::ok(webhook_json(&r.base, &s.webhooks[&w], true)))
        }
        ("PUT", ["webhooks", w]) | ("PUT", ["buckets", _, "webhooks", w]) => {
            let w = webhook(s, r, id(w)?)?;
            update_webhook(s, r, w)
        }
        ("DELETE", ["webhooks", w]) | ("DELETE", ["buckets", _, "webhooks", w]) => {
            let w = webhook(s, r, id(w)?)?;
            s.webhooks.remove(&w);
            Ok(Out::no_content())
        }
        _ => Err(not_found()),
    }
}

// ---------------------------------------------------------------------------------------------
// Lookups, scoped to the request's account

fn in_account(s: &BasecampState, project: u64, account: u64) -> bool {
    s.projects
        .get(&project)
        .is_some_and(|p| p.account == account)
}

fn project<'s>(s: &'s BasecampState, r: &Req<'_>, id: u64) -> Result<&'s Project, Reject> {
    s.projects
        .get(&id)
        .filter(|p| p.account == r.account)
        .ok_or_else(not_found)
}

fn list<'s>(s: &'s BasecampState, r: &Req<'_>, id: u64) -> Result<&'s Todolist, Reject> {
    s.lists
        .get(&id)
        .filter(|l| in_account(s, l.project, r.account))
        .ok_or_else(not_found)
}

/// A recording time can be logged on: an untrashed to-do or a project's timesheet.
fn recording(s: &BasecampState, r: &Req<'_>, id: u64) -> Result<u64, Reject> {
    let ok = match s.todos.get(&id) {
        Some(t) => t.status != BasecampStatus::Trashed && in_account(s, t.project, r.account),
        None => s
            .projects
            .values()
            .any(|p| p.timesheet_id == id && p.account == r.account),
    };
    if ok { Ok(id) } else { Err(not_found()) }
}

fn entry<'s>(s: &'s BasecampState, r: &Req<'_>, id: u64) -> Result<&'s Entry, Reject> {
    s.entries
        .get(&id)
        .filter(|e| in_account(s, e.project, r.account))
        .ok_or_else(not_found)
}

fn webhook(s: &BasecampState, r: &Req<'_>, id: u64) -> Result<u64, Reject> {
    s.webhooks
        .get(&id)
        .filter(|w| in_account(s, w.project, r.account))
        .map(|w| w.id)
        .ok_or_else(not_found)
}

fn status_param(p: &Params) -> Result<BasecampStatus, Reject> {
    match p.get("status") {
        None => Ok(BasecampStatus::Active),
        Some(v) => BasecampStatus::parse(v)
            .filter(|s| *s != BasecampStatus::Active)
            .ok_or_else(|| error(StatusCode::BAD_REQUEST, format!("invalid status {v:?}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Paging

/// Geared page sizes: 15, 30, 50, then 100. Answers the index range of `page` (1-based).
fn gear(page: usize) -> std::ops::Range<usize> {
    match page {
        1 => 0..15,
        2 => 15..45,
        3 => 45..95,
        n => {
            let start = 95 + (n - 4) * 100;
            start..start + 100
        }
    }
}

fn paged(
    r: &Req<'_>,
    total: usize,
    items: impl FnOnce(std::ops::Range<usize>) -> Vec<Value>,
) -> Reply {
    let page = match r.params.get("page") {
        None => 1,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| error(StatusCode::BAD_REQUEST, format!("invalid page {v:?}")))?,
    };
    let range = gear(page);
    let (start, end) = (range.start.min(total), range.end.min(total));
    let link = (end < total).then(|| {
        let mut pairs: Vec<(String, String)> = r
            .params
            .pairs()
            .iter()
            .filter(|(k, _)| k != "page")
            .cloned()
            .collect();
        pairs.push(("page".into(), (page + 1).to_string()));
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        format!(
            "<{}/{}.json?{query}>; rel=\"next\"",
            r.base,
            r.segs.join("/")
        )
    });
    Ok(Out {
        link,
        total: Some(total),
        ..Out::ok(Value::Array(items(start..end)))
    })
}

fn list_projects(s: &BasecampState, r: &Req<'_>) -> Reply {
    let status = status_param(&r.params)?;
    // Newest first.
    let projects: Vec<&Project> = s
        .projects
        .values()
        .rev()
        .filter(|p| p.account == r.account && p.status == status)
        .collect();
    paged(r, projects.len(), |range| {
        projects[range]
            .iter()
            .map(|p| project_json(&r.base, r.account, p))
            .collect()
    })
}

fn entries_page(s: &BasecampState, r: &Req<'_>, keep: impl Fn(&Entry) -> bool) -> Reply {
    // Newest first, like Basecamp's other collections.
    let entries: Vec<&Entry> = s.entries.values().rev().filter(|e| keep(e)).collect();
    paged(r, entries.len(), |range| {
        entries[range]
            .iter()
            .map(|e| entry_json(&r.base, s, e))
            .collect()
    })
}

fn report(s: &BasecampState, r: &Req<'_>) -> Reply {
    let date = |k: &str| -> Result<Option<NaiveDate>, Reject> {
        r.params
            .get(k)
            .map(|v| {
                parse_date(v)
                    .ok_or_else(|| error(StatusCode::BAD_REQUEST, format!("invalid {k} {v:?}")))
            })
            .transpose()
    };
    let (from, to) = match (date("start_date")?, date("end_date")?) {
        (Some(a), Some(b)) => (a, b),
        (None, None) => {
            let today = Utc::now().date_naive();
            (today - chrono::Months::new(1), today)
        }
        _ => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "start_date and end_date must be given together",
            ));
        }
    };
    let num = |k: &str| r.params.get(k).and_then(|v| v.parse::<u64>().ok());
    let (person, bucket) = (num("person_id"), num("bucket_id"));
    let items: Vec<Value> = s
        .entries
        .values()
        .rev()
        .filter(|e| {
            in_account(s, e.project, r.account)
                && e.date >= from
                && e.date <= to
                && person.is_none_or(|p| e.person == p)
                && bucket.is_none_or(|b| e.project == b)
        })
        .map(|e| entry_json(&r.base, s, e))
        .collect();
    Ok(Out::ok(Value::Array(items)))
}

// ---------------------------------------------------------------------------------------------
// Writes

fn body_object(r: &Req<'_>) -> Result<serde_json::Map<String, Value>, Reject> {
    match serde_json::from_slice::<Value>(r.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(error(StatusCode::BAD_REQUEST, "body must be a JSON object")),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("malformed JSON: {e}"),
        )),
    }
}

fn field_date(m: &serde_json::Map<String, Value>) -> Result<Option<NaiveDate>, Reject> {
    match m.get("date") {
        None => Ok(None),
        Some(Value::String(v)) => parse_date(v)
            .map(Some)
            .ok_or_else(|| unprocessable(format!("date {v:?} is not an ISO 8601 date"))),
        Some(v) => Err(unprocessable(format!("date must be a string, got {v}"))),
    }
}

fn field_hours(m: &serde_json::Map<String, Value>) -> Result<Option<u64>, Reject> {
    match m.get("hours") {
        None => Ok(None),
        Some(Value::String(v)) => parse_hours(v).map(Some).ok_or_else(|| {
            unprocessable(format!(
                "hours {v:?} must be a positive decimal (\"1.5\") or H:MM (\"1:30\") of at most 24 hours"
            ))
        }),
        Some(v) => Err(unprocessable(format!("hours must be a string, got {v}"))),
    }
}

fn field_description(m: &serde_json::Map<String, Value>) -> Result<Option<String>, Reject> {
    match m.get("description") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(String::new())),
        Some(Value::String(v)) => Ok(Some(v.clone())),
        Some(v) => Err(unprocessable(format!(
            "description must be a string, got {v}"
        ))),
    }
}

/// `person_id`, checked to be a non-client member of `project`.
fn field_person(
    s: &BasecampState,
    m: &serde_json::Map<String, Value>,
    project: u64,
) -> Result<Option<u64>, Reject> {
    let id = match m.get("person_id") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(v)) => v.parse().ok(),
        Some(_) => None,
    }
    .ok_or_else(|| unprocessable("person_id must be a person id"))?;
    let member =
        s.projects[&project].people.contains(&id) && s.people.get(&id).is_some_and(|p| !p.client);
    if !member {
        return Err(unprocessable(
            "Person must be a non-client member of the project",
        ));
    }
    Ok(Some(id))
}

fn check_timesheet_enabled(s: &BasecampState, project: u64) -> Result<(), Reject> {
    let p = &s.projects[&project];
    if p.status != BasecampStatus::Active {
        return Err(error(StatusCode::FORBIDDEN, "Project is not active"));
    }
    if !p.timesheet_enabled || !s.accounts[&p.account].timesheet {
        return Err(error(
            StatusCode::FORBIDDEN,
            "Timesheet is not enabled for this project",
        ));
    }
    Ok(())
}

fn create_entry(s: &mut BasecampState, r: &Req<'_>, recording: u64) -> Reply {
    let project = s.project_of_recording(recording).ok_or_else(not_found)?;
    check_timesheet_enabled(s, project)?;
    let m = body_object(r)?;
    let date = field_date(&m)?.ok_or_else(|| unprocessable("date is required"))?;
    let seconds = field_hours(&m)?.ok_or_else(|| unprocessable("hours is required"))?;
    let description = field_description(&m)?.unwrap_or_default();
    let me = s.me(r.account).ok_or_else(not_found)?;
    let person = field_person(s, &m, project)?.unwrap_or(me);
    let id = s.next_id();
    let now = Utc::now();
    s.entries.insert(
        id,
        Entry {
            id,
            project,
            recording,
            person,
            creator: me,
            date,
            seconds,
            description,
            created_at: now,
            updated_at: now,
        },
    );
    s.timesheet_writes += 1;
    Ok(Out::created(entry_json(&r.base, s, &s.entries[&id])))
}

fn update_entry(s: &mut BasecampState, r: &Req<'_>, id: u64) -> Reply {
    let project = entry(s, r, id)?.project;
    check_timesheet_enabled(s, project)?;
    let m = body_object(r)?;
    let date = field_date(&m)?;
    let seconds = field_hours(&m)?;
    let description = field_description(&m)?;
    let person = field_person(s, &m, project)?;
    let e = s.entries.get_mut(&id).ok_or_else(not_found)?;
    if let Some(d) = date {
        e.date = d;
    }
    if let Some(h) = seconds {
        e.seconds = h;
    }
    if let Some(d) = description {
        e.description = d;
    }
    if let Some(p) = person {
        e.person = p;
    }
    e.updated_at = bump(e.updated_at);
    s.timesheet_writes += 1;
    Ok(Out::ok(entry_json(&r.base, s, &s.entries[&id])))
}

fn payload_url(m: &serde_json::Map<String, Value>) -> Result<Option<String>, Reject> {
    let Some(v) = m.get("payload_url") else {
        return Ok(None);
    };
    let bad = || {
        error(
            StatusCode::BAD_REQUEST,
            "Payload URL must be a valid HTTPS URL",
        )
    };
    let raw = v.as_str().ok_or_else(bad)?;
    let u = url::Url::parse(raw).map_err(|_| bad())?;
    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if u.scheme() == "https" || (u.scheme() == "http" && loopback) {
        Ok(Some(raw.to_owned()))
    } else {
        Err(bad())
    }
}

fn types(m: &serde_json::Map<String, Value>) -> Result<Option<Vec<String>>, Reject> {
    let Some(v) = m.get("types") else {
        return Ok(None);
    };
    let arr = v
        .as_array()
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "types must be an array"))?;
    let mut out = Vec::new();
    for t in arr {
        match t.as_str() {
            Some(t) if WEBHOOK_TYPES.contains(&t) => out.push(t.to_owned()),
            _ => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown webhook type {t}"),
                ));
            }
        }
    }
    Ok(Some(out))
}

fn create_webhook(s: &mut BasecampState, r: &Req<'_>, project: u64) -> Reply {
    let m = body_object(r)?;
    let url = payload_url(&m)?
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "payload_url is required"))?;
    let types = types(&m)?.unwrap_or_default();
    let id = s.next_id();
    let now = Utc::now();
    s.webhooks.insert(
        id,
        Webhook {
            id,
            project,
            payload_url: url,
            types,
            active: true,
            failures_in_a_row: 0,
            deliveries: Vec::new(),
            created_at: now,
            updated_at: now,
        },
    );
    Ok(Out::created(webhook_json(&r.base, &s.webhooks[&id], false)))
}

fn update_webhook(s: &mut BasecampState, r: &Req<'_>, id: u64) -> Reply {
    let m = body_object(r)?;
    let url = payload_url(&m)?;
    let types = types(&m)?;
    let active = match m.get("active") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(error(StatusCode::BAD_REQUEST, "active must be a boolean")),
    };
    let w = s.webhooks.get_mut(&id).ok_or_else(not_found)?;
    if let Some(u) = url {
        w.payload_url = u;
    }
    if let Some(t) = types {
        w.types = t;
    }
    if let Some(a) = active {
        w.active = a;
        if a {
            w.failures_in_a_row = 0;
        }
    }
    w.updated_at = bump(w.updated_at);
    Ok(Out::ok(webhook_json(&r.base, w, false)))
}

// ---------------------------------------------------------------------------------------------
// JSON shapes

fn account_json(a: &Account) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "subscription": { "timesheet": a.timesheet },
    })
}

pub(crate) fn person_json(base: &str, p: &Person) -> Value {
    json!({
        "id": p.id,
        "attachable_sgid": format!("SANDBOX-SGID-{}", p.id),
        "name": p.name,
        "email_address": p.email,
        "personable_type": if p.client { "Client" } else { "User" },
        "title": null,
        "bio": null,
        "location": null,
        "created_at": MillisTs(p.created_at),
        "updated_at": MillisTs(p.created_at),
        "admin": p.admin,
        "owner": p.owner,
        "client": p.client,
        "employee": !p.client,
        "time_zone": "Europe/Oslo",
        "avatar_url": format!("{base}/people/{}/avatar", p.id),
        "company": { "id": 900_012, "name": if p.client { "Customer AS" } else { "Nordlys Digital" } },
        "can_ping": true,
        "can_manage_projects": p.admin,
        "can_manage_people": p.admin,
        "can_access_timesheet": !p.client,
        "can_access_hill_charts": p.admin,
    })
}

fn bucket(p: &Project) -> Value {
    json!({ "id": p.id, "name": p.name, "type": "Project" })
}

fn project_json(base: &str, account: u64, p: &Project) -> Value {
    json!({
        "id": p.id,
        "status": p.status.as_str(),
        "created_at": MillisTs(p.created_at),
        "updated_at": MillisTs(p.updated_at),
        "name": p.name,
        "description": p.description,
        "purpose": "topic",
        "clients_enabled": true,
        "timesheet_enabled": p.timesheet_enabled,
        "bookmark_url": format!("{base}/my/bookmarks/SANDBOX-{}.json", p.id),
        "url": format!("{base}/projects/{}.json", p.id),
        "app_url": format!("https://3.basecamp.com/{account}/projects/{}", p.id),
        "dock": [
            {
                "id": p.todoset_id - 1_000_000,
                "title": "Message Board",
                "name": "message_board",
                "enabled": true,
                "position": 1,
                "url": format!("{base}/buckets/{}/message_boards/{}.json", p.id, p.todoset_id - 1_000_000),
                "app_url": format!("https://3.basecamp.com/{account}/buckets/{}/message_boards/{}", p.id, p.todoset_id - 1_000_000),
            },
            {
                "id": p.todoset_id,
                "title": "To-dos",
                "name": "todoset",
                "enabled": true,
                "position": 2,
                "url": format!("{base}/todosets/{}.json", p.todoset_id),
                "app_url": format!("https://3.basecamp.com/{account}/buckets/{}/todosets/{}", p.id, p.todoset_id),
            },
        ],
    })
}

fn todoset_json(base: &str, p: &Project, s: &BasecampState) -> Value {
    let count = s
        .lists
        .values()
        .filter(|l| l.project == p.id && l.group_of.is_none())
        .count();
    json!({
        "id": p.todoset_id,
        "status": "active",
        "created_at": MillisTs(p.created_at),
        "updated_at": MillisTs(p.updated_at),
        "title": "To-dos",
        "type": "Todoset",
        "url": format!("{base}/todosets/{}.json", p.todoset_id),
        "bucket": bucket(p),
        "name": "To-dos",
        "todolists_count": count,
        "todolists_url": format!("{base}/todosets/{}/todolists.json", p.todoset_id),
    })
}

fn list_json(base: &str, s: &BasecampState, l: &Todolist) -> Value {
    let p = &s.projects[&l.project];
    let parent = match l.group_of {
        Some(g) => {
            let g = &s.lists[&g];
            json!({
                "id": g.id, "title": g.name, "type": "Todolist",
                "url": format!("{base}/todolists/{}.json", g.id),
            })
        }
        None => json!({
            "id": p.todoset_id, "title": "To-dos", "type": "Todoset",
            "url": format!("{base}/todosets/{}.json", p.todoset_id),
        }),
    };
    let todos: Vec<&Todo> = s.todos.values().filter(|t| t.list == l.id).collect();
    let mut v = json!({
        "id": l.id,
        "status": l.status.as_str(),
        "created_at": MillisTs(l.created_at),
        "updated_at": MillisTs(l.updated_at),
        "title": l.name,
        "name": l.name,
        "type": "Todolist",
        "url": format!("{base}/todolists/{}.json", l.id),
        "app_url": format!("https://3.basecamp.com/{}/buckets/{}/todolists/{}", p.account, p.id, l.id),
        "position": l.position,
        "parent": parent,
        "bucket": bucket(p),
        "description": "",
        "completed": !todos.is_empty() && todos.iter().all(|t| t.completed),
        "completed_ratio": format!("{}/{}", todos.iter().filter(|t| t.completed).count(), todos.len()),
        "todos_url": format!("{base}/todolists/{}/todos.json", l.id),
        "app_todos_url": format!("https://3.basecamp.com/{}/buckets/{}/todolists/{}/todos", p.account, p.id, l.id),
    });
    if l.group_of.is_none() {
        v["groups_url"] = json!(format!("{base}/todolists/{}/groups.json", l.id));
    } else {
        v["group_position_url"] = json!(format!("{base}/todolists/groups/{}/position.json", l.id));
    }
    v
}

fn todo_json(base: &str, s: &BasecampState, t: &Todo) -> Value {
    let p = &s.projects[&t.project];
    let l = &s.lists[&t.list];
    let creator = s
        .me(p.account)
        .and_then(|id| s.people.get(&id))
        .map(|c| person_json(base, c))
        .unwrap_or(Value::Null);
    let assignees: Vec<Value> = t
        .assignees
        .iter()
        .filter_map(|id| s.people.get(id))
        .map(|a| person_json(base, a))
        .collect();
    json!({
        "id": t.id,
        "status": t.status.as_str(),
        "visible_to_clients": false,
        "created_at": MillisTs(t.created_at),
        "updated_at": MillisTs(t.updated_at),
        "title": t.title,
        "inherits_status": true,
        "type": "Todo",
        "url": format!("{base}/buckets/{}/todos/{}.json", p.id, t.id),
        "app_url": format!("https://3.basecamp.com/{}/buckets/{}/todos/{}", p.account, p.id, t.id),
        "position": t.position,
        "parent": {
            "id": l.id, "title": l.name, "type": "Todolist",
            "url": format!("{base}/buckets/{}/todolists/{}.json", p.id, l.id),
            "app_url": format!("https://3.basecamp.com/{}/buckets/{}/todolists/{}", p.account, p.id, l.id),
        },
        "bucket": bucket(p),
        "creator": creator,
        "description": t.description,
        "completed": t.completed,
        "content": t.title,
        "starts_on": null,
        "due_on": t.due_on.map(|d| d.to_string()),
        "assignees": assignees,
        "completion_subscribers": [],
        "completion_url": format!("{base}/todos/{}/completion.json", t.id),
    })
}

fn entry_json(base: &str, s: &BasecampState, e: &Entry) -> Value {
    let p = &s.projects[&e.project];
    let parent = match s.todos.get(&e.recording) {
        Some(t) => json!({
            "id": t.id, "title": t.title, "type": "Todo",
            "url": format!("{base}/buckets/{}/todos/{}.json", p.id, t.id),
            "app_url": format!("https://3.basecamp.com/{}/buckets/{}/todos/{}", p.account, p.id, t.id),
        }),
        None => json!({
            "id": e.recording, "title": "Timesheet", "type": "Timesheet",
            "url": format!("{base}/projects/{}/timesheet.json", p.id),
            "app_url": format!("https://3.basecamp.com/{}/projects/{}/timesheet", p.account, p.id),
        }),
    };
    let person = |id: u64| {
        s.people
            .get(&id)
            .map(|x| person_json(base, x))
            .unwrap_or(Value::Null)
    };
    json!({
        "id": e.id,
        "status": "active",
        "visible_to_clients": false,
        "created_at": MillisTs(e.created_at),
        "updated_at": MillisTs(e.updated_at),
        "title": "Timesheet entry",
        "inherits_status": true,
        "type": "Timesheet::Entry",
        "url": format!("{base}/projects/{}/timesheet/entries/{}.json", p.id, e.id),
        "app_url": format!("https://3.basecamp.com/{}/projects/{}/timesheet/entries/{}", p.account, p.id, e.id),
        "bookmark_url": format!("{base}/my/bookmarks/SANDBOX-{}.json", e.id),
        "parent": parent,
        "bucket": bucket(p),
        "creator": person(e.creator),
        "date": e.date.to_string(),
        "description": e.description,
        "hours": format_hours(e.seconds),
        "person": person(e.person),
    })
}

fn webhook_json(base: &str, w: &Webhook, with_deliveries: bool) -> Value {
    let mut v = json!({
        "id": w.id,
        "active": w.active,
        "created_at": MillisTs(w.created_at),
        "updated_at": MillisTs(w.updated_at),
        "payload_url": w.payload_url,
        "types": if w.types.is_empty() { WEBHOOK_TYPES.iter().map(|t| json!(t)).collect::<Vec<_>>() } else { w.types.iter().map(|t| json!(t)).collect() },
        "url": format!("{base}/buckets/{}/webhooks/{}.json", w.project, w.id),
        "app_url": format!("https://3.basecamp.com/buckets/{}/webhooks/{}", w.project, w.id),
    });
    if with_deliveries {
        v["recent_deliveries"] = Value::Array(
            w.deliveries
                .iter()
                .rev()
                .map(|d| {
                    json!({
                        "id": d.event_id,
                        "request": { "body": { "kind": d.kind, "recording": { "id": d.recording_id } } },
                        "response": { "code": d.status },
                    })
                })
                .collect(),
        );
    }
    v
}

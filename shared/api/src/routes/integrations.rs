//! Connections to providers, the OAuth callback, project integration settings, runs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use hourbridge_domain::{
    Connection, ConnectionState, FailureReason, MissingPerson, ProjectLink, ProviderId, RecordId,
    RecordProblem, Role, RunCounts, RunState, SecretValue, SyncRun,
};
use hourbridge_sync::RunScope;
use hourbridge_sync::runs::RunMode;
use hourbridge_sync::webhooks::ConnectionWebhook;
use hourbridge_sync::worklogs::Preview;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::projects::load as load_project;
use crate::{
    ApiError, ApiResult, AppState, Body, Caller, Day, ErrorBody, IdPath, List, Member, QueryParams,
};

/// The provider's connect fields, by name, as strings. Customer-supplied OAuth (Harvest,
/// Hubstaff): `client_id` and `client_secret` of the app the admin registered in the provider.
/// Platform OAuth: only the provider's declared settings. Session-token and credential-set
/// providers: their declared fields (e.g. a token, or domain, username and password), checked
/// with the provider before anything is stored. Secret fields are stored encrypted and never
/// returned.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(value_type = std::collections::HashMap<String, String>, example = json!({"client_id": "abc", "client_secret": "s3cr3t"}))]
pub(crate) struct InstallBody(serde_json::Map<String, serde_json::Value>);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountBody {
    account_id: String,
}

/// Last-run status, as users see it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunStatus {
    /// `never_synced`, `in_progress`, `succeeded` or `failed`.
    kind: &'static str,
    /// The sentence users see, in the workspace's time zone: `Synchronization in progress`,
    /// `Not synchronized yet`, `Synchronized successfully at 2026-12-01 18:30` or
    /// `There was an error at 2026-12-01 18:30`.
    label: String,
    /// When it succeeded or failed.
    at: Option<DateTime<Utc>>,
    /// Typed reason of a failure.
    reason: Option<FailureReason>,
    /// Message of a failure, fit for end users.
    message: Option<String>,
    /// The run it describes.
    run_id: Option<RecordId>,
    /// Its counts (work logs pulled or pushed).
    counts: Option<RunCounts>,
    /// What it imported (projects, tasks, assignments), for providers that are master of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    imported: Option<RunCounts>,
    /// The run's per-record problems (people not matched, records refused), shown to those
    /// who may install the provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    problems: Option<Vec<hourbridge_domain::RecordProblem>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConnectionView {
    provider: ProviderId,
    state: ConnectionState,
    /// What the admin pastes into the provider's app settings.
    redirect_url: String,
    account: Option<serde_json::Value>,
    accounts: Vec<serde_json::Value>,
    status: RunStatus,
    next_run_at: Option<DateTime<Utc>>,
    connected_by: RecordId,
    updated_at: DateTime<Utc>,
    /// The non-secret connect fields as entered (secret ones are never returned).
    #[schema(value_type = Object)]
    fields: serde_json::Map<String, serde_json::Value>,
    /// Where the provider delivers webhooks, for providers that declare them; shown only to
    /// callers who may install the provider (the token in it is a credential).
    webhook_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuthorizeView {
    authorize_url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunStarted {
    run_id: RecordId,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RemoteProjectView {
    id: String,
    name: String,
    customer_name: Option<String>,
    archived: bool,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RemoteProjectQuery {
    /// Case-insensitive name filter.
    q: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkBody {
    /// 1 to the provider's declared most (Harvest and Hubstaff: 50; TimeLog: 1).
    remote_project_ids: Vec<String>,
    /// First day synced; required by providers that declare it (work logs pulled from that
    /// day on: Harvest, Hubstaff), optional otherwise.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    sync_from: Option<Day>,
    #[serde(default)]
    prevent_new_assignments: bool,
    #[serde(default)]
    trim_assignments: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LinkView {
    project_id: RecordId,
    provider: ProviderId,
    remote_project_ids: Vec<String>,
    #[schema(value_type = Option<String>, format = Date)]
    sync_from: Option<chrono::NaiveDate>,
    prevent_new_assignments: bool,
    trim_assignments: bool,
    status: RunStatus,
    /// People with logs in the provider but no host person of that e-mail: add them as Manager
    /// or Employee with this e-mail and their logs sync on the next run.
    missing_people: Vec<MissingPerson>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetBody {
    /// `refetch` (re-read and diff) or `wipe` (delete synced logs, then read again).
    mode: ResetMode,
    /// Only report what would change.
    #[serde(default)]
    preview: bool,
}

/// How a reset treats what was synced before.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ResetMode {
    /// Re-read and diff: accurate created/updated/deleted counts.
    Refetch,
    /// Delete synced logs, then read everything again.
    Wipe,
}

impl From<ResetMode> for RunMode {
    fn from(m: ResetMode) -> Self {
        match m {
            ResetMode::Refetch => RunMode::Refetch,
            ResetMode::Wipe => RunMode::Wipe,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PreviewView {
    created: u64,
    updated: u64,
    deleted: u64,
    unchanged: u64,
    skipped: u64,
    missing_people: Vec<MissingPerson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Cleared {
    deleted: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunView {
    id: RecordId,
    provider: ProviderId,
    project_id: Option<RecordId>,
    state: RunState,
    /// Work logs pulled or pushed.
    counts: RunCounts,
    /// Master data imported (customers, projects, tasks, assignments).
    imported: RunCounts,
    /// Host tasks pushed to the provider (tasks out).
    tasks_pushed: RunCounts,
    problems: Vec<RecordProblem>,
    failure: Option<FailureReason>,
    failure_message: Option<String>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl From<SyncRun> for RunView {
    fn from(r: SyncRun) -> Self {
        Self {
            id: r.id,
            provider: r.provider,
            project_id: r.project_id,
            state: r.state,
            counts: r.counts,
            imported: r.imported,
            tasks_pushed: r.tasks_pushed,
            problems: r.problems,
            failure: r.failure,
            failure_message: r.failure_message,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

async fn run_status(s: &AppState, ws: &str, run_id: Option<&RecordId>) -> ApiResult<RunStatus> {
    let run = match run_id {
        Some(id) => s.engine.run(ws, id.as_str()).await?,
        None => None,
    };
    let tz = workspace_time_zone(s, ws).await?;
    let mut status = status_of(run, &tz);
    status.problems = None;
    Ok(status)
}

/// The workspace's IANA time-zone name (`UTC` when it has none).
async fn workspace_time_zone(s: &AppState, ws: &str) -> ApiResult<String> {
    Ok(s.store
        .get::<hourbridge_domain::Workspace>(ws, ws)
        .await?
        .map_or_else(|| "UTC".to_owned(), |(w, _)| w.time_zone))
}

/// `at` as `%Y-%m-%d %H:%M` in the time zone named `tz` (UTC when it is not a valid zone).
fn local_minute(at: DateTime<Utc>, tz: &str) -> String {
    const FORMAT: &str = "%Y-%m-%d %H:%M";
    match hourbridge_domain::parse_time_zone(tz) {
        Ok(zone) => at.with_timezone(&zone).format(FORMAT).to_string(),
        Err(_) => at.format(FORMAT).to_string(),
    }
}

/// The user-facing sentence of a status `kind`.
fn label_of(kind: &str, at: Option<DateTime<Utc>>, tz: &str) -> String {
    let when = at.map(|t| local_minute(t, tz)).unwrap_or_default();
    match kind {
        "in_progress" => "Synchronization in progress".to_owned(),
        "succeeded" => format!("Synchronized successfully at {when}"),
        "failed" => format!("There was an error at {when}"),
        _ => "Not synchronized yet".to_owned(),
    }
}

fn status_of(run: Option<SyncRun>, tz: &str) -> RunStatus {
    match run {
        None => RunStatus {
            kind: "never_synced",
            label: label_of("never_synced", None, tz),
            at: None,
            reason: None,
            message: None,
            run_id: None,
            counts: None,
            imported: None,
            problems: None,
        },
        Some(r) => {
            let kind = match r.state {
                RunState::Queued | RunState::Running => "in_progress",
                RunState::Succeeded => "succeeded",
                RunState::Failed => "failed",
            };
            RunStatus {
                kind,
                label: label_of(kind, r.finished_at, tz),
                at: r.finished_at,
                reason: r.failure,
                message: r.failure_message,
                run_id: Some(r.id),
                counts: Some(r.counts),
                imported: (r.imported != RunCounts::default()).then_some(r.imported),
                problems: Some(r.problems),
            }
        }
    }
}

async fn view(s: &AppState, caller: &Caller, c: Connection) -> ApiResult<ConnectionView> {
    Ok(views(s, caller, vec![c]).await?.remove(0))
}

/// Whether `caller` may see the connection's webhook URL (its token is a credential).
fn sees_webhook(s: &AppState, caller: &Caller, provider: &str) -> bool {
    s.engine
        .provider(provider)
        .is_ok_and(|p| caller.role >= p.descriptor().install_role)
}

/// Views of connections, reading their last runs (and webhooks) in one batch each.
async fn views(
    s: &AppState,
    caller: &Caller,
    conns: Vec<Connection>,
) -> ApiResult<Vec<ConnectionView>> {
    let ws = caller.scope();
    let tz = workspace_time_zone(s, ws).await?;
    let hook_ids: Vec<String> = conns
        .iter()
        .filter(|c| {
            sees_webhook(s, caller, c.provider.as_str())
                && s.engine
                    .provider(c.provider.as_str())
                    .is_ok_and(|p| p.descriptor().capabilities.webhooks.is_some())
        })
        .map(|c| c.provider.to_string())
        .collect();
    let mut hooks = if hook_ids.is_empty() {
        Default::default()
    } else {
        s.engine
            .store
            .get_many::<ConnectionWebhook>(ws, &hook_ids)
            .await?
    };
    let ids: Vec<String> = conns
        .iter()
        .filter_map(|c| c.last_run_id.as_ref().map(|r| r.to_string()))
        .collect();
    let mut runs = if ids.is_empty() {
        Default::default()
    } else {
        s.engine.store.get_many::<SyncRun>(ws, &ids).await?
    };
    Ok(conns
        .into_iter()
        .map(|c| {
            let run = c
                .last_run_id
                .as_ref()
                .and_then(|id| runs.remove(id.as_str()))
                .map(|(r, _)| r);
            let webhook_url = hooks
                .remove(c.provider.as_str())
                .map(|(h, _)| s.engine.webhook_url(c.provider.as_str(), &h.token));
            let mut status = status_of(run, &tz);
            if !sees_webhook(s, caller, c.provider.as_str()) {
                status.problems = None;
            }
            view_with(s, c, status, webhook_url)
        })
        .collect())
}

fn view_with(
    s: &AppState,
    c: Connection,
    status: RunStatus,
    webhook_url: Option<String>,
) -> ConnectionView {
    let account = c.settings.get("account_id").map(|id| {
        serde_json::json!({"id": id, "name": hourbridge_sync::connections::remote_account_name(&c.settings).cloned().unwrap_or_default()})
    });
    let accounts = c
        .settings
        .get("accounts")
        .and_then(|a| a.as_array().cloned())
        .unwrap_or_default();
    let fields = s
        .engine
        .provider(c.provider.as_str())
        .map(|p| p.descriptor().auth.connect_fields())
        .unwrap_or_default()
        .into_iter()
        .filter(|f| !f.secret)
        .filter_map(|f| Some((f.name.to_owned(), c.settings.get(f.name)?.clone())))
        .collect();
    ConnectionView {
        redirect_url: s.engine.redirect_url(c.provider.as_str()),
        status,
        fields,
        webhook_url,
        provider: c.provider,
        state: c.state,
        account,
        accounts,
        next_run_at: c.next_run_at,
        connected_by: c.connected_by,
        updated_at: c.updated_at,
    }
}

fn require_install_role(c: &Caller, s: &AppState, provider: &str) -> ApiResult<()> {
    let role = s.engine.provider(provider)?.descriptor().install_role;
    c.require(role)
}

/// Connects the provider with its declared fields. OAuth providers answer
/// `pending_authorization` and the redirect URL to paste into the provider's app (continue with
/// `authorize`); session-token and credential-set providers are checked with the provider first
/// and answer `active`. Refused fields store nothing: 422 `required`, `unknown_field`,
/// `too_long` or `invalid_credentials` (each with `fields`), 403 `missing_entitlement` (the
/// credentials lack a permission or add-on), 502 `unreachable` (the provider could not be
/// reached to check them; retry later).
#[utoipa::path(put, path = "/v1/connections/{provider}", tag = "connections", params(("provider" = String, Path)),
    request_body = InstallBody,
    responses((status = 200, body = ConnectionView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn install(
    State(s): State<AppState>,
    Member(c): Member,
    Path(provider): Path<String>,
    Body(b): Body<InstallBody>,
) -> ApiResult<Json<ConnectionView>> {
    require_install_role(&c, &s, &provider)?;
    let mut fields = std::collections::BTreeMap::new();
    let mut not_text = Vec::new();
    for (name, value) in b.0 {
        match value {
            serde_json::Value::String(v) => {
                fields.insert(name, SecretValue::new(v));
            }
            _ => not_text.push(name),
        }
    }
    if !not_text.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_body",
            format!("fields must be strings: {}", not_text.join(", ")),
        )
        .with_fields(not_text));
    }
    let conn = s
        .engine
        .connect(c.scope(), &c.person_id, &provider, fields)
        .await?;
    Ok(Json(view(&s, &c, conn).await?))
}

/// The URL to send the admin's browser to; valid for 10 minutes, once.
#[utoipa::path(post, path = "/v1/connections/{provider}/authorize", tag = "connections", params(("provider" = String, Path)),
    responses((status = 200, body = AuthorizeView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn authorize(
    State(s): State<AppState>,
    Member(c): Member,
    Path(provider): Path<String>,
) -> ApiResult<Json<AuthorizeView>> {
    require_install_role(&c, &s, &provider)?;
    let url = s
        .engine
        .authorize(c.scope(), &c.person_id, &provider)
        .await?;
    Ok(Json(AuthorizeView { authorize_url: url }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    #[allow(dead_code)]
    scope: Option<String>,
}

/// The provider's redirect after consent (no bearer: the single-use state identifies the flow).
#[utoipa::path(get, path = "/oauth/{provider}/callback", tag = "connections", security(()), params(("provider" = String, Path), CallbackQuery),
    responses((status = 303, description = "back to the app"), (status = 200, description = "connected"), (status = 400, body = ErrorBody)))]
async fn callback(
    State(s): State<AppState>,
    Path(provider): Path<String>,
    QueryParams(q): QueryParams<CallbackQuery>,
) -> ApiResult<Response> {
    if let Some(err) = q.error {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "authorization_denied",
            format!(
                "{provider} did not authorize: {err} {}",
                q.error_description.unwrap_or_default()
            ),
        ));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return Err(ApiError::bad_query("code and state are required"));
    };
    let done = s
        .engine
        .complete_authorization(&provider, &code, &state)
        .await?;
    match &s.engine.settings.app_url {
        Some(app) => Ok(Redirect::to(&format!(
            "{}?connected={provider}",
            app.trim_end_matches('/')
        ))
        .into_response()),
        None => Ok(Json(serde_json::json!({
            "provider": provider,
            "state": done.connection.state,
            "account": hourbridge_sync::connections::remote_account_name(&done.connection.settings),
            "account_id": done.connection.settings.get("account_id"),
            // The login's other accounts: with `pending_account_choice`, one of these (or
            // `account_id`) is chosen with `POST /v1/connections/{provider}/account`.
            "accounts": done.connection.settings.get("accounts"),
        }))
        .into_response()),
    }
}

/// Chooses which account of the login the connection syncs (when it reaches several).
#[utoipa::path(post, path = "/v1/connections/{provider}/account", tag = "connections", params(("provider" = String, Path)), request_body = AccountBody,
    responses((status = 200, body = ConnectionView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn select_account(
    State(s): State<AppState>,
    Member(c): Member,
    Path(provider): Path<String>,
    Body(b): Body<AccountBody>,
) -> ApiResult<Json<ConnectionView>> {
    require_install_role(&c, &s, &provider)?;
    let conn = s
        .engine
        .select_account(c.scope(), &provider, &b.account_id)
        .await?;
    Ok(Json(view(&s, &c, conn).await?))
}

/// What "Test API" found: the account (company) and who the credentials act as.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TestAnswer {
    ok: bool,
    /// The remote account (`id`, `name`).
    company: serde_json::Value,
    /// The remote user the credentials act as (`id`, `name`), when the provider says.
    employee: Option<serde_json::Value>,
    /// The connection after the test (`tested`, or still `active`).
    state: ConnectionState,
}

/// "Test API" of a session-token provider (admin): creates a session with the saved token and
/// checks it. 422 `invalid_token` (with `fields`) when the provider refuses the token, 403
/// `missing_entitlement` when it lacks a permission, 502 `unreachable`.
#[utoipa::path(post, path = "/v1/connections/{provider}/test", tag = "connections", params(("provider" = String, Path)),
    responses((status = 200, body = TestAnswer), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn test_connection(
    State(s): State<AppState>,
    Member(c): Member,
    Path(provider): Path<String>,
) -> ApiResult<Json<TestAnswer>> {
    require_install_role(&c, &s, &provider)?;
    let (conn, account) = match s.engine.test_connection(c.scope(), &provider).await {
        Ok(done) => done,
        Err(hourbridge_sync::SyncError::InvalidCredentials { fields, message }) => {
            return Err(
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_token", message)
                    .with_fields(fields),
            );
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Json(TestAnswer {
        ok: true,
        company: serde_json::json!({"id": account.account_id, "name": account.account_name}),
        employee: account
            .identity
            .map(|(id, name)| serde_json::json!({"id": id, "name": name})),
        state: conn.state,
    }))
}

/// Confirms the activation after a passing "Test API" (admin): the connection becomes
/// `active` and subscribes its webhooks. 409 `test_required` before a passing test.
#[utoipa::path(post, path = "/v1/connections/{provider}/confirm", tag = "connections", params(("provider" = String, Path)),
    responses((status = 200, body = ConnectionView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn confirm_connection(
    State(s): State<AppState>,
    Member(c): Member,
    Path(provider): Path<String>,
) -> ApiResult<Json<ConnectionView>> {
    require_install_role(&c, &s, &provider)?;
    let conn = s.engine.confirm_connection(c.scope(), &provider).await?;
    Ok(Json(view(&s, &c, conn).await?))
}

/// One entry of the review list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReviewView {
    id: String,
    /// `customer` or `project`.
    kind: String,
    /// The remote record: `id`, `name`, `organization_number`, `number`, `customer_name`.
    remote: serde_json::Value,
    /// `several_candidates` or `similar_name`.
    reason: String,
    /// Host records it could be: `id`, `name`, `organization_number`.
    candidates: Vec<serde_json::Value>,
    /// Ignored: left out of syncs until reset.
    ignored: bool,
}

impl From<hourbridge_sync::kinds::review::ReviewItem> for ReviewView {
    fn from(i: hourbridge_sync::kinds::review::ReviewItem) -> Self {
        Self {
            remote: serde_json::json!({
                "id": i.remote.id,
                "name": i.remote.name,
                "organization_number": i.remote.organization_number,
                "number": i.remote.number,
                "customer_name": i.customer_name,
            }),
            candidates: i
                .candidates
                .into_iter()
                .map(|c| serde_json::json!({"id": c.id, "name": c.name, "organization_number": c.organization_number}))
                .collect(),
            id: i.id,
            kind: i.kind,
            reason: i.reason,
            ignored: i.ignored,
        }
    }
}

/// The review list (admin): remote customers and projects the first sync could not match
/// with certainty, pending ones first.
#[utoipa::path(get, path = "/v1/connections/{provider}/review", tag = "connections", params(("provider" = String, Path)),
    responses((status = 200, body = List<ReviewView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn review_list(
    State(s): State<AppState>,
    Member(c): Member,
    Path(provider): Path<String>,
) -> ApiResult<Json<List<ReviewView>>> {
    require_install_role(&c, &s, &provider)?;
    let items = s.engine.review_items(c.scope(), &provider).await?;
    Ok(Json(List {
        items: items.into_iter().map(ReviewView::from).collect(),
        next_cursor: None,
    }))
}

/// An admin's answer to a review item.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewBody {
    /// `link` (with `target_id`), `create`, `ignore` or `reset`.
    action: String,
    /// The host record to link to.
    target_id: Option<String>,
}

/// Answers a review item at once (admin): `link` makes the remote record the host record
/// `target_id` (which becomes the provider's), `create` makes a new one, `ignore` leaves it out
/// of syncs until `reset`. Answers the item (ignored) or 204 when it left the list.
#[utoipa::path(post, path = "/v1/connections/{provider}/review/{id}", tag = "connections", params(("provider" = String, Path), ("id" = String, Path)),
    request_body = ReviewBody,
    responses((status = 200, body = ReviewView), (status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn review_answer(
    State(s): State<AppState>,
    Member(c): Member,
    Path((provider, id)): Path<(String, String)>,
    Body(b): Body<ReviewBody>,
) -> ApiResult<Response> {
    require_install_role(&c, &s, &provider)?;
    s.engine.require_addon(c.scope(), &provider).await?;
    use hourbridge_sync::kinds::review::ReviewAction as A;
    let action = match (b.action.as_str(), b.target_id) {
        ("link", Some(t)) => A::Link(RecordId::parse(t).map_err(|_| {
            ApiError::unprocessable("invalid_target", "target_id is not a valid id")
        })?),
        ("link", None) => {
            return Err(ApiError::unprocessable("required", "link needs target_id")
                .with_fields(vec!["target_id".into()]));
        }
        ("create", None) => A::Create,
        ("ignore", None) => A::Ignore,
        ("reset", None) => A::Reset,
        (_, Some(_)) => {
            return Err(
                ApiError::unprocessable("unknown_field", "only link takes target_id")
                    .with_fields(vec!["target_id".into()]),
            );
        }
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_action",
                "action is one of link, create, ignore, reset",
            )
            .with_fields(vec!["action".into()]));
        }
    };
    match s.engine.review(c.scope(), &provider, &id, action).await? {
        Some(item) => Ok(Json(ReviewView::from(item)).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// Every connection of the workspace.
#[utoipa::path(get, path = "/v1/connections", tag = "connections", responses((status = 200, body = List<ConnectionView>)))]
async fn list_connections(
    State(s): State<AppState>,
    Member(c): Member,
) -> ApiResult<Json<List<ConnectionView>>> {
    let q = s
        .engine
        .store
        .query::<Connection>(c.scope(), hourbridge_store::IndexSel::Primary, 100);
    let conns = s.engine.store.list_all::<Connection>(q).await?;
    let items = views(&s, &c, conns).await?;
    Ok(Json(List {
        items,
        next_cursor: None,
    }))
}

/// One connection's state and status.
#[utoipa::path(get, path = "/v1/connections/{provider}", tag = "connections", params(("provider" = String, Path)),
    responses((status = 200, body = ConnectionView), (status = 404, body = ErrorBody)))]
async fn get_connection(
    State(s): State<AppState>,
    Member(c): Member,
    Path(provider): Path<String>,
) -> ApiResult<Json<ConnectionView>> {
    s.engine.provider(&provider)?;
    let (conn, _) = s
        .engine
        .connection(c.scope(), &provider)
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?;
    Ok(Json(view(&s, &c, conn).await?))
}

/// Disconnects: deletes credentials, schedule and project links; synced work logs stay.
#[utoipa::path(delete, path = "/v1/connections/{provider}", tag = "connections", params(("provider" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn disconnect(
    State(s): State<AppState>,
    Member(c): Member,
    Path(provider): Path<String>,
) -> ApiResult<StatusCode> {
    require_install_role(&c, &s, &provider)?;
    if s.engine.disconnect(c.scope(), &provider).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("connection"))
    }
}

/// Remote projects to link, searchable by name.
#[utoipa::path(get, path = "/v1/connections/{provider}/remote-projects", tag = "connections", params(("provider" = String, Path), RemoteProjectQuery),
    responses((status = 200, body = List<RemoteProjectView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remote_projects(
    State(s): State<AppState>,
    Member(c): Member,
    Path(provider): Path<String>,
    QueryParams(q): QueryParams<RemoteProjectQuery>,
) -> ApiResult<Json<List<RemoteProjectView>>> {
    c.require(Role::Manager)?;
    let p = s.engine.provider(&provider)?.clone();
    s.engine.require_addon(c.scope(), &provider).await?;
    let capabilities = p.descriptor().capabilities;
    if capabilities.project_links.is_none() || (p.directory().is_none() && p.work_logs().is_none())
    {
        return Err(ApiError::unprocessable(
            "unsupported",
            format!("{provider} does not offer projects to link"),
        ));
    }
    let (query, cursor) = (q.q.clone(), q.cursor.clone());
    let page = s
        .engine
        .call(c.scope(), &provider, move |session| {
            let p = p.clone();
            let (query, cursor) = (query.clone(), cursor.clone());
            async move {
                // The provider's directory when it has one, else its work-log source.
                match (p.directory(), p.work_logs()) {
                    (Some(dir), _) => dir.list_projects(&session, query.as_deref(), cursor).await,
                    (None, Some(src)) => {
                        src.list_projects(&session, query.as_deref(), cursor).await
                    }
                    (None, None) => unreachable_source(p.descriptor().id),
                }
            }
        })
        .await?;
    Ok(Json(List {
        items: page
            .items
            .into_iter()
            .map(|r| RemoteProjectView {
                id: r.id,
                name: r.name,
                customer_name: r.customer_name,
                archived: r.archived,
            })
            .collect(),
        next_cursor: page.next,
    }))
}

fn unreachable_source<T>(
    provider: &'static str,
) -> Result<T, hourbridge_provider_api::ProviderError> {
    Err(hourbridge_provider_api::ProviderError::new(
        provider,
        hourbridge_provider_api::ProviderErrorKind::Unsupported,
        "no work-log source",
    ))
}

/// Syncs every linked project of the connection now.
#[utoipa::path(post, path = "/v1/connections/{provider}/sync", tag = "connections", params(("provider" = String, Path)),
    responses((status = 202, body = RunStarted), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn sync_now(
    State(s): State<AppState>,
    Member(c): Member,
    Path(provider): Path<String>,
) -> ApiResult<(StatusCode, Json<RunStarted>)> {
    // Whoever may install the provider may run it now (the owner, for Basecamp).
    require_install_role(&c, &s, &provider)?;
    let run = s
        .engine
        .start_run(c.scope(), &provider, RunScope::Connection, RunMode::Refetch)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(RunStarted { run_id: run.id })))
}

async fn link_view(s: &AppState, ws: &str, l: ProjectLink) -> ApiResult<LinkView> {
    Ok(LinkView {
        status: run_status(s, ws, l.last_run_id.as_ref()).await?,
        project_id: l.project_id,
        provider: l.provider,
        remote_project_ids: l.remote_project_ids,
        sync_from: l.sync_from,
        prevent_new_assignments: l.prevent_new_assignments,
        trim_assignments: l.trim_assignments,
        missing_people: l.missing_people,
    })
}

async fn load_link(
    s: &AppState,
    c: &Caller,
    project: &RecordId,
    provider: &str,
) -> ApiResult<ProjectLink> {
    s.engine.provider(provider)?;
    load_project(s, c.scope(), project).await?;
    s.engine
        .store
        .get::<ProjectLink>(c.scope(), &format!("{project}.{provider}"))
        .await?
        .map(|(l, _)| l)
        .ok_or_else(|| ApiError::not_found("project integration"))
}

/// Links a host project to remote projects and sets the sync options, for providers that
/// declare project links: 1 to the provider's most remote projects (422
/// `invalid_remote_projects`), `sync_from` where the provider requires it (422 `required`),
/// 422 `unsupported` for providers without project links.
#[utoipa::path(put, path = "/v1/projects/{id}/integrations/{provider}", tag = "integrations",
    params(("id" = String, Path), ("provider" = String, Path)), request_body = LinkBody,
    responses((status = 200, body = LinkView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_link(
    State(s): State<AppState>,
    Member(c): Member,
    Path((id, provider)): Path<(String, String)>,
    Body(b): Body<LinkBody>,
) -> ApiResult<Json<LinkView>> {
    c.require(Role::Manager)?;
    let project = RecordId::parse(id).map_err(|_| ApiError::not_found("project"))?;
    let p = s.engine.provider(&provider)?;
    s.engine.require_addon(c.scope(), &provider).await?;
    let d = p.descriptor();
    let Some(rules) = d.capabilities.project_links else {
        return Err(ApiError::unprocessable(
            "unsupported",
            format!("{provider} does not link host projects to its projects"),
        ));
    };
    load_project(&s, c.scope(), &project).await?;
    if s.engine.connection(c.scope(), &provider).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_connected",
            format!("install {provider} first"),
        ));
    }
    let mut ids: Vec<String> = b
        .remote_project_ids
        .iter()
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .collect();
    ids.sort();
    ids.dedup();
    let max = rules.max_remote_projects;
    if ids.is_empty() || ids.len() > max || ids.iter().any(|r| r.len() > 100) {
        let message = if max == 1 {
            format!(
                "{} links one project: give exactly one remote project id (a string)",
                d.display_name
            )
        } else {
            format!("give 1 to {max} remote project ids (strings)")
        };
        return Err(ApiError::unprocessable("invalid_remote_projects", message)
            .with_fields(vec!["remote_project_ids".into()]));
    }
    if rules.requires_sync_from && b.sync_from.is_none() {
        return Err(ApiError::unprocessable(
            "required",
            format!("{} needs sync_from, the first day to sync", d.display_name),
        )
        .with_fields(vec!["sync_from".into()]));
    }
    let existing = s
        .engine
        .store
        .get::<ProjectLink>(c.scope(), &format!("{project}.{provider}"))
        .await?
        .map(|(l, _)| l);
    let link = ProjectLink {
        project_id: project,
        provider: ProviderId::parse(provider.clone()).map_err(ApiError::from)?,
        remote_project_ids: ids,
        sync_from: b.sync_from.map(|d| d.0),
        prevent_new_assignments: b.prevent_new_assignments,
        trim_assignments: b.trim_assignments,
        last_run_id: existing.as_ref().and_then(|l| l.last_run_id.clone()),
        missing_people: existing.map(|l| l.missing_people).unwrap_or_default(),
    };
    s.engine.store.put(c.scope(), &link).await?;
    Ok(Json(link_view(&s, c.scope(), link).await?))
}

/// A project's integration settings, status and missing people.
#[utoipa::path(get, path = "/v1/projects/{id}/integrations/{provider}", tag = "integrations",
    params(("id" = String, Path), ("provider" = String, Path)),
    responses((status = 200, body = LinkView), (status = 404, body = ErrorBody)))]
async fn get_link(
    State(s): State<AppState>,
    Member(c): Member,
    Path((id, provider)): Path<(String, String)>,
) -> ApiResult<Json<LinkView>> {
    let project = RecordId::parse(id).map_err(|_| ApiError::not_found("project"))?;
    let link = load_link(&s, &c, &project, &provider).await?;
    Ok(Json(link_view(&s, c.scope(), link).await?))
}

/// "Reset and sync all work logs": a preview (200) or a queued run (202).
#[utoipa::path(post, path = "/v1/projects/{id}/integrations/{provider}/reset-and-sync", tag = "integrations",
    params(("id" = String, Path), ("provider" = String, Path)), request_body = ResetBody,
    responses((status = 202, body = RunStarted), (status = 200, body = PreviewView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reset_and_sync(
    State(s): State<AppState>,
    Member(c): Member,
    Path((id, provider)): Path<(String, String)>,
    Body(b): Body<ResetBody>,
) -> ApiResult<Response> {
    c.require(Role::Manager)?;
    let project = RecordId::parse(id).map_err(|_| ApiError::not_found("project"))?;
    load_link(&s, &c, &project, &provider).await?;
    s.engine.require_addon(c.scope(), &provider).await?;
    if b.preview {
        let p: Preview = s
            .engine
            .preview(c.scope(), &provider, project.as_str(), b.mode.into())
            .await?;
        return Ok(Json(PreviewView {
            created: p.created,
            updated: p.updated,
            deleted: p.deleted,
            unchanged: p.unchanged,
            skipped: p.skipped,
            missing_people: p.missing_people,
        })
        .into_response());
    }
    let run = s
        .engine
        .start_run(
            c.scope(),
            &provider,
            RunScope::Project(project),
            b.mode.into(),
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(RunStarted { run_id: run.id })).into_response())
}

/// "Clear data": deletes every work log synced from the provider on the project.
#[utoipa::path(post, path = "/v1/projects/{id}/integrations/{provider}/clear", tag = "integrations",
    params(("id" = String, Path), ("provider" = String, Path)),
    responses((status = 200, body = Cleared), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn clear(
    State(s): State<AppState>,
    Member(c): Member,
    Path((id, provider)): Path<(String, String)>,
) -> ApiResult<Json<Cleared>> {
    c.require(Role::Manager)?;
    let project = RecordId::parse(id).map_err(|_| ApiError::not_found("project"))?;
    s.engine.provider(&provider)?;
    s.engine.require_addon(c.scope(), &provider).await?;
    load_project(&s, c.scope(), &project).await?;
    let deleted = s
        .engine
        .clear(c.scope(), &provider, project.as_str())
        .await?;
    Ok(Json(Cleared { deleted }))
}

/// A run: state, counts and per-record problems.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody)))]
async fn get_run(
    State(s): State<AppState>,
    Member(c): Member,
    IdPath(id): IdPath,
) -> ApiResult<Json<RunView>> {
    let run = s
        .engine
        .run(c.scope(), id.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    Ok(Json(run.into()))
}

// One function per HTTP Lambda that serves these routes (see `HttpFunction` in lib.rs): a new
// route goes into the group of the function the template sends it to.

/// `/v1/connections/...` and `/v1/runs/{id}`: the `connections` function.
pub(crate) fn connection_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_connections))
        .routes(routes!(install, get_connection, disconnect))
        .routes(routes!(authorize))
        .routes(routes!(select_account))
        .routes(routes!(test_connection))
        .routes(routes!(confirm_connection))
        .routes(routes!(review_list))
        .routes(routes!(review_answer))
        .routes(routes!(remote_projects))
        .routes(routes!(sync_now))
        .routes(routes!(get_run))
}

/// `/oauth/{provider}/callback`: the `oauth-callback` function.
pub(crate) fn callback_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(callback))
}

/// `/v1/projects/{id}/integrations/...`: the `project-sync` function.
pub(crate) fn project_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(put_link, get_link))
        .routes(routes!(reset_and_sync))
        .routes(routes!(clear))
}

#[cfg(test)]
mod status_label_tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn labels_are_in_the_workspace_time_zone() {
        let winter = Utc.with_ymd_and_hms(2026, 12, 1, 17, 30, 0).unwrap();
        let summer = Utc.with_ymd_and_hms(2026, 7, 1, 16, 30, 0).unwrap();
        let oslo = "Europe/Oslo";
        assert_eq!(label_of("never_synced", None, oslo), "Not synchronized yet");
        assert_eq!(
            label_of("in_progress", None, oslo),
            "Synchronization in progress"
        );
        assert_eq!(
            label_of("succeeded", Some(winter), oslo),
            "Synchronized successfully at 2026-12-01 18:30"
        );
        assert_eq!(
            label_of("failed", Some(summer), oslo),
            "There was an error at 2026-07-01 18:30"
        );
        assert_eq!(
            label_of("failed", Some(winter), "UTC"),
            "There was an error at 2026-12-01 17:30"
        );
    }
}

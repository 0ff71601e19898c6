//! Basecamp 4 (`bc3`) adapter: projects, to-dos and people in ([`MasterDataSource`]), host time
//! out as timesheet entries ([`TimeSink`]), to-do webhooks ([`WebhookReceiver`]).
//!
//! Facts from `basecamp-tripletex-timelog.md` §2: OAuth 2 through Launchpad with Hourbridge's
//! own app; `authorization.json` lists accounts of every 37signals product and only `bc3` ones
//! are Basecamp 4; every request needs a `User-Agent` (the HTTP helper sends one) and writes
//! need `Content-Type: application/json; charset=utf-8`; collections page by `Link: rel="next"`
//! only; 429 carries `Retry-After`; a 404 with `Reason: Account Inactive` means the account is
//! gone, not the record.
//!
//! Connection conventions, filled in by the sync engine:
//! - `session.secrets["access_token"]`: the OAuth bearer token.
//! - `session.settings["account_id"]`: the chosen `bc3` account. Its API base is
//!   `{HOURBRIDGE_BASECAMP_API_URL}/{account_id}` (Launchpad's `href`, rebased on the
//!   configured API URL).
//!
//! Every request is counted against the shared budget under `basecamp:account:{account_id}`
//! (`basecamp:launchpad` for `authorization.json`).
//!
//! Every GET of an API page is conditional when the environment's response cache remembers
//! the page (per workspace, keyed by account and URL): `If-None-Match` with the stored `ETag`,
//! and a `304 Not Modified` replays the stored body and `Link`, so an unchanged import costs
//! neither a body transfer nor a store write.
//!
//! Typed failures the engine should act on are recognised with [`BasecampFailure::of`]: an
//! inactive account, a login without a `bc3` account, timesheets switched off for a project or
//! account, a project whose timesheet recording cannot be found yet.

mod hours;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hourbridge_domain::{Role, SecretValue};
use hourbridge_provider_api::{
    AccountInfo, AuthKind, Capabilities, ClientAuth, MasterDataIn, MasterDataSource, MasterEntity,
    OAuth2Spec, OAuthClient, OutboundTime, Provider, ProviderDescriptor, ProviderError,
    ProviderErrorKind, ProviderSession, RateBudget, RateLimit, RateLimitScope, RemotePage,
    RemotePerson, RemoteRecord, RemoteWorkLog, Schedule, TimeSink, WebhookDelivery,
    WebhookEndpoint, WebhookEvent, WebhookReceiver, WebhookRequest, WebhookVerification,
};
use hourbridge_provider_api::{CachedResponse, ResponseCache};
use hourbridge_provider_http::{Call, Method, ProviderEnv, ProviderHttp, RawResponse, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

pub use hours::{format_hours, parse_hours};

/// Provider id.
pub const ID: &str = "basecamp";

/// Overrides Launchpad's base URL (default [`DEFAULT_LAUNCHPAD_URL`]).
pub const LAUNCHPAD_URL_VAR: &str = "HOURBRIDGE_BASECAMP_LAUNCHPAD_URL";

/// Overrides the API base URL (default [`DEFAULT_API_URL`]); accounts are `/{account_id}`
/// below it.
pub const API_URL_VAR: &str = "HOURBRIDGE_BASECAMP_API_URL";

/// Every configuration variable [`Basecamp::from_env`] reads. (The platform client's id and
/// secret are the engine's: `HOURBRIDGE_BASECAMP_CLIENT_ID` / `_CLIENT_SECRET`.)
pub const ENV_VARS: &[&str] = &[LAUNCHPAD_URL_VAR, API_URL_VAR, REQUESTS_PER_10S_VAR];

/// The variables of [`ENV_VARS`] that hold secrets (none).
pub const SECRET_ENV_VARS: &[&str] = &[];

/// Overrides the request budget per account and 10 s (default [`RATE_LIMIT`]'s 50), for
/// accounts Basecamp allows more and for sandboxes with another limit. Not above 1,000.
pub const REQUESTS_PER_10S_VAR: &str = "HOURBRIDGE_BASECAMP_REQUESTS_PER_10S";

/// Launchpad, which hosts OAuth and `authorization.json`.
pub const DEFAULT_LAUNCHPAD_URL: &str = "https://launchpad.37signals.com";

/// The Basecamp 4 API host.
pub const DEFAULT_API_URL: &str = "https://3.basecampapi.com";

/// Host of [`DEFAULT_API_URL`]: links Basecamp sends on it are rebased on the configured URL.
const DEFAULT_API_HOST: &str = "3.basecampapi.com";

/// The budget commonly hit first: 50 requests per 10 s. The reference says "per IP"; we budget
/// per account, which everything using one Basecamp account shares.
pub const RATE_LIMIT: RateLimit = RateLimit {
    scope: RateLimitScope::Account,
    requests: 50,
    per: Duration::from_secs(10),
};

/// Webhook types we subscribe to on every imported project.
pub const WEBHOOK_TYPES: &[&str] = &["Todo", "Todolist"];

/// What Hourbridge knows about Basecamp, as data.
pub static DESCRIPTOR: ProviderDescriptor = ProviderDescriptor {
    id: ID,
    display_name: "Basecamp",
    auth: AuthKind::OAuth2(OAuth2Spec {
        authorize_url: "https://launchpad.37signals.com/authorization/new",
        token_url: "https://launchpad.37signals.com/authorization/token",
        // Launchpad has no scopes: a token reaches every account of the identity.
        scopes: &[],
        scope_separator: " ",
        pkce: false,
        client: OAuthClient::Platform,
        // Launchpad documents client_id and client_secret as request parameters.
        client_auth: ClientAuth::RequestBody,
        extra_authorize_params: &[("type", "web_server")],
        // UNCONFIRMED; the engine stores whatever refresh token comes back.
        refresh_token_rotates: false,
        settings: &[hourbridge_provider_api::CredentialField {
            name: "sync_at",
            label: "Synchronize at (HH:MM, workspace time)",
            secret: false,
            required: false,
        }],
    }),
    install_role: Role::Owner,
    requires_add_on: false,
    rate_limit: Some(RATE_LIMIT),
    schedule: Schedule::DailyAtLocalTime,
    capabilities: Capabilities {
        work_logs_in: None,
        time_out: true,
        time_two_way: None,
        time_out_rules: hourbridge_provider_api::TimeOutRules {
            requires_person_link: false,
            requires_task: false,
        },
        master_data_in: Some(MasterDataIn {
            customers: false,
            projects: true,
            tasks: true,
            people: true,
            max_project_depth: 1,
            match_existing: false,
        }),
        tasks_out: false,
        project_links: None,
        person_links: false,
        webhooks: Some(WebhookVerification::PathToken),
    },
};

/// Basecamp-specific failures, carried in a [`ProviderError`]'s detail so the engine can tell
/// them apart without a new [`ProviderErrorKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasecampFailure {
    /// 404 with `Reason: Account Inactive`: the account is cancelled or expired. Kind
    /// [`ProviderErrorKind::Forbidden`] (not retryable); the connection should fail, typed.
    AccountInactive,
    /// `authorization.json` lists no `bc3` account. Kind [`ProviderErrorKind::Forbidden`].
    NoBasecampAccount,
    /// Timesheets are off for the project (`timesheet_enabled: false`), the project is not
    /// active, or the account has no timesheet (`subscription.timesheet: false`). Kind
    /// [`ProviderErrorKind::Unsupported`]: skip pushing to that project, report it once.
    TimesheetsDisabled,
    /// Project-level time needs the project's timesheet recording, which is discoverable only
    /// from an existing project-level entry. Kind [`ProviderErrorKind::NotFound`]: a
    /// per-record problem, retried next run.
    TimesheetRecordingUnknown,
}

impl BasecampFailure {
    fn marker(self) -> &'static str {
        match self {
            Self::AccountInactive => "basecamp:account_inactive",
            Self::NoBasecampAccount => "basecamp:no_basecamp_account",
            Self::TimesheetsDisabled => "basecamp:timesheets_disabled",
            Self::TimesheetRecordingUnknown => "basecamp:timesheet_recording_unknown",
        }
    }

    /// The Basecamp failure `e` stands for, if any.
    pub fn of(e: &ProviderError) -> Option<Self> {
        let detail = e.detail.as_deref()?;
        [
            Self::AccountInactive,
            Self::NoBasecampAccount,
            Self::TimesheetsDisabled,
            Self::TimesheetRecordingUnknown,
        ]
        .into_iter()
        .find(|f| detail.starts_with(f.marker()))
    }

    fn error(self, message: impl Into<String>, detail: impl std::fmt::Display) -> ProviderError {
        let kind = match self {
            Self::AccountInactive | Self::NoBasecampAccount => ProviderErrorKind::Forbidden,
            Self::TimesheetsDisabled => ProviderErrorKind::Unsupported,
            Self::TimesheetRecordingUnknown => ProviderErrorKind::NotFound,
        };
        err(kind, message)
            .with_detail(format!("{}: {detail}", self.marker()))
            .with_code(self.code())
    }

    /// The machine-readable code the API and run problems answer with.
    pub fn code(self) -> &'static str {
        self.marker().trim_start_matches("basecamp:")
    }
}

/// A Basecamp person as the push needs them: e-mail for matching, `client` because client
/// users cannot own timesheet entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasecampPerson {
    /// Id, name and e-mail (as Basecamp stores it; compare trimmed and case-insensitively).
    pub person: RemotePerson,
    /// Whether the person is a client user.
    pub client: bool,
}

/// The Basecamp adapter.
pub struct Basecamp {
    /// Launchpad base (no trailing slash).
    launchpad: String,
    /// API base as configured (no trailing slash).
    api_base: String,
    api_url: Url,
    http: ProviderHttp,
    budget: Arc<dyn RateBudget>,
    /// ETags and bodies of GET pages, per workspace and account, for `If-None-Match`.
    cache: Arc<dyn ResponseCache>,
    /// The budget in force ([`RATE_LIMIT`] unless configured).
    limit: RateLimit,
    /// Project timesheet recordings found so far, by `(account, project)`.
    recordings: Mutex<HashMap<(String, String), String>>,
}

impl std::fmt::Debug for Basecamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Basecamp")
            .field("launchpad", &self.launchpad)
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

fn err(kind: ProviderErrorKind, message: impl Into<String>) -> ProviderError {
    ProviderError::new(ID, kind, message)
}

fn base_url(var: &str, value: &str) -> Result<Url, ProviderError> {
    let invalid = |why: &str| {
        err(
            ProviderErrorKind::Rejected,
            format!("{var} must be an http(s) base URL ({why}): {value:?}"),
        )
    };
    let url = Url::parse(value).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("scheme"));
    }
    if url.host_str().is_none() {
        return Err(invalid("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("query or fragment"));
    }
    Ok(url)
}

fn access_token(session: &ProviderSession) -> Result<&SecretValue, ProviderError> {
    session
        .secrets
        .get(hourbridge_provider_api::ACCESS_TOKEN)
        .filter(|t| !t.expose().is_empty())
        .ok_or_else(|| {
            err(
                ProviderErrorKind::ReauthRequired,
                "the connection has no Basecamp access token; authorize it again",
            )
        })
}

fn numeric(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
}

/// `settings.account_id` (string or number), or `None` when unset.
fn configured_account_id(session: &ProviderSession) -> Result<Option<String>, ProviderError> {
    let malformed = |v: &serde_json::Value| {
        err(
            ProviderErrorKind::Rejected,
            format!("settings.account_id must be a numeric Basecamp account id, got {v}"),
        )
    };
    match session.settings.get("account_id") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(v @ serde_json::Value::String(s)) => {
            let s = s.trim();
            if numeric(s) {
                Ok(Some(s.to_owned()))
            } else {
                Err(malformed(v))
            }
        }
        Some(v @ serde_json::Value::Number(n)) => n
            .as_u64()
            .map(|id| Some(id.to_string()))
            .ok_or_else(|| malformed(v)),
        Some(v) => Err(malformed(v)),
    }
}

fn account_id(session: &ProviderSession) -> Result<String, ProviderError> {
    configured_account_id(session)?.ok_or_else(|| {
        err(
            ProviderErrorKind::Rejected,
            "no Basecamp account is selected for this connection (settings.account_id)",
        )
    })
}

fn budget_key(account: &str) -> String {
    format!("basecamp:account:{account}")
}

fn remote_id(what: &str, v: &str) -> Result<(), ProviderError> {
    if numeric(v) {
        Ok(())
    } else {
        Err(err(
            ProviderErrorKind::Rejected,
            format!("{v:?} is not a Basecamp {what} id"),
        ))
    }
}

/// The marker appended to a pushed entry's description, so an entry whose 201 was lost can be
/// found again by the idempotency key.
pub fn idempotency_marker(key: &str) -> String {
    format!("[hb:{key}]")
}

fn description(note: &str, key: Option<&str>) -> String {
    match key {
        Some(k) if note.trim().is_empty() => idempotency_marker(k),
        Some(k) => format!("{} {}", note.trim_end(), idempotency_marker(k)),
        None => note.to_owned(),
    }
}

/// The body of a create or update: `hours` always as exact `H:MM`; `person_id` omitted when
/// the time has no remote person (Basecamp then registers it under the connecting user).
fn entry_body(time: &OutboundTime, key: Option<&str>) -> Result<serde_json::Value, ProviderError> {
    if time.minutes == 0 {
        return Err(err(
            ProviderErrorKind::Rejected,
            "Basecamp does not take timesheet entries of zero hours",
        ));
    }
    let mut body = serde_json::json!({
        "date": time.date.format("%Y-%m-%d").to_string(),
        "hours": format_hours(time.minutes),
        "description": description(&time.note, key),
    });
    let person = time.remote_person_id.trim();
    if !person.is_empty() {
        remote_id("person", person)?;
        body["person_id"] = serde_json::json!(person.parse::<u64>().unwrap_or_default());
    }
    Ok(body)
}

/// Where a [`Step`] of the to-do crawl reads from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", content = "u", rename_all = "snake_case")]
enum Step {
    Projects(String),
    Todoset(String),
    Lists(String),
    Groups(String),
    Todos(String),
}

/// The page token of the to-do crawl: what is still to be read, next first (a stack).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Crawl {
    stack: Vec<Step>,
}

fn with_query(url: &str, key: &str, value: &str) -> Result<String, ProviderError> {
    let mut u = Url::parse(url).map_err(|_| {
        err(
            ProviderErrorKind::InvalidResponse,
            "Basecamp sent an unreadable URL",
        )
        .with_detail(format!("unreadable URL {url:?}"))
    })?;
    u.query_pairs_mut().append_pair(key, value);
    Ok(u.into())
}

fn todo_record(t: wire::Todo) -> RemoteRecord {
    RemoteRecord {
        entity: MasterEntity::Task,
        id: t.id.to_string(),
        name: t.title,
        parent_id: Some(t.bucket.id.to_string()),
        customer_id: None,
        organization_number: None,
        start_date: None,
        end_date: None,
        deleted: t.status != "active",
        email: None,
        inactive: false,
        version: None,
        number: None,
    }
}

fn project_record(p: &wire::Project) -> RemoteRecord {
    RemoteRecord {
        entity: MasterEntity::Project,
        id: p.id.to_string(),
        name: p.name.clone(),
        parent_id: None,
        customer_id: None,
        organization_number: None,
        start_date: None,
        end_date: None,
        // Archived and trashed projects stop being pushed to.
        deleted: p.status != "active",
        email: None,
        inactive: false,
        version: None,
        number: None,
    }
}

/// A project member as a membership record (`parent_id` the project).
fn member_record(p: wire::Person, project: &str) -> RemoteRecord {
    RemoteRecord {
        entity: MasterEntity::Person,
        id: p.id.to_string(),
        name: p.name,
        parent_id: Some(project.to_owned()),
        customer_id: None,
        organization_number: None,
        start_date: None,
        end_date: None,
        deleted: false,
        email: p.email_address.filter(|e| !e.trim().is_empty()),
        inactive: false,
        version: None,
        number: None,
    }
}

/// The page token of the membership crawl: the projects page still to read, then the people
/// pages of the projects found so far (a stack, next first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct MemberCrawl {
    projects: Option<String>,
    people: Vec<(String, String)>,
}

fn person_of(p: wire::Person) -> BasecampPerson {
    BasecampPerson {
        person: RemotePerson {
            id: p.id.to_string(),
            name: p.name,
            email: p.email_address.filter(|e| !e.trim().is_empty()),
        },
        client: p.client,
    }
}

/// An entry read back as a work log, `hours` parsed exactly to minutes.
fn work_log(e: wire::Entry) -> Result<RemoteWorkLog, ProviderError> {
    let minutes = parse_hours(&e.hours).ok_or_else(|| {
        err(
            ProviderErrorKind::InvalidResponse,
            "Basecamp sent a timesheet entry with unreadable hours",
        )
        .with_detail(format!("entry {}: hours {:?}", e.id, e.hours))
    })?;
    Ok(RemoteWorkLog {
        id: e.id.to_string(),
        project_id: e.bucket.id.to_string(),
        person: person_of(e.person).person,
        date: e.date,
        minutes,
        note: e.description.unwrap_or_default(),
        running: false,
        updated_at: e.updated_at,
        deleted: false,
        task_id: None,
    })
}

impl Basecamp {
    /// Builds the adapter from configuration: [`LAUNCHPAD_URL_VAR`] and [`API_URL_VAR`]
    /// override the public hosts. Fails with [`ProviderErrorKind::Rejected`] on a malformed URL.
    pub fn from_env(env: &ProviderEnv) -> Result<Self, ProviderError> {
        let launchpad = env.url(LAUNCHPAD_URL_VAR, DEFAULT_LAUNCHPAD_URL);
        let api_base = env.url(API_URL_VAR, DEFAULT_API_URL);
        base_url(LAUNCHPAD_URL_VAR, &launchpad)?;
        let api_url = base_url(API_URL_VAR, &api_base)?;
        let limit = match (env.lookup)(REQUESTS_PER_10S_VAR) {
            None => RATE_LIMIT,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => RateLimit {
                    requests: n,
                    ..RATE_LIMIT
                },
                _ => {
                    return Err(err(
                        ProviderErrorKind::Rejected,
                        format!("{REQUESTS_PER_10S_VAR} must be a whole number from 1 to 1000"),
                    ));
                }
            },
        };
        Ok(Self {
            limit,
            launchpad,
            api_base,
            api_url,
            http: ProviderHttp::new(ID, env.http.clone())?,
            budget: env.budget.clone(),
            cache: env.cache.clone(),
            recordings: Mutex::new(HashMap::new()),
        })
    }

    /// The descriptor, without building an adapter.
    pub fn descriptor_static() -> &'static ProviderDescriptor {
        &DESCRIPTOR
    }

    /// `{api}/{account_id}`: the account's API base.
    pub fn account_base(&self, account: &str) -> String {
        format!("{}/{account}", self.api_base)
    }

    /// Puts a URL Basecamp sent (an account `href`, a `Link`, a `todos_url`) on the configured
    /// API: URLs already under it are kept, URLs on `3.basecampapi.com` keep their path and
    /// query on the configured base, anything else is refused (it would receive the token).
    pub fn rebase(&self, url: &str) -> Result<String, ProviderError> {
        let refuse = || {
            err(
                ProviderErrorKind::InvalidResponse,
                "Basecamp sent a link to somewhere else than its API; refused",
            )
            .with_detail(format!("refusing URL {url:?}: not under {}", self.api_base))
        };
        let u = Url::parse(url).map_err(|_| refuse())?;
        if !u.username().is_empty() || u.password().is_some() || u.fragment().is_some() {
            return Err(refuse());
        }
        let base = &self.api_url;
        let prefix = format!("{}/", base.path().trim_end_matches('/'));
        let same_origin = u.scheme() == base.scheme()
            && u.host() == base.host()
            && u.port_or_known_default() == base.port_or_known_default();
        if same_origin && (prefix == "/" || u.path().starts_with(&prefix)) {
            return Ok(url.to_owned());
        }
        if u.scheme() == "https" && u.host_str() == Some(DEFAULT_API_HOST) && u.port().is_none() {
            let query = u.query().map(|q| format!("?{q}")).unwrap_or_default();
            return Ok(format!("{}{}{query}", self.api_base, u.path()));
        }
        Err(refuse())
    }

    /// One request on the connection's account: bearer, budget, JSON body with the charset
    /// Basecamp asks for; a 404 is checked for `Reason: Account Inactive`.
    async fn request(
        &self,
        session: &ProviderSession,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<RawResponse, ProviderError> {
        self.conditional_request(session, method, url, body, None)
            .await
    }

    /// [`Self::request`], with `If-None-Match: etag` when one is given (a 304 then comes back
    /// as a response, not an error).
    async fn conditional_request(
        &self,
        session: &ProviderSession,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
        etag: Option<&str>,
    ) -> Result<RawResponse, ProviderError> {
        let account = account_id(session)?;
        let token = access_token(session)?;
        let url = self.rebase(url)?;
        let mut call = Call::new(method, url).bearer(token).budget(
            self.budget.as_ref(),
            budget_key(&account),
            self.limit,
        );
        if let Some(b) = body {
            call = call.raw_body("application/json; charset=utf-8", b.to_string());
        }
        if let Some(etag) = etag {
            call = call.if_none_match(etag);
        }
        match self.http.raw(call).await {
            Ok(r) => Ok(r),
            Err(e) if e.kind == ProviderErrorKind::NotFound => {
                Err(self.inactive_or(&account, token, e).await)
            }
            Err(e) => Err(e),
        }
    }

    /// The HTTP helper does not hand back the headers of a failed answer, so after a 404 one
    /// probe of the account (`/my/profile.json`) tells an inactive account (404 with
    /// `Reason: Account Inactive`) from a missing record.
    async fn inactive_or(
        &self,
        account: &str,
        token: &SecretValue,
        original: ProviderError,
    ) -> ProviderError {
        if self
            .budget
            .acquire(&budget_key(account), &self.limit)
            .await
            .is_err()
        {
            return original;
        }
        let probe = self
            .http
            .client()
            .get(format!("{}/my/profile.json", self.account_base(account)))
            .bearer_auth(token.expose())
            .send()
            .await;
        match probe {
            Ok(r)
                if r.status() == StatusCode::NOT_FOUND
                    && r.headers()
                        .get("reason")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.trim().eq_ignore_ascii_case("account inactive")) =>
            {
                BasecampFailure::AccountInactive.error(
                    "the Basecamp account is inactive (cancelled or expired); connect an active account",
                    format!("account {account} answered 404 Reason: Account Inactive"),
                )
            }
            _ => original,
        }
    }

    fn decode<T: DeserializeOwned>(res: &RawResponse, what: &str) -> Result<T, ProviderError> {
        serde_json::from_slice(&res.body).map_err(|e| {
            err(
                ProviderErrorKind::InvalidResponse,
                "Basecamp answered something unreadable",
            )
            .with_detail(format!("{what}: {e}"))
        })
    }

    /// GETs `url` and decodes it; answers the `Link: rel="next"` target too (rebased).
    ///
    /// Conditional: a page remembered in the response cache (per workspace, keyed by account
    /// and URL) is revalidated with `If-None-Match`; a 304 replays the remembered body and
    /// next link, a 200 with an `ETag` is remembered (the cache skips the write when the ETag
    /// did not change).
    async fn get_page<T: DeserializeOwned>(
        &self,
        session: &ProviderSession,
        url: &str,
    ) -> Result<(T, Option<String>), ProviderError> {
        let url = self.rebase(url)?;
        let key = format!("{ID}:account:{}:{url}", account_id(session)?);
        let workspace = session.workspace_id.as_str();
        let mut cached = self.cache.get(workspace, &key).await;
        let mut res = self
            .conditional_request(
                session,
                Method::GET,
                &url,
                None,
                cached.as_ref().map(|c| c.etag.as_str()),
            )
            .await?;
        if res.is_not_modified() {
            if let Some(c) = cached.take()
                && let Ok(value) = serde_json::from_slice(&c.body)
            {
                return Ok((value, c.link_next));
            }
            // The remembered body does not decode any more: fetch the page in full.
            res = self.request(session, Method::GET, &url, None).await?;
        }
        let value = Self::decode(&res, &url)?;
        let next = wire::next_link(res.header("link"))
            .map(|n| self.rebase(&n))
            .transpose()?;
        if let Some(etag) = res.header("etag")
            && cached.as_ref().is_none_or(|c| c.etag != etag)
        {
            let response = CachedResponse {
                etag: etag.to_owned(),
                body: res.body.clone(),
                link_next: next.clone(),
            };
            self.cache.put(workspace, &key, response).await;
        }
        Ok((value, next))
    }

    /// People of the account (`/people.json`) or of one project (`/projects/{id}/people.json`,
    /// active people only, client users included and flagged), one page per call.
    pub async fn list_people(
        &self,
        session: &ProviderSession,
        project_id: Option<&str>,
        page: Option<String>,
    ) -> Result<RemotePage<BasecampPerson>, ProviderError> {
        let url = match (page, project_id) {
            (Some(p), _) => p,
            (None, Some(project)) => {
                remote_id("project", project)?;
                format!(
                    "{}/projects/{project}/people.json",
                    self.account_base(&account_id(session)?)
                )
            }
            (None, None) => format!("{}/people.json", self.account_base(&account_id(session)?)),
        };
        let (people, next): (Vec<wire::Person>, _) = self.get_page(session, &url).await?;
        Ok(RemotePage {
            items: people.into_iter().map(person_of).collect(),
            next,
        })
    }

    /// Timesheet entries of a project (to-do and project-level ones), newest first, read back
    /// as work logs with exact minutes; one page per call.
    pub async fn list_timesheet_entries(
        &self,
        session: &ProviderSession,
        project_id: &str,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteWorkLog>, ProviderError> {
        let url = match page {
            Some(p) => p,
            None => {
                remote_id("project", project_id)?;
                format!(
                    "{}/projects/{project_id}/timesheet.json",
                    self.account_base(&account_id(session)?)
                )
            }
        };
        let (entries, next): (Vec<wire::Entry>, _) = self.get_page(session, &url).await?;
        Ok(RemotePage {
            items: entries
                .into_iter()
                .map(work_log)
                .collect::<Result<_, _>>()?,
            next,
        })
    }

    /// The project's timesheet recording (what project-level time is created on), found as the
    /// `parent` of an existing project-level entry and then remembered.
    pub async fn project_timesheet_recording(
        &self,
        session: &ProviderSession,
        project_id: &str,
    ) -> Result<String, ProviderError> {
        remote_id("project", project_id)?;
        let account = account_id(session)?;
        let key = (account.clone(), project_id.to_owned());
        if let Some(id) = self
            .recordings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(id.clone());
        }
        let mut url = Some(format!(
            "{}/projects/{project_id}/timesheet.json",
            self.account_base(&account)
        ));
        while let Some(u) = url.take() {
            let (entries, next): (Vec<wire::Entry>, _) = self.get_page(session, &u).await?;
            if let Some(e) = entries.iter().find(|e| e.parent.kind == "Timesheet") {
                let id = e.parent.id.to_string();
                self.recordings
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, id.clone());
                return Ok(id);
            }
            url = next;
        }
        Err(BasecampFailure::TimesheetRecordingUnknown.error(
            "the Basecamp project's timesheet cannot be found until time is logged on the project itself once; put the work log on a to-do or log project time in Basecamp",
            format!("project {project_id} has no project-level timesheet entry"),
        ))
    }

    /// The recording `time` goes on: its to-do, or the project's timesheet.
    async fn recording_for(
        &self,
        session: &ProviderSession,
        time: &OutboundTime,
    ) -> Result<String, ProviderError> {
        match time.remote_task_id.as_deref().map(str::trim) {
            Some(todo) if !todo.is_empty() => {
                remote_id("to-do", todo)?;
                Ok(todo.to_owned())
            }
            _ => {
                self.project_timesheet_recording(session, &time.remote_project_id)
                    .await
            }
        }
    }

    /// Looks for an entry created with `idempotency_key` (its description carries
    /// [`idempotency_marker`]) on the recording `time` goes on. The engine calls this for a
    /// mapping left pending by a crash between Basecamp's 201 and its bookkeeping.
    pub async fn find_entry(
        &self,
        session: &ProviderSession,
        time: &OutboundTime,
        idempotency_key: &str,
    ) -> Result<Option<String>, ProviderError> {
        let recording = self.recording_for(session, time).await?;
        self.find_on_recording(session, &recording, idempotency_key)
            .await
    }

    async fn find_on_recording(
        &self,
        session: &ProviderSession,
        recording: &str,
        key: &str,
    ) -> Result<Option<String>, ProviderError> {
        let marker = idempotency_marker(key);
        let mut url = Some(format!(
            "{}/recordings/{recording}/timesheet.json",
            self.account_base(&account_id(session)?)
        ));
        while let Some(u) = url.take() {
            let (entries, next): (Vec<wire::Entry>, _) = self.get_page(session, &u).await?;
            if let Some(e) = entries.iter().find(|e| {
                e.description
                    .as_deref()
                    .is_some_and(|d| d.contains(&marker))
            }) {
                return Ok(Some(e.id.to_string()));
            }
            url = next;
        }
        Ok(None)
    }

    /// Turns a refused write into [`BasecampFailure::TimesheetsDisabled`] when the documented
    /// signals say so (project `timesheet_enabled`, project status, account
    /// `subscription.timesheet`), whatever status Basecamp used to refuse it.
    async fn explain_refusal(
        &self,
        session: &ProviderSession,
        project_id: &str,
        e: ProviderError,
    ) -> ProviderError {
        if !matches!(
            e.kind,
            ProviderErrorKind::Forbidden | ProviderErrorKind::Rejected
        ) || BasecampFailure::of(&e).is_some()
            || !numeric(project_id)
        {
            return e;
        }
        let Ok(account) = account_id(session) else {
            return e;
        };
        let base = self.account_base(&account);
        let disabled = |why: String| {
            BasecampFailure::TimesheetsDisabled.error(
                "timesheets are not enabled on this Basecamp project; time is not pushed to it",
                why,
            )
        };
        if let Ok((p, _)) = self
            .get_page::<wire::Project>(session, &format!("{base}/projects/{project_id}.json"))
            .await
        {
            if p.timesheet_enabled == Some(false) {
                return disabled(format!("project {project_id} has timesheet_enabled false"));
            }
            if p.status != "active" {
                return disabled(format!("project {project_id} is {}", p.status));
            }
        }
        if let Ok((a, _)) = self
            .get_page::<serde_json::Value>(session, &format!("{base}/account.json"))
            .await
            && a.pointer("/subscription/timesheet") == Some(&serde_json::Value::Bool(false))
        {
            return disabled(format!("account {account} has no timesheet subscription"));
        }
        e
    }

    /// Every active project, all pages.
    async fn all_projects(
        &self,
        session: &ProviderSession,
        status: Option<&str>,
    ) -> Result<Vec<wire::Project>, ProviderError> {
        let mut url = format!("{}/projects.json", self.account_base(&account_id(session)?));
        if let Some(s) = status {
            url = with_query(&url, "status", s)?;
        }
        let mut out = Vec::new();
        let mut next = Some(url);
        while let Some(u) = next.take() {
            let (page, n): (Vec<wire::Project>, _) = self.get_page(session, &u).await?;
            out.extend(page);
            next = n;
        }
        Ok(out)
    }

    /// Makes sure `project_id` has an active webhook for `payload_url` with
    /// [`WEBHOOK_TYPES`]: creates it when missing, reactivates it when Basecamp deactivated
    /// it. Answers the webhook id.
    pub async fn ensure_webhook(
        &self,
        session: &ProviderSession,
        project_id: &str,
        payload_url: &str,
    ) -> Result<String, ProviderError> {
        remote_id("project", project_id)?;
        let base = self.account_base(&account_id(session)?);
        let list = format!("{base}/buckets/{project_id}/webhooks.json");
        let (hooks, _): (Vec<wire::Webhook>, _) = self.get_page(session, &list).await?;
        if let Some(h) = hooks.iter().find(|h| h.payload_url == payload_url) {
            if !h.active {
                let body = serde_json::json!({ "active": true, "types": WEBHOOK_TYPES });
                self.request(
                    session,
                    Method::PUT,
                    &format!("{base}/webhooks/{}.json", h.id),
                    Some(&body),
                )
                .await?;
            }
            return Ok(h.id.to_string());
        }
        let body = serde_json::json!({ "payload_url": payload_url, "types": WEBHOOK_TYPES });
        let res = self
            .request(session, Method::POST, &list, Some(&body))
            .await?;
        let hook: wire::Webhook = Self::decode(&res, "webhook create")?;
        Ok(hook.id.to_string())
    }

    /// Deletes every webhook of `project_id` delivering to `payload_url`; answers how many.
    pub async fn remove_webhooks(
        &self,
        session: &ProviderSession,
        project_id: &str,
        payload_url: &str,
    ) -> Result<usize, ProviderError> {
        remote_id("project", project_id)?;
        let base = self.account_base(&account_id(session)?);
        let list = format!("{base}/buckets/{project_id}/webhooks.json");
        let (hooks, _): (Vec<wire::Webhook>, _) = self.get_page(session, &list).await?;
        let mut removed = 0;
        for h in hooks.iter().filter(|h| h.payload_url == payload_url) {
            match self
                .request(
                    session,
                    Method::DELETE,
                    &format!("{base}/webhooks/{}.json", h.id),
                    None,
                )
                .await
            {
                Ok(_) => removed += 1,
                Err(e) if e.kind == ProviderErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// One request of the to-do crawl.
    async fn crawl_tasks(
        &self,
        session: &ProviderSession,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteRecord>, ProviderError> {
        let mut crawl = match page {
            None => Crawl {
                stack: vec![Step::Projects(format!(
                    "{}/projects.json",
                    self.account_base(&account_id(session)?)
                ))],
            },
            Some(token) => serde_json::from_str(&token).map_err(|e| {
                err(ProviderErrorKind::Rejected, "invalid Basecamp page token")
                    .with_detail(format!("page token {token:?}: {e}"))
            })?,
        };
        let mut items = Vec::new();
        if let Some(step) = crawl.stack.pop() {
            match step {
                Step::Projects(url) => {
                    let (projects, next): (Vec<wire::Project>, _) =
                        self.get_page(session, &url).await?;
                    crawl.stack.extend(next.map(Step::Projects));
                    for p in projects.iter().rev().filter(|p| p.status == "active") {
                        if let Some(d) = p.dock.iter().find(|d| d.name == "todoset" && d.enabled) {
                            crawl.stack.push(Step::Todoset(self.rebase(&d.url)?));
                        }
                    }
                }
                Step::Todoset(url) => {
                    let (set, _): (wire::Todoset, _) = self.get_page(session, &url).await?;
                    crawl
                        .stack
                        .push(Step::Lists(self.rebase(&set.todolists_url)?));
                }
                Step::Lists(url) | Step::Groups(url) => {
                    let (lists, next): (Vec<wire::Todolist>, _) =
                        self.get_page(session, &url).await?;
                    let is_groups = url.contains("/groups.json");
                    crawl.stack.extend(next.map(if is_groups {
                        Step::Groups
                    } else {
                        Step::Lists
                    }));
                    for l in lists.iter().rev() {
                        if let Some(g) = &l.groups_url {
                            crawl.stack.push(Step::Groups(self.rebase(g)?));
                        }
                        let todos = self.rebase(&l.todos_url)?;
                        crawl
                            .stack
                            .push(Step::Todos(with_query(&todos, "completed", "true")?));
                        crawl.stack.push(Step::Todos(todos));
                    }
                }
                Step::Todos(url) => {
                    let (todos, next): (Vec<wire::Todo>, _) = self.get_page(session, &url).await?;
                    crawl.stack.extend(next.map(Step::Todos));
                    items.extend(
                        todos
                            .into_iter()
                            .filter(|t| t.status != "trashed")
                            .map(todo_record),
                    );
                }
            }
        }
        let next = if crawl.stack.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&crawl).map_err(|e| {
                err(ProviderErrorKind::Rejected, "page token").with_detail(e.to_string())
            })?)
        };
        Ok(RemotePage { items, next })
    }

    /// One request of the membership crawl: the active projects, then each one's people
    /// (`/projects/{id}/people.json`), client users left out (they cannot own time).
    async fn crawl_members(
        &self,
        session: &ProviderSession,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteRecord>, ProviderError> {
        let mut crawl = match page {
            None => MemberCrawl {
                projects: Some(format!(
                    "{}/projects.json",
                    self.account_base(&account_id(session)?)
                )),
                people: Vec::new(),
            },
            Some(token) => serde_json::from_str(&token).map_err(|e| {
                err(ProviderErrorKind::Rejected, "invalid Basecamp page token")
                    .with_detail(format!("page token {token:?}: {e}"))
            })?,
        };
        let mut items = Vec::new();
        if let Some((project, url)) = crawl.people.pop() {
            let (people, next): (Vec<wire::Person>, _) = self.get_page(session, &url).await?;
            if let Some(n) = next {
                crawl.people.push((project.clone(), n));
            }
            items.extend(
                people
                    .into_iter()
                    .filter(|p| !p.client)
                    .map(|p| member_record(p, &project)),
            );
        } else if let Some(url) = crawl.projects.take() {
            let (projects, next): (Vec<wire::Project>, _) = self.get_page(session, &url).await?;
            crawl.projects = next;
            let base = self.account_base(&account_id(session)?);
            for p in projects.iter().rev().filter(|p| p.status == "active") {
                crawl.people.push((
                    p.id.to_string(),
                    format!("{base}/projects/{}/people.json", p.id),
                ));
            }
        }
        let next = if crawl.projects.is_none() && crawl.people.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&crawl).map_err(|e| {
                err(ProviderErrorKind::Rejected, "page token").with_detail(e.to_string())
            })?)
        };
        Ok(RemotePage { items, next })
    }

    /// One page of projects: active first, then archived, then trashed (those two marked
    /// `deleted`, so the engine stops pushing to them).
    async fn list_projects(
        &self,
        session: &ProviderSession,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteRecord>, ProviderError> {
        let first = format!("{}/projects.json", self.account_base(&account_id(session)?));
        let url = page.unwrap_or_else(|| first.clone());
        let (projects, next): (Vec<wire::Project>, _) = self.get_page(session, &url).await?;
        let next = match next {
            Some(n) => Some(n),
            None => {
                let status = Url::parse(&url).ok().and_then(|u| {
                    u.query_pairs()
                        .find(|(k, _)| k == "status")
                        .map(|(_, v)| v.into_owned())
                });
                match status.as_deref() {
                    None => Some(with_query(&first, "status", "archived")?),
                    Some("archived") => Some(with_query(&first, "status", "trashed")?),
                    _ => None,
                }
            }
        };
        Ok(RemotePage {
            items: projects.iter().map(project_record).collect(),
            next,
        })
    }
}

#[async_trait]
impl Provider for Basecamp {
    fn descriptor(&self) -> &ProviderDescriptor {
        &DESCRIPTOR
    }

    /// Reads `authorization.json` and keeps only `bc3` accounts: the configured one (or the
    /// first) is the answer, the others are offered for the owner to choose. No `bc3` account
    /// is [`BasecampFailure::NoBasecampAccount`].
    async fn check_credentials(
        &self,
        session: &ProviderSession,
    ) -> Result<AccountInfo, ProviderError> {
        let token = access_token(session)?;
        let wanted = configured_account_id(session)?;
        let call = Call::get(format!("{}/authorization.json", self.launchpad))
            .bearer(token)
            .budget(self.budget.as_ref(), "basecamp:launchpad", self.limit);
        let res = self.http.raw(call).await?;
        let auth: wire::Authorization = Self::decode(&res, "authorization.json")?;
        let mut bc3: Vec<wire::LaunchpadAccount> = auth
            .accounts
            .into_iter()
            .filter(|a| a.product == "bc3")
            .collect();
        for a in &bc3 {
            let rebased = self.rebase(&a.href)?;
            if rebased.trim_end_matches('/') != self.account_base(&a.id.to_string()) {
                return Err(err(
                    ProviderErrorKind::InvalidResponse,
                    "Launchpad answered an account whose address is not on the Basecamp API",
                )
                .with_detail(format!("account {} href {:?}", a.id, a.href)));
            }
        }
        let chosen = wanted
            .and_then(|w| bc3.iter().position(|a| a.id.to_string() == w))
            .unwrap_or(0);
        if bc3.is_empty() {
            return Err(BasecampFailure::NoBasecampAccount.error(
                "this login has no Basecamp 4 account (only other 37signals products)",
                "authorization.json lists no account with product bc3",
            ));
        }
        let main = bc3.remove(chosen);
        Ok(AccountInfo {
            account_id: main.id.to_string(),
            account_name: main.name,
            other_accounts: bc3
                .into_iter()
                .map(|a| (a.id.to_string(), a.name))
                .collect(),
            identity: None,
        })
    }

    fn oauth_urls(&self) -> Option<(String, String)> {
        Some((
            format!("{}/authorization/new", self.launchpad),
            format!("{}/authorization/token", self.launchpad),
        ))
    }

    fn master_data(&self) -> Option<&dyn MasterDataSource> {
        Some(self)
    }

    fn time_sink(&self) -> Option<&dyn TimeSink> {
        Some(self)
    }

    fn webhooks(&self) -> Option<&dyn WebhookReceiver> {
        Some(self)
    }
}

#[async_trait]
impl MasterDataSource for Basecamp {
    /// Projects (active, then archived and trashed marked `deleted`), tasks (to-dos of every
    /// list and group of every active project, open and completed, trashed left out) and
    /// people (`/people.json`). One Basecamp request per call; a page may be empty while
    /// `next` is set. Basecamp has no "changed since" filter for these, so `since` is ignored.
    async fn list(
        &self,
        session: &ProviderSession,
        entity: MasterEntity,
        since: Option<chrono::DateTime<chrono::Utc>>,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteRecord>, ProviderError> {
        let _ = since;
        match entity {
            MasterEntity::Project => self.list_projects(session, page).await,
            MasterEntity::Task => self.crawl_tasks(session, page).await,
            MasterEntity::Person => self.crawl_members(session, page).await,
            MasterEntity::Customer => Err(err(
                ProviderErrorKind::Unsupported,
                "Basecamp has no customers",
            )),
        }
    }

    /// A to-do (`/buckets/{project}/todos/{id}.json`; trashed ones answer `None`). A to-do
    /// without its project cannot be found; a project is never fetched alone (its event means
    /// its lists changed, which a full import re-reads).
    async fn fetch(
        &self,
        session: &ProviderSession,
        entity: MasterEntity,
        id: &str,
        parent_id: Option<&str>,
    ) -> Result<Option<RemoteRecord>, ProviderError> {
        remote_id("record", id)?;
        let base = self.account_base(&account_id(session)?);
        let found = match entity {
            MasterEntity::Task => {
                let Some(project) = parent_id else {
                    return Err(err(
                        ProviderErrorKind::Unsupported,
                        "a Basecamp to-do can only be fetched with its project",
                    ));
                };
                remote_id("project", project)?;
                self.get_page::<wire::Todo>(
                    session,
                    &format!("{base}/buckets/{project}/todos/{id}.json"),
                )
                .await
                .map(|(t, _)| (t.status != "trashed").then(|| todo_record(t)))
            }
            // A project-wide event means its lists changed: only a full import re-reads them.
            MasterEntity::Project => {
                return Err(err(
                    ProviderErrorKind::Unsupported,
                    "a Basecamp project's to-dos are re-read by a full import",
                ));
            }
            _ => {
                return Err(err(
                    ProviderErrorKind::Unsupported,
                    "only to-dos and projects are fetched one by one",
                ));
            }
        };
        match found {
            Ok(r) => Ok(r),
            Err(e) if e.kind == ProviderErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl TimeSink for Basecamp {
    /// `POST /recordings/{to-do or project timesheet}/timesheet/entries.json` with `hours` as
    /// `H:MM` and the idempotency marker in the description. When the answer is lost
    /// ([`ProviderErrorKind::OutcomeUnknown`]) the recording is searched for the marker: a
    /// found entry is adopted, none means the create was not applied and is retryable
    /// ([`ProviderErrorKind::Transient`]).
    async fn create(
        &self,
        session: &ProviderSession,
        time: &OutboundTime,
        idempotency_key: &str,
    ) -> Result<String, ProviderError> {
        remote_id("project", &time.remote_project_id)?;
        let body = entry_body(time, Some(idempotency_key))?;
        let recording = self.recording_for(session, time).await?;
        let url = format!(
            "{}/recordings/{recording}/timesheet/entries.json",
            self.account_base(&account_id(session)?)
        );
        match self.request(session, Method::POST, &url, Some(&body)).await {
            Ok(res) => {
                let e: wire::Entry = Self::decode(&res, "timesheet entry create")?;
                Ok(e.id.to_string())
            }
            Err(e) if e.kind == ProviderErrorKind::OutcomeUnknown => {
                match self
                    .find_on_recording(session, &recording, idempotency_key)
                    .await
                {
                    Ok(Some(id)) => Ok(id),
                    Ok(None) => Err(err(
                        ProviderErrorKind::Transient,
                        "Basecamp did not confirm the timesheet entry and does not have it; it will be sent again",
                    )
                    .with_detail(e.detail.unwrap_or_default())),
                    Err(_) => Err(e),
                }
            }
            Err(e) => Err(self
                .explain_refusal(session, &time.remote_project_id, e)
                .await),
        }
    }

    /// `PUT /timesheet_entries/{id}.json` with date, `H:MM` hours, description and, when set,
    /// `person_id`. Moving to another to-do is not an update in Basecamp: the engine deletes
    /// and creates.
    async fn update(
        &self,
        session: &ProviderSession,
        remote_id_: &str,
        time: &OutboundTime,
    ) -> Result<(), ProviderError> {
        remote_id("timesheet entry", remote_id_)?;
        let body = entry_body(time, None)?;
        let url = format!(
            "{}/timesheet_entries/{remote_id_}.json",
            self.account_base(&account_id(session)?)
        );
        match self.request(session, Method::PUT, &url, Some(&body)).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self
                .explain_refusal(session, &time.remote_project_id, e)
                .await),
        }
    }

    /// `DELETE /timesheet_entries/{id}.json`; an entry already gone is fine (an inactive
    /// account is not).
    async fn delete(
        &self,
        session: &ProviderSession,
        remote_id_: &str,
    ) -> Result<(), ProviderError> {
        remote_id("timesheet entry", remote_id_)?;
        let url = format!(
            "{}/timesheet_entries/{remote_id_}.json",
            self.account_base(&account_id(session)?)
        );
        match self.request(session, Method::DELETE, &url, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ProviderErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Searches the recording `time` goes on for the idempotency marker ([`Basecamp::find_entry`]).
    async fn find(
        &self,
        session: &ProviderSession,
        time: &OutboundTime,
        idempotency_key: &str,
    ) -> Result<Option<String>, ProviderError> {
        self.find_entry(session, time, idempotency_key).await
    }
}

#[async_trait]
impl WebhookReceiver for Basecamp {
    /// Basecamp signs nothing (UNCONFIRMED that no mechanism exists): the path token is the
    /// proof, so there is nothing to check here.
    fn verify(&self, _: &WebhookRequest, _: &SecretValue) -> Result<(), ProviderError> {
        Ok(())
    }

    /// A `Todo` event asks for the to-do to be refetched (trashed or deleted ones removed); a
    /// `Todolist` event asks for the project's tasks to be refetched, because status changes a
    /// list passes on to its to-dos are not notified per to-do. Other types are ignored.
    fn handle(&self, request: &WebhookRequest) -> Result<WebhookDelivery, ProviderError> {
        let event: wire::WebhookEvent = serde_json::from_slice(&request.body).map_err(|e| {
            err(
                ProviderErrorKind::Rejected,
                "the webhook delivery is not a Basecamp event",
            )
            .with_detail(e.to_string())
        })?;
        let events = match event.recording.kind.as_str() {
            "Todo" => vec![WebhookEvent {
                entity: MasterEntity::Task,
                remote_id: event.recording.id.to_string(),
                deleted: matches!(event.kind.as_str(), "todo_trashed" | "todo_deleted"),
                parent_id: event.recording.bucket.map(|b| b.id.to_string()),
            }],
            "Todolist" => event
                .recording
                .bucket
                .map(|b| WebhookEvent {
                    entity: MasterEntity::Project,
                    remote_id: b.id.to_string(),
                    deleted: false,
                    parent_id: None,
                })
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        Ok(WebhookDelivery { events })
    }

    /// One webhook per active project (types `Todo`, `Todolist`) to `endpoint.url`; missing
    /// ones are created and deactivated ones reactivated, so calling it every run is cheap
    /// insurance.
    async fn subscribe(
        &self,
        session: &ProviderSession,
        endpoint: &WebhookEndpoint,
    ) -> Result<(), ProviderError> {
        for p in self.all_projects(session, None).await? {
            self.ensure_webhook(session, &p.id.to_string(), &endpoint.url)
                .await?;
        }
        Ok(())
    }

    /// Deletes our webhooks from every project, active, archived or trashed.
    async fn unsubscribe(
        &self,
        session: &ProviderSession,
        endpoint: &WebhookEndpoint,
    ) -> Result<(), ProviderError> {
        for status in [None, Some("archived"), Some("trashed")] {
            for p in self.all_projects(session, status).await? {
                self.remove_webhooks(session, &p.id.to_string(), &endpoint.url)
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::NaiveDate;

    use super::*;

    fn basecamp(api: &str) -> Basecamp {
        Basecamp::from_env(&ProviderEnv::for_tests(&[(API_URL_VAR, api)])).unwrap()
    }

    fn time(minutes: u32, person: &str) -> OutboundTime {
        OutboundTime {
            remote_project_id: "1".into(),
            remote_task_id: Some("2".into()),
            remote_person_id: person.into(),
            date: NaiveDate::from_ymd_opt(2026, 5, 20).unwrap(),
            minutes,
            note: "Emails".into(),
        }
    }

    #[test]
    fn bodies_send_exact_h_mm_and_omit_a_missing_person() {
        let b = entry_body(&time(20, ""), Some("k1")).unwrap();
        assert_eq!(
            b,
            serde_json::json!({"date": "2026-05-20", "hours": "0:20", "description": "Emails [hb:k1]"})
        );
        let b = entry_body(&time(90, "51200047"), None).unwrap();
        assert_eq!(b["hours"], "1:30");
        assert_eq!(b["person_id"], 51_200_047u64);
        assert_eq!(b["description"], "Emails");
        assert_eq!(
            entry_body(&time(0, ""), None).unwrap_err().kind,
            ProviderErrorKind::Rejected
        );
        assert!(entry_body(&time(5, "x; y"), None).is_err());
        let mut t = time(5, "");
        t.note = "  ".into();
        assert_eq!(entry_body(&t, Some("k")).unwrap()["description"], "[hb:k]");
    }

    #[test]
    fn urls_are_rebased_on_the_configured_api_or_refused() {
        let b = basecamp("http://127.0.0.1:9/basecamp/api/");
        assert_eq!(
            b.rebase("https://3.basecampapi.com/4410022/projects.json?page=2")
                .unwrap(),
            "http://127.0.0.1:9/basecamp/api/4410022/projects.json?page=2"
        );
        let local = "http://127.0.0.1:9/basecamp/api/4410022/todos/1.json";
        assert_eq!(b.rebase(local).unwrap(), local);
        for bad in [
            "https://evil.example/4410022/projects.json",
            "http://127.0.0.1:10/basecamp/api/1.json",
            "http://127.0.0.1:9/other/1.json",
            "https://user@3.basecampapi.com/1/projects.json",
            "https://3.basecampapi.com:444/1/projects.json",
            "not a url",
        ] {
            assert_eq!(
                b.rebase(bad).unwrap_err().kind,
                ProviderErrorKind::InvalidResponse,
                "{bad}"
            );
        }
        let real = basecamp(DEFAULT_API_URL);
        let href = "https://3.basecampapi.com/4410022";
        assert_eq!(real.rebase(href).unwrap(), href);
        assert_eq!(real.account_base("4410022"), href);
    }

    #[test]
    fn descriptor_is_owner_installed_platform_oauth_daily() {
        let d = Basecamp::descriptor_static();
        assert_eq!(d.install_role, Role::Owner);
        assert_eq!(d.schedule, Schedule::DailyAtLocalTime);
        let spec = d.auth.oauth2().unwrap();
        assert_eq!(spec.client, OAuthClient::Platform);
        assert_eq!(spec.extra_authorize_params, [("type", "web_server")]);
        assert_eq!(spec.client_auth, ClientAuth::RequestBody);
        assert_eq!(d.rate_limit.unwrap().requests, 50);
        assert_eq!(d.rate_limit.unwrap().scope, RateLimitScope::Account);
        assert!(d.capabilities.time_out);
        assert_eq!(
            d.capabilities.webhooks,
            Some(WebhookVerification::PathToken)
        );
        assert_eq!(
            ENV_VARS,
            [LAUNCHPAD_URL_VAR, API_URL_VAR, REQUESTS_PER_10S_VAR]
        );
        let b = basecamp(DEFAULT_API_URL);
        hourbridge_provider_api::check_provider(&b).unwrap();
        assert_eq!(
            b.oauth_urls().unwrap().0,
            "https://launchpad.37signals.com/authorization/new"
        );
    }

    #[test]
    fn failures_are_recognised_by_their_marker_only() {
        let e = BasecampFailure::AccountInactive.error("m", "d");
        assert_eq!(
            BasecampFailure::of(&e),
            Some(BasecampFailure::AccountInactive)
        );
        assert!(!e.is_retryable());
        assert_eq!(
            BasecampFailure::of(&err(ProviderErrorKind::Forbidden, "x").with_detail("403")),
            None
        );
        let e = BasecampFailure::TimesheetsDisabled.error("m", "d");
        assert_eq!(e.kind, ProviderErrorKind::Unsupported);
    }

    #[test]
    fn crawl_tokens_round_trip() {
        let c = Crawl {
            stack: vec![
                Step::Projects("https://x/1/projects.json".into()),
                Step::Todos("https://x/1/todolists/2/todos.json?completed=true".into()),
            ],
        };
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Crawl>(&s).unwrap(), c);
    }

    #[test]
    fn account_ids_must_be_numeric() {
        let s = |v: serde_json::Value| ProviderSession {
            workspace_id: "w".into(),
            secrets: BTreeMap::new(),
            settings: v,
        };
        assert_eq!(
            configured_account_id(&s(serde_json::json!({"account_id": 4410022}))).unwrap(),
            Some("4410022".into())
        );
        assert!(configured_account_id(&s(serde_json::json!({"account_id": "1/../2"}))).is_err());
        assert_eq!(
            configured_account_id(&s(serde_json::json!({}))).unwrap(),
            None
        );
    }
}

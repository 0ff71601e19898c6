//! Tripletex API v2 adapter: customers and main/sub-projects in ([`MasterDataSource`]), session
//! tokens from the customer's employee token ([`Provider::create_session`]), signed webhooks
//! ([`WebhookReceiver`]).
//!
//! Facts from `basecamp-tripletex-timelog.md` §3:
//! - Our **consumer token** (one, Hourbridge's) plus the customer's **employee token** are
//!   exchanged with `PUT /token/session/:create?consumerToken=&employeeToken=&expirationDate=`
//!   (query parameters, no auth header; the literal `:create` must survive URL building) for a
//!   session token that expires at midnight of `expirationDate` (time zone UNCONFIRMED; we assume
//!   Europe/Oslo and the earlier reading, the midnight that *starts* that date).
//! - Every other request: HTTP Basic with username `0` (the token owner's own company) and the
//!   session token as password.
//! - Lists page with `from`/`count` (`fullResultSize` is inexact: we read until a short page);
//!   only `/customer` has `changedSince`; `/customer` hides inactive customers unless
//!   `isInactive=true` is asked for, so customers are listed in two passes.
//! - Errors carry `{status, code, message, validationMessages, requestId}`; the request id goes
//!   to the detail (logs) only. 429 says when to retry in `X-Rate-Limit-Reset` (seconds), not
//!   `Retry-After`. A 403 is a missing entitlement.
//! - Webhooks: one subscription per event (`customer.*`, `project.*`), signed with
//!   `x-request-signature` = base64(HMAC-SHA512(secret, `idempotency-key` + `&` + body)); deletes
//!   carry `value: null`; Tripletex may disable a subscription, so [`WebhookReceiver::subscribe`]
//!   re-creates disabled ones; a nightly full sync is the recommended backstop.
//!
//! Connection conventions, filled in by the sync engine:
//! - connect field `employee_token` (secret), given to [`Provider::create_session`];
//! - `session.secrets["session_token"]` on every other call.
//!
//! Every request is counted against the shared budget under `tripletex:token:{workspace}`: the
//! limit is per employee token (and API consumer), and a workspace has one Tripletex connection.

pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use hmac::{Hmac, Mac};
use hourbridge_domain::{Role, SecretValue};
use hourbridge_provider_api::{
    AccountInfo, AuthKind, Capabilities, CredentialField, MasterDataIn, MasterDataSource,
    MasterEntity, Provider, ProviderDescriptor, ProviderError, ProviderErrorKind, ProviderSession,
    RateBudget, RateLimit, RateLimitScope, RemotePage, RemoteRecord, Schedule, SessionGrant,
    WebhookDelivery, WebhookEndpoint, WebhookEvent, WebhookReceiver, WebhookRequest,
    WebhookVerification,
};
use hourbridge_provider_http::{Call, ErrorResponse, Method, ProviderEnv, ProviderHttp};
use serde::de::DeserializeOwned;
use sha2::Sha512;
use subtle::ConstantTimeEq;
use url::Url;

/// Provider id.
pub const ID: &str = "tripletex";

/// Overrides the API base URL (default [`DEFAULT_API_URL`]), e.g. the test environment
/// `https://api-test.tripletex.tech/v2` or a sandbox.
pub const API_URL_VAR: &str = "HOURBRIDGE_TRIPLETEX_API_URL";

/// Hourbridge's consumer token, issued by Tripletex to the integration. Without it the adapter
/// still builds, but no session can be created.
pub const CONSUMER_TOKEN_VAR: &str = "HOURBRIDGE_TRIPLETEX_CONSUMER_TOKEN";

/// Every configuration variable [`Tripletex::from_env`] reads.
pub const ENV_VARS: &[&str] = &[API_URL_VAR, CONSUMER_TOKEN_VAR];

/// The variables of [`ENV_VARS`] that hold secrets: never logged, and in Lambda read from Secrets
/// Manager (the secret named by `<VAR>_SECRET_NAME`) instead of the environment.
pub const SECRET_ENV_VARS: &[&str] = &[CONSUMER_TOKEN_VAR];

/// The production API.
pub const DEFAULT_API_URL: &str = "https://tripletex.no/v2";

/// The connect field holding the customer's employee token.
pub const EMPLOYEE_TOKEN: &str = "employee_token";

/// The header carrying the seconds left until a rate-limit period ends.
pub const RATE_LIMIT_RESET_HEADER: &str = "x-rate-limit-reset";

/// Header of a delivery's signature.
pub const SIGNATURE_HEADER: &str = "x-request-signature";

/// Header of a delivery's id (also part of the signed text).
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Default `count` of a list request (Tripletex's own default).
pub const PAGE_SIZE: u32 = 1000;

/// How long a session is asked to last. The engine asks for a session until now plus this,
/// and renews it two minutes before the `expires_at` we report (see
/// [`Tripletex::expiration_for`]), so a session lives one to two days and is renewed daily.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The request budget. Tripletex limits per employee per API consumer and announces the limit
/// in `X-Rate-Limit-*` headers, but the numbers are UNCONFIRMED (§3.10, §7): this is a
/// conservative guess; a 429 is still honoured through `X-Rate-Limit-Reset`.
pub const RATE_LIMIT: RateLimit = RateLimit {
    scope: RateLimitScope::Token,
    requests: 100,
    per: Duration::from_secs(60),
};

/// Fields of a customer we ask for.
pub const CUSTOMER_FIELDS: &str = "id,version,name,customerNumber,organizationNumber,isInactive";

/// Fields of a project we ask for.
pub const PROJECT_FIELDS: &str =
    "id,version,name,number,startDate,endDate,isClosed,mainProject(id),customer(id)";

/// Fields of `>whoAmI` we ask for.
pub const WHO_AM_I_FIELDS: &str =
    "companyId,employeeId,company(id,name),employee(id,firstName,lastName,displayName)";

/// Fields of a subscription we list.
const SUBSCRIPTION_FIELDS: &str = "id,event,targetUrl,status";

/// The events we subscribe to, each with the `fields` its delivery's `value` should carry
/// (only what tells which record changed: the engine refetches it).
pub const WEBHOOK_EVENTS: &[(&str, &str)] = &[
    ("customer.create", "id,version"),
    ("customer.update", "id,version"),
    ("customer.delete", "id"),
    ("project.create", "id,version,mainProject(id)"),
    ("project.update", "id,version,mainProject(id)"),
    ("project.delete", "id"),
];

const FIELDS: &[CredentialField] = &[CredentialField {
    name: EMPLOYEE_TOKEN,
    label: "Employee token",
    secret: true,
    required: true,
}];

/// What Hourbridge knows about Tripletex, as data.
pub static DESCRIPTOR: ProviderDescriptor = ProviderDescriptor {
    id: ID,
    display_name: "Tripletex",
    auth: AuthKind::SessionToken {
        fields: FIELDS,
        session_lifetime: SESSION_LIFETIME,
    },
    install_role: Role::Admin,
    requires_add_on: true,
    rate_limit: Some(RATE_LIMIT),
    // Webhooks carry the increments; Tripletex recommends a nightly full sync as backstop
    // (§3.8). The scheduler does not schedule `OnDemand` providers at all, so the daily
    // reconciliation is an `Every(24 h)` schedule (spread over the day per connection).
    schedule: Schedule::Every(Duration::from_secs(24 * 60 * 60)),
    capabilities: Capabilities {
        work_logs_in: None,
        time_out: false,
        time_two_way: None,
        time_out_rules: hourbridge_provider_api::TimeOutRules {
            requires_person_link: false,
            requires_task: false,
        },
        master_data_in: Some(MasterDataIn {
            customers: true,
            projects: true,
            tasks: false,
            people: false,
            max_project_depth: 2,
            // Customers and projects usually exist in the host already (§3.11: match by
            // organisation number, then name, with a review list for unclear matches).
            match_existing: true,
        }),
        tasks_out: false,
        project_links: None,
        person_links: false,
        webhooks: Some(WebhookVerification::HmacSignature),
    },
};

/// Machine codes of failures users act on differently from their kind's generic one.
pub mod codes {
    /// The consumer token is not configured: an operator must set it.
    pub const NOT_CONFIGURED: &str = "tripletex_not_configured";
    /// The employee token lacks an entitlement (403, Tripletex code 9000).
    pub const MISSING_ENTITLEMENT: &str = "missing_entitlement";
    /// A write carried an outdated `version` (409, code 8000).
    pub const VERSION_CONFLICT: &str = "version_conflict";
    /// The record is locked (409, code 10000).
    pub const LOCKED: &str = "record_locked";
    /// The webhook delivery's signature is missing or wrong.
    pub const BAD_SIGNATURE: &str = "invalid_signature";
}

/// Who the employee token acts as: what "Test API" answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The company the token reaches.
    pub company: Party,
    /// The employee who created the token.
    pub employee: Party,
}

/// An id and a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// Tripletex id.
    pub id: String,
    /// Name (empty when the token may not read it).
    pub name: String,
}

/// The Tripletex adapter.
pub struct Tripletex {
    /// API base (no trailing slash).
    api_base: String,
    /// Our consumer token, when configured.
    consumer_token: Option<SecretValue>,
    http: ProviderHttp,
    budget: Arc<dyn RateBudget>,
    page_size: u32,
}

impl std::fmt::Debug for Tripletex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tripletex")
            .field("api_base", &self.api_base)
            .field("consumer_token", &self.consumer_token.is_some())
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

fn session_token(session: &ProviderSession) -> Result<&SecretValue, ProviderError> {
    session
        .secrets
        .get(hourbridge_provider_api::SESSION_TOKEN)
        .filter(|t| !t.expose().is_empty())
        .ok_or_else(|| {
            err(
                ProviderErrorKind::ReauthRequired,
                "the connection has no Tripletex session; connect it again",
            )
        })
}

fn numeric_id(what: &str, v: &str) -> Result<u64, ProviderError> {
    v.parse::<u64>().map_err(|_| {
        err(
            ProviderErrorKind::Rejected,
            format!("{v:?} is not a Tripletex {what} id"),
        )
    })
}

/// Tripletex's `message`, cut to a length fit for a status line.
fn short(message: &str) -> String {
    let m = message.trim();
    let mut s: String = m.chars().take(200).collect();
    if m.chars().count() > 200 {
        s.push('…');
    }
    s
}

/// Refines the error of a non-2xx answer from Tripletex's error body: the Tripletex code and
/// request id (and validation messages) go to the detail; the end-user message gets
/// Tripletex's own explanation for entitlement and validation failures, never the request id.
fn refine(mut e: ProviderError, answer: &ErrorResponse<'_>) -> ProviderError {
    let Ok(body) = serde_json::from_slice::<wire::ErrorBody>(answer.body) else {
        return e;
    };
    let mut detail = format!("tripletex status {}", answer.status.as_u16());
    if let Some(code) = body.code {
        detail.push_str(&format!(", code {code}"));
    }
    if let Some(id) = body
        .request_id
        .as_deref()
        .or_else(|| answer.headers.get("x-tlx-request-id")?.to_str().ok())
    {
        detail.push_str(&format!(", requestId {id}"));
    }
    if let Some(m) = &body.message {
        detail.push_str(&format!(": {}", short(m)));
    }
    if let Some(m) = &body.developer_message {
        detail.push_str(&format!(" (developer: {})", short(m)));
    }
    for v in body.validation_messages.iter().flatten() {
        detail.push_str(&format!(
            "; {}: {}",
            v.field.as_deref().unwrap_or("?"),
            v.message.as_deref().unwrap_or("")
        ));
    }
    if let Some(previous) = &e.detail {
        detail.push_str(&format!(" [{previous}]"));
    }
    let said = body.message.as_deref().map(short).filter(|m| !m.is_empty());
    match (answer.status.as_u16(), body.code) {
        (403, _) => {
            e.message = match &said {
                Some(m) => format!(
                    "Tripletex refused access: {m}. Give the employee token the missing entitlement"
                ),
                None => "Tripletex refused access: the employee token lacks an entitlement".into(),
            };
            e = e.with_code(codes::MISSING_ENTITLEMENT);
        }
        (409, Some(8000)) => e = e.with_code(codes::VERSION_CONFLICT),
        (409, Some(10000)) => e = e.with_code(codes::LOCKED),
        (400 | 409 | 422, _) => {
            if let Some(m) = &said {
                e.message = format!("Tripletex rejected the request: {m}");
            }
        }
        _ => {}
    }
    e.with_detail(detail)
}

/// [`refine`] for `:create`: a refused employee token (401, 403 or 422) needs the admin to
/// enter a new one. Tripletex's message is kept out of the end-user message here: it answers
/// about the tokens in the query.
fn refine_session(e: ProviderError, answer: &ErrorResponse<'_>) -> ProviderError {
    let mut e = refine(e, answer);
    if matches!(answer.status.as_u16(), 401 | 403 | 422) {
        e.kind = ProviderErrorKind::ReauthRequired;
        e.code = None;
        e.message =
            "Tripletex rejected the employee token; create a new one in Tripletex and connect again"
                .into();
    }
    e
}

/// The first instant of `date` in Europe/Oslo, in UTC.
fn oslo_midnight(date: NaiveDate) -> DateTime<Utc> {
    let local = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    chrono_tz::Europe::Oslo
        .from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        // Midnight never falls into Oslo's DST gap; UTC is a safe, earlier fallback.
        .unwrap_or_else(|| Utc.from_utc_datetime(&local) - chrono::Duration::hours(2))
}

fn decode<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ProviderError> {
    serde_json::from_slice(body).map_err(|e| {
        err(
            ProviderErrorKind::InvalidResponse,
            "Tripletex answered something unreadable",
        )
        .with_detail(format!("{what}: {e}"))
    })
}

fn customer_record(c: wire::Customer) -> RemoteRecord {
    RemoteRecord {
        entity: MasterEntity::Customer,
        id: c.id.to_string(),
        name: c.name.unwrap_or_default(),
        parent_id: None,
        customer_id: None,
        organization_number: c.organization_number.filter(|o| !o.trim().is_empty()),
        start_date: None,
        end_date: None,
        // The engine reads `deleted` as "deactivate" (never delete): an inactive customer is
        // shown inactive in the host; `inactive` says it still exists in Tripletex.
        deleted: c.is_inactive,
        email: None,
        inactive: c.is_inactive,
        version: c.version,
        number: c.customer_number.map(|n| n.to_string()),
    }
}

fn project_record(p: wire::Project) -> RemoteRecord {
    RemoteRecord {
        entity: MasterEntity::Project,
        id: p.id.to_string(),
        name: p.name.unwrap_or_default(),
        parent_id: p.main_project.map(|m| m.id.to_string()),
        customer_id: p.customer.map(|c| c.id.to_string()),
        organization_number: None,
        start_date: p.start_date,
        end_date: p.end_date,
        // Closed projects are deactivated in the host, not deleted (see `customer_record`).
        deleted: p.is_closed,
        email: None,
        inactive: p.is_closed,
        version: p.version,
        number: p.number.filter(|n| !n.trim().is_empty()),
    }
}

/// Where a customer or project listing stands: the offset, and for customers whether the
/// active (`isInactive=false`) or the inactive pass is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    inactive: bool,
    from: u64,
}

impl Cursor {
    fn parse(page: Option<&str>) -> Result<Self, ProviderError> {
        let bad = || {
            err(
                ProviderErrorKind::Rejected,
                format!("{page:?} is not a Tripletex page token"),
            )
        };
        let Some(p) = page else {
            return Ok(Self {
                inactive: false,
                from: 0,
            });
        };
        let (inactive, from) = match p.split_once(':') {
            Some(("a", n)) => (false, n),
            Some(("i", n)) => (true, n),
            _ => return Err(bad()),
        };
        Ok(Self {
            inactive,
            from: from.parse().map_err(|_| bad())?,
        })
    }

    fn token(self) -> String {
        format!("{}:{}", if self.inactive { "i" } else { "a" }, self.from)
    }
}

impl Tripletex {
    /// Builds the adapter from configuration: [`API_URL_VAR`] overrides the API base,
    /// [`CONSUMER_TOKEN_VAR`] is our consumer token (kept secret; when missing the adapter
    /// builds, and [`Provider::create_session`] fails with a configuration error). Fails with
    /// [`ProviderErrorKind::Rejected`] on a malformed URL.
    pub fn from_env(env: &ProviderEnv) -> Result<Self, ProviderError> {
        let api_base = env.url(API_URL_VAR, DEFAULT_API_URL);
        base_url(API_URL_VAR, &api_base)?;
        let consumer_token = (env.lookup)(CONSUMER_TOKEN_VAR)
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .map(SecretValue::new);
        Ok(Self {
            api_base,
            consumer_token,
            http: ProviderHttp::new(ID, env.http.clone())?,
            budget: env.budget.clone(),
            page_size: PAGE_SIZE,
        })
    }

    /// The same adapter, listing `count` records per request (tests, sandboxes).
    pub fn with_page_size(mut self, count: u32) -> Self {
        self.page_size = count.clamp(1, PAGE_SIZE);
        self
    }

    /// The descriptor, without building an adapter.
    pub fn descriptor_static() -> &'static ProviderDescriptor {
        &DESCRIPTOR
    }

    /// The API base in use (no trailing slash).
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    /// The `expirationDate` to ask for so the session lasts at least until `until`, and the
    /// instant it then stops working as we reckon it: midnight Europe/Oslo at the start of
    /// that date (the earlier reading of "expires at midnight on that date"; the engine renews
    /// two minutes before).
    pub fn expiration_for(until: DateTime<Utc>) -> (NaiveDate, DateTime<Utc>) {
        let oslo = until.with_timezone(&chrono_tz::Europe::Oslo).date_naive();
        let date = oslo.succ_opt().unwrap_or(oslo);
        (date, oslo_midnight(date))
    }

    fn budget_key(workspace: &str) -> String {
        format!("{ID}:token:{workspace}")
    }

    /// A call on `path` (below the API base) with the budget, the rate-limit header and the
    /// error body mapping; no authentication.
    fn call<'a>(&'a self, method: Method, path: &str, workspace: &str) -> Call<'a> {
        self.call_at(method, format!("{}{path}", self.api_base), workspace)
    }

    fn call_at<'a>(&'a self, method: Method, url: String, workspace: &str) -> Call<'a> {
        Call::new(method, url)
            .budget(
                self.budget.as_ref(),
                Self::budget_key(workspace),
                RATE_LIMIT,
            )
            .retry_after_header(RATE_LIMIT_RESET_HEADER)
            .refine_error(refine)
    }

    /// [`Self::call`] authenticated with Basic `0:<session token>`.
    fn authed<'a>(
        &'a self,
        session: &'a ProviderSession,
        method: Method,
        path: &str,
    ) -> Result<Call<'a>, ProviderError> {
        let token = session_token(session)?;
        Ok(self
            .call(method, path, &session.workspace_id)
            .basic_auth("0", token))
    }

    async fn get_json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, ProviderError> {
        let res = self.http.raw(call).await?;
        decode(&res.body, "Tripletex answer")
    }

    /// Who the session acts as (`GET /token/session/>whoAmI`): the company and the employee
    /// who created the employee token. What "Test API" shows.
    pub async fn who_am_i(&self, session: &ProviderSession) -> Result<Identity, ProviderError> {
        // `>` is percent-encoded by URL building anyway; Tripletex accepts `%3E`.
        let call = self
            .authed(session, Method::GET, "/token/session/%3EwhoAmI")?
            .query("fields", WHO_AM_I_FIELDS);
        let who: wire::ValueEnvelope<wire::WhoAmI> = self.get_json(call).await?;
        let who = who.value;
        let company_id = who.company.as_ref().map(|c| c.id).or(who.company_id);
        let Some(company_id) = company_id else {
            return Err(err(
                ProviderErrorKind::InvalidResponse,
                "Tripletex did not say which company the token belongs to",
            ));
        };
        let employee_id = who.employee.as_ref().map(|e| e.id).or(who.employee_id);
        let employee_name = who
            .employee
            .as_ref()
            .map(|e| {
                e.display_name
                    .clone()
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| {
                        [e.first_name.as_deref(), e.last_name.as_deref()]
                            .into_iter()
                            .flatten()
                            .filter(|s| !s.trim().is_empty())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
            })
            .unwrap_or_default();
        Ok(Identity {
            company: Party {
                id: company_id.to_string(),
                name: who.company.and_then(|c| c.name).unwrap_or_default(),
            },
            employee: Party {
                id: employee_id.map(|i| i.to_string()).unwrap_or_default(),
                name: employee_name,
            },
        })
    }

    async fn list_customers(
        &self,
        session: &ProviderSession,
        since: Option<DateTime<Utc>>,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteRecord>, ProviderError> {
        let cursor = Cursor::parse(page.as_deref())?;
        let mut call = self
            .authed(session, Method::GET, "/customer")?
            .query("fields", CUSTOMER_FIELDS)
            .query("isInactive", cursor.inactive)
            .query("from", cursor.from)
            .query("count", self.page_size);
        if let Some(since) = since {
            // The zone of `changedSince` is UNCONFIRMED: UTC is never later than the same
            // instant in Oslo local time, so an overlap at worst, never a gap.
            call = call.query("changedSince", since.format("%Y-%m-%dT%H:%M:%S"));
        }
        let list: wire::ListEnvelope<wire::Customer> = self.get_json(call).await?;
        let full = list.values.len() as u64 >= u64::from(self.page_size);
        let next = if full {
            Some(Cursor {
                from: cursor.from + list.values.len() as u64,
                ..cursor
            })
        } else if !cursor.inactive {
            Some(Cursor {
                inactive: true,
                from: 0,
            })
        } else {
            None
        };
        Ok(RemotePage {
            items: list.values.into_iter().map(customer_record).collect(),
            next: next.map(Cursor::token),
        })
    }

    async fn list_projects(
        &self,
        session: &ProviderSession,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteRecord>, ProviderError> {
        let cursor = Cursor::parse(page.as_deref())?;
        let call = self
            .authed(session, Method::GET, "/project")?
            .query("fields", PROJECT_FIELDS)
            .query("from", cursor.from)
            .query("count", self.page_size);
        let list: wire::ListEnvelope<wire::Project> = self.get_json(call).await?;
        let full = list.values.len() as u64 >= u64::from(self.page_size);
        let next = full.then(|| {
            Cursor {
                from: cursor.from + list.values.len() as u64,
                ..cursor
            }
            .token()
        });
        Ok(RemotePage {
            items: list.values.into_iter().map(project_record).collect(),
            next,
        })
    }

    /// Every webhook subscription of the employee token.
    pub async fn subscriptions(
        &self,
        session: &ProviderSession,
    ) -> Result<Vec<wire::Subscription>, ProviderError> {
        let mut all = Vec::new();
        let mut from = 0u64;
        loop {
            let call = self
                .authed(session, Method::GET, "/event/subscription")?
                .query("fields", SUBSCRIPTION_FIELDS)
                .query("from", from)
                .query("count", self.page_size);
            let list: wire::ListEnvelope<wire::Subscription> = self.get_json(call).await?;
            let n = list.values.len() as u64;
            all.extend(list.values);
            if n < u64::from(self.page_size) {
                return Ok(all);
            }
            from += n;
        }
    }

    async fn delete_subscription(
        &self,
        session: &ProviderSession,
        id: u64,
    ) -> Result<(), ProviderError> {
        let call = self.authed(
            session,
            Method::DELETE,
            &format!("/event/subscription/{id}"),
        )?;
        match self.http.raw(call).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ProviderErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// `x-request-signature` for `body` delivered with `idempotency_key`, signed with `secret`:
/// base64(HMAC-SHA512(secret, idempotency key + `&` + body)).
pub fn sign(secret: &SecretValue, idempotency_key: &str, body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(secret, idempotency_key, body))
}

fn mac(secret: &SecretValue, idempotency_key: &str, body: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha512>::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(idempotency_key.as_bytes());
    mac.update(b"&");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

#[async_trait]
impl Provider for Tripletex {
    fn descriptor(&self) -> &ProviderDescriptor {
        &DESCRIPTOR
    }

    /// `>whoAmI`: the company is the account, the employee the identity.
    async fn check_credentials(
        &self,
        session: &ProviderSession,
    ) -> Result<AccountInfo, ProviderError> {
        let who = self.who_am_i(session).await?;
        Ok(AccountInfo {
            account_id: who.company.id,
            account_name: who.company.name,
            other_accounts: Vec::new(),
            identity: Some((who.employee.id, who.employee.name)),
        })
    }

    /// `PUT /token/session/:create` with our consumer token, the employee token and the
    /// `expirationDate` of [`Tripletex::expiration_for`]`(until)`. A refused employee token
    /// (401, 403 or 422) needs the admin to enter a new one.
    async fn create_session(
        &self,
        credentials: &ProviderSession,
        until: DateTime<Utc>,
    ) -> Result<SessionGrant, ProviderError> {
        let consumer = self.consumer_token.as_ref().ok_or_else(|| {
            err(
                ProviderErrorKind::Rejected,
                "Tripletex is not configured on this Hourbridge installation (no consumer token)",
            )
            .with_code(codes::NOT_CONFIGURED)
            .with_detail(format!("{CONSUMER_TOKEN_VAR} is not set"))
        })?;
        let employee = credentials
            .secrets
            .get(EMPLOYEE_TOKEN)
            .filter(|t| !t.expose().trim().is_empty())
            .ok_or_else(|| {
                err(
                    ProviderErrorKind::ReauthRequired,
                    "no Tripletex employee token was given",
                )
            })?;
        let (date, expires_at) = Self::expiration_for(until);
        // The path keeps the literal `:create` (a colon is legal in a path segment).
        let call = self
            .call(
                Method::PUT,
                "/token/session/:create",
                &credentials.workspace_id,
            )
            .query("consumerToken", consumer.expose())
            .query("employeeToken", employee.expose().trim())
            .query("expirationDate", date.format("%Y-%m-%d"));
        let res = self.http.raw(call.refine_error(refine_session)).await?;
        let session: wire::ValueEnvelope<wire::SessionToken> =
            decode(&res.body, "PUT /token/session/:create")?;
        let session = session.value;
        if session.token.is_empty() {
            return Err(err(
                ProviderErrorKind::InvalidResponse,
                "Tripletex answered a session without a token",
            ));
        }
        // Should Tripletex grant an earlier date than asked, its date wins.
        let expires_at = session
            .expiration_date
            .map(oslo_midnight)
            .map_or(expires_at, |t| t.min(expires_at));
        Ok(SessionGrant {
            token: SecretValue::new(session.token),
            expires_at,
        })
    }

    /// `DELETE /token/session/{token}`.
    async fn revoke(&self, session: &ProviderSession) -> Result<(), ProviderError> {
        let token = session_token(session)?;
        let mut url = Url::parse(&format!("{}/token/session", self.api_base)).map_err(|e| {
            err(ProviderErrorKind::Rejected, "bad Tripletex URL").with_detail(e.to_string())
        })?;
        url.path_segments_mut()
            .map_err(|_| err(ProviderErrorKind::Rejected, "bad Tripletex URL"))?
            .push(token.expose());
        // The path holds the token: logs show a placeholder instead.
        let call = self
            .call_at(Method::DELETE, url.to_string(), &session.workspace_id)
            .log_url(format!("{}/token/session/{{token}}", self.api_base))
            .basic_auth("0", token);
        match self.http.raw(call).await {
            Ok(_) => Ok(()),
            // Already expired or revoked.
            Err(e)
                if matches!(
                    e.kind,
                    ProviderErrorKind::NotFound | ProviderErrorKind::ReauthRequired
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn master_data(&self) -> Option<&dyn MasterDataSource> {
        Some(self)
    }

    fn webhooks(&self) -> Option<&dyn WebhookReceiver> {
        Some(self)
    }
}

#[async_trait]
impl MasterDataSource for Tripletex {
    /// Customers (active, then inactive; `changedSince` when `since` is given) or all projects
    /// (`/project` has no `changedSince`), one page of `count` per call.
    async fn list(
        &self,
        session: &ProviderSession,
        entity: MasterEntity,
        since: Option<DateTime<Utc>>,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteRecord>, ProviderError> {
        match entity {
            MasterEntity::Customer => self.list_customers(session, since, page).await,
            MasterEntity::Project => self.list_projects(session, page).await,
            MasterEntity::Task | MasterEntity::Person => Err(err(
                ProviderErrorKind::Unsupported,
                format!("Tripletex does not provide {entity:?} records"),
            )),
        }
    }

    /// `GET /customer/{id}` or `GET /project/{id}`; `None` when it is gone.
    async fn fetch(
        &self,
        session: &ProviderSession,
        entity: MasterEntity,
        remote_id: &str,
        _parent_id: Option<&str>,
    ) -> Result<Option<RemoteRecord>, ProviderError> {
        let (what, path, fields) = match entity {
            MasterEntity::Customer => ("customer", "/customer", CUSTOMER_FIELDS),
            MasterEntity::Project => ("project", "/project", PROJECT_FIELDS),
            MasterEntity::Task | MasterEntity::Person => {
                return Err(err(
                    ProviderErrorKind::Unsupported,
                    format!("Tripletex does not provide {entity:?} records"),
                ));
            }
        };
        let id = numeric_id(what, remote_id)?;
        let call = self
            .authed(session, Method::GET, &format!("{path}/{id}"))?
            .query("fields", fields);
        let res = match self.http.raw(call).await {
            Ok(r) => r,
            Err(e) if e.kind == ProviderErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(match entity {
            MasterEntity::Customer => {
                let v: wire::ValueEnvelope<wire::Customer> = decode(&res.body, what)?;
                customer_record(v.value)
            }
            _ => {
                let v: wire::ValueEnvelope<wire::Project> = decode(&res.body, what)?;
                project_record(v.value)
            }
        }))
    }
}

#[async_trait]
impl WebhookReceiver for Tripletex {
    /// `x-request-signature` must be base64(HMAC-SHA512(secret, `idempotency-key` + `&` +
    /// body)); compared in constant time.
    fn verify(&self, request: &WebhookRequest, secret: &SecretValue) -> Result<(), ProviderError> {
        let refuse = |why: &str| {
            err(
                ProviderErrorKind::Rejected,
                "the webhook delivery is not signed by Tripletex",
            )
            .with_code(codes::BAD_SIGNATURE)
            .with_detail(why.to_owned())
        };
        let signature = request
            .headers
            .get(SIGNATURE_HEADER)
            .ok_or_else(|| refuse("no x-request-signature header"))?;
        let key = request
            .headers
            .get(IDEMPOTENCY_KEY_HEADER)
            .ok_or_else(|| refuse("no idempotency-key header"))?;
        let given = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| refuse("x-request-signature is not base64"))?;
        let expected = mac(secret, key, &request.body);
        if bool::from(given.ct_eq(&expected)) {
            Ok(())
        } else {
            Err(refuse("x-request-signature does not match"))
        }
    }

    /// The `idempotency-key` header.
    fn delivery_id(&self, request: &WebhookRequest) -> Option<String> {
        request
            .headers
            .get(IDEMPOTENCY_KEY_HEADER)
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
    }

    /// `{event: "customer.update", id, value}` names the record to refetch; `*.delete`
    /// removes it. Other events are ignored.
    fn handle(&self, request: &WebhookRequest) -> Result<WebhookDelivery, ProviderError> {
        let callback: wire::Callback = serde_json::from_slice(&request.body).map_err(|e| {
            err(
                ProviderErrorKind::Rejected,
                "the webhook delivery is not a Tripletex event",
            )
            .with_detail(e.to_string())
        })?;
        let (object, verb) = callback
            .event
            .split_once('.')
            .unwrap_or((callback.event.as_str(), ""));
        let entity = match object {
            "customer" => MasterEntity::Customer,
            "project" => MasterEntity::Project,
            _ => return Ok(WebhookDelivery::default()),
        };
        Ok(WebhookDelivery {
            events: vec![WebhookEvent {
                entity,
                remote_id: callback.id.to_string(),
                deleted: verb == "delete",
                parent_id: None,
            }],
        })
    }

    /// One subscription per event of [`WEBHOOK_EVENTS`] to `endpoint.url`, signed with the
    /// endpoint's secret. Active ones are kept; ones Tripletex disabled are deleted and
    /// created again; missing ones are created. Cheap to call every run.
    async fn subscribe(
        &self,
        session: &ProviderSession,
        endpoint: &WebhookEndpoint,
    ) -> Result<(), ProviderError> {
        let secret = endpoint.signing_secret.as_ref().ok_or_else(|| {
            err(
                ProviderErrorKind::Rejected,
                "Tripletex webhooks need a signing secret",
            )
        })?;
        let existing = self.subscriptions(session).await?;
        for (event, fields) in WEBHOOK_EVENTS {
            let ours: Vec<&wire::Subscription> = existing
                .iter()
                .filter(|s| s.event == *event && s.target_url == endpoint.url)
                .collect();
            if ours
                .iter()
                .any(|s| s.status.as_deref().is_none_or(|st| st == "ACTIVE"))
            {
                continue;
            }
            for s in ours {
                self.delete_subscription(session, s.id).await?;
            }
            let body = wire::NewSubscription {
                event,
                target_url: &endpoint.url,
                fields,
                hmac_shared_secret: secret.expose(),
            };
            let body = serde_json::to_value(&body).map_err(|e| {
                err(ProviderErrorKind::Rejected, "unencodable subscription")
                    .with_detail(e.to_string())
            })?;
            let call = self
                .authed(session, Method::POST, "/event/subscription")?
                .json(body);
            self.http.raw(call).await?;
        }
        Ok(())
    }

    /// Deletes every subscription to `endpoint.url`.
    async fn unsubscribe(
        &self,
        session: &ProviderSession,
        endpoint: &WebhookEndpoint,
    ) -> Result<(), ProviderError> {
        for s in self.subscriptions(session).await? {
            if s.target_url == endpoint.url {
                self.delete_subscription(session, s.id).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_outlives_until_and_expires_at_oslo_midnight() {
        // 2026-07-10 22:30 UTC is 00:30 on the 11th in Oslo (CEST, +2).
        let until = Utc.with_ymd_and_hms(2026, 7, 10, 22, 30, 0).unwrap();
        let (date, expires) = Tripletex::expiration_for(until);
        assert_eq!(date, NaiveDate::from_ymd_opt(2026, 7, 12).unwrap());
        assert_eq!(
            expires,
            Utc.with_ymd_and_hms(2026, 7, 11, 22, 0, 0).unwrap()
        );
        assert!(expires >= until);
        // Winter (CET, +1).
        let until = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
        let (date, expires) = Tripletex::expiration_for(until);
        assert_eq!(date, NaiveDate::from_ymd_opt(2026, 1, 11).unwrap());
        assert_eq!(
            expires,
            Utc.with_ymd_and_hms(2026, 1, 10, 23, 0, 0).unwrap()
        );
    }

    #[test]
    fn page_tokens_round_trip() {
        for c in [
            Cursor {
                inactive: false,
                from: 0,
            },
            Cursor {
                inactive: true,
                from: 2000,
            },
        ] {
            assert_eq!(Cursor::parse(Some(&c.token())).unwrap(), c);
        }
        assert!(Cursor::parse(Some("x")).is_err());
    }
}

//! TimeLog (TLP) adapter: time kept in sync both ways ([`TimeSink`] + [`TimeChangeFeed`]),
//! host tasks out with allocations of linked users ([`TaskSink`]), and a [`Directory`] of
//! projects and users to link by hand.
//!
//! Facts from `basecamp-tripletex-timelog.md` §4 and TimeLog's SDK (the WSDL-generated
//! contracts are the authority for SOAPActions, element names and namespaces):
//!
//! - **Connection.** Seven connect fields ([`fields`]): the site `domain` (`app5.timelog.com`)
//!   and `account_name` make the site base `https://{domain}/{account_name}/`; `username` and
//!   `password` are the Transactional API's; `site_code`, `reporting_username` (the Reporting
//!   "API ID") and `reporting_password` the Reporting API's. `domain` must be a bare host name
//!   (no scheme, path, port or spaces); with [`ALLOW_HTTP_VAR`] set it may also be
//!   `127.0.0.1:PORT` / `localhost:PORT`, reached over plain http (tests, sandboxes).
//!   `account_name` must be one path segment of letters, digits, `-`, `_` and `.`.
//! - **Validation** ([`Provider::validate_credentials`]) blames fields in order: the domain's
//!   (or account name's) syntax → `unreachable_domain`; GetToken refused → `invalid_credentials`
//!   on `username`/`password`; no host, refused connection, timeout, 404, redirect or an answer
//!   that is not SOAP at the Security URL → `unreachable_domain` on `domain`/`account_name`;
//!   Reporting `ValidateCredentials` false or HTTP 401 → `invalid_credentials` on `site_code`,
//!   `reporting_username`, `reporting_password`.
//! - **Services.** Security [`SECURITY_PATH`], ProjectManagement V1_8
//!   [`PROJECT_MANAGEMENT_PATH`] (both WCF, SOAP 1.1) and Reporting [`REPORTING_PATH`] (ASMX,
//!   SOAP 1.1, actions `http://www.timelog.com/ws/tlp/v4_4/<Method>`). Envelopes are written
//!   with quick-xml (text escaped) in contract order; answers are read namespace-aware by local
//!   name, whatever the prefixes and order, `i:nil` meaning absent.
//! - **Token.** `GetToken(username, password)` returns `Return[0]` = {`Initials`, `Expires`,
//!   `Hash`}. It is cached per connection (domain, account, username) in this process until one
//!   minute before `Expires`, and copied unmodified into the v1_3 `SecurityToken` namespace
//!   ProjectManagement V1_8 expects. When a call fails on authentication (a `ResponseState`
//!   other than `Success` whose messages mention "token" or "authenticat" — TimeLog's real
//!   codes are UNCONFIRMED — or a SOAP fault classified as such) the token is dropped, a new one
//!   fetched and the call retried once. A refused GetToken is
//!   [`ProviderErrorKind::ReauthRequired`].
//! - **Answers.** A SOAP fault is a typed error ([`hourbridge_provider_http::soap`]); a
//!   `ResponseState` other than `Success` is a [`ProviderErrorKind::Fault`] with code
//!   [`codes::REFUSED`] and TimeLog's messages in the detail; in batch answers **every item's**
//!   `Status` is checked: a refused item is a `Fault` with code [`codes::REGISTRATION_LOCKED`]
//!   when its message says the week is closed or the registration approved/locked, else
//!   [`codes::REFUSED`], with TimeLog's item message.
//! - **Ids.** Remote project id: the TimeLog project `ID` (int, as a string). Change rows carry
//!   only the project GUID, so a per-connection ID↔GUID cache is kept from `GetProjects`
//!   (refreshed on a miss). Remote task id: the task GUID, lowercase (we generate it on
//!   CreateTask, with `TaskID = -1`); InsertWork needs the int `TaskID`, cached from
//!   CreateTask's answer and `GetTaskById`. Remote user id: the employee `ID` of Reporting
//!   `GetEmployeesRaw` (the only place with e-mail); work units are keyed by initials, so a
//!   per-connection employee cache (all statuses, 15 minutes, refreshed on a miss) maps both
//!   ways.
//! - **Time out.** `create` sends InsertWork with a work-unit GUID derived from the idempotency
//!   key ([`work_unit_guid`]: a retry after a crash reuses the key, hence the GUID, and
//!   [`TimeSink::find`] looks for it with Reporting `GetWorkUnitsRaw`), `Duration`
//!   `PT{h}H{m}M`, `StartDateTime` 08:00 of the day and `EndDateTime` start plus duration,
//!   `Description` the note, and `source` [`WORK_SOURCE`] = 0 (the docs say externals use 0;
//!   the SDK sample passes 99: UNCONFIRMED). `create_many` sends up to [`INSERT_WORK_BATCH`]
//!   such units in one InsertWork and reads every item's status by position (GUIDs checked).
//!   `update` is UpdateWork, `delete` DeleteWork (an unknown GUID is not an error).
//! - **Time in.** `GetWorkChangesPaged` with all registration dates (2000-01-01..2099-12-31),
//!   the change window, 1-based pages of [`CHANGES_PAGE_SIZE`] (a shorter page is the last).
//!   `Created`/`Updated` rows are upserts, `Deleted` rows deletions (they carry only the
//!   GUID); an unknown action is logged and read as an upsert when the row has a project, else
//!   skipped, as are rows of a later-deleted unit (no project). Change rows carry no note: the
//!   page's notes come from one Reporting `GetWorkUnitsRaw` per project over the page's days.
//!   TimeLog's DateTimes carry no zone; we read and write them as UTC (UNCONFIRMED, the
//!   declared overlap absorbs small skews only).
//! - **Tasks out.** CreateTask with our key as external key (system [`SYSTEM_NAME`]),
//!   `Action = Created`, `State.IsActive` from the host task; `find_task` is
//!   `GetTaskByExternalKey`; `update_task` reads the task (`GetTaskById`), and when the name
//!   differs changes it and sends the task back whole, as read, `Action` included
//!   (`UpdateTask`, read-modify-write like the SDK sample; whether `Action` should read
//!   `Updated` is UNCONFIRMED), then
//!   `ChangeTaskStatus` with [`TASK_STATUS_INACTIVE`] (3) or [`TASK_STATUS_ACTIVE`] (1) when
//!   the active state differs (the ints are the Reporting "Task Status" enum: UNCONFIRMED for
//!   this call). `allocate` checks `GetAllocationsToEmployee` first and calls
//!   `AddEmployeeToTask(employeeID, TaskID, 0)` only for a user not yet allocated.
//! - **Pacing.** TimeLog asks for no bursts: every request takes a slot of the shared budget
//!   under `timelog:site:{domain}/{account}`, one per 1/[`DEFAULT_REQUESTS_PER_SECOND`] s
//!   (configurable with [`REQUESTS_PER_SECOND_VAR`]).
//! - **Known costs** (measured by the `timelog_cycle` bench, BENCHMARKS.md). New registrations
//!   go out [`INSERT_WORK_BATCH`] per InsertWork: 5,000 new host logs take 100 InsertWork requests
//!   (0.02 per log, 20 s at the default 5/s; one request each, 1,000 s, before batching).
//!   Edits (UpdateWork), deletions (DeleteWork), moves and creates resumed after a crash (a
//!   Reporting `GetWorkUnitsRaw` to look the GUID up, then an UpdateWork) still cost one
//!   request or more per log. Time in costs a change-log page per 500 rows plus one
//!   `GetWorkUnitsRaw` per project on a page with rows to apply (their notes).

pub mod wire;
pub mod xml;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use hourbridge_domain::{Role, SecretValue};
use hourbridge_provider_api::{
    AccountInfo, AuthKind, Capabilities, ChangeWindow, CredentialCheckError, CredentialField,
    Directory, OutboundTask, OutboundTime, ProjectLinks, Provider, ProviderDescriptor,
    ProviderError, ProviderErrorKind, ProviderSession, RateBudget, RateLimit, RateLimitScope,
    RemotePage, RemotePerson, RemoteProject, RemoteUser, RemoteWorkLog, Schedule, TaskSink,
    TimeChange, TimeChangeFeed, TimeOutRules, TimeSink, TimeTwoWay,
};
use hourbridge_provider_http::{Call, Idempotency, ProviderEnv, ProviderHttp};
use sha2::{Digest, Sha256};

use crate::wire::{Answer, Employee, PmOp, ProjectHeader, Token, ops};
use crate::xml::{Node, XmlError, XmlOut};

/// Provider id.
pub const ID: &str = "timelog";

/// Requests per second per site (default [`DEFAULT_REQUESTS_PER_SECOND`], 1 to 50), paced
/// evenly.
pub const REQUESTS_PER_SECOND_VAR: &str = "HOURBRIDGE_TIMELOG_REQUESTS_PER_SECOND";

/// When `1` (or `true`), `domain` may be `127.0.0.1:PORT` or `localhost:PORT`, reached over
/// plain http: for tests and sandboxes only.
pub const ALLOW_HTTP_VAR: &str = "HOURBRIDGE_TIMELOG_ALLOW_HTTP";

/// Every configuration variable [`TimeLog::from_env`] reads.
pub const ENV_VARS: &[&str] = &[REQUESTS_PER_SECOND_VAR, ALLOW_HTTP_VAR];

/// The variables of [`ENV_VARS`] that hold secrets (none).
pub const SECRET_ENV_VARS: &[&str] = &[];

/// Default pace: TimeLog enforces no documented limit but asks integrators to avoid bursts.
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 5;

/// Security service, below the site base.
pub const SECURITY_PATH: &str = "WebServices/Security/V1_2/SecurityServiceSecure.svc";
/// ProjectManagement service V1_8, below the site base.
pub const PROJECT_MANAGEMENT_PATH: &str =
    "WebServices/ProjectManagement/V1_8/ProjectManagementServiceSecure.svc";
/// Reporting API, below the site base.
pub const REPORTING_PATH: &str = "service.asmx";

/// The external system name our task keys are stored under.
pub const SYSTEM_NAME: &str = "Hourbridge";

/// `source` of InsertWork/UpdateWork/DeleteWork: 0 per the docs ("externals should use 0");
/// the SDK sample uses 99 (UNCONFIRMED).
pub const WORK_SOURCE: i32 = 0;

/// Work units per InsertWork request ([`TimeSink::create_many`]). TimeLog documents no maximum
/// (UNCONFIRMED); 50 keeps one request's body around 40 KB and its work small, and is what one
/// engine step sends at most.
pub const INSERT_WORK_BATCH: usize = 50;

/// Rows per GetWorkChangesPaged page (TimeLog's maximum).
pub const CHANGES_PAGE_SIZE: u32 = 500;

/// `ChangeTaskStatus` target for a deactivated task (Reporting "Completed"; UNCONFIRMED).
pub const TASK_STATUS_INACTIVE: i32 = 3;
/// `ChangeTaskStatus` target for a reactivated task (Reporting "In Progress"; UNCONFIRMED).
pub const TASK_STATUS_ACTIVE: i32 = 1;

/// How long the employee and project caches are trusted before they are read again.
pub const DIRECTORY_CACHE_TTL: Duration = Duration::from_secs(15 * 60);

/// How long a token whose `Expires` cannot be read (or reads as past) is used.
const UNREADABLE_EXPIRY_TTL: Duration = Duration::from_secs(10 * 60);

/// A token is renewed this long before its `Expires` (as the SDK does).
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// Registration dates a change read covers: all of them.
const REGISTRATIONS_FROM: &str = "2000-01-01T00:00:00";
const REGISTRATIONS_TO: &str = "2099-12-31T00:00:00";

/// Names of the connect fields.
pub mod fields {
    /// Site host, e.g. `app5.timelog.com`.
    pub const DOMAIN: &str = "domain";
    /// The account path segment of the site.
    pub const ACCOUNT_NAME: &str = "account_name";
    /// Transactional API user (name or initials).
    pub const USERNAME: &str = "username";
    /// Transactional API password (secret).
    pub const PASSWORD: &str = "password";
    /// Reporting API site code.
    pub const SITE_CODE: &str = "site_code";
    /// Reporting API ID.
    pub const REPORTING_USERNAME: &str = "reporting_username";
    /// Reporting API password (secret).
    pub const REPORTING_PASSWORD: &str = "reporting_password";
}

/// Machine codes of failures users act on differently from their kind's generic one.
pub mod codes {
    /// TimeLog refused a write because the week is closed or the registration approved.
    pub const REGISTRATION_LOCKED: &str = "registration_locked";
    /// TimeLog refused a request or an item of a batch for another reason.
    pub const REFUSED: &str = "timelog_refused";
}

const FIELDS: &[CredentialField] = &[
    CredentialField {
        name: fields::DOMAIN,
        label: "Domain",
        secret: false,
        required: true,
    },
    CredentialField {
        name: fields::ACCOUNT_NAME,
        label: "Account name",
        secret: false,
        required: true,
    },
    CredentialField {
        name: fields::USERNAME,
        label: "Username",
        secret: false,
        required: true,
    },
    CredentialField {
        name: fields::PASSWORD,
        label: "Password",
        secret: true,
        required: true,
    },
    CredentialField {
        name: fields::SITE_CODE,
        label: "Site code",
        secret: false,
        required: true,
    },
    CredentialField {
        name: fields::REPORTING_USERNAME,
        label: "Reporting API ID",
        secret: false,
        required: true,
    },
    CredentialField {
        name: fields::REPORTING_PASSWORD,
        label: "Reporting API password",
        secret: true,
        required: true,
    },
];

/// The budget for `requests_per_second`: one request per `1/requests_per_second` seconds, so
/// requests are paced evenly instead of bursting at the start of each second.
pub fn rate_limit(requests_per_second: u32) -> RateLimit {
    RateLimit {
        scope: RateLimitScope::Account,
        requests: 1,
        per: Duration::from_millis(1000 / u64::from(requests_per_second.clamp(1, 1000))),
    }
}

/// The default budget (5 requests per second, paced).
pub const RATE_LIMIT: RateLimit = RateLimit {
    scope: RateLimitScope::Account,
    requests: 1,
    per: Duration::from_millis(1000 / DEFAULT_REQUESTS_PER_SECOND as u64),
};

/// What Hourbridge knows about TimeLog, as data.
pub static DESCRIPTOR: ProviderDescriptor = ProviderDescriptor {
    id: ID,
    display_name: "TimeLog",
    auth: AuthKind::CredentialSet { fields: FIELDS },
    install_role: Role::Admin,
    requires_add_on: false,
    rate_limit: Some(RATE_LIMIT),
    // Forecast's TimeLog integration polls every 15 minutes (§4.1).
    schedule: Schedule::Every(Duration::from_secs(15 * 60)),
    capabilities: Capabilities {
        work_logs_in: None,
        time_out: false,
        // GetWorkChangesPaged keeps 3 months of history.
        time_two_way: Some(TimeTwoWay {
            history_days: 90,
            overlap: Duration::from_secs(10 * 60),
        }),
        time_out_rules: TimeOutRules {
            requires_person_link: true,
            requires_task: true,
        },
        master_data_in: None,
        tasks_out: true,
        project_links: Some(ProjectLinks {
            max_remote_projects: 1,
            requires_sync_from: false,
        }),
        person_links: true,
        webhooks: None,
    },
};

fn err(kind: ProviderErrorKind, message: impl Into<String>) -> ProviderError {
    ProviderError::new(ID, kind, message)
}

fn unreadable(what: &str, e: &XmlError) -> ProviderError {
    err(
        ProviderErrorKind::InvalidResponse,
        "TimeLog answered something unreadable",
    )
    .with_detail(format!("{what}: {e}"))
}

/// TimeLog's text, cut to a length fit for a status line.
fn short(message: &str) -> String {
    let m = message.trim();
    let mut s: String = m.chars().take(200).collect();
    if m.chars().count() > 200 {
        s.push('…');
    }
    s
}

/// Whether TimeLog's message says the registration cannot be changed any more (closed week,
/// approved registration). The wording is UNCONFIRMED.
fn is_locked_message(m: &str) -> bool {
    let m = m.to_lowercase();
    m.contains("closed") || m.contains("approved") || m.contains("locked")
}

/// Whether TimeLog's message says the record does not exist (wording UNCONFIRMED).
fn is_not_found_message(m: &str) -> bool {
    let m = m.to_lowercase();
    [
        "not found",
        "not exist",
        "no such",
        "unknown",
        "could not find",
        "does not exist",
    ]
    .iter()
    .any(|w| m.contains(w))
}

/// Tags a refusal with the code users act on: a closed week or approved registration is
/// `registration_locked` (wait for it to reopen), anything else `timelog_refused`.
fn refused_code(e: ProviderError, locked: bool) -> ProviderError {
    if locked {
        e.with_code(codes::REGISTRATION_LOCKED)
    } else {
        e.with_code(codes::REFUSED)
    }
}

/// The error of a refused batch item.
fn item_refused(message: &str) -> ProviderError {
    let locked = is_locked_message(message);
    let said = short(message);
    let text = if said.is_empty() {
        "TimeLog refused the change".to_owned()
    } else {
        format!("TimeLog refused the change: {said}")
    };
    refused_code(err(ProviderErrorKind::Fault, text), locked)
        .with_detail(format!("batch item refused: {said}"))
}

/// The error of a refused (non-`Success`) answer.
fn answer_refused(op: &str, state: &str, messages: &str) -> ProviderError {
    if wire::is_auth_message(messages) {
        return err(
            ProviderErrorKind::ReauthRequired,
            "TimeLog rejected the connection's credentials",
        )
        .with_detail(format!("{op}: ResponseState {state}: {messages}"));
    }
    let locked = is_locked_message(messages);
    let said = short(messages);
    let text = if said.is_empty() {
        format!("TimeLog refused {op}")
    } else {
        format!("TimeLog refused {op}: {said}")
    };
    refused_code(err(ProviderErrorKind::Fault, text), locked)
        .with_detail(format!("{op}: ResponseState {state}: {messages}"))
}

/// Checks every item of a batch answer; the items when all succeeded.
fn check_batch(result: &Node) -> Result<Vec<wire::BatchItem<'_>>, ProviderError> {
    let items = wire::batch_items(result);
    if let Some(bad) = items.iter().find(|i| !i.ok()) {
        return Err(item_refused(&bad.message));
    }
    Ok(items)
}

/// The GUID of the work unit written for `idempotency_key`: the first 16 bytes of SHA-256 of
/// the key, with the version (8, RFC 9562 custom/hash-based) and RFC 4122 variant bits set,
/// lowercase. A create retried with the same key writes the same GUID, so one host log never
/// becomes two registrations.
pub fn work_unit_guid(idempotency_key: &str) -> String {
    let digest = Sha256::digest(idempotency_key.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}

fn parse_guid(what: &str, s: &str) -> Result<String, ProviderError> {
    uuid::Uuid::parse_str(s.trim())
        .map(|u| u.to_string())
        .map_err(|_| {
            err(
                ProviderErrorKind::Rejected,
                format!("{s:?} is not a TimeLog {what} id (a GUID)"),
            )
        })
}

fn parse_int(what: &str, s: &str) -> Result<i64, ProviderError> {
    s.trim().parse::<i64>().map_err(|_| {
        err(
            ProviderErrorKind::Rejected,
            format!("{s:?} is not a TimeLog {what} id"),
        )
    })
}

/// Why the connect fields do not describe a site.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SiteError {
    /// `domain` is missing or not a bare host name.
    BadDomain,
    /// `account_name` is not a path segment.
    BadAccount,
    /// Required fields are missing.
    Missing(Vec<&'static str>),
}

/// One connection's site and credentials.
#[derive(Clone)]
struct Site {
    domain: String,
    account: String,
    /// `https://{domain}/{account}/` (or http for allowed local test hosts).
    base: String,
    username: String,
    password: SecretValue,
    site_code: String,
    reporting_username: String,
    reporting_password: SecretValue,
}

/// Whether `d` is a bare DNS host name: dot-separated labels of letters, digits and inner
/// hyphens, at least two labels.
fn is_host_name(d: &str) -> bool {
    let labels: Vec<&str> = d.split('.').collect();
    d.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Whether `d` is a local test address `127.0.0.1:PORT` or `localhost:PORT`.
fn is_local_test_host(d: &str) -> bool {
    match d.split_once(':') {
        Some((host, port)) => {
            matches!(host, "127.0.0.1" | "localhost")
                && !port.is_empty()
                && port.parse::<u16>().is_ok()
        }
        None => false,
    }
}

impl Site {
    fn from_session(session: &ProviderSession, allow_http: bool) -> Result<Self, SiteError> {
        let setting = |name: &str| {
            session
                .settings
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let secret = |name: &str| {
            session
                .secrets
                .get(name)
                .filter(|s| !s.expose().is_empty())
                .cloned()
        };
        let domain = setting(fields::DOMAIN)
            .map(|d| d.to_ascii_lowercase())
            .ok_or(SiteError::BadDomain)?;
        let scheme = if is_host_name(&domain) {
            "https"
        } else if allow_http && is_local_test_host(&domain) {
            "http"
        } else {
            return Err(SiteError::BadDomain);
        };
        let username = setting(fields::USERNAME);
        let password = secret(fields::PASSWORD);
        let account = setting(fields::ACCOUNT_NAME).map(|a| a.trim_matches('/').to_owned());
        let site_code = setting(fields::SITE_CODE);
        let reporting_username = setting(fields::REPORTING_USERNAME);
        let reporting_password = secret(fields::REPORTING_PASSWORD);
        let mut missing = Vec::new();
        let mut need = |present: bool, name: &'static str| {
            if !present {
                missing.push(name);
            }
        };
        need(account.is_some(), fields::ACCOUNT_NAME);
        need(username.is_some(), fields::USERNAME);
        need(password.is_some(), fields::PASSWORD);
        need(site_code.is_some(), fields::SITE_CODE);
        need(reporting_username.is_some(), fields::REPORTING_USERNAME);
        need(reporting_password.is_some(), fields::REPORTING_PASSWORD);
        let (
            Some(account),
            Some(username),
            Some(password),
            Some(site_code),
            Some(reporting_username),
            Some(reporting_password),
        ) = (
            account,
            username,
            password,
            site_code,
            reporting_username,
            reporting_password,
        )
        else {
            return Err(SiteError::Missing(missing));
        };
        if !account
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(SiteError::BadAccount);
        }
        Ok(Self {
            base: format!("{scheme}://{domain}/{account}/"),
            domain,
            account,
            username,
            password,
            site_code,
            reporting_username,
            reporting_password,
        })
    }

    /// The connection's cache and budget key: `{domain}/{account}`.
    fn key(&self) -> String {
        format!("{}/{}", self.domain, self.account.to_ascii_lowercase())
    }

    fn token_key(&self) -> String {
        format!("{}/{}", self.key(), self.username)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A cached token and until when it is used.
#[derive(Debug, Clone)]
struct CachedToken {
    token: Token,
    use_until: DateTime<Utc>,
}

/// A directory list and when it was read.
#[derive(Debug, Clone)]
struct Cached<T> {
    items: Arc<Vec<T>>,
    at: DateTime<Utc>,
}

impl<T> Cached<T> {
    fn fresh(&self, now: DateTime<Utc>) -> bool {
        now - self.at < chrono::Duration::from_std(DIRECTORY_CACHE_TTL).unwrap_or_default()
    }
}

/// The in-process caches, by connection.
#[derive(Debug, Default)]
struct Caches {
    tokens: HashMap<String, CachedToken>,
    employees: HashMap<String, Cached<Employee>>,
    projects: HashMap<String, Cached<ProjectHeader>>,
    /// Task GUID (lowercase) → int TaskID, by connection.
    tasks: HashMap<String, HashMap<String, i64>>,
}

/// The TimeLog adapter.
pub struct TimeLog {
    descriptor: ProviderDescriptor,
    http: ProviderHttp,
    budget: Arc<dyn RateBudget>,
    limit: RateLimit,
    allow_http: bool,
    changes_page_size: u32,
    caches: Mutex<Caches>,
}

impl std::fmt::Debug for TimeLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeLog")
            .field("limit", &self.limit)
            .field("allow_http", &self.allow_http)
            .finish_non_exhaustive()
    }
}

impl TimeLog {
    /// Builds the adapter from configuration: [`REQUESTS_PER_SECOND_VAR`] sets the pace,
    /// [`ALLOW_HTTP_VAR`] allows local http test sites. Fails with
    /// [`ProviderErrorKind::Rejected`] on a malformed value.
    pub fn from_env(env: &ProviderEnv) -> Result<Self, ProviderError> {
        let limit = match (env.lookup)(REQUESTS_PER_SECOND_VAR) {
            None => RATE_LIMIT,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if (1..=50).contains(&n) => rate_limit(n),
                _ => {
                    return Err(err(
                        ProviderErrorKind::Rejected,
                        format!("{REQUESTS_PER_SECOND_VAR} must be a whole number from 1 to 50"),
                    ));
                }
            },
        };
        let allow_http = (env.lookup)(ALLOW_HTTP_VAR)
            .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true"));
        let mut descriptor = DESCRIPTOR.clone();
        descriptor.rate_limit = Some(limit);
        Ok(Self {
            descriptor,
            http: ProviderHttp::new(ID, env.http.clone())?,
            budget: env.budget.clone(),
            limit,
            allow_http,
            changes_page_size: CHANGES_PAGE_SIZE,
            caches: Mutex::new(Caches::default()),
        })
    }

    /// The same adapter, reading `size` change rows per page (tests, sandboxes).
    pub fn with_changes_page_size(mut self, size: u32) -> Self {
        self.changes_page_size = size.clamp(1, CHANGES_PAGE_SIZE);
        self
    }

    /// The descriptor, without building an adapter.
    pub fn descriptor_static() -> &'static ProviderDescriptor {
        &DESCRIPTOR
    }

    fn caches(&self) -> std::sync::MutexGuard<'_, Caches> {
        // A panic while holding the lock leaves only caches behind: keep using them.
        self.caches.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn site(&self, session: &ProviderSession) -> Result<Site, ProviderError> {
        Site::from_session(session, self.allow_http).map_err(|e| match e {
            SiteError::Missing(fields) => err(
                ProviderErrorKind::ReauthRequired,
                format!(
                    "the TimeLog connection lacks {}; connect it again",
                    fields.join(", ")
                ),
            ),
            SiteError::BadDomain => err(
                ProviderErrorKind::Rejected,
                "the TimeLog domain is not a host name such as app5.timelog.com",
            ),
            SiteError::BadAccount => err(
                ProviderErrorKind::Rejected,
                "the TimeLog account name is not a valid account name",
            ),
        })
    }

    fn call<'a>(
        &'a self,
        site: &Site,
        path: &str,
        action: &str,
        body: Vec<u8>,
        safe: bool,
    ) -> Call<'a> {
        Call::soap11(site.url(path), action, body)
            .idempotency(if safe {
                Idempotency::Safe
            } else {
                Idempotency::Unsafe
            })
            .budget(
                self.budget.as_ref(),
                format!("{ID}:site:{}", site.key()),
                self.limit,
            )
    }

    /// Calls GetToken (no cache).
    async fn fetch_token(&self, site: &Site) -> Result<Token, ProviderError> {
        let body = wire::get_token_envelope(&site.username, site.password.expose());
        let res = self
            .http
            .soap(self.call(site, SECURITY_PATH, wire::GET_TOKEN_ACTION, body, true))
            .await?;
        match wire::read_answer(&res.body, "GetToken").map_err(|e| unreadable("GetToken", &e))? {
            Answer::Success(result) => wire::token(&result).ok_or_else(|| {
                err(
                    ProviderErrorKind::InvalidResponse,
                    "TimeLog answered GetToken without a token",
                )
            }),
            Answer::Refused { state, messages } => Err(err(
                ProviderErrorKind::ReauthRequired,
                "TimeLog refused the username or password",
            )
            .with_detail(format!("GetToken: ResponseState {state}: {messages}"))),
        }
    }

    /// Caches a token until one minute before its `Expires`. A token whose `Expires` cannot be
    /// read, or that reads as already expired although it was just issued (a zone mismatch:
    /// TimeLog's DateTimes carry none), is used for [`UNREADABLE_EXPIRY_TTL`]; a refusal
    /// renews it early anyway.
    fn remember_token(&self, site: &Site, token: &Token) {
        let now = Utc::now();
        let margin = chrono::Duration::from_std(TOKEN_MARGIN).unwrap_or_default();
        let fallback = now + chrono::Duration::from_std(UNREADABLE_EXPIRY_TTL).unwrap_or_default();
        let use_until = match token.expires_at() {
            Some(at) if at - margin > now => at - margin,
            _ => fallback,
        };
        self.caches().tokens.insert(
            site.token_key(),
            CachedToken {
                token: token.clone(),
                use_until,
            },
        );
    }

    fn forget_token(&self, site: &Site) {
        self.caches().tokens.remove(&site.token_key());
    }

    /// The connection's token: the cached one while it is valid, else a new one.
    async fn token(&self, site: &Site) -> Result<Token, ProviderError> {
        let cached = self
            .caches()
            .tokens
            .get(&site.token_key())
            .filter(|c| Utc::now() < c.use_until)
            .map(|c| c.token.clone());
        if let Some(t) = cached {
            return Ok(t);
        }
        let t = self.fetch_token(site).await?;
        self.remember_token(site, &t);
        Ok(t)
    }

    /// Calls a ProjectManagement operation and returns its answer; an authentication failure
    /// drops the token, and the call is made once more with a new one.
    async fn pm_answer(
        &self,
        site: &Site,
        op: PmOp,
        safe: bool,
        params: &(dyn Fn(&mut XmlOut) + Send + Sync),
    ) -> Result<Answer, ProviderError> {
        let mut renewed = false;
        loop {
            let token = self.token(site).await?;
            let body = wire::pm_envelope(op, &token, params);
            let call = self.call(site, PROJECT_MANAGEMENT_PATH, op.action, body, safe);
            let res = match self.http.soap(call).await {
                Ok(res) => res,
                Err(e) if e.kind == ProviderErrorKind::ReauthRequired && !renewed => {
                    tracing::info!(provider = ID, op = op.name, "token refused; renewing once");
                    self.forget_token(site);
                    renewed = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let answer =
                wire::read_answer(&res.body, op.name).map_err(|e| unreadable(op.name, &e))?;
            if answer.is_auth_failure() && !renewed {
                tracing::info!(provider = ID, op = op.name, "token refused; renewing once");
                self.forget_token(site);
                renewed = true;
                continue;
            }
            return Ok(answer);
        }
    }

    /// [`Self::pm_answer`], with a refusal as an error: the `...Result` element.
    async fn pm(
        &self,
        site: &Site,
        op: PmOp,
        safe: bool,
        params: &(dyn Fn(&mut XmlOut) + Send + Sync),
    ) -> Result<Node, ProviderError> {
        match self.pm_answer(site, op, safe, params).await? {
            Answer::Success(result) => Ok(result),
            Answer::Refused { state, messages } => Err(answer_refused(op.name, &state, &messages)),
        }
    }

    /// Calls a Reporting method (a read) and returns its `...Result` element.
    async fn reporting(
        &self,
        site: &Site,
        method: &str,
        params: &[(&str, String)],
    ) -> Result<Node, ProviderError> {
        let body = wire::reporting_envelope(
            method,
            &site.site_code,
            &site.reporting_username,
            site.reporting_password.expose(),
            params,
        );
        let res = self
            .http
            .soap(self.call(
                site,
                REPORTING_PATH,
                &wire::reporting_action(method),
                body,
                true,
            ))
            .await?;
        wire::reporting_result(&res.body, method).map_err(|e| unreadable(method, &e))
    }

    /// Every employee (Reporting `GetEmployeesRaw(0, "", 0, -1)`), from the cache unless it is
    /// stale or `refresh` is set.
    async fn employees(
        &self,
        site: &Site,
        refresh: bool,
    ) -> Result<Arc<Vec<Employee>>, ProviderError> {
        self.cached_list(site, refresh, |c| &mut c.employees, async {
            let result = self
                .reporting(
                    site,
                    "GetEmployeesRaw",
                    &[
                        ("employeeID", "0".into()),
                        ("initials", String::new()),
                        ("departmentID", "0".into()),
                        ("status", "-1".into()),
                    ],
                )
                .await?;
            Ok(wire::reporting_rows(&result, "Employees", "Employee")
                .into_iter()
                .filter_map(wire::employee)
                .collect())
        })
        .await
    }

    /// The employee with remote id `id`; the cache is read again once on a miss.
    async fn employee_by_id(
        &self,
        site: &Site,
        id: &str,
    ) -> Result<Option<Employee>, ProviderError> {
        let id = parse_int("user", id)?;
        for refresh in [false, true] {
            let list = self.employees(site, refresh).await?;
            if let Some(e) = list.iter().find(|e| e.id == id) {
                return Ok(Some(e.clone()));
            }
        }
        Ok(None)
    }

    /// Every project, inactive ones included (`GetProjects(0, 0, true, -1)`), for the
    /// ID↔GUID mapping.
    async fn all_projects(
        &self,
        site: &Site,
        refresh: bool,
    ) -> Result<Arc<Vec<ProjectHeader>>, ProviderError> {
        self.cached_list(
            site,
            refresh,
            |c| &mut c.projects,
            self.get_projects(site, true),
        )
        .await
    }

    /// The directory list `pick` selects for `site`, from the cache unless it is stale or
    /// `refresh` is set; otherwise `load`ed and cached.
    async fn cached_list<T>(
        &self,
        site: &Site,
        refresh: bool,
        pick: fn(&mut Caches) -> &mut HashMap<String, Cached<T>>,
        load: impl Future<Output = Result<Vec<T>, ProviderError>>,
    ) -> Result<Arc<Vec<T>>, ProviderError> {
        let now = Utc::now();
        if !refresh
            && let Some(c) = pick(&mut self.caches())
                .get(&site.key())
                .filter(|c| c.fresh(now))
        {
            return Ok(c.items.clone());
        }
        let items = Arc::new(load.await?);
        pick(&mut self.caches()).insert(
            site.key(),
            Cached {
                items: items.clone(),
                at: now,
            },
        );
        Ok(items)
    }

    async fn get_projects(
        &self,
        site: &Site,
        include_inactive: bool,
    ) -> Result<Vec<ProjectHeader>, ProviderError> {
        let inactive = if include_inactive { "true" } else { "false" };
        let result = self
            .pm(site, ops::GET_PROJECTS, true, &|w: &mut XmlOut| {
                w.leaf("customerID", "0")
                    .leaf("projectManagerID", "0")
                    .leaf("includeInactiveProjects", inactive)
                    .leaf("statusID", "-1");
            })
            .await?;
        Ok(wire::returned(&result)
            .into_iter()
            .filter_map(wire::project_header)
            .collect())
    }

    /// A task by GUID (`GetTaskById`): the `Task` element, `None` when TimeLog has none.
    async fn task_node(&self, site: &Site, guid: &str) -> Result<Option<Node>, ProviderError> {
        let g = guid.to_owned();
        let answer = self
            .pm_answer(site, ops::GET_TASK_BY_ID, true, &|w: &mut XmlOut| {
                w.leaf("taskGuid", &g);
            })
            .await?;
        match answer {
            Answer::Success(result) => Ok(wire::returned(&result).into_iter().next().cloned()),
            Answer::Refused { messages, .. } if is_not_found_message(&messages) => Ok(None),
            Answer::Refused { state, messages } => {
                Err(answer_refused("GetTaskById", &state, &messages))
            }
        }
    }

    fn remember_task(&self, site: &Site, guid: &str, task_id: i64) {
        self.caches()
            .tasks
            .entry(site.key())
            .or_default()
            .insert(wire::guid(guid), task_id);
    }

    /// The int TaskID of task `guid` (cached; `GetTaskById` on a miss).
    async fn task_int_id(&self, site: &Site, guid: &str) -> Result<i64, ProviderError> {
        let guid = parse_guid("task", guid)?;
        if let Some(id) = self
            .caches()
            .tasks
            .get(&site.key())
            .and_then(|m| m.get(&guid))
        {
            return Ok(*id);
        }
        let node = self.task_node(site, &guid).await?.ok_or_else(|| {
            err(
                ProviderErrorKind::NotFound,
                format!("TimeLog has no task {guid}"),
            )
        })?;
        let task = wire::task(&node).ok_or_else(|| {
            err(
                ProviderErrorKind::InvalidResponse,
                "TimeLog answered a task without its ids",
            )
        })?;
        self.remember_task(site, &guid, task.task_id);
        Ok(task.task_id)
    }

    /// Sends `unit` with `op` (`InsertWork` or `UpdateWork`) as from this integration.
    async fn write_work(
        &self,
        site: &Site,
        op: PmOp,
        safe: bool,
        unit: &wire::WorkUnitOut,
    ) -> Result<Node, ProviderError> {
        self.pm(site, op, safe, &|w: &mut XmlOut| {
            wire::write_work_units(w, std::slice::from_ref(unit));
            w.leaf("source", &WORK_SOURCE.to_string());
        })
        .await
    }

    /// The work unit to write for `time`.
    async fn work_unit(
        &self,
        site: &Site,
        guid: String,
        time: &OutboundTime,
    ) -> Result<wire::WorkUnitOut, ProviderError> {
        let task_guid = time
            .remote_task_id
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                err(
                    ProviderErrorKind::Rejected,
                    "TimeLog registers time on tasks: this log's task is not in TimeLog",
                )
            })?;
        let person = time.remote_person_id.trim();
        if person.is_empty() {
            return Err(err(
                ProviderErrorKind::Rejected,
                "TimeLog registers time for a user: this person is not linked to a TimeLog user",
            ));
        }
        let employee = self.employee_by_id(site, person).await?.ok_or_else(|| {
            err(
                ProviderErrorKind::Rejected,
                format!("TimeLog has no user {person}; link the person again"),
            )
        })?;
        let task_id = self.task_int_id(site, task_guid).await?;
        let initials = if employee.initials.is_empty() {
            employee.username.clone().unwrap_or_default()
        } else {
            employee.initials.clone()
        };
        Ok(wire::WorkUnitOut {
            guid,
            task_id,
            initials,
            minutes: time.minutes,
            start: time.date.and_hms_opt(8, 0, 0).unwrap_or_default(),
            description: time.note.clone(),
        })
    }

    /// Notes of the work units of project `project_id` registered from `from` to `to`
    /// (Reporting `GetWorkUnitsRaw`), by GUID.
    async fn notes(
        &self,
        site: &Site,
        project_id: i64,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<HashMap<String, String>, ProviderError> {
        let rows = self
            .work_units_raw(site, 0, 0, project_id, from, to)
            .await?;
        Ok(rows.into_iter().map(|r| (r.guid, r.note)).collect())
    }

    async fn work_units_raw(
        &self,
        site: &Site,
        employee_id: i64,
        task_id: i64,
        project_id: i64,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<wire::ReportedWorkUnit>, ProviderError> {
        let result = self
            .reporting(
                site,
                "GetWorkUnitsRaw",
                &[
                    ("workUnitID", "0".into()),
                    ("employeeID", employee_id.to_string()),
                    ("allocationID", "0".into()),
                    ("taskID", task_id.to_string()),
                    ("projectID", project_id.to_string()),
                    ("departmentID", "0".into()),
                    ("startDate", from.format("%Y-%m-%d").to_string()),
                    ("endDate", to.format("%Y-%m-%d").to_string()),
                ],
            )
            .await?;
        Ok(wire::reporting_rows(&result, "WorkUnits", "WorkUnit")
            .into_iter()
            .filter_map(wire::reported_work_unit)
            .collect())
    }

    fn account_info(site: &Site, token: &Token) -> AccountInfo {
        AccountInfo {
            account_id: format!("{}/{}", site.domain, site.account),
            account_name: site.account.clone(),
            other_accounts: Vec::new(),
            identity: Some((token.initials.clone(), site.username.clone())),
        }
    }
}

#[async_trait]
impl Provider for TimeLog {
    fn descriptor(&self) -> &ProviderDescriptor {
        &self.descriptor
    }

    async fn check_credentials(
        &self,
        session: &ProviderSession,
    ) -> Result<AccountInfo, ProviderError> {
        let site = self.site(session)?;
        let token = self.fetch_token(&site).await?;
        self.remember_token(&site, &token);
        Ok(Self::account_info(&site, &token))
    }

    /// Checks the fields in order, blaming the ones at fault: the domain's syntax
    /// (`unreachable_domain` on `domain`), the Transactional login (`invalid_credentials` on
    /// `username`/`password`; no such host, a refused connection, a timeout, a 404 or an answer
    /// that is not SOAP are `unreachable_domain` on `domain`/`account_name`), then the Reporting
    /// credentials (`ValidateCredentials` false or HTTP 401: `invalid_credentials` on
    /// `site_code`/`reporting_username`/`reporting_password`).
    async fn validate_credentials(
        &self,
        session: &ProviderSession,
    ) -> Result<AccountInfo, CredentialCheckError> {
        let owned = |f: &[&str]| f.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let site = match Site::from_session(session, self.allow_http) {
            Ok(site) => site,
            Err(SiteError::BadDomain) => {
                return Err(CredentialCheckError::UnreachableDomain {
                    fields: owned(&[fields::DOMAIN]),
                    message: "Enter the TimeLog domain as a host name such as app5.timelog.com \
                              (no https://, path or port)"
                        .into(),
                });
            }
            Err(SiteError::BadAccount) => {
                return Err(CredentialCheckError::UnreachableDomain {
                    fields: owned(&[fields::ACCOUNT_NAME]),
                    message: "Enter the TimeLog account name as it appears in the site address \
                              (https://app5.timelog.com/<account name>)"
                        .into(),
                });
            }
            Err(SiteError::Missing(missing)) => {
                return Err(CredentialCheckError::Invalid {
                    message: format!("Fill in {}", missing.join(", ")),
                    fields: missing.into_iter().map(str::to_owned).collect(),
                });
            }
        };
        let token = match self.fetch_token(&site).await {
            Ok(t) => t,
            Err(e) => {
                use ProviderErrorKind as K;
                return Err(match e.kind {
                    K::ReauthRequired => CredentialCheckError::Invalid {
                        fields: owned(&[fields::USERNAME, fields::PASSWORD]),
                        message: "TimeLog rejected the username or password".into(),
                    },
                    K::NotFound
                    | K::Transient
                    | K::InvalidResponse
                    | K::Rejected
                    | K::Forbidden
                    | K::OutcomeUnknown => {
                        tracing::info!(
                            provider = ID,
                            detail = e.detail.as_deref().unwrap_or(""),
                            "TimeLog site not reached"
                        );
                        CredentialCheckError::UnreachableDomain {
                            fields: owned(&[fields::DOMAIN, fields::ACCOUNT_NAME]),
                            message: format!(
                                "No TimeLog site answered at {}; check the domain and account \
                                 name",
                                site.base
                            ),
                        }
                    }
                    K::RateLimited => CredentialCheckError::Unreachable {
                        message: "TimeLog is limiting our requests; try again shortly".into(),
                    },
                    _ => CredentialCheckError::Other(e),
                });
            }
        };
        let reporting_fields = owned(&[
            fields::SITE_CODE,
            fields::REPORTING_USERNAME,
            fields::REPORTING_PASSWORD,
        ]);
        let reporting_refused = || CredentialCheckError::Invalid {
            fields: reporting_fields.clone(),
            message: "TimeLog's Reporting API rejected the site code, API ID or API password"
                .into(),
        };
        match self.reporting(&site, "ValidateCredentials", &[]).await {
            Ok(result) if result.text.trim().eq_ignore_ascii_case("true") => {}
            Ok(_) => return Err(reporting_refused()),
            Err(e) if e.kind == ProviderErrorKind::ReauthRequired => {
                return Err(reporting_refused());
            }
            Err(e)
                if matches!(
                    e.kind,
                    ProviderErrorKind::Transient | ProviderErrorKind::RateLimited
                ) =>
            {
                return Err(CredentialCheckError::Unreachable {
                    message: "TimeLog's Reporting API could not be reached; try again shortly"
                        .into(),
                });
            }
            Err(e) => return Err(CredentialCheckError::Other(e)),
        }
        self.remember_token(&site, &token);
        Ok(Self::account_info(&site, &token))
    }

    fn time_sink(&self) -> Option<&dyn TimeSink> {
        Some(self)
    }

    fn time_changes(&self) -> Option<&dyn TimeChangeFeed> {
        Some(self)
    }

    fn task_sink(&self) -> Option<&dyn TaskSink> {
        Some(self)
    }

    fn directory(&self) -> Option<&dyn Directory> {
        Some(self)
    }
}

#[async_trait]
impl TimeSink for TimeLog {
    async fn create(
        &self,
        session: &ProviderSession,
        time: &OutboundTime,
        idempotency_key: &str,
    ) -> Result<String, ProviderError> {
        let site = self.site(session)?;
        let guid = work_unit_guid(idempotency_key);
        let unit = self.work_unit(&site, guid.clone(), time).await?;
        // Not safe to resend blindly: whether TimeLog refuses a second InsertWork with the same
        // GUID is UNCONFIRMED, so an unknown outcome goes to the engine, which calls `find`.
        let result = self
            .write_work(&site, ops::INSERT_WORK, false, &unit)
            .await?;
        let items = check_batch(&result)?;
        if items.is_empty() {
            return Err(err(
                ProviderErrorKind::InvalidResponse,
                "TimeLog did not confirm the registration",
            )
            .with_detail("InsertWork answered Success with no items"));
        }
        Ok(guid)
    }

    fn create_batch_limit(&self) -> usize {
        INSERT_WORK_BATCH
    }

    /// One InsertWork with a work unit per item (GUIDs from the keys, as [`TimeSink::create`]
    /// makes them). An item whose unit cannot be built (task not in TimeLog, user not linked)
    /// is refused alone and not sent. Every item's `Status` is read, by position (TimeLog
    /// answers one container per unit, in order; UNCONFIRMED): `Success` is the GUID, anything
    /// else the typed refusal `create` returns (`registration_locked`, `timelog_refused`). A
    /// whole-request failure (timeout, 5xx: never resent), a refused answer, or one whose
    /// items do not line up with the units (wrong count, another GUID) is the outer error.
    async fn create_many(
        &self,
        session: &ProviderSession,
        items: &[(OutboundTime, String)],
    ) -> Result<Vec<Result<String, ProviderError>>, ProviderError> {
        let site = self.site(session)?;
        let mut results: Vec<Option<Result<String, ProviderError>>> =
            (0..items.len()).map(|_| None).collect();
        let mut units = Vec::new();
        let mut slots = Vec::new();
        for (i, (time, key)) in items.iter().enumerate() {
            match self.work_unit(&site, work_unit_guid(key), time).await {
                Ok(u) => {
                    units.push(u);
                    slots.push(i);
                }
                Err(e) if e.concerns_item_only() => results[i] = Some(Err(e)),
                Err(e) => return Err(e),
            }
        }
        if !units.is_empty() {
            // Not safe to resend blindly, as for `create`.
            let units = &units;
            let result = self
                .pm(&site, ops::INSERT_WORK, false, &|w: &mut XmlOut| {
                    wire::write_work_units(w, units);
                    w.leaf("source", &WORK_SOURCE.to_string());
                })
                .await?;
            let answered = wire::batch_items(&result);
            if answered.len() != units.len() {
                return Err(err(
                    ProviderErrorKind::InvalidResponse,
                    "TimeLog did not answer for every registration",
                )
                .with_detail(format!(
                    "InsertWork answered {} items for {} work units",
                    answered.len(),
                    units.len()
                )));
            }
            for ((item, unit), slot) in answered.iter().zip(units).zip(&slots) {
                let returned = item.item.and_then(|n| n.text_of("GUID")).map(wire::guid);
                if let Some(g) = returned.filter(|g| *g != unit.guid) {
                    return Err(err(
                        ProviderErrorKind::InvalidResponse,
                        "TimeLog answered a batch out of order",
                    )
                    .with_detail(format!("InsertWork item for {} carried {g}", unit.guid)));
                }
                results[*slot] = Some(if item.ok() {
                    Ok(unit.guid.clone())
                } else {
                    Err(item_refused(&item.message))
                });
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(err(
                        ProviderErrorKind::InvalidResponse,
                        "TimeLog did not answer for a registration",
                    ))
                })
            })
            .collect())
    }

    async fn update(
        &self,
        session: &ProviderSession,
        remote_id: &str,
        time: &OutboundTime,
    ) -> Result<(), ProviderError> {
        let site = self.site(session)?;
        let guid = parse_guid("registration", remote_id)?;
        let unit = self.work_unit(&site, guid, time).await?;
        let result = self
            .write_work(&site, ops::UPDATE_WORK, true, &unit)
            .await?;
        check_batch(&result)?;
        Ok(())
    }

    async fn delete(
        &self,
        session: &ProviderSession,
        remote_id: &str,
    ) -> Result<(), ProviderError> {
        let site = self.site(session)?;
        let guid = parse_guid("registration", remote_id)?;
        let answer = self
            .pm_answer(&site, ops::DELETE_WORK, true, &|w: &mut XmlOut| {
                wire::write_guid_array(w, &[&guid]);
                w.leaf("source", &WORK_SOURCE.to_string());
            })
            .await?;
        match answer {
            Answer::Success(result) => {
                for item in wire::batch_items(&result) {
                    // A registration that is already gone is what we wanted.
                    if !item.ok() && !is_not_found_message(&item.message) {
                        return Err(item_refused(&item.message));
                    }
                }
                Ok(())
            }
            Answer::Refused { messages, .. } if is_not_found_message(&messages) => Ok(()),
            Answer::Refused { state, messages } => {
                Err(answer_refused("DeleteWork", &state, &messages))
            }
        }
    }

    fn created_id(&self, idempotency_key: &str) -> Option<String> {
        Some(work_unit_guid(idempotency_key))
    }

    async fn find(
        &self,
        session: &ProviderSession,
        time: &OutboundTime,
        idempotency_key: &str,
    ) -> Result<Option<String>, ProviderError> {
        let site = self.site(session)?;
        let guid = work_unit_guid(idempotency_key);
        let Some(task_guid) = time
            .remote_task_id
            .as_deref()
            .filter(|t| !t.trim().is_empty())
        else {
            return Ok(None);
        };
        let task_id = match self.task_int_id(&site, task_guid).await {
            Ok(id) => id,
            Err(e) if e.kind == ProviderErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let person = time.remote_person_id.trim();
        let employee_id = if person.is_empty() {
            0
        } else {
            match self.employee_by_id(&site, person).await? {
                Some(e) => e.id,
                None => return Ok(None),
            }
        };
        let rows = self
            .work_units_raw(&site, employee_id, task_id, 0, time.date, time.date)
            .await?;
        Ok(rows.into_iter().any(|r| r.guid == guid).then_some(guid))
    }
}

/// What a change row becomes before ids are resolved.
enum Row {
    Upsert(wire::WorkUnitFlat),
    Delete(wire::WorkUnitFlat),
}

#[async_trait]
impl TimeChangeFeed for TimeLog {
    async fn changes(
        &self,
        session: &ProviderSession,
        window: ChangeWindow,
        page: Option<String>,
    ) -> Result<RemotePage<TimeChange>, ProviderError> {
        let site = self.site(session)?;
        let page_no: u32 = match page.as_deref() {
            None => 1,
            Some(p) => p.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                err(
                    ProviderErrorKind::Rejected,
                    format!("{p:?} is not a TimeLog page token"),
                )
            })?,
        };
        let since = wire::format_instant(window.since);
        let until = wire::format_instant(window.until);
        let page_size = self.changes_page_size;
        let result = self
            .pm(
                &site,
                ops::GET_WORK_CHANGES_PAGED,
                true,
                &|w: &mut XmlOut| {
                    w.leaf("initials", "")
                        .leaf("registrationStartDate", REGISTRATIONS_FROM)
                        .leaf("registrationEndDate", REGISTRATIONS_TO)
                        .leaf("changeStartDate", &since)
                        .leaf("changeEndDate", &until)
                        .leaf("page", &page_no.to_string())
                        .leaf("pageSize", &page_size.to_string());
                },
            )
            .await?;
        let raw = wire::returned(&result);
        let next = (raw.len() >= page_size as usize).then(|| (page_no + 1).to_string());
        let mut rows = Vec::new();
        for n in raw {
            let Some(row) = wire::work_unit_flat(n) else {
                tracing::warn!(provider = ID, "change row without a WorkUnitGuid skipped");
                continue;
            };
            match row.action.to_ascii_lowercase().as_str() {
                "deleted" | "delete" => rows.push(Row::Delete(row)),
                // A create or update of a unit deleted later carries only its GUID; the
                // delete row follows.
                "created" | "create" | "updated" | "update" => {
                    if row.project_guid.is_some() {
                        rows.push(Row::Upsert(row));
                    }
                }
                other => {
                    tracing::warn!(provider = ID, action = other, "unknown change action");
                    if row.project_guid.is_some() {
                        rows.push(Row::Upsert(row));
                    }
                }
            }
        }
        // Resolve project GUIDs and initials, reading the caches again once on a miss.
        let upserts: Vec<&wire::WorkUnitFlat> = rows
            .iter()
            .filter_map(|r| match r {
                Row::Upsert(u) => Some(u),
                Row::Delete(_) => None,
            })
            .collect();
        let mut projects = BTreeMap::new();
        let mut employees: Arc<Vec<Employee>> = Arc::new(Vec::new());
        if !upserts.is_empty() {
            let mut list = self.all_projects(&site, false).await?;
            let known = |l: &[ProjectHeader], g: &str| l.iter().any(|p| p.guid == g);
            if upserts
                .iter()
                .any(|u| u.project_guid.as_deref().is_some_and(|g| !known(&list, g)))
            {
                list = self.all_projects(&site, true).await?;
            }
            for p in list.iter() {
                projects.insert(p.guid.clone(), p.id);
            }
            employees = self.employees(&site, false).await?;
            let find = |l: &[Employee], u: &wire::WorkUnitFlat| find_employee(l, u).is_some();
            if upserts.iter().any(|u| !find(&employees, u)) {
                employees = self.employees(&site, true).await?;
            }
        }
        let mut items = Vec::new();
        let mut skipped = BTreeSet::new();
        for row in rows {
            match row {
                Row::Delete(d) => items.push(TimeChange::Deleted {
                    id: d.work_unit_guid,
                    at: d.action_date,
                }),
                Row::Upsert(u) => {
                    let project = u.project_guid.as_deref().and_then(|g| projects.get(g));
                    let employee = find_employee(&employees, &u);
                    let (Some(project), Some(employee), Some(date)) = (project, employee, u.date)
                    else {
                        skipped.insert(u.work_unit_guid.clone());
                        continue;
                    };
                    let minutes = (u.hours * 60.0).round();
                    items.push(TimeChange::Upserted(RemoteWorkLog {
                        // Change rows carry no description: `complete` reads it for the rows
                        // the engine applies.
                        note: String::new(),
                        id: u.work_unit_guid,
                        project_id: project.to_string(),
                        person: RemotePerson {
                            id: employee.id.to_string(),
                            name: employee.full_name.clone(),
                            email: employee.email.clone(),
                        },
                        date,
                        minutes: if minutes > 0.0 { minutes as u32 } else { 0 },
                        running: false,
                        updated_at: u.action_date,
                        deleted: false,
                        task_id: u.task_guid,
                    }));
                }
            }
        }
        if !skipped.is_empty() {
            tracing::warn!(
                provider = ID,
                count = skipped.len(),
                "change rows whose project, employee or day is unknown were skipped"
            );
        }
        Ok(RemotePage { items, next })
    }

    /// Reads the notes of `logs` (WorkUnitFlat has none): one Reporting `GetWorkUnitsRaw` per
    /// project over the days of its rows, matched by `WorkUnitGuid` (case-insensitive). A unit
    /// deleted since keeps an empty note; its delete row follows.
    async fn complete(
        &self,
        session: &ProviderSession,
        logs: &mut [RemoteWorkLog],
    ) -> Result<(), ProviderError> {
        if logs.is_empty() {
            return Ok(());
        }
        let site = self.site(session)?;
        let mut spans: BTreeMap<i64, (NaiveDate, NaiveDate)> = BTreeMap::new();
        for l in logs.iter() {
            let Ok(pid) = l.project_id.parse::<i64>() else {
                continue;
            };
            let span = spans.entry(pid).or_insert((l.date, l.date));
            span.0 = span.0.min(l.date);
            span.1 = span.1.max(l.date);
        }
        let mut notes: HashMap<String, String> = HashMap::new();
        for (pid, (from, to)) in spans {
            for (guid, note) in self.notes(&site, pid, from, to).await? {
                notes.insert(guid.to_ascii_lowercase(), note);
            }
        }
        for l in logs.iter_mut() {
            if let Some(n) = notes.get(&l.id.to_ascii_lowercase()) {
                l.note = n.clone();
            }
        }
        Ok(())
    }
}

/// The employee of a change row: by initials (case-insensitive), else by user id.
fn find_employee<'a>(list: &'a [Employee], row: &wire::WorkUnitFlat) -> Option<&'a Employee> {
    let by_initials = row.employee_initials.as_deref().and_then(|i| {
        list.iter()
            .find(|e| !e.initials.is_empty() && e.initials.eq_ignore_ascii_case(i))
    });
    by_initials.or_else(|| {
        (row.user_id != 0)
            .then(|| list.iter().find(|e| e.user_id == row.user_id))
            .flatten()
    })
}

#[async_trait]
impl TaskSink for TimeLog {
    async fn create_task(
        &self,
        session: &ProviderSession,
        task: &OutboundTask,
        external_key: &str,
    ) -> Result<String, ProviderError> {
        let site = self.site(session)?;
        let project_id = parse_int("project", &task.remote_project_id)?;
        let t = wire::TaskOut {
            guid: uuid::Uuid::new_v4().to_string(),
            name: task.name.clone(),
            active: task.active,
            external_key: external_key.to_owned(),
            system_name: SYSTEM_NAME.to_owned(),
        };
        let result = self
            .pm(&site, ops::CREATE_TASK, false, &|w: &mut XmlOut| {
                wire::write_new_task(w, &t);
                w.leaf("projectID", &project_id.to_string());
            })
            .await?;
        let items = check_batch(&result)?;
        let created = items.iter().filter_map(|i| i.item).find_map(wire::task);
        match created {
            Some(c) => {
                self.remember_task(&site, &c.guid, c.task_id);
                Ok(c.guid)
            }
            // Without the item we still know the GUID we chose; the int id is read on use.
            None if !items.is_empty() => Ok(t.guid),
            None => Err(err(
                ProviderErrorKind::InvalidResponse,
                "TimeLog did not confirm the task",
            )
            .with_detail("CreateTask answered Success with no items")),
        }
    }

    async fn find_task(
        &self,
        session: &ProviderSession,
        remote_project_id: &str,
        external_key: &str,
    ) -> Result<Option<String>, ProviderError> {
        let site = self.site(session)?;
        let key = external_key.to_owned();
        let answer = self
            .pm_answer(
                &site,
                ops::GET_TASK_BY_EXTERNAL_KEY,
                true,
                &|w: &mut XmlOut| {
                    w.leaf("key", &key).leaf("systemName", SYSTEM_NAME);
                },
            )
            .await?;
        let result = match answer {
            Answer::Success(r) => r,
            Answer::Refused { messages, .. } if is_not_found_message(&messages) => return Ok(None),
            Answer::Refused { state, messages } => {
                return Err(answer_refused("GetTaskByExternalKey", &state, &messages));
            }
        };
        let Some(found) = wire::returned(&result).into_iter().find_map(wire::task) else {
            return Ok(None);
        };
        if let (Some(p), Ok(want)) = (found.project_id, remote_project_id.trim().parse::<i64>())
            && p != want
        {
            tracing::warn!(provider = ID, "task found by key is on another project");
        }
        self.remember_task(&site, &found.guid, found.task_id);
        Ok(Some(found.guid))
    }

    async fn update_task(
        &self,
        session: &ProviderSession,
        remote_task_id: &str,
        task: &OutboundTask,
    ) -> Result<(), ProviderError> {
        let site = self.site(session)?;
        let guid = parse_guid("task", remote_task_id)?;
        let mut node = self.task_node(&site, &guid).await?.ok_or_else(|| {
            err(
                ProviderErrorKind::NotFound,
                format!("TimeLog has no task {guid}"),
            )
        })?;
        let current = wire::task(&node).ok_or_else(|| {
            err(
                ProviderErrorKind::InvalidResponse,
                "TimeLog answered a task without its ids",
            )
        })?;
        self.remember_task(&site, &guid, current.task_id);
        if current.name != task.name {
            let name = node.child_mut("Name").ok_or_else(|| {
                err(
                    ProviderErrorKind::InvalidResponse,
                    "TimeLog answered a task without a name",
                )
            })?;
            name.text = task.name.clone();
            name.attrs
                .retain(|a| !(a.ns == xml::XSI && a.name == "nil"));
            let project_id = match task.remote_project_id.trim().parse::<i64>() {
                Ok(id) => id,
                Err(_) => current.project_id.ok_or_else(|| {
                    err(
                        ProviderErrorKind::Rejected,
                        format!("{:?} is not a TimeLog project id", task.remote_project_id),
                    )
                })?,
            };
            let node = &node;
            let result = self
                .pm(&site, ops::UPDATE_TASK, true, &|w: &mut XmlOut| {
                    node.write_as(w, "task", wire::PM_NS);
                    w.leaf("projectID", &project_id.to_string());
                })
                .await?;
            check_batch(&result)?;
        }
        if current.active != task.active {
            let target = if task.active {
                TASK_STATUS_ACTIVE
            } else {
                TASK_STATUS_INACTIVE
            };
            self.pm(&site, ops::CHANGE_TASK_STATUS, true, &|w: &mut XmlOut| {
                w.leaf("taskGuid", &guid)
                    .leaf("targetStatus", &target.to_string());
            })
            .await?;
        }
        Ok(())
    }

    async fn allocate(
        &self,
        session: &ProviderSession,
        remote_task_id: &str,
        remote_person_id: &str,
    ) -> Result<(), ProviderError> {
        let site = self.site(session)?;
        let employee = self
            .employee_by_id(&site, remote_person_id)
            .await?
            .ok_or_else(|| {
                err(
                    ProviderErrorKind::Rejected,
                    format!("TimeLog has no user {remote_person_id}; link the person again"),
                )
            })?;
        let task_id = self.task_int_id(&site, remote_task_id).await?;
        let initials = employee.initials.clone();
        let allocations = self
            .pm(
                &site,
                ops::GET_ALLOCATIONS_TO_EMPLOYEE,
                true,
                &|w: &mut XmlOut| {
                    w.leaf("initials", &initials);
                },
            )
            .await?;
        if wire::returned(&allocations)
            .into_iter()
            .any(|a| wire::allocation_task_id(a) == Some(task_id))
        {
            return Ok(());
        }
        let employee_id = employee.id;
        let result = self
            .pm(
                &site,
                ops::ADD_EMPLOYEE_TO_TASK,
                false,
                &|w: &mut XmlOut| {
                    w.leaf("employeeID", &employee_id.to_string())
                        .leaf("taskID", &task_id.to_string())
                        .leaf("BudgetHours", "0");
                },
            )
            .await?;
        check_batch(&result)?;
        Ok(())
    }
}

#[async_trait]
impl Directory for TimeLog {
    async fn list_projects(
        &self,
        session: &ProviderSession,
        query: Option<&str>,
        _page: Option<String>,
    ) -> Result<RemotePage<RemoteProject>, ProviderError> {
        let site = self.site(session)?;
        let query = query
            .map(|q| q.trim().to_lowercase())
            .filter(|q| !q.is_empty());
        let projects = self.get_projects(&site, false).await?;
        let items = projects
            .into_iter()
            .filter(|p| {
                query.as_deref().is_none_or(|q| {
                    p.name.to_lowercase().contains(q)
                        || p.no
                            .as_deref()
                            .is_some_and(|n| n.to_lowercase().contains(q))
                })
            })
            .map(|p| RemoteProject {
                id: p.id.to_string(),
                name: p.name,
                customer_name: None,
                archived: !p.active,
                parent_id: None,
            })
            .collect();
        Ok(RemotePage { items, next: None })
    }

    async fn list_users(
        &self,
        session: &ProviderSession,
        _page: Option<String>,
    ) -> Result<RemotePage<RemoteUser>, ProviderError> {
        let site = self.site(session)?;
        let employees = self.employees(&site, true).await?;
        let items = employees
            .iter()
            .map(|e| RemoteUser {
                id: e.id.to_string(),
                initials: (!e.initials.is_empty()).then(|| e.initials.clone()),
                name: e.full_name.clone(),
                email: e.email.clone(),
                active: e.active,
            })
            .collect();
        Ok(RemotePage { items, next: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(domain: &str) -> ProviderSession {
        let mut secrets = BTreeMap::new();
        secrets.insert("password".into(), SecretValue::new("pw"));
        secrets.insert("reporting_password".into(), SecretValue::new("rpw"));
        ProviderSession {
            workspace_id: "w".into(),
            secrets,
            settings: serde_json::json!({
                "domain": domain, "account_name": "nordlys", "username": "sync",
                "site_code": "S", "reporting_username": "api",
            }),
        }
    }

    #[test]
    fn domains_must_be_bare_host_names() {
        for ok in ["app5.timelog.com", "APP5.timelog.com"] {
            let s = Site::from_session(&session(ok), false).unwrap();
            assert_eq!(s.base, "https://app5.timelog.com/nordlys/");
        }
        for bad in [
            "https://app5.timelog.com",
            "app5.timelog.com/nordlys",
            "app5.timelog.com:443",
            "app5 .timelog.com",
            "timelog",
            "",
            "127.0.0.1:8080",
        ] {
            assert_eq!(
                Site::from_session(&session(bad), false).err(),
                Some(SiteError::BadDomain),
                "{bad}"
            );
        }
        let local = Site::from_session(&session("127.0.0.1:8080"), true).unwrap();
        assert_eq!(local.base, "http://127.0.0.1:8080/nordlys/");
    }

    #[test]
    fn work_unit_guids_are_deterministic_rfc_guids() {
        let a = work_unit_guid("host-log-1");
        assert_eq!(a, work_unit_guid("host-log-1"));
        assert_ne!(a, work_unit_guid("host-log-2"));
        let u = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(u.get_version_num(), 8);
        assert_eq!(a, a.to_lowercase());
    }

    #[test]
    fn refused_items_are_typed() {
        let e =
            item_refused("Registration could not be saved: the week is closed for the employee");
        assert_eq!(e.kind, ProviderErrorKind::Fault);
        assert_eq!(e.code, Some(codes::REGISTRATION_LOCKED));
        assert!(e.message.contains("week is closed"));
        let e = item_refused("Task is not open for registrations");
        assert_eq!(e.code, Some(codes::REFUSED));
    }

    #[test]
    fn the_descriptor_is_paced_and_declares_two_way_time() {
        let t = TimeLog::from_env(&ProviderEnv::for_tests(&[])).unwrap();
        assert_eq!(
            t.descriptor().rate_limit.unwrap().per,
            Duration::from_millis(200)
        );
        let t =
            TimeLog::from_env(&ProviderEnv::for_tests(&[(REQUESTS_PER_SECOND_VAR, "2")])).unwrap();
        assert_eq!(
            t.descriptor().rate_limit.unwrap().per,
            Duration::from_millis(500)
        );
        assert!(
            TimeLog::from_env(&ProviderEnv::for_tests(&[(REQUESTS_PER_SECOND_VAR, "0")])).is_err()
        );
        assert!(hourbridge_provider_api::check_provider(&t).is_ok());
        let names: Vec<_> = t
            .descriptor()
            .auth
            .connect_fields()
            .iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(
            names,
            [
                "domain",
                "account_name",
                "username",
                "password",
                "site_code",
                "reporting_username",
                "reporting_password"
            ]
        );
    }
}

//! The Hubstaff adapter: pulls tracked time, projects and members from the Hubstaff v2 API.
//!
//! Hubstaff has no list of time entries. Tracked time is read from **daily activities**, one
//! aggregate row per user × project × task × organisation-local date; each row becomes one
//! [`RemoteWorkLog`] whose id is derived from that key, so re-reading a day replaces the same
//! work log instead of adding one. Daily activities may be asked for at most 31 days at a
//! time, so a longer [`DateWindow`] is walked in consecutive chunks, and the page token
//! records the chunk as well as Hubstaff's `page_start_id`.
//!
//! Session conventions, filled in by the sync engine:
//! - `secrets["access_token"]`: the OAuth bearer token;
//! - `settings["account_id"]`: the chosen organisation (the engine stores every provider's chosen account under `account_id`) (string or number);
//! - `settings["client_id"]`: the customer's OAuth client id. Hubstaff counts its
//!   1000 requests/hour per application, so every connection made with the same client shares
//!   one budget, keyed `hubstaff:app:{client_id}`.

mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{Days, NaiveDate};
use hourbridge_domain::{Role, SecretValue};
use hourbridge_provider_api::{
    AccountInfo, AuthKind, Capabilities, ClientAuth, DateWindow, OAuth2Spec, OAuthClient, Provider,
    ProviderDescriptor, ProviderError, ProviderErrorKind, ProviderSession, RateBudget, RateLimit,
    RateLimitScope, RemotePage, RemotePerson, RemoteProject, RemoteWorkLog, Schedule,
    WorkLogSource, WorkLogsIn,
};
use hourbridge_provider_http::{Call, ProviderEnv, ProviderHttp};
use serde::de::DeserializeOwned;

use crate::wire::{
    DailyActivities, Members, Organizations, Projects, User, WorkLogCursor, next_start,
};

/// Provider id.
pub const ID: &str = "hubstaff";
/// Overrides the API base (default `https://api.hubstaff.com/v2`), e.g. for a sandbox.
pub const API_URL_VAR: &str = "HOURBRIDGE_HUBSTAFF_API_URL";
/// Overrides the OAuth host (default `https://account.hubstaff.com`).
pub const ACCOUNT_URL_VAR: &str = "HOURBRIDGE_HUBSTAFF_ACCOUNT_URL";
/// Every configuration variable the adapter reads.
pub const ENV_VARS: &[&str] = &[API_URL_VAR, ACCOUNT_URL_VAR];

/// The variables of [`ENV_VARS`] that hold secrets (none).
pub const SECRET_ENV_VARS: &[&str] = &[];

const DEFAULT_API_URL: &str = "https://api.hubstaff.com/v2";
const DEFAULT_ACCOUNT_URL: &str = "https://account.hubstaff.com";

/// Largest page Hubstaff is known to serve; fewer pages matter more than anything else under a
/// budget of 1000 requests an hour.
const PAGE_LIMIT: u32 = 500;

/// Daily activities refuse longer `date[start]`..`date[stop]` ranges (both inclusive).
const MAX_WINDOW_DAYS: u32 = 31;

const RATE_LIMIT: RateLimit = RateLimit {
    scope: RateLimitScope::Application,
    requests: 1000,
    per: Duration::from_secs(60 * 60),
};

static DESCRIPTOR: ProviderDescriptor = ProviderDescriptor {
    id: ID,
    display_name: "Hubstaff",
    auth: AuthKind::OAuth2(OAuth2Spec {
        authorize_url: "https://account.hubstaff.com/authorizations/new",
        token_url: "https://account.hubstaff.com/access_tokens",
        scopes: &["openid", "profile", "email", "hubstaff:read"],
        scope_separator: " ",
        pkce: false,
        client: OAuthClient::CustomerSupplied,
        client_auth: ClientAuth::BasicHeader,
        extra_authorize_params: &[],
        refresh_token_rotates: true,
        settings: &[],
    }),
    install_role: Role::Admin,
    requires_add_on: false,
    rate_limit: Some(RATE_LIMIT),
    schedule: Schedule::Every(Duration::from_secs(24 * 60 * 60)),
    capabilities: Capabilities {
        work_logs_in: Some(WorkLogsIn {
            deletion_feed: false,
            max_window_days: Some(MAX_WINDOW_DAYS),
        }),
        time_out: false,
        time_two_way: None,
        time_out_rules: hourbridge_provider_api::TimeOutRules {
            requires_person_link: false,
            requires_task: false,
        },
        master_data_in: None,
        tasks_out: false,
        project_links: Some(hourbridge_provider_api::ProjectLinks {
            max_remote_projects: 50,
            requires_sync_from: true,
        }),
        person_links: false,
        webhooks: None,
    },
};

/// The Hubstaff provider adapter.
#[derive(Clone)]
pub struct Hubstaff {
    http: ProviderHttp,
    budget: Arc<dyn RateBudget>,
    api_url: String,
    account_url: String,
}

impl std::fmt::Debug for Hubstaff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hubstaff")
            .field("api_url", &self.api_url)
            .field("account_url", &self.account_url)
            .finish_non_exhaustive()
    }
}

impl Hubstaff {
    /// Builds the adapter from configuration: [`API_URL_VAR`] and [`ACCOUNT_URL_VAR`] override
    /// the production hosts, and every request is counted against `env.budget`.
    pub fn from_env(env: &ProviderEnv) -> Result<Self, ProviderError> {
        Ok(Self {
            http: ProviderHttp::new(ID, env.http.clone())?,
            budget: env.budget.clone(),
            api_url: env.url(API_URL_VAR, DEFAULT_API_URL),
            account_url: env.url(ACCOUNT_URL_VAR, DEFAULT_ACCOUNT_URL),
        })
    }

    /// One GET against the API, authenticated and counted against the application's budget.
    async fn get<T: DeserializeOwned>(
        &self,
        session: &ProviderSession,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ProviderError> {
        let token = access_token(session)?;
        let key = format!("{ID}:app:{}", client_id(session)?);
        let mut call = Call::get(format!("{}{path}", self.api_url))
            .bearer(token)
            .budget(self.budget.as_ref(), key, RATE_LIMIT);
        for (name, value) in query {
            call = call.query(*name, value);
        }
        self.http.json(call).await.map_err(explain_inactive_plan)
    }
}

fn err(kind: ProviderErrorKind, message: impl Into<String>) -> ProviderError {
    ProviderError::new(ID, kind, message)
}

/// Hubstaff answers 403 "API access is only for organizations on an active plan" on every
/// endpoint once a subscription lapses. Left as is it reads like missing permissions, and the
/// admin would re-authorise in vain; what they must do is reactivate the plan.
fn explain_inactive_plan(e: ProviderError) -> ProviderError {
    // The provider's words are in the detail (the answer's body), never in the message.
    let said = e.detail.as_deref().unwrap_or(&e.message).to_lowercase();
    if e.kind == ProviderErrorKind::Forbidden && said.contains("active plan") {
        ProviderError {
            message: "the Hubstaff plan is inactive: Hubstaff only allows API access for \
                      organisations on an active plan, so the organisation owner must \
                      reactivate it in Hubstaff"
                .into(),
            ..e
        }
    } else {
        e
    }
}

fn access_token(session: &ProviderSession) -> Result<&SecretValue, ProviderError> {
    session.secrets.get("access_token").ok_or_else(|| {
        err(
            ProviderErrorKind::ReauthRequired,
            "no Hubstaff access token is stored for this connection; authorise it again",
        )
    })
}

/// A non-secret id setting given as a JSON string or number.
fn setting_text(session: &ProviderSession, name: &str) -> Option<String> {
    match session.settings.get(name)? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn client_id(session: &ProviderSession) -> Result<String, ProviderError> {
    // Without the client id the shared per-application budget cannot be found, and guessing a
    // key would let connections of one app overrun Hubstaff's limit together.
    setting_text(session, "client_id").ok_or_else(|| {
        err(
            ProviderErrorKind::Rejected,
            "the connection has no client_id setting (the Hubstaff OAuth client id)",
        )
    })
}

/// The configured organisation, `None` when not chosen yet. A value that is not an id is
/// rejected rather than pasted into a URL path.
fn configured_organization(session: &ProviderSession) -> Result<Option<u64>, ProviderError> {
    match session.settings.get("account_id") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(_) => setting_text(session, "account_id")
            .and_then(|s| s.parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                err(
                    ProviderErrorKind::Rejected,
                    "the account_id setting is not a Hubstaff organisation id",
                )
            }),
    }
}

fn organization_id(session: &ProviderSession) -> Result<u64, ProviderError> {
    configured_organization(session)?.ok_or_else(|| {
        err(
            ProviderErrorKind::Rejected,
            "no Hubstaff organisation is chosen for this connection (account_id setting \
             missing)",
        )
    })
}

/// A page token of the plain listings is the next `page_start_id`.
fn page_start(page: Option<&str>) -> Result<Option<u64>, ProviderError> {
    page.map(|p| {
        p.parse::<u64>().map_err(|_| {
            err(
                ProviderErrorKind::Rejected,
                format!("invalid page token {p:?}"),
            )
        })
    })
    .transpose()
}

fn paged_query(page_start_id: Option<u64>) -> Vec<(&'static str, String)> {
    let mut q = vec![("page_limit", PAGE_LIMIT.to_string())];
    if let Some(id) = page_start_id {
        q.push(("page_start_id", id.to_string()));
    }
    q
}

fn person(user: &User) -> RemotePerson {
    RemotePerson {
        id: user.id.to_string(),
        name: user.name.clone(),
        email: user.email.clone(),
    }
}

/// Last day of the chunk starting at `start`: 31 days inclusive, cut at the window's end.
fn chunk_end(start: NaiveDate, window: &DateWindow) -> NaiveDate {
    start
        .checked_add_days(Days::new(u64::from(MAX_WINDOW_DAYS - 1)))
        .map_or(window.to, |end| end.min(window.to))
}

/// Where a work-log listing starts or resumes, checked against the window so that a token
/// from another listing cannot silently read the wrong dates.
fn work_log_cursor(
    window: &DateWindow,
    page: Option<&str>,
) -> Result<WorkLogCursor, ProviderError> {
    if window.from > window.to {
        return Err(err(
            ProviderErrorKind::Rejected,
            format!("empty date window {} to {}", window.from, window.to),
        ));
    }
    let Some(token) = page else {
        return Ok(WorkLogCursor {
            chunk_start: window.from,
            page_start_id: None,
        });
    };
    let cursor: WorkLogCursor = serde_json::from_str(token).map_err(|_| {
        err(
            ProviderErrorKind::Rejected,
            format!("invalid page token {token:?}"),
        )
    })?;
    if cursor.chunk_start < window.from || cursor.chunk_start > window.to {
        return Err(err(
            ProviderErrorKind::Rejected,
            format!(
                "page token starts at {}, outside the window {} to {}",
                cursor.chunk_start, window.from, window.to
            ),
        ));
    }
    Ok(cursor)
}

/// The token after a page: the next page of this chunk, else the first page of the next
/// chunk, else nothing.
fn next_work_log_cursor(
    cursor: WorkLogCursor,
    chunk_end: NaiveDate,
    window: &DateWindow,
    next_page_start_id: Option<u64>,
) -> Option<WorkLogCursor> {
    if let Some(id) = next_page_start_id {
        return Some(WorkLogCursor {
            page_start_id: Some(id),
            ..cursor
        });
    }
    if chunk_end >= window.to {
        return None;
    }
    chunk_end.succ_opt().map(|chunk_start| WorkLogCursor {
        chunk_start,
        page_start_id: None,
    })
}

/// Hubstaff's next page must start somewhere new; a repeated id would make the engine ask for
/// the same page forever.
fn check_progress(sent: Option<u64>, next: Option<u64>) -> Result<(), ProviderError> {
    if next.is_some() && next == sent {
        return Err(err(
            ProviderErrorKind::InvalidResponse,
            format!(
                "Hubstaff returned page_start_id {} as its own next page",
                next.unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

/// Seconds to whole minutes, to the nearest minute.
fn minutes(seconds: u64) -> u32 {
    let m = (seconds as f64 / 60.0).round();
    if m >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        m as u32
    }
}

fn work_logs(body: DailyActivities) -> Vec<RemoteWorkLog> {
    let users: HashMap<u64, &User> = body.users.iter().map(|u| (u.id, u)).collect();
    body.daily_activities
        .iter()
        // A day whose time was deleted may linger with nothing tracked; dropping it lets the
        // engine's reconciliation remove the local copy, as for a row that is gone.
        .filter(|row| row.tracked > 0)
        .map(|row| {
            let user = users.get(&row.user_id);
            RemoteWorkLog {
                id: format!(
                    "{}-{}-{}-{}",
                    row.user_id,
                    row.project_id,
                    row.task().unwrap_or(0),
                    row.date.format("%Y-%m-%d")
                ),
                project_id: row.project_id.to_string(),
                person: RemotePerson {
                    id: row.user_id.to_string(),
                    name: user.map(|u| u.name.clone()).unwrap_or_default(),
                    email: user.and_then(|u| u.email.clone()),
                },
                date: row.date,
                minutes: minutes(row.tracked),
                note: String::new(),
                running: false,
                updated_at: row.updated_at,
                deleted: false,
                task_id: None,
            }
        })
        .collect()
}

#[async_trait]
impl Provider for Hubstaff {
    fn descriptor(&self) -> &ProviderDescriptor {
        &DESCRIPTOR
    }

    /// Lists the organisations the login is an active member of (all pages) and picks the
    /// configured one, or the first while none is chosen.
    async fn check_credentials(
        &self,
        session: &ProviderSession,
    ) -> Result<AccountInfo, ProviderError> {
        let configured = configured_organization(session)?;
        let mut organizations = Vec::new();
        let mut start = None;
        loop {
            let body: Organizations = self
                .get(session, "/organizations", &paged_query(start))
                .await?;
            organizations.extend(body.organizations);
            let next = next_start(body.pagination.as_ref());
            check_progress(start, next)?;
            match next {
                Some(id) => start = Some(id),
                None => break,
            }
        }
        let chosen = configured
            .and_then(|id| organizations.iter().find(|o| o.id == id))
            .or_else(|| organizations.first())
            .ok_or_else(|| {
                err(
                    ProviderErrorKind::Forbidden,
                    "this Hubstaff login belongs to no organisation",
                )
            })?;
        Ok(AccountInfo {
            account_id: chosen.id.to_string(),
            account_name: chosen.name.clone(),
            other_accounts: organizations
                .iter()
                .map(|o| (o.id.to_string(), o.name.clone()))
                .collect(),
            identity: None,
        })
    }

    fn oauth_urls(&self) -> Option<(String, String)> {
        Some((
            format!("{}/authorizations/new", self.account_url),
            format!("{}/access_tokens", self.account_url),
        ))
    }

    fn work_logs(&self) -> Option<&dyn WorkLogSource> {
        Some(self)
    }
}

#[async_trait]
impl WorkLogSource for Hubstaff {
    /// All projects, archived ones included because they still own history; `query` filters
    /// names case-insensitively on our side, as Hubstaff offers no name search.
    async fn list_projects(
        &self,
        session: &ProviderSession,
        query: Option<&str>,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteProject>, ProviderError> {
        let org = organization_id(session)?;
        let start = page_start(page.as_deref())?;
        let mut q = paged_query(start);
        q.push(("status", "all".to_owned()));
        let body: Projects = self
            .get(session, &format!("/organizations/{org}/projects"), &q)
            .await?;
        let next = next_start(body.pagination.as_ref());
        check_progress(start, next)?;
        let needle = query
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty());
        let items = body
            .projects
            .into_iter()
            .filter(|p| {
                needle
                    .as_deref()
                    .is_none_or(|n| p.name.to_lowercase().contains(n))
            })
            .map(|p| RemoteProject {
                id: p.id.to_string(),
                archived: p.status.as_deref() == Some("archived"),
                name: p.name,
                customer_name: None,
                parent_id: None,
            })
            .collect();
        Ok(RemotePage {
            items,
            next: next.map(|id| id.to_string()),
        })
    }

    /// Every side-loaded user of the organisation's members, removed members included since
    /// their time still needs an owner. E-mails are passed on verbatim.
    async fn list_people(
        &self,
        session: &ProviderSession,
        page: Option<String>,
    ) -> Result<RemotePage<RemotePerson>, ProviderError> {
        let org = organization_id(session)?;
        let start = page_start(page.as_deref())?;
        let mut q = paged_query(start);
        q.push(("include[]", "users".to_owned()));
        q.push(("include_removed", "true".to_owned()));
        let body: Members = self
            .get(session, &format!("/organizations/{org}/members"), &q)
            .await?;
        let next = next_start(body.pagination.as_ref());
        check_progress(start, next)?;
        Ok(RemotePage {
            items: body.users.iter().map(person).collect(),
            next: next.map(|id| id.to_string()),
        })
    }

    /// Daily activity totals of the project, one request per call: the window is read in
    /// ≤31-day chunks, and the page token says which chunk and where in it to go on.
    async fn list_work_logs(
        &self,
        session: &ProviderSession,
        project_id: &str,
        window: DateWindow,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteWorkLog>, ProviderError> {
        organization_id(session)?;
        let project: u64 = project_id.trim().parse().map_err(|_| {
            err(
                ProviderErrorKind::Rejected,
                format!("{project_id:?} is not a Hubstaff project id"),
            )
        })?;
        let cursor = work_log_cursor(&window, page.as_deref())?;
        let end = chunk_end(cursor.chunk_start, &window);
        let mut q = vec![
            (
                "date[start]",
                cursor.chunk_start.format("%Y-%m-%d").to_string(),
            ),
            ("date[stop]", end.format("%Y-%m-%d").to_string()),
            ("include[]", "users".to_owned()),
        ];
        q.extend(paged_query(cursor.page_start_id));
        let body: DailyActivities = self
            .get(
                session,
                &format!("/projects/{project}/activities/daily"),
                &q,
            )
            .await?;
        let next = next_start(body.pagination.as_ref());
        check_progress(cursor.page_start_id, next)?;
        let next = next_work_log_cursor(cursor, end, &window, next)
            .map(|c| serde_json::to_string(&c))
            .transpose()
            .map_err(|e| err(ProviderErrorKind::InvalidResponse, e.to_string()))?;
        Ok(RemotePage {
            items: work_logs(body),
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn window(from: &str, to: &str) -> DateWindow {
        DateWindow {
            from: day(from),
            to: day(to),
        }
    }

    #[test]
    fn chunks_span_31_days_inclusive_and_stop_at_the_window_end() {
        let w = window("2025-01-01", "2025-03-11");
        assert_eq!(chunk_end(day("2025-01-01"), &w), day("2025-01-31"));
        assert_eq!(chunk_end(day("2025-02-01"), &w), day("2025-03-03"));
        assert_eq!(chunk_end(day("2025-03-04"), &w), day("2025-03-11"));
        let single = window("2025-05-05", "2025-05-05");
        assert_eq!(chunk_end(single.from, &single), single.from);
    }

    #[test]
    fn the_cursor_moves_within_a_chunk_then_to_the_next_then_ends() {
        let w = window("2025-01-01", "2025-02-10");
        let first = work_log_cursor(&w, None).unwrap();
        assert_eq!(first.chunk_start, w.from);
        let end = chunk_end(first.chunk_start, &w);
        let paged = next_work_log_cursor(first, end, &w, Some(77)).unwrap();
        assert_eq!(paged.chunk_start, w.from);
        assert_eq!(paged.page_start_id, Some(77));
        let second = next_work_log_cursor(paged, end, &w, None).unwrap();
        assert_eq!(second.chunk_start, day("2025-02-01"));
        assert_eq!(second.page_start_id, None);
        let end = chunk_end(second.chunk_start, &w);
        assert_eq!(next_work_log_cursor(second, end, &w, None), None);
    }

    #[test]
    fn tokens_round_trip_and_foreign_tokens_are_rejected() {
        let w = window("2025-01-01", "2025-02-10");
        let c = WorkLogCursor {
            chunk_start: day("2025-02-01"),
            page_start_id: Some(9_000_000_001),
        };
        let token = serde_json::to_string(&c).unwrap();
        assert_eq!(work_log_cursor(&w, Some(&token)).unwrap(), c);
        for bad in [
            "garbage".to_owned(),
            r#"{"chunk_start":"2024-12-31"}"#.to_owned(),
            r#"{"chunk_start":"2025-02-11"}"#.to_owned(),
        ] {
            let e = work_log_cursor(&w, Some(&bad)).unwrap_err();
            assert_eq!(e.kind, ProviderErrorKind::Rejected, "{bad}");
        }
        let inverted = window("2025-02-10", "2025-01-01");
        assert_eq!(
            work_log_cursor(&inverted, None).unwrap_err().kind,
            ProviderErrorKind::Rejected
        );
    }

    #[test]
    fn seconds_round_to_the_nearest_minute() {
        assert_eq!(minutes(0), 0);
        assert_eq!(minutes(29), 0);
        assert_eq!(minutes(30), 1);
        assert_eq!(minutes(89), 1);
        assert_eq!(minutes(90), 2);
        assert_eq!(minutes(23_400), 390);
        assert_eq!(minutes(u64::MAX), u32::MAX);
    }

    #[test]
    fn timestamps_without_a_zone_are_read_as_utc() {
        let with = wire::parse_timestamp("2025-02-10T15:31:09.288117Z").unwrap();
        let without = wire::parse_timestamp("2025-02-10T15:31:09.288117").unwrap();
        assert_eq!(with, without);
        assert_eq!(wire::parse_timestamp("yesterday"), None);
    }

    #[test]
    fn only_forbidden_answers_about_the_plan_are_rewritten() {
        let plan = err(ProviderErrorKind::Forbidden, "hubstaff refused access (403)").with_detail(
            "GET x answered 403: {\"error\":\"API access is only for organizations on an active plan\"}",
        );
        let rewritten = explain_inactive_plan(plan);
        assert!(
            rewritten
                .message
                .starts_with("the Hubstaff plan is inactive")
        );
        assert_eq!(rewritten.kind, ProviderErrorKind::Forbidden);
        let other = err(
            ProviderErrorKind::Forbidden,
            "hubstaff refused access (403)",
        )
        .with_detail("GET x answered 403: not a manager");
        assert_eq!(explain_inactive_plan(other.clone()).message, other.message);
    }
}

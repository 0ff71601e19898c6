//! Harvest (API v2) adapter: pulls Harvest time entries into Hourbridge as work logs.
//!
//! Harvest offers only what [`WorkLogSource`] needs: projects for the link picker, users for
//! matching people by e-mail, and time entries per project and date window. It has no webhooks
//! and no deletion feed, so the sync engine reconciles a date window instead
//! ([`WorkLogsIn::deletion_feed`] is `false`).
//!
//! Connection conventions, filled in by the sync engine:
//! - `session.secrets["access_token"]`: the OAuth bearer token (customer-registered app).
//! - `session.settings["account_id"]`: the Harvest account (JSON string or number). One login
//!   can reach several Harvest and Forecast accounts; [`Provider::check_credentials`] lists the
//!   Harvest ones so an admin can choose.
//!
//! Every request is counted against the shared budget under `harvest:account:{account_id}`
//! (`harvest:id` for the identity host, which has no account yet).

mod wire;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hourbridge_domain::{Role, SecretValue};
use hourbridge_provider_api::{
    AccountInfo, AuthKind, Capabilities, ClientAuth, DateWindow, OAuth2Spec, OAuthClient, Provider,
    ProviderDescriptor, ProviderError, ProviderErrorKind, ProviderSession, RateBudget, RateLimit,
    RateLimitScope, RemotePage, RemotePerson, RemoteProject, RemoteWorkLog, Schedule,
    WorkLogSource, WorkLogsIn,
};
use hourbridge_provider_http::{Call, ProviderEnv, ProviderHttp};
use serde::de::DeserializeOwned;
use url::Url;

/// Provider id.
pub const ID: &str = "harvest";

/// Overrides the API base URL (default [`DEFAULT_API_URL`]), e.g. to point at a mock server.
pub const API_URL_VAR: &str = "HOURBRIDGE_HARVEST_API_URL";

/// Overrides the Harvest ID (identity and OAuth) base URL (default [`DEFAULT_ID_URL`]).
pub const ID_URL_VAR: &str = "HOURBRIDGE_HARVEST_ID_URL";

/// Every configuration variable [`Harvest::from_env`] reads.
pub const ENV_VARS: &[&str] = &[API_URL_VAR, ID_URL_VAR];

/// The variables of [`ENV_VARS`] that hold secrets (none).
pub const SECRET_ENV_VARS: &[&str] = &[];

/// Harvest's API v2 base URL.
pub const DEFAULT_API_URL: &str = "https://api.harvestapp.com/v2";

/// Harvest ID, which hosts OAuth and the accounts list.
pub const DEFAULT_ID_URL: &str = "https://id.getharvest.com";

/// Harvest's maximum page size; a larger one is answered with 422.
const PER_PAGE: u32 = 2000;

/// Harvest's documented budget for the general API (the reports API is stricter but unused).
const RATE_LIMIT: RateLimit = RateLimit {
    scope: RateLimitScope::Account,
    requests: 100,
    per: Duration::from_secs(15),
};

/// What Hourbridge knows about Harvest, as data.
pub static DESCRIPTOR: ProviderDescriptor = ProviderDescriptor {
    id: ID,
    display_name: "Harvest",
    auth: AuthKind::OAuth2(OAuth2Spec {
        authorize_url: "https://id.getharvest.com/oauth2/authorize",
        token_url: "https://id.getharvest.com/api/v2/oauth2/token",
        // Harvest grants access per account on its consent screen, so no scope is requested.
        scopes: &[],
        scope_separator: " ",
        pkce: false,
        client: OAuthClient::CustomerSupplied,
        client_auth: ClientAuth::RequestBody,
        extra_authorize_params: &[],
        refresh_token_rotates: false,
        settings: &[],
    }),
    // Only an administrator's token sees every user, project and time entry; anything less
    // silently syncs partial data.
    install_role: Role::Admin,
    requires_add_on: false,
    rate_limit: Some(RATE_LIMIT),
    schedule: Schedule::Every(Duration::from_secs(24 * 60 * 60)),
    capabilities: Capabilities {
        work_logs_in: Some(WorkLogsIn {
            deletion_feed: false,
            max_window_days: None,
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

/// The Harvest adapter.
pub struct Harvest {
    /// API base as configured (no trailing slash), for building URLs.
    api_base: String,
    /// The same, parsed, for checking page links against it.
    api_url: Url,
    /// Harvest ID base (no trailing slash).
    id_base: String,
    http: ProviderHttp,
    budget: Arc<dyn RateBudget>,
}

impl std::fmt::Debug for Harvest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harvest")
            .field("api_base", &self.api_base)
            .field("id_base", &self.id_base)
            .finish_non_exhaustive()
    }
}

fn err(kind: ProviderErrorKind, message: impl Into<String>) -> ProviderError {
    ProviderError::new(ID, kind, message)
}

/// Parses a configured base URL; only plain http(s) bases can have paths appended safely.
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
        .get("access_token")
        .filter(|t| !t.expose().is_empty())
        .ok_or_else(|| {
            err(
                ProviderErrorKind::ReauthRequired,
                "the connection has no Harvest access token; authorize it again",
            )
        })
}

/// `settings.account_id` as Harvest expects it in `Harvest-Account-Id`, or `None` when unset.
/// A value of the wrong shape is a configuration error, never silently ignored.
fn configured_account_id(session: &ProviderSession) -> Result<Option<String>, ProviderError> {
    let malformed = |v: &serde_json::Value| {
        err(
            ProviderErrorKind::Rejected,
            format!("settings.account_id must be a numeric Harvest account id, got {v}"),
        )
    };
    match session.settings.get("account_id") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else if s.bytes().all(|b| b.is_ascii_digit()) {
                Ok(Some(s.to_owned()))
            } else {
                Err(malformed(&serde_json::Value::String(s.to_owned())))
            }
        }
        Some(v @ serde_json::Value::Number(n)) => n
            .as_u64()
            .map(|id| Some(id.to_string()))
            .ok_or_else(|| malformed(v)),
        Some(v) => Err(malformed(v)),
    }
}

fn required_account_id(session: &ProviderSession) -> Result<String, ProviderError> {
    configured_account_id(session)?.ok_or_else(|| {
        err(
            ProviderErrorKind::Rejected,
            "no Harvest account is selected for this connection (settings.account_id); \
             check the credentials and choose one of the login's Harvest accounts",
        )
    })
}

impl Harvest {
    /// Builds the adapter from configuration: [`API_URL_VAR`] and [`ID_URL_VAR`] override the
    /// public Harvest hosts. Fails with [`ProviderErrorKind::Rejected`] on a malformed URL.
    pub fn from_env(env: &ProviderEnv) -> Result<Self, ProviderError> {
        let api_base = env.url(API_URL_VAR, DEFAULT_API_URL);
        let id_base = env.url(ID_URL_VAR, DEFAULT_ID_URL);
        let api_url = base_url(API_URL_VAR, &api_base)?;
        base_url(ID_URL_VAR, &id_base)?;
        Ok(Self {
            api_base,
            api_url,
            id_base,
            http: ProviderHttp::new(ID, env.http.clone())?,
            budget: env.budget.clone(),
        })
    }

    /// The descriptor, without building an adapter.
    pub fn descriptor_static() -> &'static ProviderDescriptor {
        &DESCRIPTOR
    }

    /// Refuses a page link that is not `endpoint` on the configured API. Page tokens come back
    /// from Harvest and from the engine's checkpoints; following one elsewhere would hand the
    /// bearer token to another host, so origin and path are compared after parsing (a string
    /// prefix would accept `http://api:80@evil/` or another port).
    fn check_next(&self, next: &str, endpoint: &str) -> Result<(), ProviderError> {
        let refuse = || {
            err(
                ProviderErrorKind::InvalidResponse,
                "Harvest sent a page link to somewhere else than its API; refused",
            )
            .with_detail(format!(
                "refusing page link {next:?}: it is not {}/{endpoint}",
                self.api_base
            ))
        };
        let url = Url::parse(next).map_err(|_| refuse())?;
        let base = &self.api_url;
        let expected_path = format!("{}/{endpoint}", base.path().trim_end_matches('/'));
        let same = url.scheme() == base.scheme()
            && url.username().is_empty()
            && url.password().is_none()
            && url.host() == base.host()
            && url.port_or_known_default() == base.port_or_known_default()
            && url.path() == expected_path
            && url.fragment().is_none();
        if same { Ok(()) } else { Err(refuse()) }
    }

    /// One GET of a paginated data-API list: the first page from `first_query`, later pages
    /// from the `links.next` URL alone (Harvest asks clients not to build page URLs).
    async fn api_get<T: DeserializeOwned>(
        &self,
        session: &ProviderSession,
        endpoint: &str,
        first_query: &[(&str, String)],
        page: Option<String>,
    ) -> Result<T, ProviderError> {
        let account_id = required_account_id(session)?;
        let token = access_token(session)?;
        let call = match page {
            Some(next) => {
                self.check_next(&next, endpoint)?;
                Call::get(next)
            }
            None => first_query.iter().fold(
                Call::get(format!("{}/{endpoint}", self.api_base)),
                |call, (name, value)| call.query(*name, value),
            ),
        };
        let call = call
            .bearer(token)
            .header("Harvest-Account-Id", account_id.clone())
            .budget(
                self.budget.as_ref(),
                format!("harvest:account:{account_id}"),
                RATE_LIMIT,
            );
        self.http.json(call).await
    }

    /// The next page token, checked when it arrives so a bad link fails the page that carried
    /// it instead of being checkpointed.
    fn next_page(
        &self,
        links: Option<wire::Links>,
        endpoint: &str,
    ) -> Result<Option<String>, ProviderError> {
        let next = wire::next_link(links);
        if let Some(n) = &next {
            self.check_next(n, endpoint)?;
        }
        Ok(next)
    }
}

#[async_trait]
impl Provider for Harvest {
    fn descriptor(&self) -> &ProviderDescriptor {
        &DESCRIPTOR
    }

    /// Lists the login's accounts at Harvest ID and picks the configured one (or the first
    /// Harvest account). Forecast accounts are left out: their data is not on this API.
    async fn check_credentials(
        &self,
        session: &ProviderSession,
    ) -> Result<AccountInfo, ProviderError> {
        let token = access_token(session)?;
        let wanted = configured_account_id(session)?;
        let call = Call::get(format!("{}/api/v2/accounts", self.id_base))
            .bearer(token)
            .budget(self.budget.as_ref(), "harvest:id", RATE_LIMIT);
        let res: wire::AccountsResponse = self.http.json(call).await?;
        wire::select_account(res.accounts, wanted.as_deref()).ok_or_else(|| {
            err(
                ProviderErrorKind::Forbidden,
                "this Harvest login has no Harvest account",
            )
        })
    }

    fn oauth_urls(&self) -> Option<(String, String)> {
        Some((
            format!("{}/oauth2/authorize", self.id_base),
            format!("{}/api/v2/oauth2/token", self.id_base),
        ))
    }

    fn work_logs(&self) -> Option<&dyn WorkLogSource> {
        Some(self)
    }
}

#[async_trait]
impl WorkLogSource for Harvest {
    /// Active and archived projects (archived ones still own history). Harvest has no name
    /// search, so `query` filters each page here; a page may come back short or empty while
    /// `next` is still set.
    async fn list_projects(
        &self,
        session: &ProviderSession,
        query: Option<&str>,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteProject>, ProviderError> {
        let res: wire::ProjectsPage = self
            .api_get(
                session,
                "projects",
                &[("per_page", PER_PAGE.to_string())],
                page,
            )
            .await?;
        let next = self.next_page(res.links, "projects")?;
        let items = res
            .projects
            .into_iter()
            .map(RemoteProject::from)
            .filter(|p| query.is_none_or(|q| wire::project_matches(p, q)))
            .collect();
        Ok(RemotePage { items, next })
    }

    /// All users, active or not, with their e-mails exactly as Harvest stores them.
    async fn list_people(
        &self,
        session: &ProviderSession,
        page: Option<String>,
    ) -> Result<RemotePage<RemotePerson>, ProviderError> {
        let res: wire::UsersPage = self
            .api_get(
                session,
                "users",
                &[("per_page", PER_PAGE.to_string())],
                page,
            )
            .await?;
        let next = self.next_page(res.links, "users")?;
        Ok(RemotePage {
            items: res.users.into_iter().map(RemotePerson::from).collect(),
            next,
        })
    }

    /// Time entries of one project whose `spent_date` is in `window`. Running timers are
    /// returned flagged `running`; entries are passed on as Harvest sends them, even one whose
    /// project differs from `project_id`, so the engine decides what a move means.
    async fn list_work_logs(
        &self,
        session: &ProviderSession,
        project_id: &str,
        window: DateWindow,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteWorkLog>, ProviderError> {
        if project_id.is_empty() || !project_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(
                ProviderErrorKind::Rejected,
                format!("{project_id:?} is not a Harvest project id"),
            ));
        }
        if window.from > window.to {
            return Err(err(
                ProviderErrorKind::Rejected,
                format!("empty date window {} to {}", window.from, window.to),
            ));
        }
        let first_query = [
            ("project_id", project_id.to_owned()),
            ("from", window.from.format("%Y-%m-%d").to_string()),
            ("to", window.to.format("%Y-%m-%d").to_string()),
            ("per_page", PER_PAGE.to_string()),
        ];
        let res: wire::TimeEntriesPage = self
            .api_get(session, "time_entries", &first_query, page)
            .await?;
        let next = self.next_page(res.links, "time_entries")?;
        Ok(RemotePage {
            items: res
                .time_entries
                .into_iter()
                .map(RemoteWorkLog::from)
                .collect(),
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn session(settings: serde_json::Value) -> ProviderSession {
        ProviderSession {
            workspace_id: "ws".into(),
            secrets: BTreeMap::from([("access_token".to_owned(), SecretValue::new("tok"))]),
            settings,
        }
    }

    fn harvest(api: &str) -> Harvest {
        Harvest::from_env(&ProviderEnv::for_tests(&[(API_URL_VAR, api)])).unwrap()
    }

    #[test]
    fn account_id_setting_accepts_strings_and_numbers_only() {
        let id = |v: serde_json::Value| configured_account_id(&session(v));
        assert_eq!(
            id(serde_json::json!({"account_id": "1320977"})).unwrap(),
            Some("1320977".into())
        );
        assert_eq!(
            id(serde_json::json!({"account_id": 1320977})).unwrap(),
            Some("1320977".into())
        );
        assert_eq!(
            id(serde_json::json!({"account_id": " 42 "})).unwrap(),
            Some("42".into())
        );
        assert_eq!(id(serde_json::json!({})).unwrap(), None);
        assert_eq!(id(serde_json::json!(null)).unwrap(), None);
        assert_eq!(id(serde_json::json!({"account_id": ""})).unwrap(), None);
        for bad in [
            serde_json::json!({"account_id": "12; evil"}),
            serde_json::json!({"account_id": -1}),
            serde_json::json!({"account_id": 1.5}),
            serde_json::json!({"account_id": [1]}),
        ] {
            assert_eq!(
                id(bad.clone()).unwrap_err().kind,
                ProviderErrorKind::Rejected,
                "{bad}"
            );
        }
    }

    #[test]
    fn page_links_must_stay_on_the_configured_endpoint() {
        let h = harvest("https://api.harvestapp.com/v2/");
        let ok = "https://api.harvestapp.com/v2/time_entries?page=2&project_id=1";
        assert!(h.check_next(ok, "time_entries").is_ok());
        assert!(
            h.check_next(
                "https://API.harvestapp.com:443/v2/time_entries?cursor=x",
                "time_entries"
            )
            .is_ok(),
            "normalised host and default port are the same origin"
        );
        for bad in [
            "https://api.harvestapp.com.evil.example/v2/time_entries",
            "https://api.harvestapp.com@evil.example/v2/time_entries",
            "https://user@api.harvestapp.com/v2/time_entries",
            "http://api.harvestapp.com/v2/time_entries",
            "https://api.harvestapp.com:8443/v2/time_entries",
            "https://api.harvestapp.com/v2/users?page=2",
            "https://api.harvestapp.com/v2/time_entries/../users",
            "https://api.harvestapp.com/v2x/time_entries",
            "https://api.harvestapp.com/v2/time_entries#frag",
            "/v2/time_entries?page=2",
            "not a url",
        ] {
            let e = h.check_next(bad, "time_entries").unwrap_err();
            assert_eq!(e.kind, ProviderErrorKind::InvalidResponse, "{bad}");
        }

        let root = harvest("http://127.0.0.1:4000");
        assert!(
            root.check_next("http://127.0.0.1:4000/users?cursor=a", "users")
                .is_ok()
        );
        assert!(
            root.check_next("http://127.0.0.1:40000/users", "users")
                .is_err(),
            "a string prefix of the port is another origin"
        );
        assert!(
            root.check_next("http://127.0.0.1:4000@127.0.0.1:5000/users", "users")
                .is_err()
        );
    }

    #[test]
    fn bad_base_urls_are_rejected() {
        for bad in ["ftp://x.example", "not a url", "https://x.example/v2?x=1"] {
            let e = Harvest::from_env(&ProviderEnv::for_tests(&[(API_URL_VAR, bad)])).unwrap_err();
            assert_eq!(e.kind, ProviderErrorKind::Rejected, "{bad}");
        }
    }

    #[test]
    fn defaults_and_oauth_urls() {
        let h = Harvest::from_env(&ProviderEnv::for_tests(&[])).unwrap();
        assert_eq!(h.api_base, DEFAULT_API_URL);
        assert_eq!(
            h.oauth_urls(),
            Some((
                "https://id.getharvest.com/oauth2/authorize".into(),
                "https://id.getharvest.com/api/v2/oauth2/token".into()
            ))
        );
        let AuthKind::OAuth2(spec) = &DESCRIPTOR.auth else {
            panic!("Harvest uses OAuth2")
        };
        let (authorize, token) = h.oauth_urls().unwrap();
        assert_eq!(
            (authorize.as_str(), token.as_str()),
            (spec.authorize_url, spec.token_url),
            "defaults agree with the descriptor"
        );

        let sandbox =
            Harvest::from_env(&ProviderEnv::for_tests(&[(ID_URL_VAR, "http://id.test/")])).unwrap();
        assert_eq!(
            sandbox.oauth_urls(),
            Some((
                "http://id.test/oauth2/authorize".into(),
                "http://id.test/api/v2/oauth2/token".into()
            ))
        );
    }
}

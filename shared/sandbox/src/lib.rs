//! Local HTTP servers that behave like the Harvest API v2 and the Hubstaff API v2 as
//! documented in `harvest-hubstaff.md`: OAuth authorization-code flow with auto-consent, the
//! data endpoints a time sync reads, the documented paging, limits and error shapes, plus knobs
//! to expire tokens and inject faults. Tests, the demo and the benchmark run the real provider
//! adapters against it with no network.
//!
//! One [`Sandbox`] is one axum server on `127.0.0.1:<random port>` with both providers under
//! path prefixes:
//!
//! | URL | Stands for |
//! |---|---|
//! | `/harvest/id/oauth2/authorize`, `/harvest/id/api/v2/oauth2/token`, `/harvest/id/api/v2/accounts` | `https://id.getharvest.com/...` |
//! | `/harvest/api/v2/...` | `https://api.harvestapp.com/v2/...` |
//! | `/hubstaff/account/authorizations/new`, `/hubstaff/account/access_tokens` | `https://account.hubstaff.com/...` |
//! | `/hubstaff/api/v2/...` | `https://api.hubstaff.com/v2/...` |
//! | `/basecamp/launchpad/authorization/{new,token}`, `/basecamp/launchpad/authorization.json` | `https://launchpad.37signals.com/...` |
//! | `/basecamp/api/{account_id}/...` | `https://3.basecampapi.com/{account_id}/...` |
//! | `/tripletex/v2/...` | `https://tripletex.no/v2/...` |
//! | `/{account}/WebServices/.../*ServiceSecure.svc`, `/{account}/service.asmx` | `https://app[X].timelog.com/{account}/...` (TimeLog Transactional SOAP and Reporting; at the root, so the adapter's domain is `127.0.0.1:PORT`) |
//!
//! # Choices where the reference is silent or says UNCONFIRMED
//!
//! * Harvest: a missing, unknown or Forecast `Harvest-Account-Id` answers **404** (what Airbyte
//!   reports), `{"message": ...}`. Unparsable query values answer 400 `{"message": ...}`;
//!   `per_page` outside 1..=2000 and `page` < 1 answer 422. A bad or expired token answers 401
//!   `{"error":"invalid_token","error_description":...}`; 429 bodies are `{"message": ...}`.
//!   Time entries are listed by `spent_date` descending, then id descending; `updated_since`
//!   includes entries whose `updated_at` equals it. Refresh tokens do not rotate. Requests
//!   budget per access token. Harvest accounts other than the data account answer empty lists.
//! * Hubstaff: a missing `Authorization` answers 401 `{"code":"not_authorized","error_code":10001}`,
//!   a bad or expired token 401 `{"error":"invalid_token"}`. `date[start]..=date[stop]` may span
//!   at most 31 days counting both ends (32 → 400, `error_code` 11002). Array parameters are read
//!   only in Rails form (`project_ids[]`, `include[]`). Members page by user id. A day whose
//!   tracked time drops to 0 disappears (no `tracked: 0` row). Requests budget per OAuth client.
//! * TimeLog: see the `timelog` module docs (token error code [`TIMELOG_TOKEN_ERROR_CODE`],
//!   `ChangeTaskStatus` ints, duplicate GUIDs and allocations, UTC date-times without offset).
//! * Both: codes live 10 minutes, are single-use and must be redeemed with the `redirect_uri`
//!   they were issued for; a PKCE challenge, when sent, is enforced. Client credentials may come
//!   as HTTP Basic or in the body (form or JSON). Data-API faults do not touch the OAuth endpoints
//!   (they have `fail_next_oauth`).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use hourbridge_sandbox::{Sandbox, Seed};
//! let sandbox = Sandbox::start(Seed::Demo).await?;
//! sandbox.harvest().fail_next(2, 503);
//! println!("{}", sandbox.describe());
//! sandbox.stop().await;
//! # Ok(()) }
//! ```

mod basecamp;
mod common;
mod consent;
mod harvest;
mod hubstaff;
mod json_writer;
mod oauth;
mod timelog;
mod tripletex;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use basecamp::{
    BasecampControl, BasecampStatus, SandboxTimesheetEntry, SandboxWebhook,
    WebhookDelivery as BasecampWebhookDelivery,
};
pub use consent::{Consent, ConsentError, consent};
pub use harvest::{HarvestControl, NewHarvestEntry};
pub use hubstaff::HubstaffControl;
pub use timelog::{
    TimelogAllocation, TimelogControl, TimelogEmployee, TimelogProject, TimelogTask, TimelogWork,
};
pub use tripletex::{
    SubscriptionStatus as TripletexSubscriptionStatus, TripletexControl, TripletexCustomer,
    TripletexDelivery, TripletexProject, TripletexSubscription,
};

/// OAuth client id the demo seed registers with the Harvest emulation.
pub const HARVEST_DEMO_CLIENT_ID: &str = harvest::DEMO_CLIENT_ID;
/// OAuth client secret of [`HARVEST_DEMO_CLIENT_ID`].
pub const HARVEST_DEMO_CLIENT_SECRET: &str = harvest::DEMO_CLIENT_SECRET;
/// Id of the demo Harvest account (`Harvest-Account-Id`).
pub const HARVEST_DEMO_ACCOUNT_ID: u64 = harvest::DEMO_ACCOUNT_ID;
/// OAuth client id the demo seed registers with the Hubstaff emulation.
pub const HUBSTAFF_DEMO_CLIENT_ID: &str = hubstaff::DEMO_CLIENT_ID;
/// OAuth client secret of [`HUBSTAFF_DEMO_CLIENT_ID`].
pub const HUBSTAFF_DEMO_CLIENT_SECRET: &str = hubstaff::DEMO_CLIENT_SECRET;
/// Id of the Hubstaff organization (the same with either seed).
pub const HUBSTAFF_ORGANIZATION_ID: u64 = hubstaff::ORGANIZATION_ID;
/// OAuth client id the demo seed registers with Launchpad (Hourbridge's platform app).
pub const BASECAMP_DEMO_CLIENT_ID: &str = basecamp::DEMO_CLIENT_ID;
/// OAuth client secret of [`BASECAMP_DEMO_CLIENT_ID`].
pub const BASECAMP_DEMO_CLIENT_SECRET: &str = basecamp::DEMO_CLIENT_SECRET;
/// The main Basecamp (`bc3`) account, with either seed.
pub const BASECAMP_DEMO_ACCOUNT_ID: u64 = basecamp::DEMO_ACCOUNT_ID;
/// The demo's second `bc3` account.
pub const BASECAMP_DEMO_SECOND_ACCOUNT_ID: u64 = basecamp::DEMO_SECOND_ACCOUNT_ID;
/// Consumer token the demo seed registers with the Tripletex emulation (Hourbridge's).
pub const TRIPLETEX_DEMO_CONSUMER_TOKEN: &str = tripletex::DEMO_CONSUMER_TOKEN;
/// Employee token (all entitlements) of Fjordtech's administrator in the demo seed.
pub const TRIPLETEX_DEMO_EMPLOYEE_TOKEN: &str = tripletex::DEMO_EMPLOYEE_TOKEN;
/// Demo employee token without entitlements: its sessions answer 403.
pub const TRIPLETEX_DEMO_LIMITED_EMPLOYEE_TOKEN: &str = tripletex::DEMO_LIMITED_EMPLOYEE_TOKEN;
/// The Tripletex company id (Fjordtech AS), with either seed.
pub const TRIPLETEX_COMPANY_ID: u64 = tripletex::COMPANY_ID;
/// The employee [`TRIPLETEX_DEMO_EMPLOYEE_TOKEN`] belongs to.
pub const TRIPLETEX_DEMO_EMPLOYEE_ID: u64 = tripletex::DEMO_EMPLOYEE_ID;

/// Account name (the `[account name]` path segment) of the TimeLog site, with either seed.
pub const TIMELOG_ACCOUNT: &str = timelog::ACCOUNT;
/// TimeLog Transactional user name of the sync user (a system administrator), either seed.
pub const TIMELOG_USERNAME: &str = timelog::USERNAME;
/// Password of [`TIMELOG_USERNAME`].
pub const TIMELOG_PASSWORD: &str = timelog::PASSWORD;
/// Initials of [`TIMELOG_USERNAME`] (GetToken accepts them as the user too).
pub const TIMELOG_SYNC_INITIALS: &str = timelog::SYNC_INITIALS;
/// TimeLog Reporting API site code.
pub const TIMELOG_SITE_CODE: &str = timelog::SITE_CODE;
/// TimeLog Reporting API ID (the connection form's "Reporting username").
pub const TIMELOG_REPORTING_USERNAME: &str = timelog::REPORTING_USERNAME;
/// TimeLog Reporting API password.
pub const TIMELOG_REPORTING_PASSWORD: &str = timelog::REPORTING_PASSWORD;
/// `ErrorCode` the TimeLog emulation answers for an invalid or expired security token.
pub const TIMELOG_TOKEN_ERROR_CODE: i32 = timelog::TOKEN_ERROR_CODE;
/// `ErrorCode` the TimeLog emulation answers for a `GetToken` with wrong credentials.
pub const TIMELOG_LOGIN_ERROR_CODE: i32 = timelog::LOGIN_ERROR_CODE;

/// Initial data of a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Seed {
    /// No OAuth clients, users, projects or time. The Harvest accounts (1000001 "Acme Harvest"
    /// and a Forecast account) and the Hubstaff organization (7001) still exist, and so does
    /// the TimeLog site with its sync user and the project "Intranet relaunch" (no tasks).
    Empty,
    /// The demo data: OAuth clients `demo-harvest-client` / `demo-harvest-secret` and
    /// `demo-hubstaff-client` / `demo-hubstaff-secret`.
    ///
    /// Harvest account 1000001: users Ada Admin (administrator, who authorizes), Bob Builder
    /// (`Bob.Builder@Acme.test`), Cy Contractor (inactive), Dee Designer (`dee@elsewhere.test`)
    /// and Eve Engineer; projects "Fleet Portal" and "Mobile App" (active) and "Old Intranet"
    /// (archived); 60 time entries over the last 45 days on the two active projects, one of them
    /// a running timer (Eve, today, Mobile App) and one locked.
    ///
    /// Hubstaff organization 7001: Ada (owner), Bob (`" BOB.builder@acme.test "`), Finn (no
    /// email), Gus (removed member); projects "Support Desk", "Research" (active) and "Legacy"
    /// (archived); daily activities over the last 40 days for Ada, Bob and Finn on the active
    /// projects, some with task ids and some without.
    ///
    /// Basecamp: client `demo-basecamp-client` / `demo-basecamp-secret`; Launchpad lists two
    /// `bc3` accounts (4410022 "Nordlys Digital", 4410023 "Nordlys Labs"), a `bcx` and a `hey`
    /// one. 4410022 has Ingrid (owner, the authorizing user), Jonas, Per (`" Per.Hansen@Nordlys.example "`)
    /// and the client Mia; "Nordlys website relaunch" (lists with a group, a completed and a
    /// trashed to-do, one project-level entry), "Internal tools" (timesheets disabled), an
    /// archived and a trashed project. With [`Seed::Empty`] only the empty 4410022 exists.
    ///
    /// Tripletex: consumer token [`TRIPLETEX_DEMO_CONSUMER_TOKEN`], employee tokens
    /// [`TRIPLETEX_DEMO_EMPLOYEE_TOKEN`] (Kari, all entitlements) and
    /// [`TRIPLETEX_DEMO_LIMITED_EMPLOYEE_TOKEN`] (none: 403). Company 1002345 "Fjordtech AS" has
    /// customers incl. two "Nordlys Consulting AS" with different organisation numbers, the
    /// inactive "Bergen Bakeri AS" and a private individual; projects three levels deep
    /// ("Fjordkraft intranett" > "... - tillegg søk" > "Søk - indeksering"), a sub-project with
    /// another customer than its main project, "Intern utvikling" (closed, internal) and
    /// "Hansen nettside" (closed 20 days ago). With [`Seed::Empty`] only the company and Kari.
    ///
    /// TimeLog site [`TIMELOG_ACCOUNT`]: the sync user SYNC ([`TIMELOG_USERNAME`] /
    /// [`TIMELOG_PASSWORD`]), Bob Builder (BBU, `Bob.Builder@Acme.test`), Eve Engineer (EEN,
    /// `EVE@acme.test`), Jonas Berg (JBE, `Jonas.Berg@Nordlys.example`) and the terminated Cy
    /// Contractor (CCO); projects "Intranet relaunch" (612: Content > Copywriting, Workshop),
    /// "Support retainer" (640) and the inactive "Website 2025" (590); allocations for Bob,
    /// Eve and Jonas; weekday registrations of Bob and Eve over the last three weeks in the
    /// change feed (one edited, one deleted), Bob's first week closed and one unit approved.
    /// With [`Seed::Empty`] only the sync user and "Intranet relaunch" (no tasks).
    Demo,
}

/// A running sandbox server. Dropping it aborts the server; [`Sandbox::stop`] shuts it down
/// gracefully.
#[derive(Debug)]
pub struct Sandbox {
    addr: SocketAddr,
    seed: Seed,
    harvest: HarvestControl,
    hubstaff: HubstaffControl,
    basecamp: BasecampControl,
    tripletex: TripletexControl,
    timelog: TimelogControl,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// The URL clients should use for a bound address: a wildcard bind is reached via loopback.
fn base_url_for(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

impl Sandbox {
    /// Starts a sandbox on `127.0.0.1` with a port chosen by the OS. Must be called inside a
    /// Tokio runtime (the server runs as a spawned task).
    pub async fn start(seed: Seed) -> std::io::Result<Sandbox> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), seed).await
    }

    /// Starts a sandbox on `addr` (port 0 picks a free one).
    pub async fn start_on(addr: SocketAddr, seed: Seed) -> std::io::Result<Sandbox> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let harvest = HarvestControl::new(seed);
        let hubstaff = HubstaffControl::new(seed);
        let basecamp = BasecampControl::new(seed);
        let tripletex = TripletexControl::new(seed);
        let timelog = TimelogControl::new(seed);
        let base = base_url_for(addr);
        harvest.set_origin(&base);
        hubstaff.set_origin(&base);
        basecamp.set_origin(&base);
        tripletex.set_origin(&base);
        let app = Router::new()
            .nest("/harvest", harvest::router(harvest.clone()))
            .nest("/hubstaff", hubstaff::router(hubstaff.clone()))
            .nest("/basecamp", basecamp::router(basecamp.clone()))
            .nest("/tripletex", tripletex::router(tripletex.clone()))
            // TimeLog sits at the root (`/{account}/...`); the static prefixes above win.
            .merge(timelog::router(timelog.clone()))
            .fallback(|| async { (StatusCode::NOT_FOUND, "no such sandbox endpoint") });
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(error = %e, "sandbox server stopped with an error");
            }
        });
        tracing::debug!(%addr, ?seed, "sandbox started");
        Ok(Sandbox {
            addr,
            seed,
            harvest,
            hubstaff,
            basecamp,
            tripletex,
            timelog,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        base_url_for(self.addr)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stand-in for `https://api.harvestapp.com/v2`: `base_url() + "/harvest/api/v2"`.
    pub fn harvest_api_url(&self) -> String {
        format!("{}/harvest/api/v2", self.base_url())
    }

    /// Stand-in for `https://id.getharvest.com`: `base_url() + "/harvest/id"`.
    pub fn harvest_id_url(&self) -> String {
        format!("{}/harvest/id", self.base_url())
    }

    /// Harvest's authorize endpoint (`harvest_id_url() + "/oauth2/authorize"`).
    pub fn harvest_authorize_url(&self) -> String {
        format!("{}/oauth2/authorize", self.harvest_id_url())
    }

    /// Harvest's token endpoint (`harvest_id_url() + "/api/v2/oauth2/token"`).
    pub fn harvest_token_url(&self) -> String {
        format!("{}/api/v2/oauth2/token", self.harvest_id_url())
    }

    /// Stand-in for `https://api.hubstaff.com/v2`: `base_url() + "/hubstaff/api/v2"`.
    pub fn hubstaff_api_url(&self) -> String {
        format!("{}/hubstaff/api/v2", self.base_url())
    }

    /// Stand-in for `https://account.hubstaff.com`: `base_url() + "/hubstaff/account"`.
    pub fn hubstaff_account_url(&self) -> String {
        format!("{}/hubstaff/account", self.base_url())
    }

    /// Hubstaff's authorize endpoint (`hubstaff_account_url() + "/authorizations/new"`).
    pub fn hubstaff_authorize_url(&self) -> String {
        format!("{}/authorizations/new", self.hubstaff_account_url())
    }

    /// Hubstaff's token endpoint (`hubstaff_account_url() + "/access_tokens"`).
    pub fn hubstaff_token_url(&self) -> String {
        format!("{}/access_tokens", self.hubstaff_account_url())
    }

    /// Stand-in for `https://launchpad.37signals.com`: `base_url() + "/basecamp/launchpad"`.
    pub fn basecamp_launchpad_url(&self) -> String {
        format!("{}/basecamp/launchpad", self.base_url())
    }

    /// Launchpad's authorize endpoint (`basecamp_launchpad_url() + "/authorization/new"`).
    pub fn basecamp_authorize_url(&self) -> String {
        format!("{}/authorization/new", self.basecamp_launchpad_url())
    }

    /// Launchpad's token endpoint (`basecamp_launchpad_url() + "/authorization/token"`).
    pub fn basecamp_token_url(&self) -> String {
        format!("{}/authorization/token", self.basecamp_launchpad_url())
    }

    /// Stand-in for `https://3.basecampapi.com`: `base_url() + "/basecamp/api"`; accounts are
    /// under `/{account_id}/`.
    pub fn basecamp_api_url(&self) -> String {
        format!("{}/basecamp/api", self.base_url())
    }

    /// Stand-in for `https://tripletex.no/v2`: `base_url() + "/tripletex/v2"`.
    pub fn tripletex_api_url(&self) -> String {
        format!("{}/tripletex/v2", self.base_url())
    }

    /// The TimeLog connect form's *Domain* for this sandbox: `127.0.0.1:PORT` (reached over
    /// plain http; the site is `http://{domain}/{account_name}/`).
    pub fn timelog_domain(&self) -> String {
        let base = self.base_url();
        base.strip_prefix("http://").unwrap_or(&base).to_owned()
    }

    /// The TimeLog connect form filled in for this sandbox's demo site: every declared field
    /// (`domain`, `account_name`, `username`, `password`, `site_code`, `reporting_username`,
    /// `reporting_password`) with its value.
    pub fn timelog_connect_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("domain", self.timelog_domain()),
            ("account_name", TIMELOG_ACCOUNT.into()),
            ("username", TIMELOG_USERNAME.into()),
            ("password", TIMELOG_PASSWORD.into()),
            ("site_code", TIMELOG_SITE_CODE.into()),
            ("reporting_username", TIMELOG_REPORTING_USERNAME.into()),
            ("reporting_password", TIMELOG_REPORTING_PASSWORD.into()),
        ]
    }

    /// [`Sandbox::timelog_connect_fields`] as the JSON body of `PUT /v1/connections/timelog`.
    pub fn timelog_connect_body(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.timelog_connect_fields()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
                .collect(),
        )
    }

    /// `http://127.0.0.1:PORT/{TIMELOG_ACCOUNT}`: the TimeLog site root.
    pub fn timelog_site_url(&self) -> String {
        format!("{}/{}", self.base_url(), TIMELOG_ACCOUNT)
    }

    /// Control handle for the TimeLog emulation.
    pub fn timelog(&self) -> TimelogControl {
        self.timelog.clone()
    }

    /// Control handle for the Tripletex emulation.
    pub fn tripletex(&self) -> TripletexControl {
        self.tripletex.clone()
    }

    /// Control handle for the Basecamp emulation.
    pub fn basecamp(&self) -> BasecampControl {
        self.basecamp.clone()
    }

    /// Control handle for the Harvest emulation.
    pub fn harvest(&self) -> HarvestControl {
        self.harvest.clone()
    }

    /// Control handle for the Hubstaff emulation.
    pub fn hubstaff(&self) -> HubstaffControl {
        self.hubstaff.clone()
    }

    /// A short human summary: URLs and demo clients, for a CLI to print.
    pub fn describe(&self) -> String {
        let demo = self.seed == Seed::Demo;
        let client = |id: &str, secret: &str| {
            if demo {
                format!("{id} / {secret}")
            } else {
                "none registered (Seed::Empty)".to_owned()
            }
        };
        [
            format!(
                "Hourbridge sandbox on {} ({:?} seed)",
                self.base_url(),
                self.seed
            ),
            "Harvest".to_owned(),
            format!(
                "  API:        {}  (Harvest-Account-Id {})",
                self.harvest_api_url(),
                self.harvest.account_id()
            ),
            format!("  authorize:  {}", self.harvest_authorize_url()),
            format!("  token:      {}", self.harvest_token_url()),
            format!("  accounts:   {}/api/v2/accounts", self.harvest_id_url()),
            format!(
                "  client:     {}",
                client(HARVEST_DEMO_CLIENT_ID, HARVEST_DEMO_CLIENT_SECRET)
            ),
            "Hubstaff".to_owned(),
            format!(
                "  API:        {}  (organization {})",
                self.hubstaff_api_url(),
                HUBSTAFF_ORGANIZATION_ID
            ),
            format!("  authorize:  {}", self.hubstaff_authorize_url()),
            format!("  token:      {}", self.hubstaff_token_url()),
            format!(
                "  client:     {}",
                client(HUBSTAFF_DEMO_CLIENT_ID, HUBSTAFF_DEMO_CLIENT_SECRET)
            ),
            "Basecamp".to_owned(),
            format!(
                "  API:        {}  (bc3 accounts {:?})",
                self.basecamp_api_url(),
                self.basecamp.bc3_account_ids()
            ),
            format!("  launchpad:  {}", self.basecamp_launchpad_url()),
            format!("  authorize:  {}", self.basecamp_authorize_url()),
            format!("  token:      {}", self.basecamp_token_url()),
            format!(
                "  client:     {}",
                client(BASECAMP_DEMO_CLIENT_ID, BASECAMP_DEMO_CLIENT_SECRET)
            ),
            "Tripletex".to_owned(),
            format!(
                "  API:        {}  (company {})",
                self.tripletex_api_url(),
                TRIPLETEX_COMPANY_ID
            ),
            format!(
                "  session:    PUT {}/token/session/:create",
                self.tripletex_api_url()
            ),
            format!(
                "  tokens:     {}",
                client(TRIPLETEX_DEMO_CONSUMER_TOKEN, TRIPLETEX_DEMO_EMPLOYEE_TOKEN)
            ),
            "TimeLog (connect form, either seed)".to_owned(),
            format!("  site:               {}/", self.timelog_site_url()),
            format!("  domain:             {}  (http)", self.timelog_domain()),
            format!("  account_name:       {TIMELOG_ACCOUNT}"),
            format!("  username:           {TIMELOG_USERNAME}"),
            format!("  password:           {TIMELOG_PASSWORD}"),
            format!("  site_code:          {TIMELOG_SITE_CODE}"),
            format!("  reporting_username: {TIMELOG_REPORTING_USERNAME}"),
            format!("  reporting_password: {TIMELOG_REPORTING_PASSWORD}"),
        ]
        .join("\n")
    }

    /// Stops accepting connections, lets in-flight requests finish (up to 5 s) and returns.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

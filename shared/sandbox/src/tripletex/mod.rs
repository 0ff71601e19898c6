//! Tripletex API v2 emulation under `/tripletex/v2/...` (stands for `https://tripletex.no/v2`).
//!
//! Facts follow `basecamp-tripletex-timelog.md` §3: consumer + employee token → session token
//! (`PUT /token/session/:create`), HTTP Basic `0:<sessionToken>`, `{"value": ...}` and
//! `{"fullResultSize","from","count","versionDigest","values"}` envelopes, the error body
//! `{status, code, message, link, developerMessage, validationMessages, requestId}`, `from` /
//! `count` paging, `fields` filters, `version` on every record, `changedSince` on `/customer`
//! only, `X-Rate-Limit-*` headers, and `/event/subscription` webhooks signed with
//! `x-request-signature` = base64(HMAC-SHA512(secret, idempotency-key + "&" + body)).
//!
//! Choices where the reference is silent or says UNCONFIRMED (each made so that a client
//! relying on the wrong guess fails loudly):
//! * Session tokens expire at the end of their `expirationDate` in Europe/Oslo (midnight
//!   between that date and the next). `expirationDate` must be later than today (Oslo).
//!   Zone-less date-times (`changedSince`, `changes[].timestamp`) are Europe/Oslo local time.
//! * An unknown consumer or employee token on `:create` answers **403** code 9000; a missing
//!   parameter 422 code 18000 with `validationMessages`. A missing/garbled `Authorization`,
//!   an unknown, revoked or expired session answer **401** code 3000 with
//!   `WWW-Authenticate: Basic realm="Tripletex"`. A Basic username other than `0`, blank or the
//!   own company id answers 403 code 9000 (no accountant client companies exist).
//! * An employee token registered without entitlements answers 403 code 9000 on every
//!   authenticated endpoint, `>whoAmI` included.
//! * Unparsable query values answer 422 code 21000, an unknown `fields` entry 400 code 11000,
//!   an unknown `sorting` field 422 code 17000, a non-numeric path id 400 code 12000, unknown
//!   ids 404 code 6000, invalid JSON 422 code 22000, a stale `version` 409 code 8000.
//! * `changedSince` includes objects changed at exactly that second. Unknown query parameters
//!   are ignored (so `changedSince` on `/project` silently returns everything, as the spec has
//!   no such parameter there). `isInactive` defaults to `false` on `/customer`.
//! * Nested objects render as `{id, url}` unless sub-fields are asked for (`customer(name)`);
//!   `changes` only when asked for. `url`s have no scheme, like Tripletex's `tripletex.no/v2/..`.
//! * The budget is 1000 requests per 60 s per (consumer, employee token); `:create` and
//!   `GET /event` are not counted. Past it, 429 `{status: 429, code: 0, ...}` with the headers.
//! * Webhook `targetUrl` must be `https`, except `http` to a loopback host. Each event is one
//!   attempt per active subscription of the company; 10 failed attempts in a row set the
//!   subscription to `DISABLED_TOO_MANY_ERRORS`. Deletes send `value: null`.
//! * Only reads of customers, projects and employees are served; their writes (POST/PUT/DELETE)
//!   answer 405 — changes are made "by a Tripletex user" through [`TripletexControl`].

mod api;
mod deliver;
mod seed;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, NaiveDateTime, Utc};

use crate::Seed;
use crate::common::{Faults, lock, random_string};

pub(crate) use api::router;

/// Consumer token the demo seed registers (Hourbridge's integration).
pub(crate) const DEMO_CONSUMER_TOKEN: &str = "test-hourbridge-consumer-token-0001";
/// Employee token of Fjordtech's administrator, with all entitlements.
pub(crate) const DEMO_EMPLOYEE_TOKEN: &str = "test-fjordtech-employee-token-0001";
/// Employee token without entitlements: authenticated calls answer 403.
pub(crate) const DEMO_LIMITED_EMPLOYEE_TOKEN: &str = "test-fjordtech-limited-token-0002";
/// Id of the company (Fjordtech AS with the demo seed).
pub(crate) const COMPANY_ID: u64 = 1_002_345;
/// The employee the demo employee token belongs to.
pub(crate) const DEMO_EMPLOYEE_ID: u64 = 1_170_452;

/// Failed deliveries in a row after which a subscription is `DISABLED_TOO_MANY_ERRORS`.
const MAX_FAILURES: u32 = 10;

/// Status of an event subscription, as Tripletex names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionStatus {
    /// Delivering.
    Active,
    /// Turned off by the user.
    Disabled,
    /// Turned off by Tripletex after failing deliveries.
    DisabledTooManyErrors,
    /// Turned off by Tripletex for exceeding the rate limit.
    DisabledRateLimitExceeded,
    /// Turned off by Tripletex for misuse.
    DisabledMisuse,
}

impl SubscriptionStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Disabled => "DISABLED",
            Self::DisabledTooManyErrors => "DISABLED_TOO_MANY_ERRORS",
            Self::DisabledRateLimitExceeded => "DISABLED_RATE_LIMIT_EXCEEDED",
            Self::DisabledMisuse => "DISABLED_MISUSE",
        }
    }

    pub(crate) fn parse(v: &str) -> Option<Self> {
        [
            Self::Active,
            Self::Disabled,
            Self::DisabledTooManyErrors,
            Self::DisabledRateLimitExceeded,
            Self::DisabledMisuse,
        ]
        .into_iter()
        .find(|s| s.as_str() == v)
    }
}

/// One entry of an object's `changes`.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) employee: u64,
    pub(crate) at: DateTime<Utc>,
    pub(crate) kind: &'static str,
}

#[derive(Debug, Clone)]
pub(crate) struct EmployeeToken {
    pub(crate) id: u64,
    pub(crate) employee: u64,
    pub(crate) entitled: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) consumer_id: u64,
    pub(crate) employee_token: String,
    pub(crate) expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct Employee {
    pub(crate) id: u64,
    pub(crate) first_name: String,
    pub(crate) last_name: String,
    pub(crate) email: String,
    pub(crate) number: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Customer {
    pub(crate) id: u64,
    pub(crate) version: u32,
    pub(crate) name: String,
    pub(crate) organization_number: String,
    pub(crate) customer_number: u32,
    pub(crate) email: String,
    pub(crate) is_inactive: bool,
    pub(crate) is_private: bool,
    pub(crate) account_manager: Option<u64>,
    pub(crate) changes: Vec<Change>,
}

#[derive(Debug, Clone)]
pub(crate) struct Project {
    pub(crate) id: u64,
    pub(crate) version: u32,
    pub(crate) name: String,
    pub(crate) number: String,
    pub(crate) description: String,
    pub(crate) manager: u64,
    pub(crate) main_project: Option<u64>,
    pub(crate) customer: Option<u64>,
    pub(crate) start_date: NaiveDate,
    pub(crate) end_date: Option<NaiveDate>,
    pub(crate) is_closed: bool,
    pub(crate) closed_at: Option<DateTime<Utc>>,
    pub(crate) is_internal: bool,
    pub(crate) changes: Vec<Change>,
}

#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub(crate) id: u64,
    pub(crate) version: u32,
    /// Employee token that created it.
    pub(crate) owner: String,
    pub(crate) event: String,
    pub(crate) target_url: String,
    pub(crate) fields: String,
    pub(crate) auth_header: Option<(String, String)>,
    pub(crate) secret: Option<String>,
    pub(crate) status: SubscriptionStatus,
    pub(crate) failures_in_a_row: u32,
}

/// A webhook delivery (or a lost one), as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TripletexDelivery {
    /// Subscription it was for.
    pub subscription_id: u64,
    /// `customer.update` etc.
    pub event: String,
    /// Id of the object the event is about.
    pub object_id: u64,
    /// The `idempotency-key` header (the same on a duplicate).
    pub idempotency_key: String,
    /// The exact body.
    pub body: String,
    /// Whether this was a duplicate sent by [`TripletexControl::deliver_duplicates`].
    pub duplicate: bool,
    /// Whether it was dropped by [`TripletexControl::lose_next_deliveries`] (never sent).
    pub lost: bool,
    /// HTTP status the target answered; `None` when lost or unreachable.
    pub status: Option<u16>,
}

/// A subscription, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TripletexSubscription {
    /// Id.
    pub id: u64,
    /// Event, e.g. `project.update`.
    pub event: String,
    /// Where callbacks go.
    pub target_url: String,
    /// `fields` filter of the callback `value`.
    pub fields: String,
    /// Status.
    pub status: SubscriptionStatus,
    /// Whether an HMAC secret was given.
    pub signed: bool,
}

/// A customer, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TripletexCustomer {
    /// Id.
    pub id: u64,
    /// Version (bumped on each change).
    pub version: u32,
    /// Name.
    pub name: String,
    /// Organisation number (may be empty).
    pub organization_number: String,
    /// Customer number.
    pub customer_number: u32,
    /// Inactive.
    pub is_inactive: bool,
}

/// A project, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TripletexProject {
    /// Id.
    pub id: u64,
    /// Version (bumped on each change).
    pub version: u32,
    /// Name.
    pub name: String,
    /// Number (a string in Tripletex).
    pub number: String,
    /// Parent project.
    pub main_project: Option<u64>,
    /// Customer.
    pub customer: Option<u64>,
    /// Closed.
    pub is_closed: bool,
}

/// Fixed-window budget that also reports what `X-Rate-Limit-*` need.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u32,
    per: Duration,
    windows: HashMap<String, (Instant, u32)>,
}

/// `(limit, remaining, reset seconds)`.
pub(crate) type RateInfo = (u32, u32, u64);

impl Budget {
    fn new(limit: u32, per: Duration) -> Self {
        Budget {
            limit,
            per,
            windows: HashMap::new(),
        }
    }

    /// Counts one request; `Err` carries the headers of a 429.
    pub(crate) fn check(&mut self, key: &str, now: Instant) -> Result<RateInfo, RateInfo> {
        let per = self.per;
        let w = self.windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(w.0) >= per {
            *w = (now, 0);
        }
        let left = per.saturating_sub(now.duration_since(w.0));
        let reset = (left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1);
        if w.1 >= self.limit {
            return Err((self.limit, 0, reset));
        }
        w.1 += 1;
        Ok((self.limit, self.limit - w.1, reset))
    }
}

/// Everything the Tripletex emulation knows.
#[derive(Debug)]
pub(crate) struct TripletexState {
    pub(crate) origin: String,
    pub(crate) faults: Faults,
    pub(crate) budget: Budget,
    pub(crate) requests: u64,
    pub(crate) writes: u64,
    pub(crate) company_name: String,
    pub(crate) company_org: String,
    /// Consumer token → id.
    pub(crate) consumers: BTreeMap<String, u64>,
    pub(crate) employee_tokens: BTreeMap<String, EmployeeToken>,
    pub(crate) sessions: BTreeMap<String, Session>,
    pub(crate) employees: BTreeMap<u64, Employee>,
    pub(crate) customers: BTreeMap<u64, Customer>,
    pub(crate) projects: BTreeMap<u64, Project>,
    pub(crate) subscriptions: BTreeMap<u64, Subscription>,
    pub(crate) deliveries: Vec<TripletexDelivery>,
    pub(crate) duplicates: u32,
    pub(crate) lose: u32,
    next_id: u64,
}

impl TripletexState {
    fn new(seed: Seed) -> Self {
        let mut s = TripletexState {
            origin: String::new(),
            faults: Faults::default(),
            budget: Budget::new(1000, Duration::from_secs(60)),
            requests: 0,
            writes: 0,
            company_name: "Fjordtech AS".into(),
            company_org: "923456789".into(),
            consumers: BTreeMap::new(),
            employee_tokens: BTreeMap::new(),
            sessions: BTreeMap::new(),
            employees: BTreeMap::new(),
            customers: BTreeMap::new(),
            projects: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            deliveries: Vec::new(),
            duplicates: 0,
            lose: 0,
            next_id: 40_100,
        };
        s.employees.insert(
            DEMO_EMPLOYEE_ID,
            Employee {
                id: DEMO_EMPLOYEE_ID,
                first_name: "Kari".into(),
                last_name: "Nordmann".into(),
                email: "kari@fjordtech.example".into(),
                number: "1".into(),
            },
        );
        if seed == Seed::Demo {
            seed::demo(&mut s);
        }
        s
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn next_in<T>(map: &BTreeMap<u64, T>, first: u64) -> u64 {
        map.keys().next_back().map_or(first, |k| k + 1).max(first)
    }

    pub(crate) fn insert_customer(&mut self, name: &str, org: &str, at: DateTime<Utc>) -> u64 {
        let customer_number = self
            .customers
            .values()
            .map(|c| c.customer_number)
            .max()
            .unwrap_or(10_026)
            + 1;
        self.insert_customer_numbered(name, org, customer_number, at)
    }

    fn insert_customer_numbered(
        &mut self,
        name: &str,
        org: &str,
        customer_number: u32,
        at: DateTime<Utc>,
    ) -> u64 {
        let id = Self::next_in(&self.customers, 18_800_341);
        self.customers.insert(
            id,
            Customer {
                id,
                version: 0,
                name: name.to_owned(),
                organization_number: org.to_owned(),
                customer_number,
                email: String::new(),
                is_inactive: false,
                is_private: false,
                account_manager: Some(DEMO_EMPLOYEE_ID),
                changes: vec![Change {
                    employee: DEMO_EMPLOYEE_ID,
                    at,
                    kind: "CREATE",
                }],
            },
        );
        id
    }

    pub(crate) fn insert_project(
        &mut self,
        name: &str,
        number: Option<&str>,
        customer: Option<u64>,
        main_project: Option<u64>,
        at: DateTime<Utc>,
    ) -> Option<u64> {
        if customer.is_some_and(|c| !self.customers.contains_key(&c))
            || main_project.is_some_and(|p| !self.projects.contains_key(&p))
        {
            return None;
        }
        let id = Self::next_in(&self.projects, 31_200_587);
        let number = match number {
            Some(n) => n.to_owned(),
            None => {
                let max = self
                    .projects
                    .values()
                    .filter_map(|p| p.number.parse::<u64>().ok())
                    .max()
                    .unwrap_or(999);
                (max + 1).to_string()
            }
        };
        self.projects.insert(
            id,
            Project {
                id,
                version: 0,
                name: name.to_owned(),
                number,
                description: String::new(),
                manager: DEMO_EMPLOYEE_ID,
                main_project,
                customer,
                start_date: oslo_today(at),
                end_date: None,
                is_closed: false,
                closed_at: None,
                is_internal: customer.is_none(),
                changes: vec![Change {
                    employee: DEMO_EMPLOYEE_ID,
                    at,
                    kind: "CREATE",
                }],
            },
        );
        Some(id)
    }

    /// The session a Basic password names, if it is still valid.
    pub(crate) fn session(&self, token: &str, now: DateTime<Utc>) -> Option<&Session> {
        let s = self.sessions.get(token)?;
        (now < s.expires_at
            && self.employee_tokens.contains_key(&s.employee_token)
            && self.consumers.values().any(|&c| c == s.consumer_id))
        .then_some(s)
    }

    /// Depth below the top (0 for a main project).
    pub(crate) fn hierarchy_level(&self, id: u64) -> u32 {
        let mut level = 0;
        let mut cur = self.projects.get(&id).and_then(|p| p.main_project);
        while let Some(p) = cur {
            level += 1;
            if level > 100 {
                break;
            }
            cur = self.projects.get(&p).and_then(|p| p.main_project);
        }
        level
    }
}

/// Whether `t` is in Central European Summer Time (last Sunday of March 01:00 UTC to last
/// Sunday of October 01:00 UTC), the rule Norway follows.
fn oslo_is_dst(t: DateTime<Utc>) -> bool {
    let year = t.year();
    let last_sunday = |month: u32| {
        let first_next = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)
        }
        .unwrap_or_default();
        let mut d = first_next.pred_opt().unwrap_or_default();
        while d.weekday() != chrono::Weekday::Sun {
            d = d.pred_opt().unwrap_or_default();
        }
        d.and_hms_opt(1, 0, 0).unwrap_or_default().and_utc()
    };
    t >= last_sunday(3) && t < last_sunday(10)
}

/// Europe/Oslo's UTC offset at `t`.
pub(crate) fn oslo_offset(t: DateTime<Utc>) -> ChronoDuration {
    ChronoDuration::hours(if oslo_is_dst(t) { 2 } else { 1 })
}

/// Oslo wall-clock time of `t`.
pub(crate) fn oslo_local(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc() + oslo_offset(t)
}

/// Today's date in Oslo at `t`.
pub(crate) fn oslo_today(t: DateTime<Utc>) -> NaiveDate {
    oslo_local(t).date()
}

/// The UTC instant of an Oslo wall-clock time (the earlier one when ambiguous).
pub(crate) fn from_oslo(local: NaiveDateTime) -> DateTime<Utc> {
    let summer = (local - ChronoDuration::hours(2)).and_utc();
    if oslo_is_dst(summer) {
        summer
    } else {
        (local - ChronoDuration::hours(1)).and_utc()
    }
}

/// When a session with this `expirationDate` stops working: midnight Oslo at its end.
pub(crate) fn session_end(expiration: NaiveDate) -> DateTime<Utc> {
    let next = expiration.succ_opt().unwrap_or(expiration);
    from_oslo(next.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// HMAC-SHA512 (RFC 2104) of `data` under `key`.
pub(crate) fn hmac_sha512(key: &[u8], data: &[u8]) -> [u8; 64] {
    use sha2::{Digest, Sha512};
    const BLOCK: usize = 128;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..64].copy_from_slice(&Sha512::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.map(|x| x ^ b);
    let inner = Sha512::new()
        .chain_update(pad(0x36))
        .chain_update(data)
        .finalize();
    Sha512::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Handle to the Tripletex emulation: tokens, customers and projects changed as a Tripletex
/// user would (each change bumps `version` and emits events), webhook faults, budgets.
/// Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct TripletexControl {
    inner: Arc<Mutex<TripletexState>>,
    pending: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for TripletexControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TripletexControl").finish_non_exhaustive()
    }
}

impl TripletexControl {
    pub(crate) fn new(seed: Seed) -> Self {
        TripletexControl {
            inner: Arc::new(Mutex::new(TripletexState::new(seed))),
            pending: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut TripletexState) -> R) -> R {
        f(&mut lock(&self.inner))
    }

    pub(crate) fn set_origin(&self, origin: &str) {
        self.with(|s| s.origin = origin.to_owned());
    }

    /// Id of the company (1002345, with either seed).
    pub fn company_id(&self) -> u64 {
        COMPANY_ID
    }

    /// Registers a consumer token (what Tripletex issues to an integrator); answers its id.
    pub fn register_consumer_token(&self, token: &str) -> u64 {
        self.with(|s| {
            if let Some(&id) = s.consumers.get(token) {
                return id;
            }
            let id = 3_300 + s.consumers.len() as u64 + 1;
            s.consumers.insert(token.to_owned(), id);
            id
        })
    }

    /// Registers an employee token for `employee_id` (created if unknown, as "Employee N").
    /// `entitled: false` makes every authenticated call with its sessions answer 403.
    pub fn register_employee_token(&self, token: &str, employee_id: u64, entitled: bool) -> u64 {
        self.with(|s| {
            s.employees.entry(employee_id).or_insert_with(|| Employee {
                id: employee_id,
                first_name: "Employee".into(),
                last_name: employee_id.to_string(),
                email: format!("employee{employee_id}@fjordtech.example"),
                number: employee_id.to_string(),
            });
            let id = s.next_id();
            s.employee_tokens.insert(
                token.to_owned(),
                EmployeeToken {
                    id,
                    employee: employee_id,
                    entitled,
                },
            );
            id
        })
    }

    /// Revokes an employee token: its sessions answer 401 from now on. Answers whether it
    /// existed.
    pub fn revoke_employee_token(&self, token: &str) -> bool {
        self.with(|s| s.employee_tokens.remove(token).is_some())
    }

    /// Creates a session as `:create` would, bypassing HTTP; `None` for unknown tokens.
    pub fn create_session(
        &self,
        consumer_token: &str,
        employee_token: &str,
        expiration: NaiveDate,
    ) -> Option<String> {
        self.with(|s| api::new_session(s, consumer_token, employee_token, expiration))
            .map(|(token, _)| token)
    }

    /// Makes every session issued so far expired, as if their `expirationDate` had passed.
    pub fn expire_sessions(&self) {
        let past = Utc::now() - ChronoDuration::seconds(1);
        self.with(|s| s.sessions.values_mut().for_each(|x| x.expires_at = past));
    }

    /// Sessions issued (and not deleted) so far, expired ones included.
    pub fn session_count(&self) -> usize {
        self.with(|s| s.sessions.len())
    }

    /// Replaces the budget per (consumer, employee token) and resets all windows.
    pub fn set_rate_limit(&self, requests: u32, per: Duration) {
        self.with(|s| s.budget = Budget::new(requests, per));
    }

    /// The next `n` authenticated requests answer `status` in the error shape.
    pub fn fail_next(&self, n: u32, status: u16) {
        self.with(|s| s.faults.fail_next(n, status));
    }

    /// Sleeps this long before answering each request.
    pub fn set_latency(&self, latency: Duration) {
        self.with(|s| s.faults.latency = latency);
    }

    /// Requests received under `/tripletex/v2`, whatever they answered.
    pub fn request_count(&self) -> u64 {
        self.with(|s| s.requests)
    }

    /// Successful API writes (session create/delete, subscription create/update/delete).
    pub fn write_count(&self) -> u64 {
        self.with(|s| s.writes)
    }

    /// Adds an active customer (version 0, account manager Kari) and emits `customer.create`.
    pub fn add_customer(&self, name: &str, organization_number: &str) -> u64 {
        let id = self.with(|s| s.insert_customer(name, organization_number, Utc::now()));
        self.emit("customer.create", id);
        id
    }

    fn change_customer(&self, id: u64, f: impl FnOnce(&mut Customer)) -> bool {
        let ok = self.with(|s| {
            let Some(c) = s.customers.get_mut(&id) else {
                return false;
            };
            f(c);
            c.version += 1;
            c.changes.push(Change {
                employee: DEMO_EMPLOYEE_ID,
                at: Utc::now(),
                kind: "UPDATE",
            });
            true
        });
        if ok {
            self.emit("customer.update", id);
        }
        ok
    }

    /// Renames a customer (version bump, `customer.update`). Answers whether it exists.
    pub fn rename_customer(&self, id: u64, name: &str) -> bool {
        self.change_customer(id, |c| c.name = name.to_owned())
    }

    /// Sets a customer's organisation number (version bump, `customer.update`).
    pub fn set_customer_organization_number(&self, id: u64, org: &str) -> bool {
        self.change_customer(id, |c| c.organization_number = org.to_owned())
    }

    /// Marks a customer inactive or active again (version bump, `customer.update`).
    pub fn set_customer_inactive(&self, id: u64, inactive: bool) -> bool {
        self.change_customer(id, |c| c.is_inactive = inactive)
    }

    /// Deletes a customer and emits `customer.delete`. Refused (`false`) when it does not
    /// exist or a project still references it.
    pub fn delete_customer(&self, id: u64) -> bool {
        let ok = self.with(|s| {
            if s.projects.values().any(|p| p.customer == Some(id)) {
                return false;
            }
            s.customers.remove(&id).is_some()
        });
        if ok {
            self.emit("customer.delete", id);
        }
        ok
    }

    /// Adds an open project (number auto-generated when `None`, internal when it has no
    /// customer) under `main_project` if given, and emits `project.create`. `None` when the
    /// customer or main project does not exist.
    pub fn add_project(
        &self,
        name: &str,
        number: Option<&str>,
        customer: Option<u64>,
        main_project: Option<u64>,
    ) -> Option<u64> {
        let id =
            self.with(|s| s.insert_project(name, number, customer, main_project, Utc::now()))?;
        self.emit("project.create", id);
        Some(id)
    }

    /// Adds `n` active customers in one go, for benchmarks, without webhook events (so only
    /// before anything subscribes): "Kunde {16 hex digits} AS", names far apart so none is
    /// similar to another, with distinct organisation numbers from 800000000 up. Answers their
    /// ids in order.
    pub fn bulk_customers(&self, n: usize) -> Vec<u64> {
        let now = Utc::now();
        self.with(|s| {
            let first = s.customers.len() as u64;
            let number = s
                .customers
                .values()
                .map(|c| c.customer_number)
                .max()
                .unwrap_or(10_026);
            (first..first + n as u64)
                .map(|k| {
                    let name = format!("Kunde {:016x} AS", bulk_mix(k));
                    let org = (800_000_000 + k).to_string();
                    let number = number + 1 + (k - first) as u32;
                    s.insert_customer_numbered(&name, &org, number, now)
                })
                .collect()
        })
    }

    /// Adds `n` open projects in one go, for benchmarks, without webhook events: "Prosjekt
    /// {16 hex digits}", numbered from 100000 up, the i-th for `customers[i % len]` (internal
    /// when `customers` is empty; unknown customers are skipped). Answers their ids in order.
    pub fn bulk_projects(&self, n: usize, customers: &[u64]) -> Vec<u64> {
        let now = Utc::now();
        self.with(|s| {
            let first = s.projects.len() as u64;
            (first..first + n as u64)
                .filter_map(|k| {
                    let i = (k - first) as usize;
                    let customer = (!customers.is_empty()).then(|| customers[i % customers.len()]);
                    let name = format!("Prosjekt {:016x}", bulk_mix(k ^ 0x5eed));
                    let number = (100_000 + k).to_string();
                    s.insert_project(&name, Some(&number), customer, None, now)
                })
                .collect()
        })
    }

    fn change_project(&self, id: u64, f: impl FnOnce(&mut Project)) -> bool {
        let ok = self.with(|s| {
            let Some(p) = s.projects.get_mut(&id) else {
                return false;
            };
            f(p);
            p.version += 1;
            p.changes.push(Change {
                employee: DEMO_EMPLOYEE_ID,
                at: Utc::now(),
                kind: "UPDATE",
            });
            true
        });
        if ok {
            self.emit("project.update", id);
        }
        ok
    }

    /// Renames a project (version bump, `project.update`).
    pub fn rename_project(&self, id: u64, name: &str) -> bool {
        self.change_project(id, |p| p.name = name.to_owned())
    }

    /// Closes or reopens a project (version bump, `project.update`).
    pub fn set_project_closed(&self, id: u64, closed: bool) -> bool {
        self.change_project(id, |p| {
            p.is_closed = closed;
            p.closed_at = closed.then(Utc::now);
        })
    }

    /// Moves a project under another main project (or to the top with `None`). Refused when
    /// either does not exist or the move would make a cycle.
    pub fn set_main_project(&self, id: u64, main_project: Option<u64>) -> bool {
        let allowed = self.with(|s| {
            if !s.projects.contains_key(&id) {
                return false;
            }
            let mut cur = main_project;
            while let Some(p) = cur {
                if p == id {
                    return false;
                }
                match s.projects.get(&p) {
                    Some(x) => cur = x.main_project,
                    None => return false,
                }
            }
            true
        });
        allowed && self.change_project(id, |p| p.main_project = main_project)
    }

    /// Sets a project's customer (version bump, `project.update`).
    pub fn set_project_customer(&self, id: u64, customer: Option<u64>) -> bool {
        let known = customer.is_none_or(|c| self.with(|s| s.customers.contains_key(&c)));
        known && self.change_project(id, |p| p.customer = customer)
    }

    /// Deletes a project and emits `project.delete`; refused while it has sub-projects.
    pub fn delete_project(&self, id: u64) -> bool {
        let ok = self.with(|s| {
            if s.projects.values().any(|p| p.main_project == Some(id)) {
                return false;
            }
            s.projects.remove(&id).is_some()
        });
        if ok {
            self.emit("project.delete", id);
        }
        ok
    }

    /// A customer's current state.
    pub fn customer(&self, id: u64) -> Option<TripletexCustomer> {
        self.with(|s| {
            s.customers.get(&id).map(|c| TripletexCustomer {
                id: c.id,
                version: c.version,
                name: c.name.clone(),
                organization_number: c.organization_number.clone(),
                customer_number: c.customer_number,
                is_inactive: c.is_inactive,
            })
        })
    }

    /// A project's current state.
    pub fn project(&self, id: u64) -> Option<TripletexProject> {
        self.with(|s| {
            s.projects.get(&id).map(|p| TripletexProject {
                id: p.id,
                version: p.version,
                name: p.name.clone(),
                number: p.number.clone(),
                main_project: p.main_project,
                customer: p.customer,
                is_closed: p.is_closed,
            })
        })
    }

    /// Ids of the customers named exactly `name` (there may be several).
    pub fn find_customers(&self, name: &str) -> Vec<u64> {
        self.with(|s| {
            s.customers
                .values()
                .filter(|c| c.name == name)
                .map(|c| c.id)
                .collect()
        })
    }

    /// Id of the project named exactly `name`.
    pub fn find_project(&self, name: &str) -> Option<u64> {
        self.with(|s| s.projects.values().find(|p| p.name == name).map(|p| p.id))
    }

    /// Every subscription of the company.
    pub fn subscriptions(&self) -> Vec<TripletexSubscription> {
        self.with(|s| {
            s.subscriptions
                .values()
                .map(|x| TripletexSubscription {
                    id: x.id,
                    event: x.event.clone(),
                    target_url: x.target_url.clone(),
                    fields: x.fields.clone(),
                    status: x.status,
                    signed: x.secret.is_some(),
                })
                .collect()
        })
    }

    /// Sets a subscription's status (as Tripletex does when it disables one). Answers whether
    /// it exists.
    pub fn set_subscription_status(&self, id: u64, status: SubscriptionStatus) -> bool {
        self.with(|s| {
            s.subscriptions
                .get_mut(&id)
                .map(|x| {
                    x.status = status;
                    x.version += 1;
                })
                .is_some()
        })
    }

    /// `set_subscription_status(id, DisabledTooManyErrors)`.
    pub fn disable_subscription(&self, id: u64) -> bool {
        self.set_subscription_status(id, SubscriptionStatus::DisabledTooManyErrors)
    }

    /// The next `n` deliveries are each sent twice with the same `idempotency-key` and body.
    pub fn deliver_duplicates(&self, n: u32) {
        self.with(|s| s.duplicates = n);
    }

    /// The next `n` deliveries are dropped (recorded with `lost: true`, never sent).
    pub fn lose_next_deliveries(&self, n: u32) {
        self.with(|s| s.lose = n);
    }

    /// Every delivery so far (lost and duplicate ones included), oldest first.
    pub fn deliveries(&self) -> Vec<TripletexDelivery> {
        self.with(|s| s.deliveries.clone())
    }

    /// Waits until every delivery started so far has finished.
    pub async fn flush_deliveries(&self) {
        loop {
            let batch: Vec<_> = std::mem::take(&mut *lock(&self.pending));
            if batch.is_empty() {
                return;
            }
            for task in batch {
                let _ = task.await;
            }
        }
    }

    /// Queues callbacks of `event` about `id` to every active subscription of it.
    fn emit(&self, event: &str, id: u64) {
        let jobs = self.with(|s| deliver::prepare(s, event, id));
        if jobs.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("tripletex sandbox: no Tokio runtime, webhook events dropped");
            return;
        };
        let me = self.clone();
        let task = rt.spawn(async move {
            for job in jobs {
                let status = if job.lost {
                    None
                } else {
                    deliver::post(&job).await
                };
                me.with(|s| deliver::record(s, &job, status));
            }
        });
        lock(&self.pending).push(task);
    }

    pub(crate) fn mint_session_token(id: u64) -> String {
        use base64::Engine;
        let head = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{{\"tokenId\":{id},\"token\":\"sandbox\"}}"));
        format!("{head}-{}", random_string(32))
    }
}

/// SplitMix64: spreads bulk record numbers into unrelated-looking names.
fn bulk_mix(k: u64) -> u64 {
    let mut z = k.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oslo_midnight_follows_summer_time() {
        let winter = session_end(NaiveDate::from_ymd_opt(2026, 1, 10).unwrap());
        assert_eq!(winter.to_rfc3339(), "2026-01-10T23:00:00+00:00");
        let summer = session_end(NaiveDate::from_ymd_opt(2026, 7, 10).unwrap());
        assert_eq!(summer.to_rfc3339(), "2026-07-10T22:00:00+00:00");
        // The night summer time starts (Sunday 29 March 2026) and ends (25 October 2026).
        let start = session_end(NaiveDate::from_ymd_opt(2026, 3, 28).unwrap());
        assert_eq!(start.to_rfc3339(), "2026-03-28T23:00:00+00:00");
        let end = session_end(NaiveDate::from_ymd_opt(2026, 10, 24).unwrap());
        assert_eq!(end.to_rfc3339(), "2026-10-24T22:00:00+00:00");
    }

    #[test]
    fn hmac_sha512_matches_rfc_4231() {
        // RFC 4231 test case 2.
        let mac = hmac_sha512(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            hex.starts_with("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554")
        );
    }
}

//! Plumbing both emulations share: query parsing, fault injection, rate windows, timestamps.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Response, StatusCode, Uri, header};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Serialize, Serializer};

use crate::oauth::OAuth;

/// Locks a state mutex; a panic in another request must not turn the whole sandbox into a
/// stream of poison errors, so the inner value is taken as is.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A random alphanumeric string (tokens, authorization codes).
pub(crate) fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// `now + d`, saturating instead of panicking for absurd durations such as `Duration::MAX`.
pub(crate) fn instant_after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// Decoded query-string pairs in request order. Repeated keys are kept, because Hubstaff's
/// Rails-style arrays (`project_ids[]=1&project_ids[]=2`) rely on them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn from_uri(uri: &Uri) -> Self {
        Self::parse(uri.query().unwrap_or(""))
    }

    pub(crate) fn parse(raw: &str) -> Self {
        Params(
            url::form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The last value of `key` (what Rails and most servers do with a repeated scalar).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub(crate) fn into_map(self) -> HashMap<String, String> {
        self.0.into_iter().collect()
    }
}

/// Parses `true`/`false` the way Rails does for query flags.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

pub(crate) fn parse_date(v: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()
}

/// ISO 8601 datetime as clients send it for `updated_since`: RFC 3339, a zone-less datetime
/// (taken as UTC) or a bare date (midnight UTC).
pub(crate) fn parse_datetime(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            return Some(t.and_utc());
        }
    }
    parse_date(v)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Harvest's timestamp format: whole seconds, `Z`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SecondsTs(pub DateTime<Utc>);

impl Serialize for SecondsTs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Hand-rolled rather than chrono's `format`: std's integer formatting stays fast in
        // debug builds, which matters when a page carries 2,000 entries.
        let (d, t) = (self.0.date_naive(), self.0.time());
        s.collect_str(&format_args!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            d.year(),
            d.month(),
            d.day(),
            t.hour(),
            t.minute(),
            t.second()
        ))
    }
}

/// A `YYYY-MM-DD` date, formatted like [`SecondsTs`] for the same reason.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Day(pub NaiveDate);

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        s.collect_str(&format_args!(
            "{:04}-{:02}-{:02}",
            d.year(),
            d.month(),
            d.day()
        ))
    }
}

/// Hubstaff's timestamp format: microseconds, `Z`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MicrosTs(pub DateTime<Utc>);

impl Serialize for MicrosTs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (d, t) = (self.0.date_naive(), self.0.time());
        s.collect_str(&format_args!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            d.year(),
            d.month(),
            d.day(),
            t.hour(),
            t.minute(),
            t.second(),
            // A leap second shows up as nanosecond >= 1e9; clamp it into the same second.
            (t.nanosecond() / 1000).min(999_999)
        ))
    }
}

/// A new `updated_at` that is strictly later than the previous one, so every mutation is
/// visible to `updated_since` filters even when two happen within one clock tick.
pub(crate) fn bump(previous: DateTime<Utc>) -> DateTime<Utc> {
    Utc::now().max(previous + chrono::Duration::microseconds(1))
}

/// `scheme://host` as the client addressed us, so absolute links work through any hostname
/// (Docker, another interface); falls back to the address we bound.
pub(crate) fn external_origin(headers: &HeaderMap, fallback: &str) -> String {
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) if !host.is_empty() => format!("http://{host}"),
        _ => fallback.to_owned(),
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Builds a JSON response. Serialization of our own structs cannot fail in practice; if it
/// ever does, the client sees a 500 rather than the sandbox panicking.
pub(crate) fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response<Body> {
    match serde_json::to_vec(body) {
        Ok(bytes) => Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(Body::from(bytes))
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "response build failed")),
        Err(e) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("serialization failed: {e}"),
        ),
    }
}

/// A response from JSON text the caller already wrote.
pub(crate) fn raw_json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

pub(crate) fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(text.to_owned()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `302 Found` to `location` (the OAuth redirect back to the client).
pub(crate) fn found(location: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        .body(Body::empty())
        .unwrap_or_else(|_| {
            plain(
                StatusCode::BAD_REQUEST,
                "redirect_uri cannot be used in a Location header",
            )
        })
}

pub(crate) fn with_retry_after(mut r: Response<Body>, secs: u64) -> Response<Body> {
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    r
}

/// Cuts a successful body in half (keeping status and headers), which is never valid JSON
/// for an object or array: what a proxy that drops the connection mid-body looks like.
pub(crate) async fn truncate_body(resp: Response<Body>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let truncated = bytes.slice(..bytes.len() / 2);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(truncated))
}

/// Faults queued by a test through a control handle.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    fail: u32,
    fail_status: u16,
    limited: u32,
    retry_after: u64,
    malformed: u32,
    pub(crate) latency: Duration,
    oauth_fail: u32,
    oauth_fail_status: u16,
}

/// A fault to answer instead of serving the request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Injected {
    Fail(StatusCode),
    RateLimited(u64),
}

fn status_or_500(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl Faults {
    pub(crate) fn fail_next(&mut self, n: u32, status: u16) {
        self.fail = n;
        self.fail_status = status;
    }

    pub(crate) fn rate_limit_next(&mut self, n: u32, retry_after: u64) {
        self.limited = n;
        self.retry_after = retry_after;
    }

    pub(crate) fn malformed_next(&mut self, n: u32) {
        self.malformed = n;
    }

    pub(crate) fn fail_next_oauth(&mut self, n: u32, status: u16) {
        self.oauth_fail = n;
        self.oauth_fail_status = status;
    }

    /// Takes one queued failure; plain failures are served before queued 429s.
    pub(crate) fn take_injected(&mut self) -> Option<Injected> {
        if self.fail > 0 {
            self.fail -= 1;
            return Some(Injected::Fail(status_or_500(self.fail_status)));
        }
        if self.limited > 0 {
            self.limited -= 1;
            return Some(Injected::RateLimited(self.retry_after));
        }
        None
    }

    pub(crate) fn take_malformed(&mut self) -> bool {
        let hit = self.malformed > 0;
        self.malformed = self.malformed.saturating_sub(1);
        hit
    }

    pub(crate) fn take_oauth_failure(&mut self) -> Option<StatusCode> {
        (self.oauth_fail > 0).then(|| {
            self.oauth_fail -= 1;
            status_or_500(self.oauth_fail_status)
        })
    }
}

/// Fixed-window request budget per key (access token for Harvest, OAuth client for Hubstaff).
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: u32,
    per: Duration,
    windows: HashMap<String, (Instant, u32)>,
}

impl RateLimiter {
    pub(crate) fn new(limit: u32, per: Duration) -> Self {
        RateLimiter {
            limit,
            per,
            windows: HashMap::new(),
        }
    }

    pub(crate) fn configure(&mut self, limit: u32, per: Duration) {
        self.limit = limit;
        self.per = per;
        self.windows.clear();
    }

    /// Counts one request for `key`; past the limit, answers the whole seconds until the
    /// window resets (at least 1, since `Retry-After: 0` invites a hot retry loop).
    pub(crate) fn check(&mut self, key: &str, now: Instant) -> Result<(), u64> {
        let per = self.per;
        let window = self.windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(window.0) >= per {
            *window = (now, 0);
        }
        if window.1 >= self.limit {
            let left = instant_after(window.0, per).saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            return Err(secs.max(1));
        }
        window.1 += 1;
        Ok(())
    }
}

/// State every provider emulation carries besides its data.
#[derive(Debug)]
pub(crate) struct Common {
    pub(crate) oauth: OAuth,
    pub(crate) faults: Faults,
    pub(crate) limiter: RateLimiter,
    pub(crate) requests: u64,
    pub(crate) token_requests: u64,
    /// `http://127.0.0.1:PORT`, for links when a request carries no `Host`.
    pub(crate) origin: String,
}

impl Common {
    pub(crate) fn new(oauth: OAuth, limiter: RateLimiter) -> Self {
        Common {
            oauth,
            faults: Faults::default(),
            limiter,
            requests: 0,
            token_requests: 0,
            origin: String::new(),
        }
    }
}

/// Generates the control-handle methods both providers share. Each control type must have
/// `fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R` and a `common: Common` field
/// in its state.
macro_rules! common_control_methods {
    ($provider:literal, $ttl_default:literal, $limit_default:literal) => {
        #[doc = concat!("Registers an OAuth application (what the ", $provider, " admin created in the developer settings). Re-registering an id replaces its secret.")]
        pub fn register_client(&self, client_id: &str, client_secret: &str) {
            self.with(|s| s.common.oauth.register(client_id, client_secret));
        }

        #[doc = concat!("Lifetime of access tokens issued from now on (default ", $ttl_default, "). `Duration::ZERO` issues tokens that are already expired.")]
        pub fn set_access_token_ttl(&self, ttl: std::time::Duration) {
            self.with(|s| s.common.oauth.ttl = ttl);
        }

        /// Makes every access token issued so far expired (refresh tokens stay valid), as if
        /// the sync ran after the tokens' lifetime.
        pub fn expire_all_access_tokens(&self) {
            self.with(|s| s.common.oauth.expire_all());
        }

        /// Invalidates every access and refresh token, as if the admin revoked the app: API
        /// calls answer 401 and refreshes answer `invalid_grant`.
        pub fn revoke_all_tokens(&self) {
            self.with(|s| s.common.oauth.revoke_all());
        }

        /// The next `n` data-API requests answer `status` (e.g. 500, 502, 503) instead of being
        /// served. Replaces any failure queued before. Invalid codes are sent as 500.
        pub fn fail_next(&self, n: u32, status: u16) {
            self.with(|s| s.common.faults.fail_next(n, status));
        }

        /// The next `n` data-API requests answer 429 with `Retry-After: retry_after_secs`,
        /// regardless of the real budget. Served after any queued [`Self::fail_next`] failures.
        pub fn rate_limit_next(&self, n: u32, retry_after_secs: u64) {
            self.with(|s| s.common.faults.rate_limit_next(n, retry_after_secs));
        }

        /// The next `n` successful data-API responses keep status 200 but carry a truncated,
        /// unparsable JSON body.
        pub fn malformed_next(&self, n: u32) {
            self.with(|s| s.common.faults.malformed_next(n));
        }

        /// Sleeps this long before answering each data-API request (default zero).
        pub fn set_latency(&self, latency: std::time::Duration) {
            self.with(|s| s.common.faults.latency = latency);
        }

        /// The next `n` token-endpoint requests answer `status` with a non-JSON body (the data
        /// API faults above leave the OAuth endpoints alone).
        pub fn fail_next_oauth(&self, n: u32, status: u16) {
            self.with(|s| s.common.faults.fail_next_oauth(n, status));
        }

        #[doc = concat!("Replaces the request budget (default ", $limit_default, ") and resets all windows. Past it, requests answer 429 with `Retry-After` = whole seconds until the window resets.")]
        pub fn set_rate_limit(&self, requests: u32, per: std::time::Duration) {
            self.with(|s| s.common.limiter.configure(requests, per));
        }

        /// Data-API requests received so far, whatever they answered (faults, 401s and 429s
        /// included). OAuth endpoints are counted separately by [`Self::token_request_count`].
        pub fn request_count(&self) -> u64 {
            self.with(|s| s.common.requests)
        }

        /// Requests received by the token endpoint (code exchanges and refreshes, failed or not).
        pub fn token_request_count(&self) -> u64 {
            self.with(|s| s.common.token_requests)
        }
    };
}

pub(crate) use common_control_methods;

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Injected::Fail(s) => write!(f, "injected {s}"),
            Injected::RateLimited(secs) => write!(f, "injected 429 (Retry-After {secs})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_window_resets_and_reports_seconds_left() {
        let mut l = RateLimiter::new(2, Duration::from_secs(15));
        let t0 = Instant::now();
        assert!(l.check("a", t0).is_ok());
        assert!(l.check("a", t0).is_ok());
        assert_eq!(l.check("a", t0 + Duration::from_millis(500)), Err(15));
        assert!(l.check("b", t0).is_ok(), "budgets are per key");
        assert!(l.check("a", t0 + Duration::from_secs(15)).is_ok());
    }

    #[test]
    fn params_keep_repeated_rails_keys() {
        let p = Params::parse("project_ids%5B%5D=1&project_ids[]=2&date%5Bstart%5D=2025-01-01");
        assert_eq!(p.all("project_ids[]").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(p.get("date[start]"), Some("2025-01-01"));
    }

    #[test]
    fn timestamps_use_each_providers_format() {
        let t = parse_datetime("2025-02-11T08:05:19.661802Z").unwrap();
        assert_eq!(
            serde_json::to_string(&SecondsTs(t)).unwrap(),
            "\"2025-02-11T08:05:19Z\""
        );
        assert_eq!(
            serde_json::to_string(&MicrosTs(t)).unwrap(),
            "\"2025-02-11T08:05:19.661802Z\""
        );
        let d = parse_date("2025-02-01").unwrap();
        assert_eq!(serde_json::to_string(&Day(d)).unwrap(), "\"2025-02-01\"");
    }

    #[test]
    fn datetimes_parse_leniently() {
        assert!(parse_datetime("2025-02-11T08:05:19Z").is_some());
        assert!(parse_datetime("2025-02-11T08:05:19+01:00").is_some());
        assert!(parse_datetime("2025-02-11T08:05:19").is_some());
        assert!(parse_datetime("2025-02-11").is_some());
        assert!(parse_datetime("yesterday").is_none());
    }
}

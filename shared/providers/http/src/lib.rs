//! HTTP plumbing for provider adapters.
//!
//! [`ProviderHttp`] sends one logical request ([`Call`]): it takes a slot from the shared
//! [`RateBudget`] before every attempt, retries 429 (after `Retry-After`) and, for requests that
//! are safe to resend, 5xx and timeouts (with backoff), and classifies what is left into a
//! [`ProviderError`] the sync engine can act on.
//!
//! - **Idempotency.** Every call is [`Idempotency::Safe`] or [`Idempotency::Unsafe`] (by default
//!   from its method: GET, HEAD, PUT, DELETE, OPTIONS are safe; POST and PATCH are not). An
//!   unsafe call is never resent once it may have reached the provider: a timeout, a connection
//!   broken after sending, or a 5xx answer returns [`ProviderErrorKind::OutcomeUnknown`] and the
//!   adapter decides (look the record up, then retry or not). A 429, a 408, a 425 and a failed
//!   connect are still retried: the provider did not process the request.
//! - **Bodies.** JSON ([`Call::json`]), raw bytes with a content type ([`Call::raw_body`]), forms
//!   ([`Call::form`]) and SOAP envelopes ([`Call::soap11`], [`Call::soap12`]); answers as JSON
//!   ([`ProviderHttp::json`]), text ([`ProviderHttp::send`]), raw status, headers and bytes
//!   ([`ProviderHttp::raw`]) or SOAP with faults classified ([`ProviderHttp::soap`], [`soap`]).
//! - **Messages.** An error's `message` names the provider and the HTTP status only; the method,
//!   URL, response body snippet and transport error go to its `detail` and to the logs, never
//!   to API clients.
//!
//! [`oauth`] runs the OAuth 2.0 authorization-code flow on top of the `oauth2` crate, driven by a
//! provider's descriptor.

pub mod oauth;
pub mod soap;

use std::time::Duration;

use hourbridge_domain::SecretValue;
use hourbridge_provider_api::{
    ProviderError, ProviderErrorKind, RateBudget, RateLimit, ResponseCache,
};
pub use reqwest::header::HeaderMap;
pub use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

/// Reads a configuration variable (`None` when unset or empty).
pub type Lookup = std::sync::Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What an adapter's constructor gets: configuration lookup (environment in production), HTTP
/// settings, the shared rate budget and the conditional-GET cache.
#[derive(Clone)]
pub struct ProviderEnv {
    /// Reads a configuration variable (`None` when unset or empty).
    pub lookup: Lookup,
    /// HTTP settings.
    pub http: HttpConfig,
    /// The budget every request is counted against.
    pub budget: std::sync::Arc<dyn RateBudget>,
    /// Where ETags and bodies of GET answers are remembered for conditional requests
    /// ([`Call::if_none_match`]); [`hourbridge_provider_api::NoCache`] to never revalidate.
    pub cache: std::sync::Arc<dyn ResponseCache>,
}

impl std::fmt::Debug for ProviderEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderEnv")
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl ProviderEnv {
    /// Reads `var`, or `default` when unset; trailing slashes are removed so paths can be
    /// appended.
    pub fn url(&self, var: &str, default: &str) -> String {
        (self.lookup)(var)
            .unwrap_or_else(|| default.to_owned())
            .trim_end_matches('/')
            .to_owned()
    }

    /// An environment for tests: no variables, default HTTP settings, no budget, no cache.
    pub fn for_tests(vars: &[(&str, &str)]) -> Self {
        let vars: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Self {
            lookup: std::sync::Arc::new(move |k| vars.get(k).cloned()),
            http: HttpConfig {
                base_backoff: Duration::from_millis(5),
                ..HttpConfig::default()
            },
            budget: std::sync::Arc::new(hourbridge_provider_api::Unlimited),
            cache: std::sync::Arc::new(hourbridge_provider_api::NoCache),
        }
    }
}

/// How requests are made and retried.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `User-Agent` sent on every request (Harvest refuses requests without one).
    pub user_agent: String,
    /// Attempts per logical request (first try included).
    pub max_attempts: u32,
    /// Longest `Retry-After` we sleep through inside one call; longer waits are returned as
    /// [`ProviderErrorKind::RateLimited`] so the worker can re-queue instead of blocking.
    pub max_retry_wait: Duration,
    /// First backoff after a transient failure; doubles per attempt.
    pub base_backoff: Duration,
    /// Timeout of one attempt.
    pub timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            user_agent: "Hourbridge (https://hourbridge.example/contact)".into(),
            max_attempts: 6,
            max_retry_wait: Duration::from_secs(60),
            base_backoff: Duration::from_millis(200),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Whether a request may be sent again when its outcome is not known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Sending it twice has the effect of sending it once (reads, PUT, DELETE, or a POST the
    /// provider deduplicates by an idempotency key): timeouts and 5xx are retried.
    Safe,
    /// Sending it twice may do it twice (creates): once it may have reached the provider it is
    /// never resent; see [`ProviderErrorKind::OutcomeUnknown`].
    Unsafe,
}

impl Idempotency {
    /// The default of `method`: POST and PATCH are unsafe, every other method is safe.
    pub fn of(method: &Method) -> Self {
        if *method == Method::POST || *method == Method::PATCH {
            Self::Unsafe
        } else {
            Self::Safe
        }
    }
}

/// The body of a request.
#[derive(Debug, Clone)]
enum Body {
    Json(serde_json::Value),
    Raw {
        content_type: String,
        bytes: Vec<u8>,
    },
}

/// One logical request.
pub struct Call<'a> {
    method: Method,
    url: String,
    query: Vec<(String, String)>,
    headers: Vec<(&'static str, String)>,
    bearer: Option<&'a SecretValue>,
    basic: Option<(String, &'a SecretValue)>,
    body: Option<Body>,
    idempotency: Option<Idempotency>,
    budget: Option<(&'a dyn RateBudget, String, RateLimit)>,
    if_none_match: Option<String>,
    retry_after_header: Option<&'static str>,
    refine_error: Option<RefineError>,
    log_url: Option<String>,
}

/// Turns the error built for a non-2xx answer into a more precise one, from the whole answer
/// (see [`Call::refine_error`]).
pub type RefineError = fn(ProviderError, &ErrorResponse<'_>) -> ProviderError;

/// A non-2xx answer, as a [`RefineError`] hook sees it.
#[derive(Debug)]
pub struct ErrorResponse<'r> {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: &'r HeaderMap,
    /// The whole body.
    pub body: &'r [u8],
}

impl<'a> Call<'a> {
    /// A GET of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::GET, url)
    }

    /// A POST to `url` (unsafe to resend unless [`Call::idempotency`] says otherwise).
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::POST, url)
    }

    /// A PUT of `url`.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new(Method::PUT, url)
    }

    /// A DELETE of `url`.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::DELETE, url)
    }

    /// A request with any method.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            query: Vec::new(),
            headers: Vec::new(),
            bearer: None,
            basic: None,
            body: None,
            idempotency: None,
            budget: None,
            if_none_match: None,
            retry_after_header: None,
            refine_error: None,
            log_url: None,
        }
    }

    /// A SOAP 1.1 call: POSTs `envelope` as `text/xml` with the `SOAPAction` header. SOAP reads
    /// are POSTs too: mark them [`Idempotency::Safe`] so that timeouts and 5xx are retried.
    pub fn soap11(url: impl Into<String>, action: &str, envelope: impl Into<Vec<u8>>) -> Self {
        Self::post(url)
            .header("SOAPAction", format!("\"{action}\""))
            .raw_body("text/xml; charset=utf-8", envelope)
    }

    /// A SOAP 1.2 call: POSTs `envelope` as `application/soap+xml` with the action in the
    /// content type. Mark reads [`Idempotency::Safe`], as for [`Call::soap11`].
    pub fn soap12(url: impl Into<String>, action: &str, envelope: impl Into<Vec<u8>>) -> Self {
        Self::post(url).raw_body(
            format!("application/soap+xml; charset=utf-8; action=\"{action}\""),
            envelope,
        )
    }

    /// Adds a query parameter (repeat the name for Rails-style arrays such as `user_ids[]`).
    pub fn query(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.query.push((name.into(), value.to_string()));
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Authenticates with `Authorization: Bearer`.
    pub fn bearer(mut self, token: &'a SecretValue) -> Self {
        self.bearer = Some(token);
        self
    }

    /// Authenticates with HTTP Basic (`username`, `password`).
    pub fn basic_auth(mut self, username: impl Into<String>, password: &'a SecretValue) -> Self {
        self.basic = Some((username.into(), password));
        self
    }

    /// Reads the wait before a retry from header `name` (delta seconds, or an HTTP date) when
    /// an error answer has no `Retry-After`, for providers that say it elsewhere (Tripletex's
    /// `X-Rate-Limit-Reset`). A 429 is then slept through or returned with that
    /// `retry_after`, as with `Retry-After`.
    pub fn retry_after_header(mut self, name: &'static str) -> Self {
        self.retry_after_header = Some(name);
        self
    }

    /// Lets the adapter refine the error of a non-2xx answer from the whole answer (a
    /// provider's error body: its code, message, request id), before it is retried or
    /// returned; the refined kind decides whether it is retried. The hook must keep secrets and
    /// bodies out of the message, as every error does.
    pub fn refine_error(mut self, hook: RefineError) -> Self {
        self.refine_error = Some(hook);
        self
    }

    /// The URL to name in error details and logs instead of the real one, for paths that hold
    /// a secret (a session token to revoke). Query parameters are never logged anyway.
    pub fn log_url(mut self, url: impl Into<String>) -> Self {
        self.log_url = Some(url.into());
        self
    }

    /// Sends a JSON body.
    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(Body::Json(body));
        self
    }

    /// Sends `bytes` as they are, with `Content-Type: content_type` (XML, SOAP, CSV, ...).
    pub fn raw_body(mut self, content_type: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Some(Body::Raw {
            content_type: content_type.into(),
            bytes: bytes.into(),
        });
        self
    }

    /// Sends `pairs` as `application/x-www-form-urlencoded`.
    pub fn form<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            form.append_pair(k.as_ref(), v.as_ref());
        }
        self.raw_body("application/x-www-form-urlencoded", form.finish())
    }

    /// Overrides whether the request may be resent (default: [`Idempotency::of`] its method).
    pub fn idempotency(mut self, idempotency: Idempotency) -> Self {
        self.idempotency = Some(idempotency);
        self
    }

    /// Whether this call may be resent after an unknown outcome.
    pub fn is_idempotent(&self) -> bool {
        self.idempotency
            .unwrap_or_else(|| Idempotency::of(&self.method))
            == Idempotency::Safe
    }

    /// Makes the request conditional: sends `If-None-Match: etag`, and a `304 Not Modified`
    /// answer comes back from [`ProviderHttp::raw`] as a [`RawResponse`] with status 304 and
    /// an empty body (not an error), for the caller to substitute the body it remembered.
    /// Retries and the budget apply as for any call. Use [`ProviderHttp::raw`] for such calls:
    /// [`ProviderHttp::json`] cannot decode an empty 304 body.
    pub fn if_none_match(mut self, etag: impl Into<String>) -> Self {
        self.if_none_match = Some(etag.into());
        self
    }

    /// Counts every attempt against `budget` under `key`.
    pub fn budget(
        mut self,
        budget: &'a dyn RateBudget,
        key: impl Into<String>,
        limit: RateLimit,
    ) -> Self {
        self.budget = Some((budget, key.into(), limit));
        self
    }
}

/// A provider's 2xx answer as it came: status, headers and body bytes (or a 304 to a
/// [`Call::if_none_match`] request, with an empty body).
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The value of header `name`, when present and readable as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether this is a `304 Not Modified` answer to a conditional request.
    pub fn is_not_modified(&self) -> bool {
        self.status == StatusCode::NOT_MODIFIED
    }
}

/// Parses `Retry-After`: delta seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// Maps a non-success status to an error kind.
pub fn classify_status(status: StatusCode) -> ProviderErrorKind {
    match status.as_u16() {
        401 => ProviderErrorKind::ReauthRequired,
        403 => ProviderErrorKind::Forbidden,
        404 | 410 => ProviderErrorKind::NotFound,
        408 | 425 | 500..=599 => ProviderErrorKind::Transient,
        429 => ProviderErrorKind::RateLimited,
        _ => ProviderErrorKind::Rejected,
    }
}

/// The first 300 characters of `body`, for an error's detail (never its message).
fn snippet(body: &[u8]) -> String {
    let body = String::from_utf8_lossy(body);
    let mut s: String = body.chars().take(300).collect();
    if body.chars().count() > 300 {
        s.push('…');
    }
    s
}

/// The end-user message for an answer with `status` classified as `kind`: provider and status,
/// never the URL or the body.
fn status_message(provider: &str, kind: ProviderErrorKind, status: StatusCode) -> String {
    use ProviderErrorKind as K;
    match kind {
        K::ReauthRequired => format!("{provider} rejected the credentials ({status})"),
        K::Forbidden => format!(
            "{provider} refused access ({status}): the connected account lacks a permission"
        ),
        K::NotFound => format!("{provider} has no such record ({status})"),
        K::RateLimited => format!("{provider} is limiting our requests ({status})"),
        K::Transient => format!("{provider} is unavailable ({status})"),
        K::OutcomeUnknown => format!(
            "{provider} did not confirm the change ({status}); it may or may not have been applied"
        ),
        _ => format!("{provider} rejected the request ({status})"),
    }
}

/// Whether a non-2xx answer shows the provider did not process the request, so that even an
/// unsafe request may be sent again: 429 (rate limited), 408 (it never read the whole request)
/// and 425 (too early).
fn not_processed(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 425 | 429)
}

/// An HTTP client for one provider.
#[derive(Debug, Clone)]
pub struct ProviderHttp {
    provider: &'static str,
    client: reqwest::Client,
    config: HttpConfig,
}

impl ProviderHttp {
    /// A client for `provider`. Redirects are not followed: a provider redirecting an API call
    /// is a configuration error we want to see, not follow with credentials attached.
    pub fn new(provider: &'static str, config: HttpConfig) -> Result<Self, ProviderError> {
        let client = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                ProviderError::new(provider, ProviderErrorKind::Rejected, "no HTTP client")
                    .with_detail(e.to_string())
            })?;
        Ok(Self {
            provider,
            client,
            config,
        })
    }

    /// The provider id this client reports errors for.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// The underlying client (for the OAuth flow).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn err(&self, kind: ProviderErrorKind, message: impl Into<String>) -> ProviderError {
        ProviderError::new(self.provider, kind, message)
    }

    /// Sends `call` (retrying what is worth retrying) and decodes the JSON answer.
    pub async fn json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, ProviderError> {
        let what = format!(
            "{} {}",
            call.method,
            call.log_url.as_deref().unwrap_or(&call.url)
        );
        let res = self.raw(call).await?;
        serde_json::from_slice(&res.body).map_err(|e| {
            self.err(
                ProviderErrorKind::InvalidResponse,
                format!("{} answered something unreadable", self.provider),
            )
            .with_detail(format!(
                "{what}: unreadable JSON ({e}): {}",
                snippet(&res.body)
            ))
        })
    }

    /// Sends `call` and returns the body of a 2xx answer as text.
    pub async fn send(&self, call: Call<'_>) -> Result<String, ProviderError> {
        Ok(self.raw(call).await?.text())
    }

    /// Sends `call` and returns a 2xx answer as it came (status, headers, bytes), with the same
    /// retries, budget and classification of failures as [`ProviderHttp::json`]. A conditional
    /// call ([`Call::if_none_match`]) may also come back as a 304 with an empty body.
    pub async fn raw(&self, call: Call<'_>) -> Result<RawResponse, ProviderError> {
        self.execute(call, false).await
    }

    /// Sends a SOAP `call` ([`Call::soap11`], [`Call::soap12`]) and returns the 2xx answer. A SOAP
    /// fault in the answer, whatever its HTTP status (faults usually come with 500), is the
    /// provider's processed refusal: it is not retried and is classified by
    /// [`soap::classify_fault`] (credentials → [`ProviderErrorKind::ReauthRequired`], anything
    /// else → [`ProviderErrorKind::Fault`]), with the fault code and text in the detail.
    pub async fn soap(&self, call: Call<'_>) -> Result<RawResponse, ProviderError> {
        self.execute(call, true).await
    }

    async fn execute(&self, call: Call<'_>, soap: bool) -> Result<RawResponse, ProviderError> {
        let idempotent = call.is_idempotent();
        let what = format!(
            "{} {}",
            call.method,
            call.log_url.as_deref().unwrap_or(&call.url)
        );
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if let Some((budget, key, limit)) = &call.budget {
                budget.acquire(key, limit).await?;
            }
            let mut req = self
                .client
                .request(call.method.clone(), &call.url)
                .query(&call.query);
            for (name, value) in &call.headers {
                req = req.header(*name, value);
            }
            if let Some(etag) = &call.if_none_match {
                req = req.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(t) = call.bearer {
                req = req.bearer_auth(t.expose());
            }
            if let Some((user, password)) = &call.basic {
                req = req.basic_auth(user, Some(password.expose()));
            }
            match &call.body {
                Some(Body::Json(j)) => req = req.json(j),
                Some(Body::Raw {
                    content_type,
                    bytes,
                }) => {
                    req = req
                        .header(reqwest::header::CONTENT_TYPE, content_type)
                        .body(bytes.clone());
                }
                None => {}
            }
            let outcome = match req.send().await {
                Ok(res) => {
                    let status = res.status();
                    let headers = res.headers().clone();
                    match res.bytes().await {
                        Ok(body) => {
                            let body = body.to_vec();
                            if soap && let Some(fault) = soap::parse_fault(&body) {
                                let kind = soap::classify_fault(&fault);
                                let e = self
                                    .err(kind, soap::fault_message(self.provider, kind))
                                    .with_detail(format!("{what} answered {status}: {fault}"));
                                return Err(self.give_up(e, attempt));
                            }
                            let revalidated =
                                status == StatusCode::NOT_MODIFIED && call.if_none_match.is_some();
                            if status.is_success() || revalidated {
                                return Ok(RawResponse {
                                    status,
                                    headers,
                                    body,
                                });
                            }
                            let mut kind = classify_status(status);
                            // A 5xx may come after the create was applied; 408/425/429 never do.
                            if !idempotent
                                && kind == ProviderErrorKind::Transient
                                && !not_processed(status)
                            {
                                kind = ProviderErrorKind::OutcomeUnknown;
                            }
                            let mut e = self
                                .err(kind, status_message(self.provider, kind, status))
                                .with_detail(format!(
                                    "{what} answered {status}: {}",
                                    snippet(&body)
                                ));
                            let read = |name: &str| {
                                headers
                                    .get(name)
                                    .and_then(|v| v.to_str().ok())
                                    .and_then(parse_retry_after)
                            };
                            e.retry_after = read(reqwest::header::RETRY_AFTER.as_str())
                                .or_else(|| call.retry_after_header.and_then(read));
                            if let Some(refine) = call.refine_error {
                                let answer = ErrorResponse {
                                    status,
                                    headers: &headers,
                                    body: &body,
                                };
                                e = refine(e, &answer);
                            }
                            e
                        }
                        // The answer started but broke off: a create may have been applied.
                        Err(err) => {
                            // reqwest names the URL with its query, which may hold a token.
                            let err = err.without_url();
                            let kind = if idempotent {
                                ProviderErrorKind::Transient
                            } else {
                                ProviderErrorKind::OutcomeUnknown
                            };
                            self.err(kind, format!("the answer of {} broke off", self.provider))
                                .with_detail(format!("{what} answered {status}, then: {err}"))
                        }
                    }
                }
                Err(err) => {
                    // reqwest names the URL with its query, which may hold a token.
                    let err = err.without_url();
                    // A failed connect never sent the request; anything later may have.
                    let kind = if idempotent || err.is_connect() {
                        ProviderErrorKind::Transient
                    } else {
                        ProviderErrorKind::OutcomeUnknown
                    };
                    let how = if err.is_timeout() {
                        "timed out"
                    } else if err.is_connect() {
                        "connection failed"
                    } else {
                        "connection broken"
                    };
                    let message = if kind == ProviderErrorKind::OutcomeUnknown {
                        format!(
                            "{} did not answer ({how}); the change may or may not have been applied",
                            self.provider
                        )
                    } else {
                        format!("could not reach {} ({how})", self.provider)
                    };
                    self.err(kind, message)
                        .with_detail(format!("{what}: {err}"))
                }
            };
            if !outcome.is_retryable() || attempt >= self.config.max_attempts {
                return Err(self.give_up(outcome, attempt));
            }
            let wait = match (outcome.kind, outcome.retry_after) {
                (ProviderErrorKind::RateLimited, Some(w)) => w,
                _ => {
                    let exp = self.config.base_backoff * 2u32.saturating_pow(attempt - 1);
                    let jitter = rand::random_range(0..=exp.as_millis() as u64 / 4 + 1);
                    exp + Duration::from_millis(jitter)
                }
            };
            if wait > self.config.max_retry_wait {
                return Err(self.give_up(outcome.with_retry_after(wait), attempt));
            }
            tracing::debug!(
                provider = self.provider,
                attempt,
                ?wait,
                kind = ?outcome.kind,
                detail = outcome.detail.as_deref().unwrap_or(""),
                "retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Logs the failure with its detail (the logs are where the detail goes) and returns it.
    fn give_up(&self, e: ProviderError, attempts: u32) -> ProviderError {
        tracing::info!(
            provider = self.provider,
            attempts,
            kind = ?e.kind,
            detail = e.detail.as_deref().unwrap_or(""),
            "provider request failed"
        );
        e
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;
    use hourbridge_provider_api::RateLimitScope;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    fn http() -> ProviderHttp {
        slow_http(HttpConfig::default().timeout)
    }

    #[tokio::test]
    async fn basic_auth_a_named_reset_header_an_error_hook_and_a_log_url() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(429).insert_header("X-Rate-Limit-Reset", "3600"))
            .mount(&server)
            .await;
        let e = http()
            .send(Call::get(server.uri()).retry_after_header("x-rate-limit-reset"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::RateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(3600)));

        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/secret-in-path"))
            .and(header("authorization", "Basic MDp0b2s="))
            .respond_with(ResponseTemplate::new(409).set_body_string("{\"code\":8000}"))
            .expect(1)
            .mount(&server)
            .await;
        fn hook(e: ProviderError, answer: &ErrorResponse<'_>) -> ProviderError {
            let code = String::from_utf8_lossy(answer.body).contains("8000");
            let e = e.with_detail(format!("status {} code 8000: {code}", answer.status));
            ProviderError {
                kind: ProviderErrorKind::Fault,
                ..e
            }
        }
        let token = SecretValue::new("tok");
        let e = http()
            .send(
                Call::get(format!("{}/secret-in-path", server.uri()))
                    .basic_auth("0", &token)
                    .log_url("{redacted}")
                    .refine_error(hook),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Fault);
        assert_eq!(
            e.detail.as_deref(),
            Some("status 409 Conflict code 8000: true")
        );

        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(400))
            .mount(&server)
            .await;
        let e = http()
            .send(Call::get(format!("{}/secret-in-path", server.uri())).log_url("{redacted}"))
            .await
            .unwrap_err();
        let detail = e.detail.unwrap();
        assert!(detail.contains("{redacted}") && !detail.contains("secret-in-path"));
    }

    #[tokio::test]
    async fn retries_after_429_honouring_retry_after_then_succeeds() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/x"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/x"))
            .and(header("authorization", "Bearer tok"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true})))
            .mount(&server)
            .await;
        let token = SecretValue::new("tok");
        let started = std::time::Instant::now();
        let v: serde_json::Value = http()
            .json(Call::get(format!("{}/x", server.uri())).bearer(&token))
            .await
            .unwrap();
        assert_eq!(v["ok"], true);
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "waited for Retry-After"
        );
    }

    #[tokio::test]
    async fn a_retry_after_longer_than_allowed_is_returned_not_slept() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3600"))
            .mount(&server)
            .await;
        let e = http().send(Call::get(server.uri())).await.unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::RateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(3600)));
    }

    #[tokio::test]
    async fn server_errors_are_retried_then_reported_as_transient() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(503))
            .expect(4)
            .mount(&server)
            .await;
        let e = http().send(Call::get(server.uri())).await.unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Transient);
        assert!(e.is_retryable());
    }

    #[tokio::test]
    async fn client_errors_are_classified_without_retry() {
        for (status, kind) in [
            (401, ProviderErrorKind::ReauthRequired),
            (403, ProviderErrorKind::Forbidden),
            (404, ProviderErrorKind::NotFound),
            (422, ProviderErrorKind::Rejected),
        ] {
            let server = MockServer::start().await;
            Mock::given(method("GET"))
                .respond_with(ResponseTemplate::new(status))
                .expect(1)
                .mount(&server)
                .await;
            let e = http().send(Call::get(server.uri())).await.unwrap_err();
            assert_eq!(e.kind, kind, "status {status}");
        }
    }

    #[tokio::test]
    async fn malformed_json_is_an_invalid_response() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("{\"time_entries\": ["))
            .mount(&server)
            .await;
        let e = http()
            .json::<serde_json::Value>(Call::get(server.uri()))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::InvalidResponse);
    }

    struct Counting(AtomicU32);

    #[async_trait]
    impl RateBudget for Counting {
        async fn acquire(&self, key: &str, _: &RateLimit) -> Result<(), ProviderError> {
            assert_eq!(key, "harvest:token-1");
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn every_attempt_takes_a_slot_of_the_shared_budget() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500))
            .up_to_n_times(2)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
            .mount(&server)
            .await;
        let budget = Arc::new(Counting(AtomicU32::new(0)));
        let limit = RateLimit {
            scope: RateLimitScope::Token,
            requests: 100,
            per: Duration::from_secs(15),
        };
        http()
            .send(Call::get(server.uri()).budget(budget.as_ref(), "harvest:token-1", limit))
            .await
            .unwrap();
        assert_eq!(budget.0.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(parse_retry_after(" 15 "), Some(Duration::from_secs(15)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    fn slow_http(timeout: Duration) -> ProviderHttp {
        ProviderHttp::new(
            "test",
            HttpConfig {
                base_backoff: Duration::from_millis(1),
                max_attempts: 4,
                max_retry_wait: Duration::from_secs(2),
                timeout,
                ..HttpConfig::default()
            },
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_create_that_times_out_is_not_sent_twice() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/time_entries"))
            .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_secs(2)))
            .mount(&server)
            .await;
        let e = slow_http(Duration::from_millis(300))
            .send(
                Call::post(format!("{}/time_entries", server.uri()))
                    .json(serde_json::json!({"hours": 1})),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::OutcomeUnknown);
        assert!(!e.is_retryable(), "the adapter decides, not the helper");
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_create_answered_5xx_is_not_resent_but_a_429_is() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/five"))
            .respond_with(ResponseTemplate::new(503))
            .expect(1)
            .mount(&server)
            .await;
        let e = http()
            .send(Call::post(format!("{}/five", server.uri())).json(serde_json::json!({})))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::OutcomeUnknown);

        // 429: the provider did not process it, so even a create is sent again.
        Mock::given(method("POST"))
            .and(path("/limited"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/limited"))
            .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 7})))
            .mount(&server)
            .await;
        let v: serde_json::Value = http()
            .json(Call::post(format!("{}/limited", server.uri())).json(serde_json::json!({})))
            .await
            .unwrap();
        assert_eq!(v["id"], 7);
        let limited = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == "/limited")
            .count();
        assert_eq!(limited, 2);
    }

    #[tokio::test]
    async fn a_get_is_still_retried_after_a_5xx_and_so_is_a_post_marked_safe() {
        for call in [
            Call::get("/r"),
            Call::put("/r"),
            Call::delete("/r"),
            Call::post("/r").idempotency(Idempotency::Safe),
        ] {
            let server = MockServer::start().await;
            Mock::given(path("/r"))
                .respond_with(ResponseTemplate::new(500))
                .up_to_n_times(1)
                .mount(&server)
                .await;
            Mock::given(path("/r"))
                .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
                .mount(&server)
                .await;
            let call = Call {
                url: format!("{}{}", server.uri(), call.url),
                ..call
            };
            let m = call.method.clone();
            http().send(call).await.unwrap();
            assert_eq!(server.received_requests().await.unwrap().len(), 2, "{m}");
        }
    }

    #[tokio::test]
    async fn a_create_that_could_not_connect_was_never_sent_and_is_transient() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = http()
            .send(Call::post(format!("http://127.0.0.1:{port}/x")).json(serde_json::json!({})))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Transient);
    }

    #[test]
    fn idempotency_defaults_follow_the_method() {
        assert!(Call::get("u").is_idempotent());
        assert!(Call::put("u").is_idempotent());
        assert!(Call::delete("u").is_idempotent());
        assert!(!Call::post("u").is_idempotent());
        assert!(!Call::new(Method::PATCH, "u").is_idempotent());
        assert!(
            Call::post("u")
                .idempotency(Idempotency::Safe)
                .is_idempotent()
        );
    }

    #[tokio::test]
    async fn raw_bodies_go_out_as_given_and_raw_answers_come_back_whole() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .and(path("/doc"))
            .and(header("content-type", "application/xml"))
            .and(wiremock::matchers::body_string("<a>1</a>"))
            .respond_with(
                ResponseTemplate::new(202)
                    .insert_header("x-request-id", "r-9")
                    .set_body_raw(vec![0u8, 159, 146, 150], "application/octet-stream"),
            )
            .expect(1)
            .mount(&server)
            .await;
        let res = http()
            .raw(Call::put(format!("{}/doc", server.uri())).raw_body("application/xml", "<a>1</a>"))
            .await
            .unwrap();
        assert_eq!(res.status, StatusCode::ACCEPTED);
        assert_eq!(res.header("x-request-id"), Some("r-9"));
        assert_eq!(res.body, vec![0u8, 159, 146, 150]);

        Mock::given(method("POST"))
            .and(path("/form"))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .and(wiremock::matchers::body_string("a=1&b=x+y%26z"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .expect(1)
            .mount(&server)
            .await;
        let text = http()
            .send(Call::post(format!("{}/form", server.uri())).form(&[("a", "1"), ("b", "x y&z")]))
            .await
            .unwrap();
        assert_eq!(text, "ok");
    }

    #[tokio::test]
    async fn raw_calls_get_the_same_retries_and_classification() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(502).set_body_string("<html>proxy</html>"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("id;name\n1;a\n"))
            .mount(&server)
            .await;
        let res = http().raw(Call::get(server.uri())).await.unwrap();
        assert_eq!(res.text(), "id;name\n1;a\n");
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(404).set_body_string("<html>nope</html>"))
            .expect(1)
            .mount(&server)
            .await;
        let e = http().raw(Call::get(server.uri())).await.unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::NotFound);
    }

    #[tokio::test]
    async fn a_conditional_get_answered_304_comes_back_as_304_with_retries_and_budget() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/projects.json"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/projects.json"))
            .and(header("if-none-match", "W/\"abc\""))
            .respond_with(ResponseTemplate::new(304).insert_header("etag", "W/\"abc\""))
            .expect(1)
            .mount(&server)
            .await;
        let budget = Arc::new(Counting(AtomicU32::new(0)));
        let limit = RateLimit {
            scope: RateLimitScope::Token,
            requests: 100,
            per: Duration::from_secs(15),
        };
        let res = http()
            .raw(
                Call::get(format!("{}/projects.json", server.uri()))
                    .if_none_match("W/\"abc\"")
                    .budget(budget.as_ref(), "harvest:token-1", limit),
            )
            .await
            .unwrap();
        assert_eq!(res.status, StatusCode::NOT_MODIFIED);
        assert!(res.is_not_modified());
        assert!(res.body.is_empty());
        assert_eq!(res.header("etag"), Some("W/\"abc\""));
        assert_eq!(
            budget.0.load(Ordering::SeqCst),
            2,
            "the retry took a slot too"
        );
        let sent = server.received_requests().await.unwrap();
        assert_eq!(sent.len(), 2);
        assert!(
            sent.iter()
                .all(|r| r.headers.get("if-none-match").is_some())
        );
    }

    #[tokio::test]
    async fn a_304_to_an_unconditional_get_is_still_an_error() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(304))
            .expect(1)
            .mount(&server)
            .await;
        let e = http().raw(Call::get(server.uri())).await.unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Rejected);
    }

    const FAULT_11: &str = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>Project 12 is closed</faultstring></soap:Fault></soap:Body></soap:Envelope>"#;
    const AUTH_FAULT_12: &str = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value></s:Code><s:Reason><s:Text xml:lang="en">Invalid username or password</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>"#;

    #[tokio::test]
    async fn a_soap_fault_on_500_is_a_fault_not_a_retry() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(header("soapaction", "\"urn:GetTasks\""))
            .and(header("content-type", "text/xml; charset=utf-8"))
            .respond_with(ResponseTemplate::new(500).set_body_raw(FAULT_11, "text/xml"))
            .expect(1)
            .mount(&server)
            .await;
        let e = http()
            .soap(
                Call::soap11(server.uri(), "urn:GetTasks", "<Envelope/>")
                    .idempotency(Idempotency::Safe),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Fault);
        assert!(!e.is_retryable());
        assert!(!e.message.contains("Project 12"), "{}", e.message);
        let detail = e.detail.unwrap();
        assert!(
            detail.contains("soap:Client") && detail.contains("Project 12 is closed"),
            "{detail}"
        );
    }

    #[tokio::test]
    async fn an_authentication_fault_needs_reauthorisation_even_on_200() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(header(
                "content-type",
                "application/soap+xml; charset=utf-8; action=\"urn:Login\"",
            ))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(AUTH_FAULT_12, "application/soap+xml"),
            )
            .expect(1)
            .mount(&server)
            .await;
        let e = http()
            .soap(Call::soap12(server.uri(), "urn:Login", "<Envelope/>"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::ReauthRequired);
    }

    #[tokio::test]
    async fn a_soap_answer_without_fault_is_returned_and_a_bare_503_is_retried() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        let ok = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GetTasksResponse/></soap:Body></soap:Envelope>"#;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(ok, "text/xml"))
            .mount(&server)
            .await;
        let res = http()
            .soap(
                Call::soap11(server.uri(), "urn:GetTasks", "<Envelope/>")
                    .idempotency(Idempotency::Safe),
            )
            .await
            .unwrap();
        assert!(res.text().contains("GetTasksResponse"));
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn messages_never_carry_the_url_or_the_body_the_detail_does() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(403).set_body_string("{\"error\":\"secret-body-text\"}"),
            )
            .mount(&server)
            .await;
        let url = format!("{}/v2/projects", server.uri());
        let e = http().send(Call::get(&url)).await.unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Forbidden);
        for text in [e.message.clone(), e.to_string()] {
            assert!(!text.contains(&server.uri()), "{text}");
            assert!(!text.contains("secret-body-text"), "{text}");
        }
        let detail = e.detail.unwrap();
        assert!(
            detail.contains(&url) && detail.contains("secret-body-text"),
            "{detail}"
        );
        // Transport failures too: reqwest's error names the URL.
        let e = slow_http(Duration::from_millis(50))
            .send(Call::get(format!("http://127.0.0.1:{}/y", 1)))
            .await
            .unwrap_err();
        assert!(!e.to_string().contains("127.0.0.1"), "{e}");
    }
}

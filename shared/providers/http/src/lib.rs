//! HTTP plumbing for provider adapters.
//!
//! [`ProviderHttp`] sends one logical request: it takes a slot from the shared [`RateBudget`]
//! before every attempt, retries 429 (after `Retry-After`) and 5xx/timeouts (with backoff), and
//! classifies what is left into a [`ProviderError`] the sync engine can act on. [`oauth`] runs
//! the OAuth 2.0 authorization-code flow on top of the `oauth2` crate, driven by a provider's
//! descriptor.

pub mod oauth;

use std::time::Duration;

use hourbridge_domain::SecretValue;
use hourbridge_provider_api::{ProviderError, ProviderErrorKind, RateBudget, RateLimit};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

/// Reads a configuration variable (`None` when unset or empty).
pub type Lookup = std::sync::Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What an adapter's constructor gets: configuration lookup (environment in production), HTTP
/// settings and the shared rate budget.
#[derive(Clone)]
pub struct ProviderEnv {
    /// Reads a configuration variable (`None` when unset or empty).
    pub lookup: Lookup,
    /// HTTP settings.
    pub http: HttpConfig,
    /// The budget every request is counted against.
    pub budget: std::sync::Arc<dyn RateBudget>,
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

    /// An environment for tests: no variables, default HTTP settings, no budget.
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

/// An HTTP client for one provider.
#[derive(Debug, Clone)]
pub struct ProviderHttp {
    provider: &'static str,
    client: reqwest::Client,
    config: HttpConfig,
}

/// One logical request.
pub struct Call<'a> {
    method: Method,
    url: String,
    query: Vec<(String, String)>,
    headers: Vec<(&'static str, String)>,
    bearer: Option<&'a SecretValue>,
    json: Option<serde_json::Value>,
    budget: Option<(&'a dyn RateBudget, String, RateLimit)>,
}

impl<'a> Call<'a> {
    /// A GET of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::GET, url)
    }

    /// A request with any method.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            query: Vec::new(),
            headers: Vec::new(),
            bearer: None,
            json: None,
            budget: None,
        }
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

    /// Sends a JSON body.
    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.json = Some(body);
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

fn snippet(body: &str) -> String {
    let mut s: String = body.chars().take(300).collect();
    if body.chars().count() > 300 {
        s.push('…');
    }
    s
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
                ProviderError::new(provider, ProviderErrorKind::Rejected, e.to_string())
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
        let body = self.send(call).await?;
        serde_json::from_str(&body).map_err(|e| {
            self.err(
                ProviderErrorKind::InvalidResponse,
                format!("unreadable response ({e}): {}", snippet(&body)),
            )
        })
    }

    /// Sends `call` and returns the body of a 2xx answer.
    pub async fn send(&self, call: Call<'_>) -> Result<String, ProviderError> {
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
            if let Some(t) = call.bearer {
                req = req.bearer_auth(t.expose());
            }
            if let Some(j) = &call.json {
                req = req.json(j);
            }
            let outcome = match req.send().await {
                Ok(res) => {
                    let status = res.status();
                    let retry_after = res
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    let text = res.text().await.unwrap_or_default();
                    if status.is_success() {
                        return Ok(text);
                    }
                    let mut e = self.err(
                        classify_status(status),
                        format!(
                            "{} {} answered {status}: {}",
                            call.method,
                            call.url,
                            snippet(&text)
                        ),
                    );
                    e.retry_after = retry_after;
                    e
                }
                Err(e) => self.err(
                    ProviderErrorKind::Transient,
                    format!("{} {}: {e}", call.method, call.url),
                ),
            };
            if !outcome.is_retryable() || attempt >= self.config.max_attempts {
                return Err(outcome);
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
                return Err(ProviderError {
                    retry_after: Some(wait),
                    ..outcome
                });
            }
            tracing::debug!(provider = self.provider, attempt, ?wait, kind = ?outcome.kind, "retrying");
            tokio::time::sleep(wait).await;
        }
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
        ProviderHttp::new(
            "test",
            HttpConfig {
                base_backoff: Duration::from_millis(1),
                max_attempts: 4,
                max_retry_wait: Duration::from_secs(2),
                ..HttpConfig::default()
            },
        )
        .unwrap()
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
}

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hourbridge_domain::DomainError;
use hourbridge_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// An API failure: HTTP status, machine-readable code and a message fit for the caller.
/// Internal details never reach the body; they are logged.
///
/// A 503 answer carries `Retry-After`: the provider's own wait when it gave one
/// ([`ApiError::retry_after`], whole seconds rounded up), else [`DEFAULT_RETRY_AFTER`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// How long the client should wait before retrying (sent as `Retry-After`).
    pub retry_after: Option<std::time::Duration>,
    /// Input fields at fault, when the error is about some (sent as `fields`).
    pub fields: Vec<String>,
}

/// `Retry-After` of a 503 when nobody said how long to wait.
pub const DEFAULT_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// The error body: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `invalid_body`, `not_found`, `managed_by_provider`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Input fields at fault (e.g. of `invalid_credentials`); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

impl ApiError {
    /// Builds an error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            fields: Vec::new(),
        }
    }

    /// Names the input fields at fault (`fields` in the body).
    pub fn with_fields(mut self, fields: Vec<String>) -> Self {
        self.fields = fields;
        self
    }

    /// Asks the client to wait `wait` before retrying (`Retry-After`, rounded up to seconds).
    pub fn with_retry_after(mut self, wait: Option<std::time::Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// 404 for a record that does not exist in the caller's workspace (also what another
    /// workspace's records look like).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 409 for edits of records whose master is a provider.
    pub fn managed_by_provider(what: &str, provider: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "managed_by_provider",
            format!(
                "this {what} is managed by {provider} and is read-only here; change it in {provider}"
            ),
        )
    }

    /// 403 for a role that may not act.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 400 for a bad query string.
    pub fn bad_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_query", message)
    }

    /// 422 for input that parses but breaks a rule.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.code, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                "the record was changed by someone else meanwhile; read it again and retry",
            ),
            StoreError::InvalidCursor => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
                "cursor is not valid here",
            ),
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "storage is temporarily unavailable; retry shortly",
                )
            }
            other => {
                tracing::error!(error = %other, "store failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl From<hourbridge_sync::SyncError> for ApiError {
    fn from(e: hourbridge_sync::SyncError) -> Self {
        use hourbridge_provider_api::ProviderErrorKind as K;
        use hourbridge_sync::SyncError as S;
        match e {
            S::UnknownProvider(p) => Self::new(
                StatusCode::NOT_FOUND,
                "unknown_provider",
                format!("no provider called {p:?}"),
            ),
            S::NotConnected(p) => Self::new(
                StatusCode::NOT_FOUND,
                "not_connected",
                format!("{p} is not connected in this workspace"),
            ),
            S::InvalidState(m) => Self::new(StatusCode::CONFLICT, "invalid_state", m),
            e @ S::TestRequired(_) => {
                Self::new(StatusCode::CONFLICT, "test_required", e.to_string())
            }
            S::Invalid(m) => Self::new(StatusCode::BAD_REQUEST, "invalid_request", m),
            e @ S::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            S::Busy => Self::new(
                StatusCode::CONFLICT,
                "busy",
                "another sync of this connection is running; retry shortly",
            ),
            S::Provider(p) => {
                // The detail (URLs, response bodies) goes to the logs only; the caller gets the
                // provider's safe message, with any URL an adapter let slip redacted.
                tracing::warn!(
                    provider = p.provider,
                    kind = ?p.kind,
                    message = %p.message,
                    detail = p.detail.as_deref().unwrap_or(""),
                    "provider error answered to an API call"
                );
                let safe = redact_urls(&p.message);
                let coded = p.code;
                let mut answer = match p.kind {
                    K::ReauthRequired => Self::new(
                        StatusCode::CONFLICT,
                        "reauth_required",
                        format!("{} rejected our credentials; authorize again", p.provider),
                    ),
                    K::Forbidden => Self::new(StatusCode::CONFLICT, "provider_forbidden", safe),
                    K::NotFound => Self::new(StatusCode::NOT_FOUND, "provider_not_found", safe),
                    K::RateLimited | K::Transient => Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "provider_unavailable",
                        format!(
                            "{} is unavailable or limiting us; retry shortly",
                            p.provider
                        ),
                    )
                    .with_retry_after(p.retry_after),
                    K::OutcomeUnknown => Self::new(
                        StatusCode::BAD_GATEWAY,
                        "provider_outcome_unknown",
                        format!(
                            "{} did not confirm the change; it may or may not have been applied",
                            p.provider
                        ),
                    ),
                    K::InvalidResponse => Self::new(
                        StatusCode::BAD_GATEWAY,
                        "provider_invalid_response",
                        format!("{} answered something unreadable", p.provider),
                    ),
                    K::Rejected | K::Unsupported | K::Fault => {
                        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "provider_rejected", safe)
                    }
                };
                // An adapter's own code says more than the kind's generic one; its message is
                // the adapter's safe one too.
                if let Some(code) = coded {
                    answer.code = code;
                    answer.message = redact_urls(&p.message);
                }
                answer
            }
            S::Store(s) => s.into(),
            S::Secrets(s) => {
                tracing::error!(error = %s, "secret store failure");
                if s.is_retryable() {
                    Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "credential storage is temporarily unavailable",
                    )
                } else {
                    Self::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "internal error",
                    )
                }
            }
            S::Queue(m) => {
                tracing::error!(error = %m, "job queue failure");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "could not queue the job; retry shortly",
                )
            }
            S::InvalidFields {
                problem,
                fields,
                message,
            } => {
                use hourbridge_sync::FieldProblem as F;
                let code = match problem {
                    F::Missing => "required",
                    F::Unknown => "unknown_field",
                    F::TooLong => "too_long",
                    F::InvalidSyncAt => "invalid_sync_at",
                };
                Self::unprocessable(code, message).with_fields(fields)
            }
            S::InvalidCredentials { fields, message } => {
                Self::unprocessable("invalid_credentials", message).with_fields(fields)
            }
            S::Unreachable(m) => Self::new(StatusCode::BAD_GATEWAY, "unreachable", m),
            S::UnreachableDomain { fields, message } => {
                Self::unprocessable("unreachable_domain", message).with_fields(fields)
            }
            S::MissingEntitlement(m) => Self::new(StatusCode::FORBIDDEN, "missing_entitlement", m),
            S::AuthorizationFailed(m) => {
                Self::new(StatusCode::BAD_REQUEST, "authorization_failed", m)
            }
            e @ S::AddonNotEnabled { .. } => {
                Self::new(StatusCode::FORBIDDEN, "addon_not_enabled", e.to_string())
            }
            S::UnknownAddon(a) => Self::new(
                StatusCode::NOT_FOUND,
                "unknown_addon",
                format!("no add-on called {a:?}"),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code: self.code.to_owned(),
                    message: self.message,
                    fields: self.fields,
                },
            }),
        )
            .into_response();
        let wait = match (self.retry_after, self.status) {
            (Some(w), _) => Some(w),
            (None, StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS) => {
                Some(DEFAULT_RETRY_AFTER)
            }
            (None, _) => None,
        };
        if let Some(wait) = wait {
            res.headers_mut()
                .insert(http::header::RETRY_AFTER, retry_after_seconds(wait).into());
        }
        res
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1 (a zero would invite a busy loop).
pub fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Replaces every `http://…` or `https://…` in `text` with `<url>`: provider messages reach API
/// clients, provider URLs must not.
fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest
        .find("http://")
        .into_iter()
        .chain(rest.find("https://"))
        .min()
    {
        out.push_str(&rest[..i]);
        out.push_str("<url>");
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')'))
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hourbridge_provider_api::{ProviderError, ProviderErrorKind};
    use hourbridge_sync::SyncError;

    use super::*;

    async fn answer(e: ApiError) -> (StatusCode, Option<String>, String) {
        let res = e.into_response();
        let status = res.status();
        let retry = res
            .headers()
            .get(http::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, retry, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_providers_retry_after_reaches_the_client_rounded_up() {
        let e = ProviderError::new(
            "harvest",
            ProviderErrorKind::RateLimited,
            "harvest answered 429",
        )
        .with_retry_after(Duration::from_millis(42_100));
        let (status, retry, _) = answer(SyncError::Provider(e).into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("43"));
        // Without a provider wait, a 503 still says when to come back.
        let e = ProviderError::new(
            "harvest",
            ProviderErrorKind::Transient,
            "harvest answered 502",
        );
        let (_, retry, _) = answer(SyncError::Provider(e).into()).await;
        assert_eq!(retry.as_deref(), Some("5"));
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(7)), 7);
    }

    #[tokio::test]
    async fn provider_urls_and_bodies_never_reach_the_api_json() {
        let detail = "GET https://api.harvestapp.com/v2/projects?page=2 answered 403 Forbidden: \
                      {\"error\":\"secret-body-text\"}";
        for kind in [
            ProviderErrorKind::Forbidden,
            ProviderErrorKind::NotFound,
            ProviderErrorKind::Rejected,
            ProviderErrorKind::Fault,
            ProviderErrorKind::Transient,
            ProviderErrorKind::OutcomeUnknown,
            ProviderErrorKind::InvalidResponse,
            ProviderErrorKind::ReauthRequired,
        ] {
            // A careless adapter message with a URL is redacted too.
            let e = ProviderError::new(
                "harvest",
                kind,
                "harvest refused (see https://id.getharvest.com/x?y=1)",
            )
            .with_detail(detail);
            let (_, _, body) = answer(SyncError::Provider(e).into()).await;
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(v["error"]["code"].is_string(), "{body}");
            for leak in [
                "http",
                "harvestapp.com",
                "getharvest",
                "secret-body-text",
                "page=2",
            ] {
                assert!(!body.contains(leak), "{kind:?} leaked {leak}: {body}");
            }
        }
    }

    #[test]
    fn urls_are_redacted_wherever_they_are() {
        assert_eq!(
            redact_urls("a http://x/y b (https://z) c"),
            "a <url> b (<url>) c"
        );
        assert_eq!(redact_urls("no links"), "no links");
    }
}

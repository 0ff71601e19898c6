use std::time::Duration;

/// What went wrong talking to a provider, by what the caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderErrorKind {
    /// Credentials were rejected or revoked: the connection needs re-authorization.
    ReauthRequired,
    /// Credentials are valid but lack a permission.
    Forbidden,
    /// The remote record does not exist (any more).
    NotFound,
    /// Over the rate limit; retry after the given time.
    RateLimited,
    /// A transient failure (5xx, timeout, connection reset); retry with backoff.
    Transient,
    /// The provider answered something we cannot read; fail the run, keep what is synced.
    InvalidResponse,
    /// Our request was wrong (a bug or bad configuration); not retryable.
    Rejected,
    /// The operation is not supported by this provider.
    Unsupported,
}

/// A failure of a provider call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{provider}: {kind:?}: {message}")]
pub struct ProviderError {
    /// Provider id.
    pub provider: &'static str,
    /// What kind of failure.
    pub kind: ProviderErrorKind,
    /// Explanation; never contains secrets.
    pub message: String,
    /// How long to wait before retrying, when the provider said.
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    /// Builds an error.
    pub fn new(
        provider: &'static str,
        kind: ProviderErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            provider,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ProviderErrorKind::RateLimited | ProviderErrorKind::Transient
        )
    }

    /// Whether an admin must authorize the connection again.
    pub fn needs_reauth(&self) -> bool {
        self.kind == ProviderErrorKind::ReauthRequired
    }
}

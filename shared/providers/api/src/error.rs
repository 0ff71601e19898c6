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
    /// A request that is not idempotent (a create, most POSTs) was sent, but no answer says
    /// whether the provider applied it: the attempt timed out, the connection broke after the
    /// request left, or the provider answered 5xx. The HTTP helper never resends such a request
    /// on its own, because a blind resend can create a duplicate remote record. It is **not**
    /// retryable by default ([`ProviderError::is_retryable`] is `false`): the adapter decides,
    /// e.g. by looking the record up (by an idempotency key or a natural key) and then creating
    /// it again or taking the one that exists, and may return [`Self::Transient`] when a retry
    /// is known to be harmless.
    OutcomeUnknown,
    /// The provider processed the request and refused it with an application-level error that
    /// is neither about credentials nor about rate limits (e.g. a SOAP fault). Not retryable as
    /// is; the fault's code and text are in [`ProviderError::detail`] for the adapter and logs.
    Fault,
}

/// A failure of a provider call.
///
/// Two texts, for two audiences:
/// - [`message`](Self::message) is shown to end users (API answers, run and connection status)
///   and is what `Display` prints. It never contains secrets, provider URLs or response bodies:
///   adapters write it themselves, and the HTTP helper builds it from the status only.
/// - [`detail`](Self::detail) is for logs and for the adapter that interprets the failure:
///   method, URL, status, a snippet of the response body, the transport error. It never contains
///   secrets either, but it must not reach API clients.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{provider}: {kind:?}: {message}")]
pub struct ProviderError {
    /// Provider id.
    pub provider: &'static str,
    /// What kind of failure.
    pub kind: ProviderErrorKind,
    /// Explanation fit for end users; never contains secrets, provider URLs or response bodies.
    pub message: String,
    /// Internal detail for logs and adapters (URL, status, body snippet); never shown to API
    /// clients.
    pub detail: Option<String>,
    /// How long to wait before retrying, when the provider said.
    pub retry_after: Option<Duration>,
    /// A machine-readable code the adapter chose for a failure users act on differently from
    /// its kind's generic one (`no_basecamp_account`, `account_inactive`); the API answers it
    /// as the error code, runs record it as the problem code.
    pub code: Option<&'static str>,
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
            detail: None,
            retry_after: None,
            code: None,
        }
    }

    /// Sets the machine-readable code (see [`ProviderError::code`]).
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// Sets the internal detail (see [`ProviderError::detail`]).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets how long to wait before retrying.
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// Whether retrying the same call later may succeed. [`ProviderErrorKind::OutcomeUnknown`]
    /// is not: only the adapter can tell whether a resend would duplicate a record.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ProviderErrorKind::RateLimited | ProviderErrorKind::Transient
        )
    }

    /// Whether the error refuses one record for its own sake (the provider answered about that
    /// record: not found, refused, a fault in its item) rather than saying the provider, the
    /// request or the credentials failed. A run reports such a record and goes on with the
    /// others; the record is retried on the next run.
    pub fn concerns_item_only(&self) -> bool {
        matches!(
            self.kind,
            ProviderErrorKind::NotFound
                | ProviderErrorKind::Unsupported
                | ProviderErrorKind::Rejected
                | ProviderErrorKind::Fault
        )
    }

    /// Whether an admin must authorize the connection again.
    pub fn needs_reauth(&self) -> bool {
        self.kind == ProviderErrorKind::ReauthRequired
    }
}

use hourbridge_domain::{FailureReason, SecretError};
use hourbridge_provider_api::{ProviderError, ProviderErrorKind};
use hourbridge_store::StoreError;

/// What the engine can fail with, by what a caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No provider with this id.
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
    /// The workspace has no connection to this provider.
    #[error("{0} is not connected")]
    NotConnected(String),
    /// The connection is not in a state that allows this (e.g. syncing before authorization).
    #[error("{0}")]
    InvalidState(String),
    /// Input was wrong (unknown project, bad OAuth state, ...).
    #[error("{0}")]
    Invalid(String),
    /// A record the caller named (a review item, ...) does not exist in the workspace.
    #[error("no {0}")]
    NotFound(String),
    /// Another run holds the connection; try later.
    #[error("another sync of this connection is running")]
    Busy,
    /// The provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The secret store failed.
    #[error(transparent)]
    Secrets(#[from] SecretError),
    /// The job queue failed.
    #[error("job queue: {0}")]
    Queue(String),
    /// Connect fields were missing, unknown, empty or too long (nothing was stored).
    #[error("{message}")]
    InvalidFields {
        /// What is wrong with them.
        problem: FieldProblem,
        /// The fields at fault.
        fields: Vec<String>,
        /// Explanation.
        message: String,
    },
    /// The provider rejected the credentials entered on connect (nothing was stored).
    #[error("{message}")]
    InvalidCredentials {
        /// The connect fields at fault.
        fields: Vec<String>,
        /// Explanation fit for the admin.
        message: String,
    },
    /// The provider could not be reached to check credentials (nothing was stored).
    #[error("{0}")]
    Unreachable(String),
    /// The address entered on connect (a site's domain) reaches no site of the provider
    /// (nothing was stored).
    #[error("{message}")]
    UnreachableDomain {
        /// The connect fields at fault.
        fields: Vec<String>,
        /// Explanation fit for the admin.
        message: String,
    },
    /// The credentials work but lack a permission, package or add-on (nothing was stored).
    #[error("{0}")]
    MissingEntitlement(String),
    /// Activation was confirmed before a passing "Test API" of the saved credentials.
    #[error("test the {0} credentials (Test API) before confirming the activation")]
    TestRequired(String),
    /// The provider refused the authorization code of an OAuth callback (expired, replayed or
    /// issued to another client): the user must authorize again. The connection is unchanged.
    #[error("{0}")]
    AuthorizationFailed(String),
    /// The provider requires an add-on the workspace does not have (see [`crate::addons`]):
    /// nothing was called or stored.
    #[error(
        "the {name} add-on is not enabled for this workspace; enable it in the host product's \
         billing settings"
    )]
    AddonNotEnabled {
        /// The provider (and add-on) id.
        provider: String,
        /// The provider's display name.
        name: String,
    },
    /// No add-on with this id (add-ons are the ids of providers that require one).
    #[error("unknown add-on {0:?}")]
    UnknownAddon(String),
}

/// What is wrong with connect fields ([`SyncError::InvalidFields`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldProblem {
    /// A required field is missing or empty.
    Missing,
    /// The provider declares no such field.
    Unknown,
    /// A value is longer than allowed.
    TooLong,
    /// A `sync_at` value is not a quarter hour `HH:MM`.
    InvalidSyncAt,
}

impl From<hourbridge_provider_api::CredentialCheckError> for SyncError {
    fn from(e: hourbridge_provider_api::CredentialCheckError) -> Self {
        use hourbridge_provider_api::CredentialCheckError as C;
        match e {
            C::Invalid { fields, message } => Self::InvalidCredentials { fields, message },
            C::Unreachable { message } => Self::Unreachable(message),
            C::UnreachableDomain { fields, message } => Self::UnreachableDomain { fields, message },
            C::MissingEntitlement { message } => Self::MissingEntitlement(message),
            C::Other(p) => Self::Provider(p),
        }
    }
}

impl SyncError {
    /// Whether a later attempt may succeed without anyone acting.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Busy => true,
            Self::Provider(p) => p.is_retryable(),
            Self::Store(s) => s.is_retryable(),
            Self::Secrets(s) => s.is_retryable(),
            Self::Queue(_) => true,
            Self::Unreachable(_) => true,
            _ => false,
        }
    }

    /// The reason recorded on a failed run.
    pub fn reason(&self) -> FailureReason {
        match self {
            // Adapters name an inactive account with this code whatever status said so.
            Self::Provider(p) if p.code == Some("account_inactive") => {
                FailureReason::AccountInactive
            }
            Self::Provider(p) => match p.kind {
                ProviderErrorKind::ReauthRequired => FailureReason::ReauthRequired,
                ProviderErrorKind::Forbidden => FailureReason::Forbidden,
                ProviderErrorKind::RateLimited
                | ProviderErrorKind::Transient
                | ProviderErrorKind::OutcomeUnknown => FailureReason::ProviderUnavailable,
                ProviderErrorKind::InvalidResponse => FailureReason::InvalidResponse,
                ProviderErrorKind::NotFound
                | ProviderErrorKind::Rejected
                | ProviderErrorKind::Unsupported
                | ProviderErrorKind::Fault => FailureReason::Configuration,
            },
            Self::NotConnected(_)
            | Self::InvalidState(_)
            | Self::TestRequired(_)
            | Self::NotFound(_)
            | Self::Invalid(_)
            | Self::UnknownProvider(_)
            | Self::InvalidFields { .. }
            | Self::UnreachableDomain { .. } => FailureReason::Configuration,
            Self::InvalidCredentials { .. } => FailureReason::ReauthRequired,
            Self::MissingEntitlement(_) => FailureReason::Forbidden,
            Self::Unreachable(_) => FailureReason::ProviderUnavailable,
            Self::AuthorizationFailed(_) => FailureReason::ReauthRequired,
            Self::AddonNotEnabled { .. } => FailureReason::AddonNotEnabled,
            _ => FailureReason::Internal,
        }
    }
}

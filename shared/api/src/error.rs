use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hourbridge_domain::DomainError;
use hourbridge_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// An API failure: HTTP status, machine-readable code and a message fit for the caller.
/// Internal details never reach the body; they are logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Input fields at fault, when the error is about some (sent as `fields`).
    pub fields: Vec<String>,
}

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
            fields: Vec::new(),
        }
    }

    /// Names the input fields at fault (`fields` in the body).
    pub fn with_fields(mut self, fields: Vec<String>) -> Self {
        self.fields = fields;
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
            S::Invalid(m) => Self::new(StatusCode::BAD_REQUEST, "invalid_request", m),
            S::Busy => Self::new(
                StatusCode::CONFLICT,
                "busy",
                "another sync of this connection is running; retry shortly",
            ),
            S::Provider(p) => match p.kind {
                K::ReauthRequired => Self::new(
                    StatusCode::CONFLICT,
                    "reauth_required",
                    format!("{} rejected our credentials; authorize again", p.provider),
                ),
                K::Forbidden => Self::new(StatusCode::CONFLICT, "provider_forbidden", p.message),
                K::NotFound => Self::new(StatusCode::NOT_FOUND, "provider_not_found", p.message),
                K::RateLimited | K::Transient => Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "provider_unavailable",
                    format!(
                        "{} is unavailable or limiting us; retry shortly",
                        p.provider
                    ),
                ),
                K::InvalidResponse => Self::new(
                    StatusCode::BAD_GATEWAY,
                    "provider_invalid_response",
                    format!("{} answered something unreadable", p.provider),
                ),
                K::Rejected | K::Unsupported => Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "provider_rejected",
                    p.message,
                ),
            },
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
                };
                Self::unprocessable(code, message).with_fields(fields)
            }
            S::InvalidCredentials { fields, message } => {
                Self::unprocessable("invalid_credentials", message).with_fields(fields)
            }
            S::Unreachable(m) => Self::new(StatusCode::BAD_GATEWAY, "unreachable", m),
            S::MissingEntitlement(m) => Self::new(StatusCode::FORBIDDEN, "missing_entitlement", m),
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
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("5"),
            );
        }
        res
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

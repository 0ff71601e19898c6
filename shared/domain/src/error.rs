/// A rule of the domain was broken by the input; the caller can fix the input and retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DomainError {
    /// The offending field, in the API's snake_case naming.
    pub field: &'static str,
    /// Machine-readable code, e.g. `too_long`, `invalid_email`, `invalid_range`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl DomainError {
    /// Builds an error for `field` with a machine-readable `code`.
    pub fn new(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            code,
            message: message.into(),
        }
    }
}

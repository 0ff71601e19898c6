use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

/// A secret value (token, password, client secret). `Debug` prints `[REDACTED]`, so a stray
/// `{:?}` in a log line never leaks it; read it only with [`SecretValue::expose`] at the point
/// of use. It is not `Serialize`: a secret cannot end up in an API response by accident.
#[derive(Clone)]
pub struct SecretValue(SecretString);

impl SecretValue {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The plaintext, for the one place that must send it somewhere.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue([REDACTED])")
    }
}

/// What a secret operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The name has characters no backend accepts.
    #[error("invalid secret name {0:?}")]
    InvalidName(String),
    /// The stored secret cannot be decrypted or decoded (wrong key, tampering); not retryable.
    #[error("secret {0:?} cannot be decrypted: wrong key or tampered file")]
    Undecryptable(String),
    /// The backend is unreachable or throttling; retry later.
    #[error("secret store unavailable: {0}")]
    Unavailable(String),
    /// Any other failure (permissions, I/O); not retryable.
    #[error("secret store error: {0}")]
    Backend(String),
}

impl SecretError {
    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Checks a secret name: 1-256 characters of `A-Z a-z 0-9 / _ + = . @ -` (the Secrets Manager
/// alphabet), so a name valid locally is valid in AWS too.
pub fn check_secret_name(name: &str) -> Result<(), SecretError> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(SecretError::InvalidName(name.to_owned()))
    }
}

/// The name of a connection's secret: `{workspace}/{provider}`. Backends add their own prefix.
pub fn connection_secret_name(workspace: &str, provider: &str) -> String {
    format!("{workspace}/{provider}")
}

/// The secret-store port.
#[async_trait]
pub trait SecretStore: Send + Sync + std::fmt::Debug {
    /// Creates or replaces a secret.
    async fn put(&self, name: &str, value: &SecretValue) -> Result<(), SecretError>;
    /// Reads a secret; `None` when there is none.
    async fn get(&self, name: &str) -> Result<Option<SecretValue>, SecretError>;
    /// Deletes a secret at once (no recovery window); deleting a missing secret is not an error.
    async fn delete(&self, name: &str) -> Result<(), SecretError>;
}

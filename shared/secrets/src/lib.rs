//! Secrets of Hourbridge: provider credentials and tokens, one secret per connection.
//!
//! The [`SecretStore`] port has two backends: [`LocalSecretStore`] (AES-256-GCM encrypted file
//! in the data directory, for the local binary) and [`SecretsManagerStore`] (AWS Secrets
//! Manager, for Lambda). Values travel as [`SecretValue`], whose `Debug` prints `[REDACTED]`, so
//! a stray `{:?}` in a log line never leaks a token.

mod local;
mod secrets_manager;

use async_trait::async_trait;
pub use hourbridge_domain::SecretValue;

pub use local::{KEY_FILE, LocalSecretStore, SECRETS_FILE};
pub use secrets_manager::SecretsManagerStore;

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
pub fn check_name(name: &str) -> Result<(), SecretError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_secret_value_is_redacted() {
        let v = SecretValue::new("hunter2-token");
        let shown = format!("{v:?} {:?}", Some(&v));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("REDACTED"));
        assert_eq!(v.expose(), "hunter2-token");
    }

    #[test]
    fn names_use_the_secrets_manager_alphabet() {
        assert!(check_name("ws-1/harvest").is_ok());
        assert!(check_name("a b").is_err());
        assert!(check_name("").is_err());
        assert!(
            check_name("../../etc/passwd").is_ok(),
            "dots and slashes are only name text"
        );
    }
}

//! Secrets of Hourbridge: provider credentials and tokens, one secret per connection.
//!
//! The [`SecretStore`] port has two backends: [`LocalSecretStore`] (AES-256-GCM encrypted file
//! in the data directory, for the local binary) and [`SecretsManagerStore`] (AWS Secrets
//! Manager, for Lambda). Values travel as [`SecretValue`], whose `Debug` prints `[REDACTED]`, so
//! a stray `{:?}` in a log line never leaks a token.

mod local;
mod secrets_manager;

pub use hourbridge_domain::{
    SecretError, SecretStore, SecretValue, check_secret_name as check_name, connection_secret_name,
};

pub use local::{KEY_FILE, LocalSecretStore, SECRETS_FILE};
pub use secrets_manager::SecretsManagerStore;

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

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

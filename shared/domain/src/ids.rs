use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DomainError;

fn valid_id_chars(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
        pub struct $name(String);

        impl $name {
            /// Parses an id: 1 to 64 characters of `A-Z a-z 0-9 - _ .`. Ids end up inside
            /// store keys, so the alphabet excludes the key separator `#`.
            pub fn parse(s: impl Into<String>) -> Result<Self, DomainError> {
                let s = s.into();
                if valid_id_chars(&s) {
                    Ok(Self(s))
                } else {
                    Err(DomainError::new(
                        $field,
                        "invalid_id",
                        "must be 1-64 characters of A-Z, a-z, 0-9, '-', '_' or '.'",
                    ))
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A workspace (tenant) id, as carried in the `ws` claim of the caller's token.
    WorkspaceId,
    "workspace_id"
);
id_type!(
    /// The id of any host record (person, project, work log, ...).
    RecordId,
    "id"
);

/// A new record id: UUIDv7, so ids sort by creation time and pages come back in insertion order.
pub fn new_id() -> RecordId {
    RecordId(uuid::Uuid::now_v7().to_string())
}

/// A provider's id (`harvest`, `hubstaff`, ...). It is a string, not an enum, so adding a
/// provider touches only its own folder and the registry; the registry decides which ids exist.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
pub struct ProviderId(String);

impl ProviderId {
    /// Parses a provider id: 1 to 32 lower-case ASCII letters, digits or `-`.
    pub fn parse(s: impl Into<String>) -> Result<Self, DomainError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok && s != "local" {
            Ok(Self(s))
        } else {
            Err(DomainError::new(
                "provider",
                "invalid_provider",
                "must be a provider id such as 'harvest'",
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProviderId {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<ProviderId> for String {
    fn from(id: ProviderId) -> String {
        id.0
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_id_rejects_key_separator_and_empty() {
        assert!(RecordId::parse("a#b").is_err());
        assert!(RecordId::parse("").is_err());
        assert!(RecordId::parse("x".repeat(65)).is_err());
        assert!(RecordId::parse("018f-abc_1.2").is_ok());
    }

    #[test]
    fn new_ids_sort_by_creation() {
        let a = new_id();
        let b = new_id();
        assert!(a < b, "{a} should sort before {b}");
    }

    #[test]
    fn provider_id_cannot_be_local() {
        assert!(ProviderId::parse("local").is_err());
        assert!(ProviderId::parse("Harvest").is_err());
        assert_eq!(ProviderId::parse("harvest").unwrap().as_str(), "harvest");
    }
}

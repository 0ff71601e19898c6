//! Input rules shared by every entry point (API, sync engine).

use crate::DomainError;

/// Longest name (person, project, customer, task) accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest work-log note accepted, in characters.
pub const MAX_NOTE_CHARS: usize = 20_000;
/// Longest e-mail address accepted (RFC 5321 path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Most minutes one work log may carry: a day.
pub const MAX_MINUTES_PER_LOG: u32 = 24 * 60;

/// Trims `value` and checks it is non-empty and at most `max` characters.
pub fn text(field: &'static str, value: &str, max: usize) -> Result<String, DomainError> {
    let t = value.trim();
    if t.is_empty() {
        return Err(DomainError::new(field, "required", "must not be empty"));
    }
    if t.chars().count() > max {
        return Err(DomainError::new(
            field,
            "too_long",
            format!("must be at most {max} characters"),
        ));
    }
    Ok(t.to_owned())
}

/// Like [`text`] but an empty value is allowed.
pub fn optional_text(field: &'static str, value: &str, max: usize) -> Result<String, DomainError> {
    if value.chars().count() > max {
        return Err(DomainError::new(
            field,
            "too_long",
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// The comparison form of an e-mail address: trimmed and lower-cased. People are matched
/// across systems by this form only.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Trims an e-mail address and checks its shape (one `@`, something on both sides, no spaces).
/// Case is kept for display; compare with [`normalize_email`].
pub fn email(value: &str) -> Result<String, DomainError> {
    let t = value.trim();
    if t.chars().count() > MAX_EMAIL_CHARS {
        return Err(DomainError::new(
            "email",
            "too_long",
            "e-mail address is too long",
        ));
    }
    let mut parts = t.splitn(2, '@');
    let (local, domain) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !t.chars().any(char::is_whitespace);
    if ok {
        Ok(t.to_owned())
    } else {
        Err(DomainError::new(
            "email",
            "invalid_email",
            "is not an e-mail address",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_compare_case_insensitively_after_trimming() {
        assert_eq!(
            normalize_email("  Ada@Example.COM "),
            normalize_email("ada@example.com")
        );
    }

    #[test]
    fn email_shape_is_checked() {
        assert!(email("no-at-sign").is_err());
        assert!(email("a@b@c").is_err());
        assert!(email("a b@c").is_err());
        assert_eq!(email(" Ada@Example.com ").unwrap(), "Ada@Example.com");
    }

    #[test]
    fn text_limits_count_characters_not_bytes() {
        let name = "ø".repeat(MAX_NAME_CHARS);
        assert!(text("name", &name, MAX_NAME_CHARS).is_ok());
        assert_eq!(
            text("name", &format!("{name}x"), MAX_NAME_CHARS)
                .unwrap_err()
                .code,
            "too_long"
        );
        assert_eq!(
            text("name", "   ", MAX_NAME_CHARS).unwrap_err().code,
            "required"
        );
    }
}

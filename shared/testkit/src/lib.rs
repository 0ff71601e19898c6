//! Test harness pieces shared by Hourbridge's suites.
//!
//! Tests that need AWS talk to moto_server through the real AWS SDK. The README's test command
//! starts moto on a free loopback port and exports `TEST_AWS_ENDPOINT`; when it is missing, such
//! tests print a loud SKIPPED line, unless `HOURBRIDGE_REQUIRE_MOTO=1` (set by the test command
//! and CI), in which case they fail: CI must never pass by skipping.

pub mod bench;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// The emulator endpoint variable.
pub const ENDPOINT_VAR: &str = "TEST_AWS_ENDPOINT";
/// When `1`, a missing emulator fails the test instead of skipping it.
pub const REQUIRE_VAR: &str = "HOURBRIDGE_REQUIRE_MOTO";

/// The emulator endpoint, or `None` (after printing why) when the test should be skipped.
///
/// # Panics
/// When the emulator is required but not configured.
pub fn moto_endpoint(what: &str) -> Option<String> {
    match std::env::var(ENDPOINT_VAR) {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            assert!(
                std::env::var(REQUIRE_VAR).as_deref() != Ok("1"),
                "{what}: {ENDPOINT_VAR} is not set but {REQUIRE_VAR}=1; run the README test command"
            );
            eprintln!("SKIPPED {what}: {ENDPOINT_VAR} not set (run the README test command)");
            None
        }
    }
}

/// An SDK config pointing at the emulator with dummy credentials, or `None` to skip.
pub async fn moto_config(what: &str) -> Option<SdkConfig> {
    let endpoint = moto_endpoint(what)?;
    Some(config_for(&endpoint).await)
}

/// An SDK config for `endpoint` with dummy credentials in `us-east-1`.
pub async fn config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::from_keys("testing", "testing", None))
        .load()
        .await
}

/// A name no other test run uses (tables, secret prefixes, buses).
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

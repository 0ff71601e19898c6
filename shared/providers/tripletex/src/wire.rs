//! Tripletex API v2 wire types (the fields we ask for with `fields=`; everything optional that
//! may be missing when the employee token lacks an entitlement).

use serde::{Deserialize, Serialize};

/// A list envelope: `{fullResultSize, from, count, versionDigest, values}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ListEnvelope<T> {
    /// This page's values.
    #[serde(default = "Vec::new")]
    pub values: Vec<T>,
    /// Hash of the full result (cheap change check).
    #[serde(default, rename = "versionDigest")]
    pub version_digest: Option<String>,
}

/// A single-value envelope: `{value}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ValueEnvelope<T> {
    /// The value.
    pub value: T,
}

/// An error body: `{status, code, message, validationMessages, requestId}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// HTTP status.
    #[serde(default)]
    pub status: Option<u16>,
    /// Tripletex error code (3000 auth, 9000 entitlement, 8000 revision, ...).
    #[serde(default)]
    pub code: Option<u32>,
    /// Tripletex's explanation.
    #[serde(default)]
    pub message: Option<String>,
    /// Developer message.
    #[serde(default)]
    pub developer_message: Option<String>,
    /// Per-field validation failures.
    #[serde(default)]
    pub validation_messages: Option<Vec<ValidationMessage>>,
    /// Tripletex's request id (also `x-tlx-request-id`); logged, never shown.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// One validation failure.
#[derive(Debug, Clone, Deserialize)]
pub struct ValidationMessage {
    /// Field at fault.
    #[serde(default)]
    pub field: Option<String>,
    /// What is wrong.
    #[serde(default)]
    pub message: Option<String>,
}

/// A reference to another object (`{id, url, ...}`).
#[derive(Debug, Clone, Deserialize)]
pub struct Ref {
    /// Id.
    pub id: u64,
}

/// The session created by `PUT /token/session/:create`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionToken {
    /// Last day of validity, `YYYY-MM-DD`.
    #[serde(default)]
    pub expiration_date: Option<chrono::NaiveDate>,
    /// The session token.
    pub token: String,
}

/// `GET /token/session/>whoAmI`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    /// Company id.
    #[serde(default)]
    pub company_id: Option<u64>,
    /// Employee id.
    #[serde(default)]
    pub employee_id: Option<u64>,
    /// Company.
    #[serde(default)]
    pub company: Option<Company>,
    /// Employee.
    #[serde(default)]
    pub employee: Option<Employee>,
}

/// A company.
#[derive(Debug, Clone, Deserialize)]
pub struct Company {
    /// Id.
    pub id: u64,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
}

/// An employee.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Employee {
    /// Id.
    pub id: u64,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A customer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// Id.
    pub id: u64,
    /// Revision.
    #[serde(default)]
    pub version: Option<u64>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Customer number (an integer in Tripletex).
    #[serde(default)]
    pub customer_number: Option<u64>,
    /// Organisation number.
    #[serde(default)]
    pub organization_number: Option<String>,
    /// Inactive.
    #[serde(default)]
    pub is_inactive: bool,
}

/// A project (main or sub-project).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    /// Id.
    pub id: u64,
    /// Revision.
    #[serde(default)]
    pub version: Option<u64>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Project number (a string in Tripletex).
    #[serde(default)]
    pub number: Option<String>,
    /// First day.
    #[serde(default)]
    pub start_date: Option<chrono::NaiveDate>,
    /// Last day.
    #[serde(default)]
    pub end_date: Option<chrono::NaiveDate>,
    /// Closed.
    #[serde(default)]
    pub is_closed: bool,
    /// Parent project; `None` for a main project.
    #[serde(default)]
    pub main_project: Option<Ref>,
    /// Customer; `None` for internal projects.
    #[serde(default)]
    pub customer: Option<Ref>,
}

/// A webhook subscription as listed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Id.
    pub id: u64,
    /// Event, e.g. `project.update`.
    #[serde(default)]
    pub event: String,
    /// Where deliveries go.
    #[serde(default)]
    pub target_url: String,
    /// `ACTIVE`, `DISABLED`, `DISABLED_TOO_MANY_ERRORS`, ...
    #[serde(default)]
    pub status: Option<String>,
}

/// A new subscription (`POST /event/subscription`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSubscription<'a> {
    /// Event.
    pub event: &'a str,
    /// Where deliveries go.
    pub target_url: &'a str,
    /// What the delivery's `value` contains.
    pub fields: &'a str,
    /// The HMAC-SHA512 secret (write-only in Tripletex).
    pub hmac_shared_secret: &'a str,
}

/// A webhook callback body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Callback {
    /// Subscription that fired.
    #[serde(default)]
    pub subscription_id: Option<u64>,
    /// `object.verb`.
    pub event: String,
    /// Id of the object.
    pub id: u64,
    /// The object, filtered by the subscription's `fields`; `null` on deletes.
    #[serde(default)]
    pub value: Option<serde_json::Value>,
}

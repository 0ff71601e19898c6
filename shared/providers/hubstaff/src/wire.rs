//! Hubstaff v2 response bodies, reduced to the fields the adapter reads.
//!
//! Every list is `#[serde(default)]` because Hubstaff leaves out empty side-loads, and every
//! id is 64-bit because Hubstaff ids outgrow 32 bits even where its Swagger says `int32`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// Present only when another page follows: its absence, not an empty page, ends the listing.
#[derive(Debug, Deserialize)]
pub(crate) struct Pagination {
    #[serde(default)]
    pub(crate) next_page_start_id: Option<u64>,
}

/// The `page_start_id` of the following page, if there is one.
pub(crate) fn next_start(p: Option<&Pagination>) -> Option<u64> {
    p.and_then(|p| p.next_page_start_id)
}

#[derive(Debug, Deserialize)]
pub(crate) struct Organizations {
    #[serde(default)]
    pub(crate) organizations: Vec<Organization>,
    pub(crate) pagination: Option<Pagination>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Organization {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Projects {
    #[serde(default)]
    pub(crate) projects: Vec<Project>,
    pub(crate) pagination: Option<Pagination>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Project {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) status: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Members {
    #[serde(default)]
    pub(crate) users: Vec<User>,
    pub(crate) pagination: Option<Pagination>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct User {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) name: String,
    /// Optional in Hubstaff's schema, and really missing for some members.
    #[serde(default)]
    pub(crate) email: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DailyActivities {
    #[serde(default)]
    pub(crate) daily_activities: Vec<DailyActivity>,
    #[serde(default)]
    pub(crate) users: Vec<User>,
    pub(crate) pagination: Option<Pagination>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DailyActivity {
    pub(crate) date: NaiveDate,
    pub(crate) user_id: u64,
    pub(crate) project_id: u64,
    /// The schema says required, but time tracked without a task comes as null, 0 or nothing.
    #[serde(default)]
    pub(crate) task_id: Option<u64>,
    /// Seconds (timesheets count minutes; daily activities do not).
    #[serde(default)]
    pub(crate) tracked: u64,
    #[serde(default, deserialize_with = "lenient_timestamp")]
    pub(crate) updated_at: Option<DateTime<Utc>>,
}

impl DailyActivity {
    /// The task, with Hubstaff's "no task" spellings folded into `None`.
    pub(crate) fn task(&self) -> Option<u64> {
        self.task_id.filter(|&t| t != 0)
    }
}

/// Where a work-log listing resumes: which ≤31-day chunk of the window, and where in it.
/// Serialized as the opaque page token so a restarted engine continues after any page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WorkLogCursor {
    pub(crate) chunk_start: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) page_start_id: Option<u64>,
}

/// A timestamp that never fails the page: some Hubstaff payloads omit the zone designator
/// (read as UTC, which is what Hubstaff runs in), and an unreadable one is only metadata.
fn lenient_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let raw = Option::<String>::deserialize(d)?;
    Ok(raw.as_deref().and_then(parse_timestamp))
}

pub(crate) fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

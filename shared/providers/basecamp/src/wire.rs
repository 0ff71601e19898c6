//! Basecamp's JSON, as far as the adapter reads it. Unknown fields are ignored; the fields
//! read are the ones `basecamp-tripletex-timelog.md` §2 documents.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

/// `GET https://launchpad.37signals.com/authorization.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Authorization {
    /// Accounts of every product the identity can reach.
    pub accounts: Vec<LaunchpadAccount>,
}

/// One account of `authorization.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct LaunchpadAccount {
    /// `bc3` for Basecamp 4 (and 3); `bcx`, `hey`, ... for others.
    pub product: String,
    /// Account id.
    pub id: u64,
    /// Account name.
    pub name: String,
    /// API base of the account, e.g. `https://3.basecampapi.com/4410022`.
    pub href: String,
}

/// A dock entry of a project (`todoset`, `message_board`, ...).
#[derive(Debug, Clone, Deserialize)]
pub struct DockEntry {
    /// Tool id.
    pub id: u64,
    /// Tool kind, e.g. `todoset`.
    pub name: String,
    /// Whether the tool is switched on.
    #[serde(default)]
    pub enabled: bool,
    /// API URL of the tool.
    pub url: String,
}

/// A project (`/projects.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    /// Project (= bucket) id.
    pub id: u64,
    /// `active`, `archived` or `trashed`.
    pub status: String,
    /// Name.
    pub name: String,
    /// Whether time may be logged on it; absent counts as enabled.
    #[serde(default)]
    pub timesheet_enabled: Option<bool>,
    /// Tools.
    #[serde(default)]
    pub dock: Vec<DockEntry>,
    /// Last change.
    pub updated_at: Option<DateTime<Utc>>,
}

/// `/todosets/{id}.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Todoset {
    /// Where its lists are.
    pub todolists_url: String,
}

/// A to-do list or a group (`/todosets/{id}/todolists.json`, `/todolists/{id}/groups.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct Todolist {
    /// List id.
    pub id: u64,
    /// Where its to-dos are.
    pub todos_url: String,
    /// Where its groups are (top-level lists only).
    #[serde(default)]
    pub groups_url: Option<String>,
}

/// A reference to a parent recording.
#[derive(Debug, Clone, Deserialize)]
pub struct Parent {
    /// Recording id.
    pub id: u64,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// `Todolist`, `Todo`, `Timesheet`, ...
    #[serde(rename = "type")]
    pub kind: String,
}

/// The project a recording is in.
#[derive(Debug, Clone, Deserialize)]
pub struct Bucket {
    /// Project id.
    pub id: u64,
    /// Project name.
    #[serde(default)]
    pub name: String,
}

/// A to-do (`/todolists/{id}/todos.json`, `/todos/{id}.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct Todo {
    /// To-do id.
    pub id: u64,
    /// `active`, `archived` or `trashed`.
    pub status: String,
    /// Title.
    pub title: String,
    /// Completed (separate from `status`).
    #[serde(default)]
    pub completed: bool,
    /// The list or group it is in.
    pub parent: Parent,
    /// The project.
    pub bucket: Bucket,
    /// People assigned (always an array).
    #[serde(default)]
    pub assignees: Vec<Person>,
    /// Last change.
    pub updated_at: Option<DateTime<Utc>>,
}

/// A person (`/people.json`, `/projects/{id}/people.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct Person {
    /// Person id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// E-mail as Basecamp stores it (not verified by Basecamp).
    #[serde(default)]
    pub email_address: Option<String>,
    /// Whether the person is a client user (client users cannot own time).
    #[serde(default)]
    pub client: bool,
}

/// A timesheet entry.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    /// Entry id.
    pub id: u64,
    /// The recording the time is on (a to-do, or the project's `Timesheet`).
    pub parent: Parent,
    /// The project.
    pub bucket: Bucket,
    /// Day.
    pub date: NaiveDate,
    /// Decimal hours as a string (`"2.75"`).
    pub hours: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Whom the time is for.
    pub person: Person,
    /// Last change.
    pub updated_at: Option<DateTime<Utc>>,
}

/// A webhook (`/buckets/{id}/webhooks.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct Webhook {
    /// Webhook id.
    pub id: u64,
    /// Whether it still delivers (Basecamp deactivates it after 10 failed attempts).
    #[serde(default)]
    pub active: bool,
    /// Where it delivers.
    pub payload_url: String,
}

/// A webhook delivery's body: `{id, kind, recording, ...}`; the recording is the generic shape.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookEvent {
    /// e.g. `todo_completed`.
    pub kind: String,
    /// What it is about.
    pub recording: WebhookRecording,
}

/// The generic recording in a webhook payload.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookRecording {
    /// Recording id.
    pub id: u64,
    /// `Todo`, `Todolist`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The project.
    pub bucket: Option<Bucket>,
}

/// The `next` target of a `Link` header (`<url>; rel="next"`), if any.
pub fn next_link(link: Option<&str>) -> Option<String> {
    link?.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let rel_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next")
        });
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        rel_next.then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next_only() {
        assert_eq!(
            next_link(Some(
                "<https://3.basecampapi.com/1/projects.json?page=2>; rel=\"next\""
            )),
            Some("https://3.basecampapi.com/1/projects.json?page=2".into())
        );
        assert_eq!(
            next_link(Some(
                "<https://x/a?page=1>; rel=\"prev\", <https://x/a?page=3>; rel=\"next\""
            )),
            Some("https://x/a?page=3".into())
        );
        assert_eq!(next_link(Some("<https://x/a?page=1>; rel=\"prev\"")), None);
        assert_eq!(next_link(Some("")), None);
        assert_eq!(next_link(None), None);
    }
}

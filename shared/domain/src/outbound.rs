//! Host changes flowing out: the change feed of host work logs and tasks, and the mappings that
//! make outbound writes (host → provider) recoverable after a crash without duplicates.
//!
//! Push sync kinds read [`HostChange`]s in `seq` order from their own watermark, instead of
//! reading every host record; for every host record they push they keep an
//! [`OutboundMapping`] with the remote id, the fingerprint of what was last pushed and a
//! [`PendingPush`] mark saved *before* the remote call.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ProviderId, RecordId};

/// How long change-feed entries are kept (they expire by TTL afterwards). A reader whose
/// watermark is older than this has lost entries and must reconcile in full.
pub const CHANGE_RETENTION_DAYS: i64 = 30;

/// The kinds of host record that flow out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostKind {
    /// A [`WorkLog`](crate::WorkLog).
    WorkLog,
    /// A [`Task`](crate::Task).
    Task,
}

impl HostKind {
    /// The kind's name in JSON and in store keys (`work_log`, `task`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkLog => "work_log",
            Self::Task => "task",
        }
    }
}

/// What happened to a host record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    /// The record was created.
    Created,
    /// The record was changed (a move to another project is one `updated` entry per project).
    Updated,
    /// The record was deleted.
    Deleted,
}

/// One entry of a workspace's change feed, appended in the same atomic write as the host
/// change it describes. It says *which* record changed, not how: readers re-read the record
/// (absent when deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostChange {
    /// Position in the workspace's feed: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    /// Kind of record.
    pub kind: HostKind,
    /// The record's id.
    pub id: RecordId,
    /// The project the record belongs to (for a move, the entry names one of the two).
    pub project_id: RecordId,
    /// What happened.
    pub op: ChangeOp,
    /// When (the writer's clock).
    pub at: DateTime<Utc>,
}

/// A change to append to the feed, before it has a sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeDraft {
    /// Kind of record.
    pub kind: HostKind,
    /// The record's id.
    pub id: RecordId,
    /// The project it belongs to.
    pub project_id: RecordId,
    /// What happened.
    pub op: ChangeOp,
}

impl ChangeDraft {
    /// A change of a record of `kind`.
    pub fn new(kind: HostKind, id: &RecordId, project_id: &RecordId, op: ChangeOp) -> Self {
        Self {
            kind,
            id: id.clone(),
            project_id: project_id.clone(),
            op,
        }
    }
}

/// A push that was started but not confirmed: the mark is saved before the remote call, so
/// after a crash the caller looks the remote record up by `idempotency_key` (or sends the same
/// key again) instead of creating a second one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPush {
    /// Sent with the remote create; stays the same on every retry until the push completes.
    pub idempotency_key: String,
    /// When the first attempt began.
    pub started_at: DateTime<Utc>,
}

/// Maps a host record to the record a provider holds for it (outbound direction), with the
/// fingerprint of what was last pushed so an unchanged record is not pushed again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMapping {
    /// The provider pushed to.
    pub provider: ProviderId,
    /// Kind of host record.
    pub host_kind: HostKind,
    /// The host record's id.
    pub host_id: RecordId,
    /// The remote record's id, once a push has completed.
    pub remote_id: Option<String>,
    /// Fingerprint of the content last pushed successfully.
    pub fingerprint: Option<String>,
    /// A push in flight (or interrupted by a crash).
    pub pending: Option<PendingPush>,
    /// Last change of this mapping.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_ops_serialise_in_snake_case() {
        assert_eq!(
            serde_json::to_string(&HostKind::WorkLog).unwrap(),
            "\"work_log\""
        );
        assert_eq!(HostKind::Task.as_str(), "task");
        assert_eq!(
            serde_json::to_string(&ChangeOp::Deleted).unwrap(),
            "\"deleted\""
        );
    }
}

//! The change feed of host work logs and tasks, per workspace.
//!
//! Every host write that push sync kinds care about is committed together with one or more
//! [`HostChange`] entries in one [`Backend::transact`](crate::Backend::transact):
//! - the workspace's *head* record (`change_head/head`, `{"last_seq": n}`) is rewritten
//!   conditionally on the version that was read, so two concurrent writers cannot take the
//!   same number: the loser's whole transaction (host write included) is cancelled and retried
//!   with a fresh head;
//! - each entry is `change/{seq:020}` (zero-padded, so id order is seq order), created on
//!   absence, with a TTL of [`CHANGE_RETENTION_DAYS`];
//! - the host write itself keeps its own condition (absent, or the version read): when that
//!   fails nothing is appended.
//!
//! Because an entry commits atomically with the head that names it, and seq `n + 1` can only
//! commit after `n` has, a reader never sees a later entry without the earlier ones: readers
//! see no gaps (strongly consistent reads on both backends). Entries older than the retention
//! disappear; [`ChangesPage::lost`] tells a reader that its watermark fell behind them.
//!
//! The head is never deleted and carries no TTL. All host writes of one workspace that append
//! to the feed serialise on its head; that is fine at human editing rates. Bulk writes of the
//! sync engine (work logs pulled from a provider) do not append.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use chrono::Duration;
use hourbridge_domain::{CHANGE_RETENTION_DAYS, ChangeDraft, HostChange, RecordId};
use serde::{Deserialize, Serialize};

use crate::entities::EntityKind;
use crate::{Condition, Entity, EntityFilter, Query, Record, Store, StoreError, TransactItem};

/// Attempts at taking the next sequence number before giving up with the last error.
const APPEND_ATTEMPTS: u32 = 60;

/// The workspace's last allocated sequence number (`change_head/head`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChangeHead {
    last_seq: u64,
}

const HEAD_ID: &str = "head";

impl Entity for ChangeHead {
    const KIND: EntityKind = EntityKind("change_head");
    fn id(&self) -> String {
        HEAD_ID.to_owned()
    }
}

/// The record id of the entry with sequence number `seq`: zero-padded so that id order is
/// numeric order.
pub fn change_id(seq: u64) -> String {
    format!("{seq:020}")
}

/// Change entries are keyed by their zero-padded sequence number and expire after
/// [`CHANGE_RETENTION_DAYS`].
impl Entity for HostChange {
    const KIND: EntityKind = EntityKind("change");
    fn id(&self) -> String {
        change_id(self.seq)
    }
    fn expires_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        Some(self.at + Duration::days(CHANGE_RETENTION_DAYS))
    }
}

/// What [`Store::commit_with_changes`] wrote.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The stored records of the caller's `Put` items, in order, with their new versions.
    pub records: Vec<Record>,
    /// The appended entries, with their sequence numbers.
    pub changes: Vec<HostChange>,
}

/// One page of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangesPage {
    /// Entries after the watermark, in `seq` order (only the project's, when filtered).
    pub changes: Vec<HostChange>,
    /// Where the next read starts: pass it back as the watermark. It moves past entries the
    /// project filter skipped, and equals the input when nothing new exists.
    pub next_watermark: u64,
    /// Entries right after the watermark have expired (the reader was away longer than
    /// [`CHANGE_RETENTION_DAYS`]): the reader must reconcile in full, then continue from
    /// `next_watermark`.
    pub lost: bool,
}

fn jitter_ms(attempt: u32) -> u64 {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    1 + random % (2 + u64::from(attempt.min(10)) * 3)
}

impl Store {
    /// The last sequence number allocated in `scope`'s feed (0 when nothing was appended). A
    /// new reader that has just read everything starts from here.
    pub async fn change_head(&self, scope: &str) -> Result<u64, StoreError> {
        Ok(self
            .get::<ChangeHead>(scope, HEAD_ID)
            .await?
            .map_or(0, |(h, _)| h.last_seq))
    }

    /// Applies `writes` (host writes with their own conditions) and appends `changes` to
    /// `scope`'s feed, numbered consecutively, all in one atomic transaction. A lost race for
    /// the sequence number is retried with the new head; a failed condition of `writes` is
    /// [`StoreError::Conflict`] and appends nothing. `writes` plus `changes` plus the head must
    /// fit in [`MAX_TRANSACT_ITEMS`](crate::MAX_TRANSACT_ITEMS).
    pub async fn commit_with_changes(
        &self,
        scope: &str,
        writes: Vec<TransactItem>,
        changes: Vec<ChangeDraft>,
    ) -> Result<Committed, StoreError> {
        let puts = writes
            .iter()
            .filter(|w| matches!(w, TransactItem::Put { .. }))
            .count();
        if changes.is_empty() {
            let records = self.transact(writes).await?;
            return Ok(Committed {
                records,
                changes: Vec::new(),
            });
        }
        let mut last_err = StoreError::Conflict;
        for attempt in 0..APPEND_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(jitter_ms(attempt))).await;
            }
            let head = self
                .backend()
                .get(scope, ChangeHead::KIND.0, HEAD_ID)
                .await?;
            let (last, condition) = match &head {
                Some(r) => (
                    Self::decode::<ChangeHead>(r)?.last_seq,
                    Condition::Version(r.version),
                ),
                None => (0, Condition::Absent),
            };
            let at = self.clock().now();
            let entries: Vec<HostChange> = changes
                .iter()
                .zip(last + 1..)
                .map(|(d, seq)| HostChange {
                    seq,
                    kind: d.kind,
                    id: d.id.clone(),
                    project_id: d.project_id.clone(),
                    op: d.op,
                    at,
                })
                .collect();
            let mut items = writes.clone();
            items.push(TransactItem::put_entity(
                scope,
                &ChangeHead {
                    last_seq: last + entries.len() as u64,
                },
                condition,
            )?);
            for e in &entries {
                items.push(TransactItem::put_entity(scope, e, Condition::Absent)?);
            }
            match self.transact(items).await {
                Ok(mut records) => {
                    records.truncate(puts);
                    return Ok(Committed {
                        records,
                        changes: entries,
                    });
                }
                Err(StoreError::Conflict) => {
                    // Either the head moved (we lost the race for the number: go again) or one
                    // of the caller's conditions failed (report it).
                    let now = self
                        .backend()
                        .get(scope, ChangeHead::KIND.0, HEAD_ID)
                        .await?;
                    if now.map(|r| r.version) == head.as_ref().map(|r| r.version) {
                        return Err(StoreError::Conflict);
                    }
                }
                // DynamoDB cancels transactions that overlap in flight; that is a race too.
                Err(e @ StoreError::Unavailable(_)) => last_err = e,
                Err(e) => return Err(e),
            }
        }
        Err(last_err)
    }

    /// Up to `limit` entries of `scope`'s feed after `watermark`, in `seq` order, only those of
    /// `project` when given. Continue with [`ChangesPage::next_watermark`] until it stops
    /// moving.
    pub async fn changes_after(
        &self,
        scope: &str,
        watermark: u64,
        limit: usize,
        project: Option<&RecordId>,
    ) -> Result<ChangesPage, StoreError> {
        // The head first: every entry up to it is committed, so the range below is complete.
        let head = self.change_head(scope).await?;
        if watermark >= head {
            return Ok(ChangesPage {
                changes: Vec::new(),
                next_watermark: watermark,
                lost: false,
            });
        }
        let mut q = Query::all(scope, HostChange::KIND.0, limit.max(1));
        q.from = Some(change_id(watermark + 1));
        q.to = Some(change_id(head));
        let filter: Option<EntityFilter<HostChange>> = project
            .cloned()
            .map(|p| Arc::new(move |c: &HostChange| c.project_id == p) as EntityFilter<HostChange>);
        let page = self.list::<HostChange>(q, filter).await?;
        let full = page.next.is_some();
        let changes: Vec<HostChange> = page.items.into_iter().map(|(c, _)| c).collect();
        let next_watermark = match changes.last() {
            Some(c) if full => c.seq,
            _ => head,
        };
        let lost = match changes.first() {
            Some(c) if c.seq == watermark + 1 => false,
            _ => self
                .backend()
                .get(scope, HostChange::KIND.0, &change_id(watermark + 1))
                .await?
                .is_none(),
        };
        Ok(ChangesPage {
            changes,
            next_watermark,
            lost,
        })
    }
}

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};

use crate::StoreError;

/// The scope of records that are looked up without a workspace (OAuth state, webhook tokens,
/// the schedule of due connections). It contains `#`, which workspace ids may not, so no
/// workspace can ever read or write it.
pub const GLOBAL_SCOPE: &str = "#global";

/// DynamoDB's `BatchWriteItem` limit; both backends chunk batches to it so behaviour is equal.
pub const MAX_BATCH_WRITE: usize = 25;

/// DynamoDB's `TransactWriteItems` limit; [`Backend::transact`] refuses longer transactions on
/// every backend (moto does not enforce it, so our code does).
pub const MAX_TRANSACT_ITEMS: usize = 100;

/// A secondary index key: records with the same `partition` are listed in `sort` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexKey {
    /// Which group the record belongs to (e.g. a project id).
    pub partition: String,
    /// Order within the group (e.g. a date); ranges are taken over it.
    pub sort: String,
}

/// One stored record, as backends see it: opaque JSON data plus the keys they index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Workspace id or [`GLOBAL_SCOPE`].
    pub scope: String,
    /// Record kind, e.g. `person`.
    pub kind: String,
    /// Id, unique within scope and kind.
    pub id: String,
    /// Optimistic version; 1 on creation, +1 on every write.
    pub version: u64,
    /// The record's JSON.
    pub data: String,
    /// First secondary index key.
    pub index1: Option<IndexKey>,
    /// Second secondary index key.
    pub index2: Option<IndexKey>,
    /// When the record stops existing for readers (unix seconds).
    pub expires_at: Option<i64>,
}

impl Record {
    /// Whether the record is expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|t| t <= now.timestamp())
    }
}

/// A precondition for a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Write whatever is there.
    None,
    /// Only if no live (unexpired) record exists.
    Absent,
    /// Only if the live record has exactly this version.
    Version(u64),
}

/// One write of an atomic multi-record transaction ([`Backend::transact`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactItem {
    /// Write `record` if `condition` holds (its `version` field is ignored, as in
    /// [`Backend::put`]).
    Put {
        /// The record to write.
        record: Record,
        /// Precondition.
        condition: Condition,
    },
    /// Delete a record if `condition` holds ([`Condition::Absent`] is refused; deleting a
    /// missing record under [`Condition::None`] is not an error).
    Delete {
        /// Scope of the record.
        scope: String,
        /// Kind of the record.
        kind: String,
        /// Id of the record.
        id: String,
        /// Precondition.
        condition: Condition,
    },
}

impl TransactItem {
    /// The `(scope, kind, id)` the item writes.
    pub fn key(&self) -> (&str, &str, &str) {
        match self {
            Self::Put { record, .. } => (&record.scope, &record.kind, &record.id),
            Self::Delete {
                scope, kind, id, ..
            } => (scope, kind, id),
        }
    }

    /// The item's precondition.
    pub fn condition(&self) -> Condition {
        match self {
            Self::Put { condition, .. } | Self::Delete { condition, .. } => *condition,
        }
    }
}

/// Checks what every backend refuses in a transaction before sending anything: more than
/// [`MAX_TRANSACT_ITEMS`] items, none at all, two items on one record, or a delete conditional
/// on absence. All are [`StoreError::Backend`] (a bug in the caller, not retryable).
pub fn check_transaction(items: &[TransactItem]) -> Result<(), StoreError> {
    if items.is_empty() {
        return Err(StoreError::Backend("empty transaction".into()));
    }
    if items.len() > MAX_TRANSACT_ITEMS {
        return Err(StoreError::Backend(format!(
            "a transaction takes at most {MAX_TRANSACT_ITEMS} items, not {}",
            items.len()
        )));
    }
    let mut keys = std::collections::HashSet::with_capacity(items.len());
    for item in items {
        if !keys.insert(item.key()) {
            let (scope, kind, id) = item.key();
            return Err(StoreError::Backend(format!(
                "a transaction writes {scope}/{kind}/{id} twice"
            )));
        }
        if matches!(
            item,
            TransactItem::Delete {
                condition: Condition::Absent,
                ..
            }
        ) {
            return Err(StoreError::Backend(
                "delete on absence is meaningless".into(),
            ));
        }
    }
    Ok(())
}

/// Which ordering a query walks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexSel {
    /// All records of the kind, by id.
    Primary,
    /// Records whose first index partition equals the value, by its sort value.
    Index1(String),
    /// Records whose second index partition equals the value, by its sort value.
    Index2(String),
}

/// A predicate applied by the backend while paging, so pages stay full and cursors stay exact.
pub type RecordFilter = Arc<dyn Fn(&Record) -> bool + Send + Sync>;

/// A page request.
#[derive(Clone)]
pub struct Query {
    /// Scope to read.
    pub scope: String,
    /// Kind to read.
    pub kind: String,
    /// Ordering / partition.
    pub index: IndexSel,
    /// Inclusive lower bound of the sort value (id for [`IndexSel::Primary`]).
    pub from: Option<String>,
    /// Inclusive upper bound of the sort value.
    pub to: Option<String>,
    /// Extra predicate; records failing it are skipped.
    pub filter: Option<RecordFilter>,
    /// Most records to return (at least 1).
    pub limit: usize,
    /// Where the previous page ended.
    pub cursor: Option<Cursor>,
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("scope", &self.scope)
            .field("kind", &self.kind)
            .field("index", &self.index)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("filter", &self.filter.is_some())
            .field("limit", &self.limit)
            .field("cursor", &self.cursor)
            .finish()
    }
}

impl Query {
    /// All records of `kind` in `scope`, by id, `limit` at a time.
    pub fn all(scope: &str, kind: &str, limit: usize) -> Self {
        Self {
            scope: scope.to_owned(),
            kind: kind.to_owned(),
            index: IndexSel::Primary,
            from: None,
            to: None,
            filter: None,
            limit,
            cursor: None,
        }
    }
}

/// An opaque paging position. Each backend encodes its own position inside; callers only pass
/// it back. Its text form is URL-safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(String);

impl Cursor {
    /// Wraps a backend position (any serialisable value).
    pub fn encode<T: Serialize>(position: &T) -> Self {
        let json = serde_json::to_vec(position).unwrap_or_default();
        Self(URL_SAFE_NO_PAD.encode(json))
    }

    /// Unwraps a position; a cursor from elsewhere is [`StoreError::InvalidCursor`].
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, StoreError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(&self.0)
            .map_err(|_| StoreError::InvalidCursor)?;
        serde_json::from_slice(&bytes).map_err(|_| StoreError::InvalidCursor)
    }

    /// Parses the text a client sent back.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        if text.is_empty() || text.len() > 4096 {
            return Err(StoreError::InvalidCursor);
        }
        Ok(Self(text.to_owned()))
    }

    /// The text to hand to clients.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A page of raw records.
#[derive(Debug, Clone)]
pub struct RawPage {
    /// The records, in index order.
    pub records: Vec<Record>,
    /// Present when more may follow.
    pub next: Option<Cursor>,
}

/// A page of ids.
#[derive(Debug, Clone)]
pub struct IdPage {
    /// Ids, in index order.
    pub ids: Vec<String>,
    /// Present when more may follow.
    pub next: Option<Cursor>,
}

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Scope of the lease.
    pub scope: String,
    /// What is leased, e.g. `sync:harvest`.
    pub name: String,
    /// Who holds it.
    pub owner: String,
    /// When it lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// What a storage backend must do. Every method is atomic; the conformance suite pins the
/// semantics down.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Reads a live record.
    async fn get(&self, scope: &str, kind: &str, id: &str) -> Result<Option<Record>, StoreError>;

    /// Writes `record` if `condition` holds; returns the stored record with its new version
    /// (the `version` field of the argument is ignored). A failed condition is
    /// [`StoreError::Conflict`].
    async fn put(&self, record: Record, condition: Condition) -> Result<Record, StoreError>;

    /// Writes records unconditionally, as given (versions included). DynamoDB sends chunks of
    /// [`MAX_BATCH_WRITE`] and retries what it does not take at first; SQLite writes the whole
    /// batch in one transaction. Either way a successful return means every record is stored.
    async fn put_batch(&self, records: Vec<Record>) -> Result<(), StoreError>;

    /// Writes and deletes up to [`MAX_TRANSACT_ITEMS`] records (any scopes and kinds, each at
    /// most once) atomically: either every condition holds and every item is applied, or
    /// nothing is written. A failed condition is [`StoreError::Conflict`]. Returns the stored
    /// records of the `Put` items, with their new versions, in the order given (deletes
    /// contribute none). Invalid transactions are refused by [`check_transaction`]. SQLite runs
    /// one `IMMEDIATE` transaction; DynamoDB sends one `TransactWriteItems`.
    async fn transact(&self, items: Vec<TransactItem>) -> Result<Vec<Record>, StoreError>;

    /// Reads many live records of one kind at once (missing ids are simply absent from the
    /// answer). Order is not significant.
    async fn get_many(
        &self,
        scope: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<Vec<Record>, StoreError>;

    /// Deletes many records of one kind unconditionally; deleting a missing record is not an
    /// error.
    async fn delete_batch(&self, scope: &str, kind: &str, ids: &[String])
    -> Result<(), StoreError>;

    /// Deletes a record if `condition` holds; returns whether a live record was deleted.
    async fn delete(
        &self,
        scope: &str,
        kind: &str,
        id: &str,
        condition: Condition,
    ) -> Result<bool, StoreError>;

    /// Reads one page.
    async fn query(&self, query: &Query) -> Result<RawPage, StoreError>;

    /// Reads one page of ids only (the query's `filter` must be `None`). Backends with covering
    /// indexes answer without touching the records themselves.
    async fn query_ids(&self, query: &Query) -> Result<IdPage, StoreError> {
        let page = self.query(query).await?;
        Ok(IdPage {
            ids: page.records.into_iter().map(|r| r.id).collect(),
            next: page.next,
        })
    }

    /// Takes the lease `name` for `owner` until `until`, if it is free, expired, or already held
    /// by `owner` (which renews it). `None` when someone else holds it.
    async fn acquire_lease(
        &self,
        scope: &str,
        name: &str,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<Option<Lease>, StoreError>;

    /// Gives a lease back; a lease already taken over by another owner is left alone.
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError>;
}

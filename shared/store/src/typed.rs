use std::sync::Arc;

use chrono::{DateTime, Utc};
use hourbridge_domain::Clock;

use crate::{
    Backend, Condition, Cursor, Entity, IndexSel, Lease, Query, Record, StoreError, TransactItem,
};

/// A typed view over a [`Backend`]: what the API and the sync engine use.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    clock: Arc<dyn Clock>,
}

/// A predicate over typed records, applied while paging (see [`Store::list`]).
pub type EntityFilter<E> = Arc<dyn Fn(&E) -> bool + Send + Sync>;

/// A page of typed records.
#[derive(Debug, Clone)]
pub struct Page<E> {
    /// Records with their versions.
    pub items: Vec<(E, u64)>,
    /// Present when more may follow.
    pub next: Option<Cursor>,
}

/// What an idempotent upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// The record did not exist.
    Created,
    /// The record existed with other content.
    Updated,
    /// The record existed with the same content; nothing was written.
    Unchanged,
}

const UPSERT_ATTEMPTS: usize = 5;

impl TransactItem {
    /// A write of `entity` in `scope` if `condition` holds ([`Condition::Absent`] to create,
    /// [`Condition::Version`] to replace what was read).
    pub fn put_entity<E: Entity>(
        scope: &str,
        entity: &E,
        condition: Condition,
    ) -> Result<Self, StoreError> {
        Ok(Self::Put {
            record: Store::to_record(scope, entity)?,
            condition,
        })
    }

    /// A delete of the `E` record `id` in `scope` if `condition` holds.
    pub fn delete_entity<E: Entity>(scope: &str, id: &str, condition: Condition) -> Self {
        Self::Delete {
            scope: scope.to_owned(),
            kind: E::KIND.0.to_owned(),
            id: id.to_owned(),
            condition,
        }
    }
}

impl Store {
    /// Wraps a backend; `clock` is the time every expiry and lease is judged by.
    pub fn new(backend: Arc<dyn Backend>, clock: Arc<dyn Clock>) -> Self {
        Self { backend, clock }
    }

    /// The raw backend, for the conformance suite and batch work.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The store's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Turns an entity into a raw record of `scope` (version left at 0 for the backend to set).
    pub fn to_record<E: Entity>(scope: &str, entity: &E) -> Result<Record, StoreError> {
        let data = serde_json::to_string(entity).map_err(|e| StoreError::Corrupt {
            kind: E::KIND.0.to_owned(),
            id: entity.id(),
            reason: e.to_string(),
        })?;
        Ok(Record {
            scope: scope.to_owned(),
            kind: E::KIND.0.to_owned(),
            id: entity.id(),
            version: 0,
            data,
            index1: entity.index1(),
            index2: entity.index2(),
            expires_at: entity.expires_at().map(|t| t.timestamp()),
        })
    }

    pub(crate) fn decode<E: Entity>(record: &Record) -> Result<E, StoreError> {
        serde_json::from_str(&record.data).map_err(|e| StoreError::Corrupt {
            kind: record.kind.clone(),
            id: record.id.clone(),
            reason: e.to_string(),
        })
    }

    /// Reads a record and its version.
    pub async fn get<E: Entity>(
        &self,
        scope: &str,
        id: &str,
    ) -> Result<Option<(E, u64)>, StoreError> {
        match self.backend.get(scope, E::KIND.0, id).await? {
            Some(r) => Ok(Some((Self::decode(&r)?, r.version))),
            None => Ok(None),
        }
    }

    /// Reads many records of one kind by id; the answer maps id to record and version.
    pub async fn get_many<E: Entity>(
        &self,
        scope: &str,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, (E, u64)>, StoreError> {
        let records = self.backend.get_many(scope, E::KIND.0, ids).await?;
        records
            .iter()
            .map(|r| Ok((r.id.clone(), (Self::decode::<E>(r)?, r.version))))
            .collect()
    }

    /// Deletes many records of one kind (unconditionally).
    pub async fn delete_batch<E: Entity>(
        &self,
        scope: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        self.backend.delete_batch(scope, E::KIND.0, ids).await
    }

    /// Creates a record; [`StoreError::Conflict`] when one with the same id is live.
    pub async fn insert<E: Entity>(&self, scope: &str, entity: &E) -> Result<u64, StoreError> {
        let r = self
            .backend
            .put(Self::to_record(scope, entity)?, Condition::Absent)
            .await?;
        Ok(r.version)
    }

    /// Replaces a record read at `version`; [`StoreError::Conflict`] when it changed since.
    pub async fn update<E: Entity>(
        &self,
        scope: &str,
        entity: &E,
        version: u64,
    ) -> Result<u64, StoreError> {
        let r = self
            .backend
            .put(Self::to_record(scope, entity)?, Condition::Version(version))
            .await?;
        Ok(r.version)
    }

    /// Writes a record whatever is there.
    pub async fn put<E: Entity>(&self, scope: &str, entity: &E) -> Result<u64, StoreError> {
        let r = self
            .backend
            .put(Self::to_record(scope, entity)?, Condition::None)
            .await?;
        Ok(r.version)
    }

    /// Makes the stored record equal `entity`, writing only if its content differs, so a
    /// repeated sync of unchanged data costs reads but no writes. Safe under concurrency: a
    /// lost race is retried against the new content.
    pub async fn upsert<E: Entity>(&self, scope: &str, entity: &E) -> Result<Upserted, StoreError> {
        let record = Self::to_record(scope, entity)?;
        for _ in 0..UPSERT_ATTEMPTS {
            let current = self.backend.get(scope, E::KIND.0, &record.id).await?;
            let (condition, outcome) = match current {
                None => (Condition::Absent, Upserted::Created),
                Some(c)
                    if c.data == record.data
                        && c.index1 == record.index1
                        && c.index2 == record.index2
                        && c.expires_at == record.expires_at =>
                {
                    return Ok(Upserted::Unchanged);
                }
                Some(c) => (Condition::Version(c.version), Upserted::Updated),
            };
            match self.backend.put(record.clone(), condition).await {
                Ok(_) => return Ok(outcome),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }

    /// Applies `items` atomically (all or nothing, see [`Backend::transact`]); a failed condition
    /// is [`StoreError::Conflict`] and writes nothing. Returns the stored records of the puts.
    pub async fn transact(&self, items: Vec<TransactItem>) -> Result<Vec<Record>, StoreError> {
        self.backend.transact(items).await
    }

    /// Writes many records of one kind unconditionally, each with the version given.
    pub async fn put_batch<E: Entity>(
        &self,
        scope: &str,
        items: &[(E, u64)],
    ) -> Result<(), StoreError> {
        let records = items
            .iter()
            .map(|(e, v)| {
                let mut r = Self::to_record(scope, e)?;
                r.version = *v;
                Ok(r)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.backend.put_batch(records).await
    }

    /// Deletes a record; returns whether it existed.
    pub async fn delete<E: Entity>(&self, scope: &str, id: &str) -> Result<bool, StoreError> {
        self.backend
            .delete(scope, E::KIND.0, id, Condition::None)
            .await
    }

    /// Deletes a record only if it is still at `version`.
    pub async fn delete_at<E: Entity>(
        &self,
        scope: &str,
        id: &str,
        version: u64,
    ) -> Result<bool, StoreError> {
        self.backend
            .delete(scope, E::KIND.0, id, Condition::Version(version))
            .await
    }

    /// Reads and deletes a record in one step that only one caller can win: the basis of
    /// single-use tokens such as OAuth state.
    pub async fn take<E: Entity>(&self, scope: &str, id: &str) -> Result<Option<E>, StoreError> {
        let Some(r) = self.backend.get(scope, E::KIND.0, id).await? else {
            return Ok(None);
        };
        match self
            .backend
            .delete(scope, E::KIND.0, id, Condition::Version(r.version))
            .await
        {
            Ok(true) => Ok(Some(Self::decode(&r)?)),
            Ok(false) | Err(StoreError::Conflict) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A query over `E` in `scope` along `index`, `limit` at a time.
    pub fn query<E: Entity>(&self, scope: &str, index: IndexSel, limit: usize) -> Query {
        let mut q = Query::all(scope, E::KIND.0, limit);
        q.index = index;
        q
    }

    /// Reads one page of `E`, keeping only records for which `filter` holds.
    pub async fn list<E: Entity>(
        &self,
        mut query: Query,
        filter: Option<EntityFilter<E>>,
    ) -> Result<Page<E>, StoreError> {
        E::KIND.0.clone_into(&mut query.kind);
        if let Some(f) = filter {
            query.filter = Some(Arc::new(move |r: &Record| {
                serde_json::from_str::<E>(&r.data).is_ok_and(|e| f(&e))
            }));
        }
        let page = self.backend.query(&query).await?;
        let items = page
            .records
            .iter()
            .map(|r| Ok((Self::decode::<E>(r)?, r.version)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Page {
            items,
            next: page.next,
        })
    }

    /// Reads every record of a query, page by page. Only for sets known to be small.
    pub async fn list_all<E: Entity>(&self, mut query: Query) -> Result<Vec<E>, StoreError> {
        let mut out = Vec::new();
        loop {
            let page = self.list::<E>(query.clone(), None).await?;
            out.extend(page.items.into_iter().map(|(e, _)| e));
            match page.next {
                Some(c) => query.cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// Takes or renews the lease `name` in `scope` for `owner`, for `ttl` from now.
    pub async fn acquire_lease(
        &self,
        scope: &str,
        name: &str,
        owner: &str,
        ttl: chrono::Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let until: DateTime<Utc> = self.clock.now() + ttl;
        self.backend.acquire_lease(scope, name, owner, until).await
    }

    /// Gives a lease back.
    pub async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.backend.release_lease(lease).await
    }
}

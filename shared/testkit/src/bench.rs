//! Harness pieces the benchmarks share: a store backend that counts writes by record kind, an
//! in-memory secret store, host records as the benches set them up, and `/proc` memory figures.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use hourbridge_domain::{
    ManagedBy, Person, Project, ProjectLink, ProviderId, RecordId, Role, SecretError, SecretStore,
    SecretValue,
};
use hourbridge_store::{
    Backend, Condition, IdPage, Lease, Query, RawPage, Record, StoreError, TransactItem,
};

/// Counts records written (puts, deletes, transaction items, leases), by kind; reads pass
/// through uncounted.
#[derive(Debug)]
pub struct Counting {
    inner: Arc<dyn Backend>,
    writes: Mutex<BTreeMap<String, u64>>,
    forward_query_ids: bool,
}

impl Counting {
    /// Wraps `inner`, forwarding every method, `query_ids` included (so the engine lists ids
    /// through the backend's own path, e.g. SQLite's covering index).
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        Self {
            inner,
            writes: Mutex::new(BTreeMap::new()),
            forward_query_ids: true,
        }
    }

    /// Wraps `inner` but answers `query_ids` from whole records read through `query` (the
    /// trait's default), as a backend without an id listing of its own would.
    pub fn ids_through_query(inner: Arc<dyn Backend>) -> Self {
        Self {
            forward_query_ids: false,
            ..Self::new(inner)
        }
    }

    fn add(&self, kind: &str, n: u64) {
        *self
            .writes
            .lock()
            .unwrap()
            .entry(kind.to_owned())
            .or_default() += n;
    }

    /// The writes counted since the last call, by kind; starts counting afresh.
    pub fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.writes.lock().unwrap())
    }
}

#[async_trait]
impl Backend for Counting {
    async fn get(&self, scope: &str, kind: &str, id: &str) -> Result<Option<Record>, StoreError> {
        self.inner.get(scope, kind, id).await
    }
    async fn put(&self, record: Record, condition: Condition) -> Result<Record, StoreError> {
        self.add(&record.kind, 1);
        self.inner.put(record, condition).await
    }
    async fn put_batch(&self, records: Vec<Record>) -> Result<(), StoreError> {
        for r in &records {
            self.add(&r.kind, 1);
        }
        self.inner.put_batch(records).await
    }
    async fn transact(&self, items: Vec<TransactItem>) -> Result<Vec<Record>, StoreError> {
        for item in &items {
            self.add(item.key().1, 1);
        }
        self.inner.transact(items).await
    }
    async fn get_many(
        &self,
        scope: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<Vec<Record>, StoreError> {
        self.inner.get_many(scope, kind, ids).await
    }
    async fn delete_batch(
        &self,
        scope: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        self.add(kind, ids.len() as u64);
        self.inner.delete_batch(scope, kind, ids).await
    }
    async fn delete(
        &self,
        scope: &str,
        kind: &str,
        id: &str,
        condition: Condition,
    ) -> Result<bool, StoreError> {
        self.add(kind, 1);
        self.inner.delete(scope, kind, id, condition).await
    }
    async fn query(&self, query: &Query) -> Result<RawPage, StoreError> {
        self.inner.query(query).await
    }
    async fn query_ids(&self, query: &Query) -> Result<IdPage, StoreError> {
        if self.forward_query_ids {
            return self.inner.query_ids(query).await;
        }
        let page = self.query(query).await?;
        Ok(IdPage {
            ids: page.records.into_iter().map(|r| r.id).collect(),
            next: page.next,
        })
    }
    async fn acquire_lease(
        &self,
        scope: &str,
        name: &str,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<Option<Lease>, StoreError> {
        self.add("lease", 1);
        self.inner.acquire_lease(scope, name, owner, until).await
    }
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.add("lease", 1);
        self.inner.release_lease(lease).await
    }
}

/// Secrets kept in memory.
#[derive(Debug, Default)]
pub struct MemorySecrets(Mutex<BTreeMap<String, String>>);

#[async_trait]
impl SecretStore for MemorySecrets {
    async fn put(&self, name: &str, value: &SecretValue) -> Result<(), SecretError> {
        self.0
            .lock()
            .unwrap()
            .insert(name.into(), value.expose().into());
        Ok(())
    }
    async fn get(&self, name: &str) -> Result<Option<SecretValue>, SecretError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(name)
            .map(|v| SecretValue::new(v.clone())))
    }
    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        self.0.lock().unwrap().remove(name);
        Ok(())
    }
}

/// A host project managed here, active, without parent, customer or dates.
pub fn local_project(id: RecordId, name: String) -> Project {
    Project {
        id,
        name,
        parent_id: None,
        customer_id: None,
        start_date: None,
        end_date: None,
        managed_by: ManagedBy::Local,
        active: true,
    }
}

/// A link of `project_id` to `remote_project_ids` of `provider`, before its first run.
pub fn project_link(
    project_id: RecordId,
    provider: ProviderId,
    remote_project_ids: Vec<String>,
    sync_from: Option<NaiveDate>,
    trim_assignments: bool,
) -> ProjectLink {
    ProjectLink {
        project_id,
        provider,
        remote_project_ids,
        sync_from,
        prevent_new_assignments: false,
        trim_assignments,
        last_run_id: None,
        missing_people: vec![],
    }
}

/// A workspace member.
pub fn member(id: RecordId, name: String, email: String) -> Person {
    Person {
        id,
        name,
        email,
        role: Role::Member,
    }
}

/// A field of `/proc/<pid>/status` (`pid` `None`: this process), e.g. `"VmRSS:"`, in KiB; 0
/// when it cannot be read.
pub fn status_kib(pid: Option<u32>, field: &str) -> u64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// This process's resident memory in KiB.
pub fn rss_kib() -> u64 {
    status_kib(None, "VmRSS:")
}

/// The peak resident memory (VmHWM) of process `pid` in KiB.
pub fn peak_kib(pid: u32) -> u64 {
    status_kib(Some(pid), "VmHWM:")
}

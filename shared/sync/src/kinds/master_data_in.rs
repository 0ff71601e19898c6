//! Master data in: customers, projects, tasks and project members imported from a provider
//! that declares `master_data_in` (one unit per connection run). The provider is the master:
//! imported records are `managed_by` it and read-only in the host.
//!
//! - **Pages**: the declared entities in dependency order (customers, projects, tasks,
//!   people), one provider page per step, each applied with [`Store::upsert`] so an unchanged
//!   record costs reads and no writes. The checkpoint holds the entity and page token; ids
//!   seen so far are saved in chunks with it, so a resumed run still reconciles.
//! - **Host records** get ids derived from the provider and remote id, and a [`RemoteMapping`]
//!   (`entity` `customer` / `project` / `task` / `assignment`) that the push kinds read to find
//!   the remote id of a host record. Projects closed in the provider are kept and marked
//!   `archived` (never deleted: they may carry work logs); projects never imported while
//!   closed are not imported.
//! - **People** come as memberships ([`MasterDataSource`]): a member whose e-mail (trimmed,
//!   case-insensitive) is a host person's gets a [`PersonLink`] and an assignment on the
//!   imported project (`managed_by` the provider), unless the person already has their own
//!   assignment there. Members without a host person are counted as skipped.
//! - **Reconcile** (after every page of every entity was read): mapped tasks not seen are
//!   deleted (kept when work logs refer to them), mapped projects not seen are archived,
//!   imported assignments not seen are deleted. Then the webhook subscription is renewed, so
//!   a webhook removed in the provider is re-created by the next run.
//! - **Webhooks**: records a webhook named ([`PendingRefetch`](crate::webhooks::PendingRefetch)) are fetched one by one
//!   ([`MasterDataSource::fetch`]) in a run of scope [`RunScope::Changes`]; a record the
//!   provider cannot fetch alone (or a project-wide change) makes that run a full import. A
//!   full import clears the refetches received before it started.
//!
//! [`Store::upsert`]: hourbridge_store::Store::upsert
//! [`MasterDataSource`]: hourbridge_provider_api::MasterDataSource
//! [`MasterDataSource::fetch`]: hourbridge_provider_api::MasterDataSource::fetch
//! [`RunScope::Changes`]: crate::RunScope::Changes

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hourbridge_domain::{
    Assignment, Customer, ManagedBy, Person, PersonLink, Project, ProviderId, RecordId,
    RemoteMapping, RunCounts, SyncRun, Task, WorkLog, validate::normalize_email,
};
use hourbridge_provider_api::{MasterDataIn, MasterEntity, ProviderErrorKind, RemoteRecord};
use hourbridge_store::{IndexSel, Upserted};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{KindPass, Step, SyncKind, UnitCx};
use crate::{Engine, SyncError};

/// The kind's checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    /// Index into the declared entities of the one being listed.
    entity_idx: usize,
    /// Page token of the next page of that entity (`None`: its first page).
    page: Option<String>,
    /// The webhook refetches are handled (or the unit is a full import).
    targeted_done: bool,
    /// A full import is needed (always, unless the unit is changes-only and every refetch
    /// could be fetched alone).
    full: bool,
    /// Every page of every entity was read.
    listed: bool,
    /// When the pass began (refetches received before it are covered by a full import).
    started_at: Option<DateTime<Utc>>,
    /// Seen-id chunks saved so far.
    seen_chunks: u32,
    /// Customers are listed changed since then (the start of the last full import), when
    /// there was one; projects and the rest are always listed whole.
    #[serde(default)]
    since: Option<DateTime<Utc>>,
    /// Something was written in this pass (an unchanged import writes nothing at all, not even
    /// its own bookkeeping).
    #[serde(default)]
    changed: bool,
}

/// When the last full import of a connection started, so the next one can ask for customers
/// changed since then.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MasterDataState {
    /// The provider (the record id).
    pub provider: String,
    /// Start of the last full import that finished.
    pub last_full_started_at: DateTime<Utc>,
}

impl hourbridge_store::Entity for MasterDataState {
    const KIND: hourbridge_store::EntityKind = hourbridge_store::EntityKind("master_data_state");
    fn id(&self) -> String {
        self.provider.clone()
    }
}

/// The master-data-in sync kind; see the module docs.
pub(crate) struct MasterDataInKind;

struct Pass {
    engine: Engine,
    cx: UnitCx,
    provider: ProviderId,
    caps: MasterDataIn,
    changes_only: bool,
    progress: Progress,
    /// `entity:remote_id` seen in this pass and not yet saved in a chunk.
    unsaved: Vec<String>,
    /// Host people by normalised e-mail (`None`: no such person), looked up once per pass.
    people: HashMap<String, Option<RecordId>>,
    /// The host's customers and projects, read once per pass when matching first sightings.
    host_customers: Option<Vec<Customer>>,
    host_projects: Option<Vec<Project>>,
}

#[async_trait]
impl SyncKind for MasterDataInKind {
    async fn open(
        &self,
        engine: &Engine,
        cx: UnitCx,
        checkpoint: serde_json::Value,
        _run: &mut SyncRun,
    ) -> Result<Box<dyn KindPass>, SyncError> {
        let p = engine.provider(&cx.provider)?.clone();
        let caps =
            p.descriptor().capabilities.master_data_in.ok_or_else(|| {
                SyncError::InvalidState("provider declares no master data".into())
            })?;
        let progress = if checkpoint.is_null() {
            let since = engine
                .store
                .get::<MasterDataState>(&cx.ws, &cx.provider)
                .await?
                .map(|(s, _)| s.last_full_started_at);
            Progress {
                started_at: Some(engine.clock.now()),
                // A reset re-reads everything.
                since: since.filter(|_| cx.mode == crate::runs::RunMode::Refetch),
                ..Progress::default()
            }
        } else {
            serde_json::from_value(checkpoint)
                .map_err(|e| SyncError::InvalidState(format!("master-data checkpoint: {e}")))?
        };
        let provider =
            ProviderId::parse(&cx.provider).map_err(|e| SyncError::Invalid(e.to_string()))?;
        Ok(Box::new(Pass::new(engine, cx, provider, caps, progress)))
    }
}

/// The entities a provider declares, in the order they refer to each other.
fn entities(caps: &MasterDataIn) -> Vec<MasterEntity> {
    let mut out = Vec::new();
    if caps.customers {
        out.push(MasterEntity::Customer);
    }
    if caps.projects {
        out.push(MasterEntity::Project);
    }
    if caps.tasks {
        out.push(MasterEntity::Task);
    }
    if caps.people {
        out.push(MasterEntity::Person);
    }
    out
}

/// The mapping entity name of a master entity.
fn entity_name(e: MasterEntity) -> &'static str {
    match e {
        MasterEntity::Customer => "customer",
        MasterEntity::Project => "project",
        MasterEntity::Task => "task",
        MasterEntity::Person => "assignment",
    }
}

/// A host id derived from the provider and remote id, so re-imports find their record without
/// a lookup and two imports of one record can never make two host records.
pub(crate) fn host_id(provider: &ProviderId, entity: &str, remote: &str) -> RecordId {
    let plain = !remote.is_empty()
        && remote.len() <= 48
        && remote
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let tail = if plain {
        remote.to_owned()
    } else {
        Sha256::digest(remote.as_bytes())
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    RecordId::parse(format!("{provider}-{entity}-{tail}")).unwrap_or_else(|_| {
        hourbridge_domain::new_id() // unreachable: the alphabet above is a RecordId's
    })
}

/// How an upsert counts.
fn count(run: &mut SyncRun, u: Upserted) -> bool {
    tally(&mut run.imported, u)
}

fn tally(c: &mut RunCounts, u: Upserted) -> bool {
    match u {
        Upserted::Created => {
            c.created += 1;
            true
        }
        Upserted::Updated => {
            c.updated += 1;
            true
        }
        Upserted::Unchanged => {
            c.unchanged += 1;
            false
        }
    }
}

impl Pass {
    fn new(
        engine: &Engine,
        cx: UnitCx,
        provider: ProviderId,
        caps: MasterDataIn,
        progress: Progress,
    ) -> Self {
        Self {
            engine: engine.clone(),
            changes_only: cx.changes_only,
            cx,
            provider,
            caps,
            progress,
            unsaved: Vec::new(),
            people: HashMap::new(),
            host_customers: None,
            host_projects: None,
        }
    }

    fn ws(&self) -> &str {
        &self.cx.ws
    }

    fn managed(&self) -> ManagedBy {
        ManagedBy::Provider(self.provider.clone())
    }

    async fn mapped(&self, entity: &str, remote: &str) -> Result<Option<RecordId>, SyncError> {
        let id = format!("{}.{entity}.{remote}", self.provider);
        Ok(self
            .engine
            .store
            .get::<RemoteMapping>(self.ws(), &id)
            .await?
            .map(|(m, _)| m.local_id))
    }

    async fn map(&self, entity: &str, remote: &str, local: &RecordId) -> Result<(), SyncError> {
        self.map_version(entity, remote, local, None).await
    }

    /// Maps with the provider's revision of the record (kept in the fingerprint), so a
    /// delivery about an older revision is recognised as stale.
    async fn map_version(
        &self,
        entity: &str,
        remote: &str,
        local: &RecordId,
        version: Option<u64>,
    ) -> Result<(), SyncError> {
        let m = RemoteMapping {
            provider: self.provider.clone(),
            entity: entity.to_owned(),
            remote_id: remote.to_owned(),
            local_id: local.clone(),
            fingerprint: version.map(|v| format!("v{v}")).unwrap_or_default(),
        };
        self.engine.store.upsert(self.ws(), &m).await?;
        Ok(())
    }

    async fn unmap(&self, entity: &str, remote: &str) -> Result<(), SyncError> {
        let id = format!("{}.{entity}.{remote}", self.provider);
        self.engine
            .store
            .delete::<RemoteMapping>(self.ws(), &id)
            .await?;
        Ok(())
    }

    /// Applies one record; answers whether the host changed.
    async fn apply(&mut self, r: &RemoteRecord, run: &mut SyncRun) -> Result<bool, SyncError> {
        let name = entity_name(r.entity);
        self.unsaved.push(format!("{name}:{}", seen_id(r)));
        if self.cx.dry_run {
            return Ok(false);
        }
        match r.entity {
            MasterEntity::Customer => self.apply_customer(r, run).await,
            MasterEntity::Project => self.apply_project(r, run).await,
            MasterEntity::Task => self.apply_task(r, run).await,
            MasterEntity::Person => self.apply_member(r, run).await,
        }
    }

    /// Whether the host already has a newer revision of `r` than `r` itself.
    async fn stale(&self, entity: &str, r: &RemoteRecord) -> Result<bool, SyncError> {
        let Some(v) = r.version else {
            return Ok(false);
        };
        let id = format!("{}.{entity}.{}", self.provider, r.id);
        Ok(self
            .engine
            .store
            .get::<RemoteMapping>(self.ws(), &id)
            .await?
            .and_then(|(m, _)| m.fingerprint.strip_prefix('v')?.parse::<u64>().ok())
            .is_some_and(|applied| applied > v))
    }

    /// The host record a remote customer or project seen for the first time becomes: its
    /// derived id, an existing host record it matches, or none for now (on the review list,
    /// or ignored there).
    async fn first_sight(
        &mut self,
        r: &RemoteRecord,
        customer: Option<&RecordId>,
        run: &mut SyncRun,
    ) -> Result<Option<RecordId>, SyncError> {
        let entity = entity_name(r.entity);
        if !self.caps.match_existing {
            return Ok(Some(host_id(&self.provider, entity, &r.id)));
        }
        let review_id = super::review::review_id(self.provider.as_str(), r.entity, &r.id);
        if self
            .engine
            .store
            .get::<super::review::ReviewItem>(self.ws(), &review_id)
            .await?
            .is_some()
        {
            run.imported.skipped += 1;
            return Ok(None);
        }
        let found = match r.entity {
            MasterEntity::Customer => {
                if self.host_customers.is_none() {
                    let q = self
                        .engine
                        .store
                        .query::<Customer>(self.ws(), IndexSel::Primary, 1000);
                    self.host_customers = Some(self.engine.store.list_all::<Customer>(q).await?);
                }
                super::review::match_customer(r, self.host_customers.as_deref().unwrap_or_default())
            }
            _ => {
                if self.host_projects.is_none() {
                    let q = self
                        .engine
                        .store
                        .query::<Project>(self.ws(), IndexSel::Primary, 1000);
                    self.host_projects = Some(self.engine.store.list_all::<Project>(q).await?);
                }
                super::review::match_project(
                    r,
                    customer,
                    self.host_projects.as_deref().unwrap_or_default(),
                )
            }
        };
        match found {
            super::review::Match::Link(id) => {
                // Taken: no other remote record of this pass may link to it too.
                let managed = self.managed();
                if let Some(c) = self
                    .host_customers
                    .iter_mut()
                    .flatten()
                    .find(|c| c.id == id)
                {
                    c.managed_by = managed.clone();
                }
                if let Some(p) = self.host_projects.iter_mut().flatten().find(|p| p.id == id) {
                    p.managed_by = managed;
                }
                Ok(Some(id))
            }
            super::review::Match::Create => Ok(Some(host_id(&self.provider, entity, &r.id))),
            super::review::Match::Review { reason, candidates } => {
                if self.cx.dry_run {
                    return Ok(None);
                }
                let customer_name = match (&r.customer_id, customer) {
                    (Some(_), Some(c)) => self
                        .engine
                        .store
                        .get::<Customer>(self.ws(), c.as_str())
                        .await?
                        .map(|(c, _)| c.name),
                    _ => None,
                };
                let item = super::review::ReviewItem {
                    id: review_id,
                    provider: self.provider.to_string(),
                    kind: if r.entity == MasterEntity::Customer {
                        "customer"
                    } else {
                        "project"
                    }
                    .to_owned(),
                    remote: r.clone(),
                    customer_name,
                    reason: reason.to_owned(),
                    candidates,
                    ignored: false,
                    created_at: self.engine.clock.now(),
                };
                self.engine.store.put(self.ws(), &item).await?;
                run.imported.skipped += 1;
                Ok(None)
            }
        }
    }

    async fn apply_customer(
        &mut self,
        r: &RemoteRecord,
        run: &mut SyncRun,
    ) -> Result<bool, SyncError> {
        if self.stale("customer", r).await? {
            run.imported.unchanged += 1;
            return Ok(false);
        }
        let id = match self.mapped("customer", &r.id).await? {
            Some(id) => id,
            // Gone before it was ever imported.
            None if r.deleted && !r.inactive => return Ok(false),
            None => match self.first_sight(r, None, run).await? {
                Some(id) => id,
                None => return Ok(false),
            },
        };
        self.write_customer(r, id, &mut run.imported).await
    }

    async fn write_customer(
        &self,
        r: &RemoteRecord,
        id: RecordId,
        counts: &mut RunCounts,
    ) -> Result<bool, SyncError> {
        let c = Customer {
            id: id.clone(),
            name: r.name.clone(),
            organization_number: r.organization_number.clone(),
            managed_by: self.managed(),
            active: !r.deleted,
        };
        let u = self.engine.store.upsert(self.ws(), &c).await?;
        self.map_version("customer", &r.id, &id, r.version).await?;
        Ok(tally(counts, u))
    }

    async fn apply_project(
        &mut self,
        r: &RemoteRecord,
        run: &mut SyncRun,
    ) -> Result<bool, SyncError> {
        if self.stale("project", r).await? {
            run.imported.unchanged += 1;
            return Ok(false);
        }
        let existing = self.mapped("project", &r.id).await?;
        let id = match existing {
            Some(id) => Some(id),
            // Closed projects are imported only if they were imported while open, unless the
            // provider says they still exist (inactive, shown so in the host).
            None if r.deleted && !r.inactive => return Ok(false),
            None => None,
        };
        self.place_project(r, id, run).await
    }

    /// Writes a project under its (mapped) parent and customer, `id` being its host record
    /// (`None`: seen for the first time, matched or created here).
    async fn place_project(
        &mut self,
        r: &RemoteRecord,
        id: Option<RecordId>,
        run: &mut SyncRun,
    ) -> Result<bool, SyncError> {
        let parent_id = match &r.parent_id {
            Some(p) if self.caps.max_project_depth > 1 => self.mapped("project", p).await?,
            _ => None,
        };
        // Deeper than the declared depth (and the host's two levels): reported, not synced.
        if let Some(parent) = &parent_id {
            let mut depth = 2u8;
            let mut cur = parent.clone();
            while let Some((pp, _)) = self
                .engine
                .store
                .get::<Project>(self.ws(), cur.as_str())
                .await?
                && let Some(up) = pp.parent_id
                && depth <= self.caps.max_project_depth.min(2)
            {
                depth += 1;
                cur = up;
            }
            if depth > self.caps.max_project_depth.min(2) {
                run.imported.skipped += 1;
                run.problems.push(hourbridge_domain::RecordProblem {
                    record: r.id.clone(),
                    code: "too_deep".into(),
                    message: format!(
                        "project {} is nested deeper than the {} levels the host mirrors",
                        r.name,
                        self.caps.max_project_depth.min(2)
                    ),
                });
                return Ok(false);
            }
        }
        let customer_id = match &r.customer_id {
            Some(c) => self.mapped("customer", c).await?,
            None => None,
        };
        let id = match id {
            Some(id) => id,
            None => match self.first_sight(r, customer_id.as_ref(), run).await? {
                Some(id) => id,
                None => return Ok(false),
            },
        };
        let p = Project {
            id: id.clone(),
            name: r.name.clone(),
            parent_id,
            customer_id,
            start_date: r.start_date,
            end_date: r.end_date,
            managed_by: self.managed(),
            active: !r.deleted,
        };
        let u = self.engine.store.upsert(self.ws(), &p).await?;
        self.map_version("project", &r.id, &id, r.version).await?;
        Ok(count(run, u))
    }

    async fn apply_task(&self, r: &RemoteRecord, run: &mut SyncRun) -> Result<bool, SyncError> {
        let project = match &r.parent_id {
            Some(p) => self.mapped("project", p).await?,
            None => None,
        };
        let Some(project_id) = project else {
            // On a project that is not imported (closed): nothing to attach it to.
            run.imported.skipped += 1;
            return Ok(false);
        };
        if r.deleted {
            return self.remove_task(&r.id, run).await;
        }
        let id = match self.mapped("task", &r.id).await? {
            Some(id) => id,
            None => host_id(&self.provider, "task", &r.id),
        };
        let t = Task {
            id: id.clone(),
            project_id,
            name: r.name.clone(),
            managed_by: self.managed(),
            assignee_ids: Vec::new(),
            active: true,
        };
        let u = self.engine.store.upsert(self.ws(), &t).await?;
        self.map("task", &r.id, &id).await?;
        Ok(count(run, u))
    }

    /// Removes an imported task, unless work logs refer to it (then it stays, unmapped from
    /// nothing: pushes of those logs report it).
    async fn remove_task(&self, remote: &str, run: &mut SyncRun) -> Result<bool, SyncError> {
        let Some(id) = self.mapped("task", remote).await? else {
            return Ok(false);
        };
        let Some((task, _)) = self
            .engine
            .store
            .get::<Task>(self.ws(), id.as_str())
            .await?
        else {
            self.unmap("task", remote).await?;
            return Ok(true);
        };
        let q = self.engine.store.query::<WorkLog>(
            self.ws(),
            IndexSel::Index1(task.project_id.to_string()),
            1000,
        );
        let in_use = self
            .engine
            .store
            .list_all::<WorkLog>(q)
            .await?
            .iter()
            .any(|l| l.task_id.as_ref() == Some(&id));
        if in_use {
            run.imported.skipped += 1;
            return Ok(false);
        }
        self.engine
            .store
            .delete::<Task>(self.ws(), id.as_str())
            .await?;
        self.unmap("task", remote).await?;
        run.imported.deleted += 1;
        Ok(true)
    }

    /// A customer or project deleted in the provider: deleted in the host, or marked inactive
    /// while the host still refers to it (work logs, tasks, projects of a customer).
    async fn remove_record(
        &mut self,
        entity: MasterEntity,
        remote: &str,
        run: &mut SyncRun,
    ) -> Result<bool, SyncError> {
        let name = entity_name(entity);
        let Some(id) = self.mapped(name, remote).await? else {
            return Ok(false);
        };
        let ws = self.cx.ws.clone();
        let store = &self.engine.store;
        let in_use = match entity {
            MasterEntity::Customer => !store
                .list::<Project>(
                    store.query::<Project>(&ws, IndexSel::Index2(id.to_string()), 1),
                    None,
                )
                .await?
                .items
                .is_empty(),
            _ => {
                let logs = store
                    .list::<WorkLog>(
                        store.query::<WorkLog>(&ws, IndexSel::Index1(id.to_string()), 1),
                        None,
                    )
                    .await?;
                let tasks = store
                    .list::<Task>(
                        store.query::<Task>(&ws, IndexSel::Index1(id.to_string()), 1),
                        None,
                    )
                    .await?;
                let children = store
                    .list::<Project>(
                        store.query::<Project>(&ws, IndexSel::Index1(id.to_string()), 1),
                        None,
                    )
                    .await?;
                !(logs.items.is_empty() && tasks.items.is_empty() && children.items.is_empty())
            }
        };
        if in_use {
            let changed = match entity {
                MasterEntity::Customer => match store.get::<Customer>(&ws, id.as_str()).await? {
                    Some((mut c, v)) if c.active => {
                        c.active = false;
                        store.update(&ws, &c, v).await?;
                        true
                    }
                    _ => false,
                },
                _ => match store.get::<Project>(&ws, id.as_str()).await? {
                    Some((mut p, v)) if p.active => {
                        p.active = false;
                        store.update(&ws, &p, v).await?;
                        true
                    }
                    _ => false,
                },
            };
            if changed {
                run.imported.updated += 1;
            }
            return Ok(changed);
        }
        match entity {
            MasterEntity::Customer => store.delete::<Customer>(&ws, id.as_str()).await?,
            _ => store.delete::<Project>(&ws, id.as_str()).await?,
        };
        self.unmap(name, remote).await?;
        run.imported.deleted += 1;
        Ok(true)
    }

    async fn person_by_email(&mut self, email: &str) -> Result<Option<RecordId>, SyncError> {
        let key = normalize_email(email);
        if let Some(p) = self.people.get(&key) {
            return Ok(p.clone());
        }
        let q = self
            .engine
            .store
            .query::<Person>(self.ws(), IndexSel::Index1(key.clone()), 2);
        let found = self
            .engine
            .store
            .list::<Person>(q, None)
            .await?
            .items
            .into_iter()
            .next()
            .map(|(p, _)| p.id);
        self.people.insert(key, found.clone());
        Ok(found)
    }

    async fn apply_member(
        &mut self,
        r: &RemoteRecord,
        run: &mut SyncRun,
    ) -> Result<bool, SyncError> {
        let Some(email) = r.email.as_deref().filter(|e| !e.trim().is_empty()) else {
            run.imported.skipped += 1;
            return Ok(false);
        };
        let Some(person) = self.person_by_email(email).await? else {
            run.imported.skipped += 1;
            return Ok(false);
        };
        let mut wrote = false;
        let link = PersonLink {
            person_id: person.clone(),
            provider: self.provider.clone(),
            remote_person_id: r.id.clone(),
        };
        wrote |= self.engine.store.upsert(self.ws(), &link).await? != Upserted::Unchanged;
        let Some(remote_project) = &r.parent_id else {
            return Ok(wrote);
        };
        let Some(project) = self.mapped("project", remote_project).await? else {
            return Ok(wrote);
        };
        let key = seen_id(r);
        let id = host_id(&self.provider, "assignment", &key);
        if self
            .engine
            .store
            .get::<Assignment>(self.ws(), id.as_str())
            .await?
            .is_none()
        {
            // The person's own assignment on the project is theirs to keep; none is added.
            let q = self.engine.store.query::<Assignment>(
                self.ws(),
                IndexSel::Index2(person.to_string()),
                1000,
            );
            let own = self
                .engine
                .store
                .list_all::<Assignment>(q)
                .await?
                .into_iter()
                .any(|a| a.project_id == project);
            if own {
                // Still a member: the mapping records it (pushes check membership by it).
                self.map("assignment", &key, &id).await?;
                run.imported.unchanged += 1;
                return Ok(wrote);
            }
        }
        let a = Assignment {
            id: id.clone(),
            person_id: person,
            project_id: project,
            start_date: None,
            end_date: None,
            managed_by: self.managed(),
        };
        let u = self.engine.store.upsert(self.ws(), &a).await?;
        self.map("assignment", &key, &id).await?;
        Ok(count(run, u) || wrote)
    }

    /// Handles the refetches webhooks recorded; answers whether a full import is needed.
    async fn targeted(&mut self, run: &mut SyncRun) -> Result<(bool, bool), SyncError> {
        let engine = self.engine.clone();
        let pending = engine
            .pending_refetches(self.ws(), &self.cx.provider)
            .await?;
        let p = engine.provider(&self.cx.provider)?.clone();
        let mut full = false;
        let mut wrote = false;
        for item in pending {
            let e = &item.event;
            let alone = matches!(
                e.entity,
                MasterEntity::Task | MasterEntity::Customer | MasterEntity::Project
            ) && self.caps_has(e.entity);
            if !alone {
                full = true;
                continue;
            }
            let record = if e.deleted {
                None
            } else {
                let (p2, id, parent, entity) = (
                    p.clone(),
                    e.remote_id.clone(),
                    e.parent_id.clone(),
                    e.entity,
                );
                let got = engine
                    .call(self.ws(), &self.cx.provider, move |s| {
                        let p2 = p2.clone();
                        let id = id.clone();
                        let parent = parent.clone();
                        async move {
                            match p2.master_data() {
                                Some(m) => m.fetch(&s, entity, &id, parent.as_deref()).await,
                                None => Ok(None),
                            }
                        }
                    })
                    .await;
                match got {
                    Ok(r) => r,
                    Err(SyncError::Provider(pe)) if pe.kind == ProviderErrorKind::Unsupported => {
                        full = true;
                        continue;
                    }
                    Err(err) => return Err(err),
                }
            };
            match (e.entity, record) {
                (_, Some(r)) => wrote |= self.apply(&r, run).await?,
                (MasterEntity::Task, None) => wrote |= self.remove_task(&e.remote_id, run).await?,
                (MasterEntity::Customer | MasterEntity::Project, None) => {
                    wrote |= self.remove_record(e.entity, &e.remote_id, run).await?;
                }
                _ => full = true,
            }
            if !self.cx.dry_run {
                engine.refetch_done(self.ws(), &item).await?;
            }
        }
        Ok((full, wrote))
    }

    fn caps_has(&self, e: MasterEntity) -> bool {
        entities(&self.caps).contains(&e)
    }

    /// One page of the current entity.
    async fn page(&mut self, run: &mut SyncRun) -> Result<bool, SyncError> {
        let list = entities(&self.caps);
        let Some(&entity) = list.get(self.progress.entity_idx) else {
            self.progress.listed = true;
            return Ok(false);
        };
        let engine = self.engine.clone();
        let p = engine.provider(&self.cx.provider)?.clone();
        let page = self.progress.page.clone();
        let since = self
            .progress
            .since
            .filter(|_| entity == MasterEntity::Customer);
        let got = engine
            .call(self.ws(), &self.cx.provider, move |s| {
                let p = p.clone();
                let page = page.clone();
                async move {
                    match p.master_data() {
                        Some(m) => m.list(&s, entity, since, page).await,
                        None => Err(hourbridge_provider_api::ProviderError::new(
                            p.descriptor().id,
                            ProviderErrorKind::Unsupported,
                            "this provider offers no master data",
                        )),
                    }
                }
            })
            .await?;
        let mut wrote = false;
        for r in &got.items {
            wrote |= self.apply(r, run).await?;
        }
        match got.next {
            Some(n) => self.progress.page = Some(n),
            None => {
                self.progress.page = None;
                self.progress.entity_idx += 1;
                if self.progress.entity_idx >= list.len() {
                    self.progress.listed = true;
                }
            }
        }
        Ok(wrote)
    }

    /// Every `entity:remote` seen in this pass.
    async fn seen(&mut self) -> Result<HashSet<String>, SyncError> {
        let mut all: HashSet<String> =
            super::work_logs_in::load_seen(&self.engine, &self.cx.ws, &seen_key(&self.cx.run_id))
                .await?;
        all.extend(self.unsaved.iter().cloned());
        Ok(all)
    }

    async fn mappings(&self, entity: &str) -> Result<Vec<RemoteMapping>, SyncError> {
        let q = self.engine.store.query::<RemoteMapping>(
            self.ws(),
            IndexSel::Index1(format!("{}.{entity}", self.provider)),
            1000,
        );
        Ok(self.engine.store.list_all::<RemoteMapping>(q).await?)
    }

    async fn reconcile(&mut self, run: &mut SyncRun) -> Result<(), SyncError> {
        if self.cx.dry_run {
            return Ok(());
        }
        let seen = self.seen().await?;
        let ws = self.cx.ws.clone();
        // Projects first: a project gone from the provider is closed before its tasks are
        // looked at.
        if self.caps.projects {
            for m in self.mappings("project").await? {
                if seen.contains(&format!("project:{}", m.remote_id)) {
                    continue;
                }
                if let Some((mut p, v)) = self
                    .engine
                    .store
                    .get::<Project>(&ws, m.local_id.as_str())
                    .await?
                    && p.active
                    && p.managed_by == self.managed()
                {
                    p.active = false;
                    self.engine.store.update(&ws, &p, v).await?;
                    run.imported.updated += 1;
                }
            }
        }
        if self.caps.tasks {
            let mut closed: HashMap<String, bool> = HashMap::new();
            for m in self.mappings("task").await? {
                if seen.contains(&format!("task:{}", m.remote_id)) {
                    continue;
                }
                // A closed project's to-dos are not listed any more, but they are not gone:
                // they stay with the project.
                let project = self
                    .engine
                    .store
                    .get::<Task>(&ws, m.local_id.as_str())
                    .await?
                    .map(|(t, _)| t.project_id.to_string());
                if let Some(p) = project {
                    let is_closed = match closed.get(&p) {
                        Some(c) => *c,
                        None => {
                            let c = self
                                .engine
                                .store
                                .get::<Project>(&ws, &p)
                                .await?
                                .is_some_and(|(p, _)| !p.active);
                            closed.insert(p.clone(), c);
                            c
                        }
                    };
                    if is_closed {
                        continue;
                    }
                }
                self.remove_task(&m.remote_id, run).await?;
            }
        }
        if self.caps.people {
            for m in self.mappings("assignment").await? {
                if !seen.contains(&format!("assignment:{}", m.remote_id)) {
                    let ours = self
                        .engine
                        .store
                        .get::<Assignment>(&ws, m.local_id.as_str())
                        .await?
                        .is_some_and(|(a, _)| a.managed_by == self.managed());
                    if ours {
                        self.engine
                            .store
                            .delete::<Assignment>(&ws, m.local_id.as_str())
                            .await?;
                        run.imported.deleted += 1;
                    }
                    self.unmap("assignment", &m.remote_id).await?;
                }
            }
        }
        // Everything received before the pass began is covered by it.
        let began = self
            .progress
            .started_at
            .unwrap_or_else(|| self.engine.clock.now());
        for item in self
            .engine
            .pending_refetches(&ws, &self.cx.provider)
            .await?
        {
            if item.received_at <= began {
                self.engine.refetch_done(&ws, &item).await?;
            }
        }
        if let Some(began) = self.progress.started_at
            && (self.progress.changed || self.progress.since.is_none())
        {
            let state = MasterDataState {
                provider: self.cx.provider.clone(),
                last_full_started_at: began,
            };
            self.engine.store.put(&ws, &state).await?;
        }
        // A webhook removed in the provider is made again.
        if let Err(e) = self.engine.enable_webhooks(&ws, &self.cx.provider).await {
            tracing::warn!(ws, provider = %self.provider, error = %e, "webhook renewal failed");
        }
        Ok(())
    }
}

/// The id a record is seen under: a membership is a person on a project.
pub(crate) fn seen_id(r: &RemoteRecord) -> String {
    match (r.entity, &r.parent_id) {
        (MasterEntity::Person, Some(p)) => format!("{p}-{}", r.id),
        _ => r.id.clone(),
    }
}

/// The seen-chunk key of a run's master-data pass (apart from its work-log chunks).
pub(crate) fn seen_key(run_id: &str) -> String {
    format!("{run_id}~md")
}

#[async_trait]
impl KindPass for Pass {
    async fn step(&mut self, run: &mut SyncRun, _may_prefetch: bool) -> Result<Step, SyncError> {
        if !self.progress.targeted_done {
            let (full, wrote) = if self.changes_only {
                self.targeted(run).await?
            } else {
                (true, false)
            };
            self.progress.targeted_done = true;
            self.progress.full = full;
            if !full {
                return Ok(Step::Done);
            }
            return Ok(Step::Progress { wrote });
        }
        if !self.progress.listed {
            let wrote = self.page(run).await?;
            self.progress.changed |= wrote;
            return Ok(Step::Progress { wrote });
        }
        self.reconcile(run).await?;
        Ok(Step::Done)
    }

    async fn checkpoint(&mut self) -> Result<serde_json::Value, SyncError> {
        if !self.unsaved.is_empty() {
            let n = self.progress.seen_chunks;
            super::work_logs_in::save_seen(
                &self.engine,
                &self.cx.ws,
                &seen_key(&self.cx.run_id),
                n,
                std::mem::take(&mut self.unsaved),
            )
            .await?;
            self.progress.seen_chunks += 1;
        }
        serde_json::to_value(&self.progress)
            .map_err(|e| SyncError::InvalidState(format!("master-data checkpoint: {e}")))
    }
}

/// Hands imported records back to the host when a connection is removed: every record the
/// provider was master of becomes `managed_by: local` and editable; nothing is deleted.
pub(crate) async fn release(engine: &Engine, ws: &str, provider: &str) -> Result<u64, SyncError> {
    let pid = ProviderId::parse(provider).map_err(|e| SyncError::Invalid(e.to_string()))?;
    let managed = ManagedBy::Provider(pid.clone());
    let mut released = 0;
    for entity in ["customer", "project", "task", "assignment"] {
        let q = engine.store.query::<RemoteMapping>(
            ws,
            IndexSel::Index1(format!("{pid}.{entity}")),
            1000,
        );
        for m in engine.store.list_all::<RemoteMapping>(q).await? {
            let id = m.local_id.as_str();
            let changed = match entity {
                "customer" => {
                    release_one::<Customer>(engine, ws, id, &managed, |c| &mut c.managed_by).await?
                }
                "project" => {
                    release_one::<Project>(engine, ws, id, &managed, |p| &mut p.managed_by).await?
                }
                "task" => {
                    release_one::<Task>(engine, ws, id, &managed, |t| &mut t.managed_by).await?
                }
                _ => {
                    release_one::<Assignment>(engine, ws, id, &managed, |a| &mut a.managed_by)
                        .await?
                }
            };
            released += u64::from(changed);
        }
    }
    Ok(released)
}

async fn release_one<E: hourbridge_store::Entity + Clone>(
    engine: &Engine,
    ws: &str,
    id: &str,
    managed: &ManagedBy,
    field: impl Fn(&mut E) -> &mut ManagedBy,
) -> Result<bool, SyncError> {
    let Some((mut e, v)) = engine.store.get::<E>(ws, id).await? else {
        return Ok(false);
    };
    if field(&mut e) != managed {
        return Ok(false);
    }
    *field(&mut e) = ManagedBy::Local;
    engine.store.update(ws, &e, v).await?;
    Ok(true)
}

/// Applies a reviewed remote record (see [`super::review`]): onto host record `target`, or as a
/// new host record. The link is made whatever the matching rules would say.
pub(crate) async fn apply_reviewed(
    engine: &Engine,
    ws: &str,
    provider: &str,
    r: &RemoteRecord,
    target: Option<RecordId>,
) -> Result<(), SyncError> {
    let p = engine.provider(provider)?.clone();
    let caps = p
        .descriptor()
        .capabilities
        .master_data_in
        .ok_or_else(|| SyncError::InvalidState("provider declares no master data".into()))?;
    let pid = ProviderId::parse(provider).map_err(|e| SyncError::Invalid(e.to_string()))?;
    let cx = UnitCx {
        ws: ws.to_owned(),
        provider: provider.to_owned(),
        project: None,
        mode: crate::runs::RunMode::Refetch,
        dry_run: false,
        run_id: "review".into(),
        changes_only: false,
    };
    // The admin decided: no matching again.
    let caps = MasterDataIn {
        match_existing: false,
        ..caps
    };
    let mut pass = Pass::new(engine, cx, pid.clone(), caps, Progress::default());
    let entity = entity_name(r.entity);
    let id = target.unwrap_or_else(|| host_id(&pid, entity, &r.id));
    let mut counts = RunCounts::default();
    match r.entity {
        MasterEntity::Customer => {
            pass.write_customer(r, id, &mut counts).await?;
        }
        _ => {
            let mut scratch = scratch_run(&pid, engine);
            pass.place_project(r, Some(id), &mut scratch).await?;
        }
    }
    Ok(())
}

/// A run record that is never stored, for counts nobody reads.
fn scratch_run(provider: &ProviderId, engine: &Engine) -> SyncRun {
    SyncRun {
        id: hourbridge_domain::new_id(),
        provider: provider.clone(),
        project_id: None,
        state: hourbridge_domain::RunState::Running,
        counts: RunCounts::default(),
        imported: RunCounts::default(),
        tasks_pushed: RunCounts::default(),
        problems: Vec::new(),
        failure: None,
        failure_message: None,
        created_at: engine.clock.now(),
        started_at: None,
        finished_at: None,
        checkpoint: None,
    }
}

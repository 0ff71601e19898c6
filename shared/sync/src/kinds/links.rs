//! Lookups the push and two-way kinds share: which remote project a host project is synced
//! with (imported by master data, or linked by hand), which remote task a host task is (imported,
//! or pushed by tasks-out), and the person links in both directions.
//!
//! Each pass keeps one [`Links`] and asks it; answers are cached for the pass, so a run of
//! thousands of logs reads each project, task and person once.

use std::collections::HashMap;

use hourbridge_domain::{
    HostKind, ManagedBy, PersonLink, Project, ProjectLink, ProviderId, RecordId, RemoteMapping,
};
use hourbridge_store::IndexSel;

use crate::outbound;
use crate::{Engine, SyncError};

/// Cached link lookups of one pass over one connection.
pub(crate) struct Links {
    engine: Engine,
    ws: String,
    provider: ProviderId,
    /// Host project → remote project (`None`: not synced with the provider).
    projects: HashMap<String, Option<String>>,
    /// Remote project → host project, of hand-made links (filled by [`Links::linked_projects`]).
    by_remote_project: Option<HashMap<String, RecordId>>,
    /// Host task → remote task.
    tasks: HashMap<String, Option<String>>,
    /// Remote task → host task.
    by_remote_task: HashMap<String, Option<RecordId>>,
    /// Host person → remote user.
    people: HashMap<String, Option<String>>,
    /// Remote user → host person.
    by_remote_person: HashMap<String, Option<RecordId>>,
}

impl Links {
    pub(crate) fn new(engine: &Engine, ws: &str, provider: &ProviderId) -> Self {
        Self {
            engine: engine.clone(),
            ws: ws.to_owned(),
            provider: provider.clone(),
            projects: HashMap::new(),
            by_remote_project: None,
            tasks: HashMap::new(),
            by_remote_task: HashMap::new(),
            people: HashMap::new(),
            by_remote_person: HashMap::new(),
        }
    }

    /// Hand-made links of the connection: remote project → host project. Only links to a
    /// single remote project count (a push needs one place to write to).
    pub(crate) async fn linked_projects(
        &mut self,
    ) -> Result<&HashMap<String, RecordId>, SyncError> {
        if self.by_remote_project.is_none() {
            let q = self.engine.store.query::<ProjectLink>(
                &self.ws,
                IndexSel::Index1(self.provider.to_string()),
                1000,
            );
            let mut map = HashMap::new();
            for l in self.engine.store.list_all::<ProjectLink>(q).await? {
                if let [remote] = l.remote_project_ids.as_slice() {
                    self.projects
                        .insert(l.project_id.to_string(), Some(remote.clone()));
                    map.insert(remote.clone(), l.project_id.clone());
                }
            }
            self.by_remote_project = Some(map);
        }
        Ok(self.by_remote_project.get_or_insert_with(HashMap::new))
    }

    /// The remote project host `project` is synced with: its import mapping when the provider
    /// manages it, else its hand-made link.
    pub(crate) async fn remote_project(
        &mut self,
        project: &RecordId,
    ) -> Result<Option<String>, SyncError> {
        if let Some(r) = self.projects.get(project.as_str()) {
            return Ok(r.clone());
        }
        let imported = self
            .engine
            .store
            .get::<Project>(&self.ws, project.as_str())
            .await?
            .is_some_and(|(p, _)| p.managed_by == ManagedBy::Provider(self.provider.clone()));
        let remote = if imported {
            imported_remote_id(&self.engine, &self.ws, &self.provider, "project", project).await?
        } else {
            self.linked_projects().await?;
            // `linked_projects` filled the cache for every linked project.
            self.projects.get(project.as_str()).cloned().flatten()
        };
        self.projects.insert(project.to_string(), remote.clone());
        Ok(remote)
    }

    /// The remote task host `task` is: imported from the provider, or pushed to it.
    pub(crate) async fn remote_task(
        &mut self,
        task: &RecordId,
    ) -> Result<Option<String>, SyncError> {
        if let Some(r) = self.tasks.get(task.as_str()) {
            return Ok(r.clone());
        }
        let mut remote =
            imported_remote_id(&self.engine, &self.ws, &self.provider, "task", task).await?;
        if remote.is_none() {
            let key = outbound::MappingKey::new(&self.provider, HostKind::Task, task);
            remote = outbound::mapping(&self.engine.store, &self.ws, &key)
                .await?
                .and_then(|m| m.remote_id);
        }
        self.tasks.insert(task.to_string(), remote.clone());
        Ok(remote)
    }

    /// The host task a remote task is (pushed by tasks-out, or imported).
    pub(crate) async fn host_task(&mut self, remote: &str) -> Result<Option<RecordId>, SyncError> {
        if let Some(h) = self.by_remote_task.get(remote) {
            return Ok(h.clone());
        }
        let mut host = outbound::find_by_remote(
            &self.engine.store,
            &self.ws,
            &self.provider,
            HostKind::Task,
            remote,
        )
        .await?
        .map(|m| m.host_id);
        if host.is_none() {
            let id = format!("{}.task.{remote}", self.provider);
            host = self
                .engine
                .store
                .get::<RemoteMapping>(&self.ws, &id)
                .await?
                .map(|(m, _)| m.local_id);
        }
        self.by_remote_task.insert(remote.to_owned(), host.clone());
        Ok(host)
    }

    /// The remote user host `person` is linked to.
    pub(crate) async fn remote_person(
        &mut self,
        person: &RecordId,
    ) -> Result<Option<String>, SyncError> {
        if let Some(r) = self.people.get(person.as_str()) {
            return Ok(r.clone());
        }
        let link = self
            .engine
            .store
            .get::<PersonLink>(&self.ws, &format!("{person}.{}", self.provider))
            .await?
            .map(|(l, _)| l.remote_person_id)
            .filter(|r| !r.trim().is_empty());
        self.people.insert(person.to_string(), link.clone());
        Ok(link)
    }

    /// The host person linked to remote user `remote`.
    pub(crate) async fn host_person(
        &mut self,
        remote: &str,
    ) -> Result<Option<RecordId>, SyncError> {
        if let Some(h) = self.by_remote_person.get(remote) {
            return Ok(h.clone());
        }
        let q = self.engine.store.query::<PersonLink>(
            &self.ws,
            IndexSel::Index1(format!("{}.{remote}", self.provider)),
            1,
        );
        let host = self
            .engine
            .store
            .list::<PersonLink>(q, None)
            .await?
            .items
            .into_iter()
            .next()
            .map(|(l, _)| l.person_id);
        self.by_remote_person
            .insert(remote.to_owned(), host.clone());
        Ok(host)
    }
}

/// The remote id of a host record imported by master data (`entity` `project` or `task`).
pub(crate) async fn imported_remote_id(
    engine: &Engine,
    ws: &str,
    provider: &ProviderId,
    entity: &str,
    local_id: &RecordId,
) -> Result<Option<String>, SyncError> {
    let mut q = engine.store.query::<RemoteMapping>(
        ws,
        IndexSel::Index1(format!("{provider}.{entity}")),
        1,
    );
    q.from = Some(local_id.to_string());
    q.to = Some(local_id.to_string());
    let page = engine.store.list::<RemoteMapping>(q, None).await?;
    Ok(page.items.into_iter().next().map(|(m, _)| m.remote_id))
}

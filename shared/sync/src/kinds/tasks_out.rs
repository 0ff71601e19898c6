//! Tasks out: host tasks pushed to a provider that declares `tasks_out` (one unit per
//! connection run, before time goes either way, so time finds its tasks).
//!
//! - **What**: the tasks of host projects linked by hand to one remote project
//!   ([`ProjectLink`]). Tasks created in the provider are never imported.
//! - **Which**: the host change feed (task entries) from the kind's watermark
//!   ([`TasksOutState`]); every task of a project whose link is new since the last run; and
//!   once a day, or when the feed lost entries, every task of every linked project plus every
//!   task mapping (so a person linked later still gets allocated).
//! - **How**: [`crate::outbound`] bookkeeping, as for time: `begin_push` before the remote call;
//!   a create carries the host task id as the provider's external key, and a resumed push
//!   first looks the task up by that key, so a crash between the provider's answer and our
//!   bookkeeping never makes a second task. A rename or an active-state change is an update; a
//!   deleted host task is set inactive remotely (the provider's history refers to it) and its
//!   mapping stays, so time still finds it. A task moved to a project synced with another
//!   remote project is set inactive there and created in the new one.
//! - **Allocation**: every assignee of a pushed task who is linked to a remote user is
//!   allocated once: an `allocation` [`RemoteMapping`] records it, and the adapter checks the
//!   provider's allocations before adding one, so a crash in between adds none twice.

use std::collections::BTreeSet;

use async_trait::async_trait;
use hourbridge_domain::{
    HostKind, OutboundMapping, ProjectLink, ProviderId, RecordId, RecordProblem, RemoteMapping,
    SyncRun, Task,
};
use hourbridge_provider_api::{OutboundTask, ProviderError};
use hourbridge_store::{Entity, IndexSel};
use serde::{Deserialize, Serialize};

use super::links::Links;
use super::shared::{Outcome, kind_state, load_state, read_feed, save_state, unsupported};
use super::{KindPass, Step, SyncKind, UnitCx};
use crate::outbound::{self, MappingKey};
use crate::{Engine, SyncError};

/// Tasks handled per step: the run checkpoints after every step that wrote.
const TASKS_PER_STEP: usize = 10;
/// How often every task of every linked project is looked at again.
const FULL_SCAN_EVERY_HOURS: i64 = 24;

/// The kind's per-connection state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TasksOutState {
    /// The provider (the record id).
    pub provider: String,
    /// Every task change up to this sequence number is handled; `None` before the first run.
    pub watermark: Option<u64>,
    /// Host projects whose tasks were all looked at since they were linked.
    #[serde(default)]
    pub projects: BTreeSet<String>,
    /// When every task was last looked at.
    #[serde(default)]
    pub last_full_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Tasks the provider refused, tried again on the next run.
    #[serde(default)]
    pub retry: BTreeSet<String>,
}

kind_state!(TasksOutState, "tasks_out_state");

/// The pass's checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    queue: Vec<String>,
    target: u64,
    retry: BTreeSet<String>,
    planned: bool,
    full: bool,
    projects: BTreeSet<String>,
}

/// The tasks-out sync kind; see the module docs.
pub(crate) struct TasksOut;

struct TasksOutPass {
    engine: Engine,
    cx: UnitCx,
    provider: ProviderId,
    progress: Progress,
    links: Links,
}

#[async_trait]
impl SyncKind for TasksOut {
    async fn open(
        &self,
        engine: &Engine,
        cx: UnitCx,
        checkpoint: serde_json::Value,
        _run: &mut SyncRun,
    ) -> Result<Box<dyn KindPass>, SyncError> {
        let progress = if checkpoint.is_null() {
            Progress::default()
        } else {
            serde_json::from_value(checkpoint)
                .map_err(|e| SyncError::InvalidState(format!("tasks-out checkpoint: {e}")))?
        };
        let provider =
            ProviderId::parse(&cx.provider).map_err(|e| SyncError::Invalid(e.to_string()))?;
        Ok(Box::new(TasksOutPass {
            engine: engine.clone(),
            links: Links::new(engine, &cx.ws, &provider),
            cx,
            provider,
            progress,
        }))
    }
}

/// What a task's mapping remembers: the outbound content, readable, so a deleted task can be
/// deactivated under its last name and a move to another remote project is recognised.
fn fingerprint(t: &OutboundTask) -> String {
    serde_json::to_string(t).unwrap_or_default()
}

fn pushed(m: &OutboundMapping) -> Option<OutboundTask> {
    m.fingerprint
        .as_deref()
        .and_then(|f| serde_json::from_str(f).ok())
}

type ProviderFuture<T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, ProviderError>> + Send>>;

impl TasksOutPass {
    fn ws(&self) -> &str {
        &self.cx.ws
    }

    async fn state(&self) -> Result<(TasksOutState, Option<u64>), SyncError> {
        load_state(&self.engine, self.ws(), self.provider.as_str()).await
    }

    async fn tasks_of(&self, project: &str) -> Result<Vec<String>, SyncError> {
        let q =
            self.engine
                .store
                .query::<Task>(self.ws(), IndexSel::Index1(project.to_owned()), 1000);
        Ok(self
            .engine
            .store
            .list_all::<Task>(q)
            .await?
            .into_iter()
            .map(|t| t.id.to_string())
            .collect())
    }

    async fn plan(&mut self) -> Result<(), SyncError> {
        let engine = self.engine.clone();
        let ws = self.cx.ws.clone();
        let (state, _) = self.state().await?;
        let mut ids: Vec<String> = Vec::new();
        for m in outbound::pending_pushes(&engine.store, &ws, &self.provider).await? {
            if m.host_kind == HostKind::Task {
                ids.push(m.host_id.to_string());
            }
        }
        ids.extend(state.retry.iter().cloned());
        let q = engine.store.query::<ProjectLink>(
            &ws,
            IndexSel::Index1(self.provider.to_string()),
            1000,
        );
        let linked: BTreeSet<String> = engine
            .store
            .list_all::<ProjectLink>(q)
            .await?
            .into_iter()
            .map(|l| l.project_id.to_string())
            .collect();
        let head = engine.store.change_head(&ws).await?;
        let now = engine.clock.now();
        let mut full = state.watermark.is_none()
            || state
                .last_full_at
                .is_none_or(|at| now - at >= chrono::Duration::hours(FULL_SCAN_EVERY_HOURS));
        let mut target = head;
        if let Some(w) = state.watermark
            && !full
        {
            let read = read_feed(&engine, &ws, w, HostKind::Task).await?;
            full |= read.lost;
            ids.extend(read.ids);
            target = read.target;
        }
        let scan: Vec<String> = if full {
            target = head;
            // Tasks moved off linked projects or deleted still have a mapping.
            let mut q = engine
                .store
                .query::<OutboundMapping>(&ws, IndexSel::Primary, 1000);
            let prefix = format!("{}.{}.", self.provider, HostKind::Task.as_str());
            q.from = Some(prefix.clone());
            q.to = Some(format!("{prefix}\u{10FFFF}"));
            ids.extend(
                engine
                    .store
                    .list_all::<OutboundMapping>(q)
                    .await?
                    .into_iter()
                    .map(|m| m.host_id.to_string()),
            );
            linked.iter().cloned().collect()
        } else {
            linked.difference(&state.projects).cloned().collect()
        };
        for p in &scan {
            ids.extend(self.tasks_of(p).await?);
        }
        let mut seen = BTreeSet::new();
        ids.retain(|id| seen.insert(id.clone()));
        self.progress = Progress {
            queue: ids,
            target,
            retry: BTreeSet::new(),
            planned: true,
            full,
            projects: linked,
        };
        Ok(())
    }

    /// Calls the provider's task sink.
    async fn sink<T, F>(&self, f: F) -> Result<T, SyncError>
    where
        F: Fn(
            std::sync::Arc<dyn hourbridge_provider_api::Provider>,
            hourbridge_provider_api::ProviderSession,
        ) -> ProviderFuture<T>,
    {
        let p = self.engine.provider(&self.cx.provider)?.clone();
        self.engine
            .call(self.ws(), &self.cx.provider, move |s| f(p.clone(), s))
            .await
    }

    async fn handle(&mut self, id: &str, run: &mut SyncRun) -> Result<Outcome, SyncError> {
        let engine = self.engine.clone();
        let ws = self.cx.ws.clone();
        let host_id = RecordId::parse(id).map_err(|e| SyncError::Invalid(e.to_string()))?;
        let key = MappingKey::new(&self.provider, HostKind::Task, &host_id);
        let mapping = outbound::mapping(&engine.store, &ws, &key).await?;
        let task = engine.store.get::<Task>(&ws, id).await?.map(|(t, _)| t);
        let last = mapping.as_ref().and_then(pushed);
        let remote_project = match &task {
            Some(t) => self.links.remote_project(&t.project_id).await?,
            None => None,
        };
        // What the remote task should be now: the host task, or (deleted, or no longer on a
        // linked project) what was last pushed, set inactive.
        let wanted = match (&task, &remote_project) {
            (Some(t), Some(rp)) => OutboundTask {
                remote_project_id: rp.clone(),
                name: t.name.clone(),
                active: t.active,
            },
            _ => match &last {
                Some(l) => OutboundTask {
                    active: false,
                    ..l.clone()
                },
                None => return Ok(Outcome::Ignored),
            },
        };
        let fp = fingerprint(&wanted);
        let clean = mapping.as_ref().is_some_and(|m| m.pending.is_none());
        let mut outcome = Outcome::Unchanged;
        if !(clean && mapping.as_ref().and_then(|m| m.fingerprint.as_deref()) == Some(&fp)) {
            if self.cx.dry_run {
                return Ok(if last.is_some() {
                    Outcome::Updated
                } else {
                    Outcome::Created
                });
            }
            match self.push(&key, &host_id, &wanted, &fp, last.as_ref()).await {
                Ok(o) => outcome = o,
                Err(SyncError::Provider(e)) if e.concerns_item_only() => {
                    run.problems.push(RecordProblem {
                        record: id.to_owned(),
                        code: e.code.unwrap_or("task_push_refused").into(),
                        message: format!("task {id} was not pushed: {}", e.message),
                    });
                    self.progress.retry.insert(id.to_owned());
                    return Ok(Outcome::Skipped);
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(t) = &task
            && wanted.active
            && !self.cx.dry_run
        {
            self.allocate(t, run).await?;
        }
        Ok(outcome)
    }

    async fn push(
        &mut self,
        key: &MappingKey,
        host_id: &RecordId,
        wanted: &OutboundTask,
        fp: &str,
        last: Option<&OutboundTask>,
    ) -> Result<Outcome, SyncError> {
        let engine = self.engine.clone();
        let ws = self.cx.ws.clone();
        let ticket = outbound::begin_push(&engine.store, &ws, key).await?;
        let mut remote = ticket.remote_id.clone();
        if let (Some(old), Some(l)) = (remote.clone(), last)
            && l.remote_project_id != wanted.remote_project_id
        {
            // Moved to a project synced with another remote project: the old task is set
            // inactive where it was, and the task is created where it now belongs.
            let old_task = OutboundTask {
                active: false,
                ..l.clone()
            };
            self.sink(move |p, s| {
                let (old, t) = (old.clone(), old_task.clone());
                Box::pin(async move {
                    match p.task_sink() {
                        Some(sink) => sink.update_task(&s, &old, &t).await,
                        None => Err(unsupported(p.descriptor().id, "tasks")),
                    }
                })
            })
            .await?;
            remote = None;
        }
        let external = host_id.to_string();
        if remote.is_none() && ticket.resumed {
            let (project, ext) = (wanted.remote_project_id.clone(), external.clone());
            remote = self
                .sink(move |p, s| {
                    let (project, ext) = (project.clone(), ext.clone());
                    Box::pin(async move {
                        match p.task_sink() {
                            Some(sink) => sink.find_task(&s, &project, &ext).await,
                            None => Err(unsupported(p.descriptor().id, "tasks")),
                        }
                    })
                })
                .await?;
        }
        let (t, target) = (wanted.clone(), remote.clone());
        let remote_id = self
            .sink(move |p, s| {
                let (t, target, ext) = (t.clone(), target.clone(), external.clone());
                Box::pin(async move {
                    let Some(sink) = p.task_sink() else {
                        return Err(unsupported(p.descriptor().id, "tasks"));
                    };
                    match target {
                        Some(r) => sink.update_task(&s, &r, &t).await.map(|()| r),
                        None => sink.create_task(&s, &t, &ext).await,
                    }
                })
            })
            .await?;
        outbound::complete_push(&engine.store, &ws, &ticket, &remote_id, fp).await?;
        Ok(if remote.is_some() {
            Outcome::Updated
        } else {
            Outcome::Created
        })
    }

    /// Allocates every linked assignee of `task` once.
    async fn allocate(&mut self, task: &Task, run: &mut SyncRun) -> Result<(), SyncError> {
        if task.assignee_ids.is_empty() {
            return Ok(());
        }
        let Some(remote_task) = self.links.remote_task(&task.id).await? else {
            return Ok(());
        };
        for person in &task.assignee_ids {
            let Some(remote_person) = self.links.remote_person(person).await? else {
                continue;
            };
            let done = RemoteMapping {
                provider: self.provider.clone(),
                entity: "allocation".into(),
                remote_id: format!("{remote_task}.{remote_person}"),
                local_id: task.id.clone(),
                fingerprint: person.to_string(),
            };
            if self
                .engine
                .store
                .get::<RemoteMapping>(self.ws(), &done.id())
                .await?
                .is_some()
            {
                continue;
            }
            let (rt, rp) = (remote_task.clone(), remote_person.clone());
            let result = self
                .sink(move |p, s| {
                    let (rt, rp) = (rt.clone(), rp.clone());
                    Box::pin(async move {
                        match p.task_sink() {
                            Some(sink) => sink.allocate(&s, &rt, &rp).await,
                            None => Err(unsupported(p.descriptor().id, "tasks")),
                        }
                    })
                })
                .await;
            match result {
                Ok(()) => {
                    self.engine.store.put(self.ws(), &done).await?;
                }
                Err(SyncError::Provider(e)) if e.concerns_item_only() => {
                    run.problems.push(RecordProblem {
                        record: task.id.to_string(),
                        code: e.code.unwrap_or("allocation_refused").into(),
                        message: format!(
                            "{person} was not allocated to task {}: {}",
                            task.id, e.message
                        ),
                    });
                    self.progress.retry.insert(task.id.to_string());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl KindPass for TasksOutPass {
    async fn step(&mut self, run: &mut SyncRun, _may_prefetch: bool) -> Result<Step, SyncError> {
        if !self.progress.planned {
            self.plan().await?;
            return Ok(Step::Progress { wrote: false });
        }
        if !self.progress.queue.is_empty() {
            let n = self.progress.queue.len().min(TASKS_PER_STEP);
            let batch: Vec<String> = self.progress.queue.drain(..n).collect();
            let mut wrote = false;
            for id in batch {
                match self.handle(&id, run).await {
                    Ok(o) => {
                        wrote |= o.count(&mut run.tasks_pushed) && !self.cx.dry_run;
                    }
                    Err(e) => {
                        self.progress.queue.insert(0, id);
                        return Err(e);
                    }
                }
            }
            return Ok(Step::Progress { wrote });
        }
        if !self.cx.dry_run {
            let (mut state, version) = self.state().await?;
            let retry = std::mem::take(&mut self.progress.retry);
            let target = self.progress.target.max(state.watermark.unwrap_or(0));
            let full_at = if self.progress.full {
                Some(self.engine.clock.now())
            } else {
                state.last_full_at
            };
            let projects = std::mem::take(&mut self.progress.projects);
            if state.watermark != Some(target)
                || state.retry != retry
                || state.last_full_at != full_at
                || state.projects != projects
            {
                state.watermark = Some(target);
                state.retry = retry;
                state.last_full_at = full_at;
                state.projects = projects;
                save_state(&self.engine, self.ws(), &state, version).await?;
            }
        }
        Ok(Step::Done)
    }

    async fn checkpoint(&mut self) -> Result<serde_json::Value, SyncError> {
        serde_json::to_value(&self.progress)
            .map_err(|e| SyncError::InvalidState(format!("tasks-out checkpoint: {e}")))
    }
}

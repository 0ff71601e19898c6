//! Sync runs: created by the API or the scheduler, executed by a worker.
//!
//! A run is a record (`queued` → `running` → `succeeded`/`failed`) plus a job message that
//! names it. The worker holds the connection's lease while it works, so one connection never
//! has two runs at once; it checkpoints into the run record and stops before its deadline,
//! asking to be re-queued; a duplicate or late delivery of a finished run's job is a no-op.
//! Runs that are not finished are also listed in the global scope (`open_run`), so a local
//! server that was killed finds and resumes them on start.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hourbridge_domain::{
    Connection, ConnectionState, FailureReason, ProjectLink, ProviderId, RecordId, RunCounts,
    RunState, SyncRun, new_id,
};
use hourbridge_store::{Entity, EntityKind, GLOBAL_SCOPE, IndexSel, StoreError};
use serde::{Deserialize, Serialize};

use crate::kinds::{self, Step, Unit, UnitCx};
use crate::{Engine, SyncError};

/// Checkpoint at least this often while nothing is being written.
const IDLE_CHECKPOINT_SECONDS: i64 = 10;
/// Least time between two checkpoints of steps that wrote. Every kind's steps are idempotent
/// (upserts, outbound mappings with pending marks), so a resumed run that redoes the steps
/// since its last checkpoint ends exact; it only counts them again as unchanged. Checkpointing
/// every page instead put a run-record, lease and seen-id write on the critical path of every
/// page of a pull.
const WRITE_CHECKPOINT_MILLIS: i64 = 250;

/// The message that asks a worker to (continue to) execute a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncJob {
    /// Workspace.
    pub workspace_id: String,
    /// Provider (the connection).
    pub provider: String,
    /// The run.
    pub run_id: String,
}

/// Where jobs go: EventBridge in AWS, an in-process channel locally.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Queues `job`, to be delivered after `delay`.
    async fn enqueue(&self, job: &SyncJob, delay: std::time::Duration) -> Result<(), SyncError>;
}

/// Something other systems may react to (EventBridge in AWS, the log locally).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundEvent {
    /// `SyncSucceeded`, `SyncFailed` or `ReauthNeeded` (the EventBridge `detail-type`).
    pub kind: &'static str,
    /// Workspace.
    pub workspace_id: String,
    /// Provider.
    pub provider: String,
    /// The run.
    pub run_id: String,
    /// The project link, for project runs.
    pub project_id: Option<String>,
    /// Counts of the run.
    pub counts: hourbridge_domain::RunCounts,
    /// Typed reason of a failure.
    pub failure: Option<FailureReason>,
    /// Message of a failure.
    pub message: Option<String>,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// Where outbound events go.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Publishes one event. Failing to publish never fails a run: callers log and go on.
    async fn publish(&self, event: &OutboundEvent) -> Result<(), SyncError>;
}

/// Outbound events as log lines (the local server).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogEvents;

#[async_trait]
impl EventSink for LogEvents {
    async fn publish(&self, event: &OutboundEvent) -> Result<(), SyncError> {
        tracing::info!(
            kind = event.kind,
            workspace = %event.workspace_id,
            provider = %event.provider,
            run = %event.run_id,
            failure = ?event.failure,
            "outbound event"
        );
        Ok(())
    }
}

/// What a run covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunScope {
    /// Every project link of the connection.
    Connection,
    /// One project link.
    Project(RecordId),
    /// Only the records webhooks reported changed (pending refetches): what a webhook
    /// delivery triggers. Kinds that cannot take targeted work do nothing in it.
    Changes,
}

/// How a run treats data already synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// Re-read and diff: accurate created/updated/deleted counts.
    Refetch,
    /// Delete what was synced, then read everything again.
    Wipe,
}

/// The engine's private state of a run, kept in `SyncRun::checkpoint`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunPlan {
    pub mode: RunMode,
    /// What the run covers (absent in runs queued before scopes were recorded: derived from
    /// the run's project then).
    #[serde(default)]
    pub scope: Option<RunScope>,
    /// The units of the run (a sync kind on a scope), planned from the provider's capabilities
    /// when the run starts executing.
    pub units: Option<Vec<Unit>>,
    /// Index into `units` of the one in progress.
    pub unit_idx: usize,
    /// The current unit's own checkpoint: opaque here, read only by its kind.
    #[serde(default)]
    pub progress: serde_json::Value,
    /// Retryable failures so far (the run fails after too many).
    pub attempts: u32,
}

const MAX_ATTEMPTS: u32 = 8;
/// A run still queued after this long is presumed lost (its job never arrived): triggers stop
/// coalescing onto it and queue a new one.
const STALE_QUEUED_MINUTES: i64 = 15;
const MAX_PROBLEMS: usize = 500;

/// Global pointer to a run that has not finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OpenRun {
    pub job: SyncJob,
}

impl Entity for OpenRun {
    const KIND: EntityKind = EntityKind("open_run");
    fn id(&self) -> String {
        format!("{}.{}", self.job.workspace_id, self.job.run_id)
    }
}

/// The run of a scope (connection or project link, in one mode) that is queued and not yet
/// started: triggers coalesce onto it instead of queueing another full run. The record is never
/// deleted, only emptied (`run_id: None`) when its run starts, so its version only grows and a
/// trigger holding an old version can never win a conditional write (a deleted and re-created
/// record would start again at version 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct QueuedRun {
    pub provider: String,
    pub scope: String,
    pub mode: RunMode,
    pub run_id: Option<String>,
}

impl Entity for QueuedRun {
    const KIND: EntityKind = EntityKind("queued_run");
    fn id(&self) -> String {
        queued_key(&self.provider, &self.scope, self.mode)
    }
}

fn scope_key(scope: &RunScope) -> String {
    match scope {
        RunScope::Connection => "connection".into(),
        RunScope::Project(p) => format!("project:{p}"),
        RunScope::Changes => "changes".into(),
    }
}

fn queued_key(provider: &str, scope: &str, mode: RunMode) -> String {
    format!("{provider}.{scope}.{mode:?}")
}

/// What a worker's pass over a run ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The run is finished (now or before).
    Finished(RunState),
    /// The deadline came; the run checkpointed and must be re-queued now.
    Paused,
    /// Another run holds the connection, or the provider asked us to wait: re-queue after.
    RetryAfter(std::time::Duration),
}

impl Engine {
    /// Creates a queued run and queues its job — unless a run of the same scope and mode is
    /// already queued and not started, which is answered instead: any number of triggers
    /// (API calls, scheduler ticks, webhooks) while one run waits make that one run, and
    /// triggers while it runs queue at most one follow-up.
    pub async fn start_run(
        &self,
        ws: &str,
        provider: &str,
        scope: RunScope,
        mode: RunMode,
    ) -> Result<SyncRun, SyncError> {
        self.require_addon(ws, provider).await?;
        let (conn, _) = self
            .connection(ws, provider)
            .await?
            .ok_or_else(|| SyncError::NotConnected(provider.into()))?;
        if conn.state != ConnectionState::Active {
            return Err(SyncError::InvalidState(format!(
                "{provider} is not active ({:?}); authorize it first",
                conn.state
            )));
        }
        let project_id = match &scope {
            RunScope::Project(p) => Some(p.clone()),
            RunScope::Connection | RunScope::Changes => None,
        };
        let key = queued_key(provider, &scope_key(&scope), mode);
        for _ in 0..20 {
            let slot = self.store.get::<QueuedRun>(ws, &key).await?;
            if let Some((q, _)) = &slot
                && let Some(queued) = &q.run_id
                && let Some((run, _)) = self.store.get::<SyncRun>(ws, queued).await?
                && run.state == RunState::Queued
                && self.clock.now() - run.created_at < Duration::minutes(STALE_QUEUED_MINUTES)
            {
                return Ok(run);
            }
            let plan = RunPlan {
                mode,
                scope: Some(scope.clone()),
                units: None,
                unit_idx: 0,
                progress: serde_json::Value::Null,
                attempts: 0,
            };
            let run = SyncRun {
                id: new_id(),
                provider: ProviderId::parse(provider)
                    .map_err(|e| SyncError::Invalid(e.to_string()))?,
                project_id: project_id.clone(),
                state: RunState::Queued,
                counts: RunCounts::default(),
                imported: RunCounts::default(),
                tasks_pushed: RunCounts::default(),
                problems: Vec::new(),
                failure: None,
                failure_message: None,
                created_at: self.clock.now(),
                started_at: None,
                finished_at: None,
                checkpoint: serde_json::to_value(&plan).ok(),
            };
            // The run exists before the slot names it, so a concurrent trigger that reads the
            // slot always finds the run; the slot write decides which trigger's run it is.
            self.store.insert(ws, &run).await?;
            let claim = QueuedRun {
                provider: provider.to_owned(),
                scope: scope_key(&scope),
                mode,
                run_id: Some(run.id.to_string()),
            };
            let claimed = match &slot {
                Some((_, v)) => self.store.update(ws, &claim, *v).await,
                None => self.store.insert(ws, &claim).await,
            };
            match claimed {
                Ok(_) => {}
                Err(StoreError::Conflict) => {
                    // Another trigger queued one first: drop ours and answer theirs.
                    self.store.delete::<SyncRun>(ws, run.id.as_str()).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            let job = SyncJob {
                workspace_id: ws.into(),
                provider: provider.into(),
                run_id: run.id.to_string(),
            };
            self.store
                .put(GLOBAL_SCOPE, &OpenRun { job: job.clone() })
                .await?;
            self.set_last_run(ws, provider, &run).await?;
            if let Err(e) = self.queue.enqueue(&job, std::time::Duration::ZERO).await {
                // Nobody will run it: later triggers must not coalesce onto it.
                let _ = self.empty_queued_slot(ws, &key, run.id.as_str()).await;
                return Err(e);
            }
            return Ok(run);
        }
        Err(SyncError::Busy)
    }

    /// Frees the scope's queued-run slot when its run starts, so the next trigger queues a
    /// follow-up (changes made from now on may not be seen by the starting run).
    async fn release_queued_slot(&self, ws: &str, run: &SyncRun) -> Result<(), SyncError> {
        let plan = run
            .checkpoint
            .clone()
            .and_then(|c| serde_json::from_value::<RunPlan>(c).ok());
        let scope = run_scope(run, plan.as_ref());
        let mode = plan.map_or(RunMode::Refetch, |p| p.mode);
        let key = queued_key(run.provider.as_str(), &scope_key(&scope), mode);
        self.empty_queued_slot(ws, &key, run.id.as_str()).await
    }

    /// Empties the slot `key` if it still names `run_id` (a lost race means another trigger
    /// already replaced it, which is fine).
    async fn empty_queued_slot(&self, ws: &str, key: &str, run_id: &str) -> Result<(), SyncError> {
        if let Some((mut q, v)) = self.store.get::<QueuedRun>(ws, key).await?
            && q.run_id.as_deref() == Some(run_id)
        {
            q.run_id = None;
            match self.store.update(ws, &q, v).await {
                Ok(_) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn set_last_run(&self, ws: &str, provider: &str, run: &SyncRun) -> Result<(), SyncError> {
        if let Some(project) = &run.project_id {
            let id = format!("{project}.{provider}");
            if let Some((mut link, v)) = self.store.get::<ProjectLink>(ws, &id).await? {
                link.last_run_id = Some(run.id.clone());
                let _ = self.store.update(ws, &link, v).await;
            }
        }
        if let Some((mut conn, v)) = self.connection(ws, provider).await? {
            conn.last_run_id = Some(run.id.clone());
            let _ = self.store.update(ws, &conn, v).await;
        }
        Ok(())
    }

    /// Jobs of every run that has not finished, for a worker starting up.
    pub async fn open_jobs(&self) -> Result<Vec<SyncJob>, SyncError> {
        let q = self
            .store
            .query::<OpenRun>(GLOBAL_SCOPE, IndexSel::Primary, 1000);
        Ok(self
            .store
            .list_all::<OpenRun>(q)
            .await?
            .into_iter()
            .map(|o| o.job)
            .collect())
    }

    /// Executes (a slice of) a run. `deadline` is when the process must stop (the Lambda's);
    /// the worker stops `deadline_margin` before it.
    pub async fn execute(
        &self,
        job: &SyncJob,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<Outcome, SyncError> {
        let ws = job.workspace_id.as_str();
        let Some((mut run, mut version)) = self.store.get::<SyncRun>(ws, &job.run_id).await? else {
            self.store
                .delete::<OpenRun>(GLOBAL_SCOPE, &format!("{ws}.{}", job.run_id))
                .await?;
            return Ok(Outcome::Finished(RunState::Failed));
        };
        if matches!(run.state, RunState::Succeeded | RunState::Failed) {
            return Ok(Outcome::Finished(run.state));
        }
        let owner = format!("{}:{}", run.id, new_id());
        let lease_name = format!("sync:{}", job.provider);
        let Some(mut lease) = self
            .store
            .acquire_lease(ws, &lease_name, &owner, self.settings.lease_ttl)
            .await?
        else {
            return Ok(Outcome::RetryAfter(std::time::Duration::from_secs(2)));
        };
        let mut plan: RunPlan = run
            .checkpoint
            .clone()
            .and_then(|c| serde_json::from_value(c).ok())
            .ok_or_else(|| SyncError::InvalidState("run has no plan".into()))?;
        if run.state == RunState::Queued {
            self.release_queued_slot(ws, &run).await?;
            run.state = RunState::Running;
            run.started_at = Some(self.clock.now());
            version = self.store.update(ws, &run, version).await?;
        }
        let stop_at = deadline.map(|d| d - self.settings.deadline_margin);
        // A run queued before the add-on was removed fails as addon_not_enabled.
        let result = match self.require_addon(ws, &job.provider).await {
            Ok(()) => {
                self.drive(job, &mut run, &mut version, &mut plan, stop_at, &mut lease)
                    .await
            }
            Err(e) => Err(e),
        };
        let outcome = match result {
            Ok(true) => {
                self.finish(ws, &mut run, version, &plan, None).await?;
                Outcome::Finished(RunState::Succeeded)
            }
            Ok(false) => Outcome::Paused,
            Err(e) if e.is_retryable() && plan.attempts + 1 < MAX_ATTEMPTS => {
                plan.attempts += 1;
                let wait = match &e {
                    SyncError::Provider(p) => p.retry_after,
                    _ => None,
                }
                .unwrap_or(std::time::Duration::from_secs(
                    2u64.pow(plan.attempts.min(6)),
                ));
                tracing::warn!(run = %run.id, error = %e, attempt = plan.attempts, ?wait, "run will retry");
                run.checkpoint = serde_json::to_value(&plan).ok();
                self.store.update(ws, &run, version).await?;
                Outcome::RetryAfter(wait)
            }
            Err(e) => {
                tracing::warn!(run = %run.id, error = %e, "run failed");
                self.finish(ws, &mut run, version, &plan, Some(&e)).await?;
                Outcome::Finished(RunState::Failed)
            }
        };
        self.store.release_lease(&lease).await?;
        Ok(outcome)
    }

    /// Works through the plan; `Ok(true)` when done, `Ok(false)` when paused for the deadline.
    /// Each unit's pass does its pages and reconcile; this loop owns checkpoints and the
    /// deadline, the same for every kind.
    async fn drive(
        &self,
        job: &SyncJob,
        run: &mut SyncRun,
        version: &mut u64,
        plan: &mut RunPlan,
        stop_at: Option<DateTime<Utc>>,
        lease: &mut hourbridge_store::Lease,
    ) -> Result<bool, SyncError> {
        let ws = job.workspace_id.as_str();
        if plan.units.is_none() {
            let provider = self.provider(&job.provider)?.clone();
            let scope = run_scope(run, Some(plan));
            plan.units = Some(kinds::plan_units(self, ws, provider.as_ref(), &scope).await?);
        }
        let units = plan.units.clone().unwrap_or_default();
        let mut last_checkpoint = self.clock.now();
        while plan.unit_idx < units.len() {
            let unit = &units[plan.unit_idx];
            let cx = UnitCx {
                ws: ws.to_owned(),
                provider: job.provider.clone(),
                project: unit.project.clone(),
                mode: plan.mode,
                dry_run: false,
                run_id: run.id.to_string(),
                changes_only: unit.changes_only,
            };
            let checkpoint = std::mem::take(&mut plan.progress);
            let mut pass = kinds::open(self, unit, cx, checkpoint, run).await?;
            loop {
                let may_prefetch = !past(stop_at, self.clock.now());
                match pass.step(run, may_prefetch).await? {
                    Step::Done => break,
                    Step::Progress { wrote } => {
                        let now = self.clock.now();
                        let pausing = past(stop_at, now);
                        let idle =
                            now - last_checkpoint >= Duration::seconds(IDLE_CHECKPOINT_SECONDS);
                        let due = wrote
                            && now - last_checkpoint
                                >= Duration::milliseconds(WRITE_CHECKPOINT_MILLIS);
                        if due || pausing || idle {
                            plan.progress = pass.checkpoint().await?;
                            self.checkpoint(ws, run, version, plan, lease).await?;
                            last_checkpoint = now;
                        }
                        if pausing {
                            return Ok(false);
                        }
                    }
                }
            }
            plan.unit_idx += 1;
            plan.progress = serde_json::Value::Null;
        }
        Ok(true)
    }

    async fn finish(
        &self,
        ws: &str,
        run: &mut SyncRun,
        version: u64,
        plan: &RunPlan,
        error: Option<&SyncError>,
    ) -> Result<(), SyncError> {
        run.finished_at = Some(self.clock.now());
        run.state = if error.is_some() {
            RunState::Failed
        } else {
            RunState::Succeeded
        };
        run.failure = error.map(SyncError::reason);
        run.failure_message = error.map(|e| e.to_string());
        run.problems.truncate(MAX_PROBLEMS);
        run.checkpoint = serde_json::to_value(RunPlan {
            units: None,
            progress: serde_json::Value::Null,
            ..plan.clone()
        })
        .ok();
        match self.store.update(ws, run, version).await {
            Ok(_) => {}
            Err(StoreError::Conflict) => return Err(SyncError::Busy),
            Err(e) => return Err(e.into()),
        }
        crate::kinds::work_logs_in::drop_seen(self, ws, run.id.as_str()).await?;
        crate::kinds::work_logs_in::drop_seen(
            self,
            ws,
            &crate::kinds::master_data_in::seen_key(run.id.as_str()),
        )
        .await?;
        self.store
            .delete::<OpenRun>(GLOBAL_SCOPE, &format!("{ws}.{}", run.id))
            .await?;
        let reauth = matches!(
            error.map(SyncError::reason),
            Some(FailureReason::ReauthRequired)
        );
        if reauth
            && let Some((mut c, v)) = self
                .store
                .get::<Connection>(ws, run.provider.as_str())
                .await?
        {
            c.state = ConnectionState::ReauthRequired;
            let _ = self.store.update(ws, &c, v).await;
        }
        let mut kinds = vec![if error.is_some() {
            "SyncFailed"
        } else {
            "SyncSucceeded"
        }];
        if reauth {
            kinds.push("ReauthNeeded");
        }
        for kind in kinds {
            let event = OutboundEvent {
                kind,
                workspace_id: ws.to_owned(),
                provider: run.provider.to_string(),
                run_id: run.id.to_string(),
                project_id: run.project_id.as_ref().map(ToString::to_string),
                counts: run.counts,
                failure: run.failure,
                message: run.failure_message.clone(),
                at: self.clock.now(),
            };
            if let Err(e) = self.events.publish(&event).await {
                tracing::warn!(error = %e, kind, run = %run.id, "outbound event not published");
            }
        }
        Ok(())
    }

    /// Saves the run's counts and plan (a checkpoint) and renews the lease.
    pub(crate) async fn checkpoint(
        &self,
        ws: &str,
        run: &mut SyncRun,
        version: &mut u64,
        plan: &RunPlan,
        lease: &mut hourbridge_store::Lease,
    ) -> Result<(), SyncError> {
        run.checkpoint = serde_json::to_value(plan).ok();
        run.problems.truncate(MAX_PROBLEMS);
        *version = self.store.update(ws, run, *version).await?;
        *lease = self
            .store
            .acquire_lease(ws, &lease.name, &lease.owner, self.settings.lease_ttl)
            .await?
            .ok_or(SyncError::Busy)?;
        Ok(())
    }

    /// A run of this workspace.
    pub async fn run(&self, ws: &str, run_id: &str) -> Result<Option<SyncRun>, SyncError> {
        Ok(self.store.get::<SyncRun>(ws, run_id).await?.map(|(r, _)| r))
    }
}

/// What `run` covers: its recorded scope, or (older runs) its project or the connection.
fn run_scope(run: &SyncRun, plan: Option<&RunPlan>) -> RunScope {
    if let Some(s) = plan.and_then(|p| p.scope.clone()) {
        return s;
    }
    match &run.project_id {
        Some(p) => RunScope::Project(p.clone()),
        None => RunScope::Connection,
    }
}

/// Whether `now` is past `stop_at`.
pub(crate) fn past(stop_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    stop_at.is_some_and(|s| now >= s)
}

/// Lease TTL helper for tests and callers that need a duration in seconds.
pub fn seconds(s: i64) -> Duration {
    Duration::seconds(s)
}

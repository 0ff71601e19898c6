//! Sync kinds: the pieces of work a run is made of, chosen from what the provider declares.
//!
//! A run of a connection is a list of [`Unit`]s, each one sync kind applied to one scope (a
//! project link for per-link kinds, the whole connection otherwise). [`plan_units`] derives the
//! list from the provider's [`Capabilities`] and never from its id. Every kind has the same
//! shape, so `runs.rs` can keep leases, deadlines, resumption, events and counts for all of
//! them:
//!
//! 1. [`SyncKind::open`] starts a pass over a unit, or resumes it from the kind's own checkpoint
//!    (opaque JSON that only the kind reads);
//! 2. [`KindPass::step`] does the next unit of work — fetch a page, plan it against the host,
//!    apply the plan — or, once the pages are done, the reconcile, and says whether it wrote;
//! 3. [`KindPass::checkpoint`] saves whatever the checkpoint refers to and returns it; the run
//!    stores it with the run record after a step that wrote once a quarter second has passed
//!    since the last checkpoint (and at least every few seconds, and before pausing for a
//!    deadline). Steps must therefore be idempotent: a resumed pass redoes the steps since its
//!    last checkpoint.
//!
//! A pass opened with `dry_run` writes nothing anywhere: that is how previews are computed, so
//! a preview is the sync itself with writes turned off, not a second copy of it.
//!
//! Kinds, in the order a connection run does them: [`master_data_in`] (capability
//! `master_data_in`), [`tasks_out`] (capability `tasks_out`), [`work_logs_in`] (capability
//! `work_logs_in`, one unit per project link), [`time_in`] (capability `time_two_way`: remote
//! changes first, so a conflict is settled before anything is pushed) and [`time_out`]
//! (capabilities `time_out` and `time_two_way`). All but work logs in run once per connection
//! run.

mod links;
pub mod master_data_in;
pub mod review;
mod shared;
pub mod tasks_out;
pub mod time_in;
pub mod time_out;
pub mod work_logs_in;

use async_trait::async_trait;
use hourbridge_domain::{MissingPerson, ProjectLink, SyncRun};
use hourbridge_provider_api::{Capabilities, Provider};
use hourbridge_store::IndexSel;
use serde::{Deserialize, Serialize};

use crate::runs::{RunMode, RunScope};
use crate::{Engine, SyncError};

/// Which sync kind a unit runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KindId {
    /// Master data imported from the provider (capability `master_data_in`), once per
    /// connection run, before anything that refers to projects and tasks.
    MasterDataIn,
    /// Remote work logs pulled into a host project (capability `work_logs_in`).
    WorkLogsIn,
    /// Host work logs pushed to the provider (capabilities `time_out`, `time_two_way`), once
    /// per connection run.
    TimeOut,
    /// Host tasks pushed to the provider (capability `tasks_out`), once per connection run.
    TasksOut,
    /// Remote time changes applied to the host (capability `time_two_way`), once per
    /// connection run, before time out.
    TimeIn,
}

/// One kind applied to one scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// The kind.
    pub kind: KindId,
    /// The host project of a per-link kind; `None` for connection-wide kinds.
    pub project: Option<String>,
    /// Only the records webhooks named (a run of scope [`RunScope::Changes`]).
    #[serde(default)]
    pub changes_only: bool,
}

/// What a pass needs to know about its unit.
#[derive(Debug, Clone)]
pub(crate) struct UnitCx {
    pub ws: String,
    pub provider: String,
    pub project: Option<String>,
    pub mode: RunMode,
    pub dry_run: bool,
    pub run_id: String,
    /// See [`Unit::changes_only`].
    pub changes_only: bool,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A unit of work is done and more follows; `wrote` says whether the host changed.
    Progress { wrote: bool },
    /// The unit is finished (reconcile included).
    Done,
}

/// A sync kind: see the module docs.
#[async_trait]
pub(crate) trait SyncKind: Send + Sync {
    /// Opens (or resumes from `checkpoint`, `Null` for a fresh start) a pass over a unit.
    async fn open(
        &self,
        engine: &Engine,
        cx: UnitCx,
        checkpoint: serde_json::Value,
        run: &mut SyncRun,
    ) -> Result<Box<dyn KindPass>, SyncError>;
}

/// A pass of one kind over one unit.
#[async_trait]
pub(crate) trait KindPass: Send {
    /// The next page (planned and applied) or the reconcile; counts and problems go to `run`.
    /// `may_prefetch` is false when the run is about to stop, so no request is started that
    /// would be thrown away.
    async fn step(&mut self, run: &mut SyncRun, may_prefetch: bool) -> Result<Step, SyncError>;
    /// Saves what the checkpoint refers to (never called in a dry run) and returns it.
    async fn checkpoint(&mut self) -> Result<serde_json::Value, SyncError>;
    /// People the pass found without a host person (what a preview reports).
    fn missing_people(&self) -> Vec<MissingPerson> {
        Vec::new()
    }
}

/// The kinds a provider's capabilities call for, in the order a connection run does them.
/// Master data comes first once it exists (work logs and time refer to projects and tasks).
pub(crate) fn kinds_for(caps: &Capabilities, provider: &str) -> Result<Vec<KindId>, SyncError> {
    let mut kinds = Vec::new();
    if caps.master_data_in.is_some() {
        kinds.push(KindId::MasterDataIn);
    }
    if caps.tasks_out {
        if caps.project_links.is_none() && caps.master_data_in.is_none() {
            return Err(SyncError::InvalidState(format!(
                "{provider} declares tasks_out but neither project links nor imported projects to push tasks to"
            )));
        }
        kinds.push(KindId::TasksOut);
    }
    if caps.work_logs_in.is_some() {
        kinds.push(KindId::WorkLogsIn);
    }
    if caps.time_two_way.is_some() {
        kinds.push(KindId::TimeIn);
    }
    if caps.time_two_way.is_some() || caps.time_out {
        kinds.push(KindId::TimeOut);
    }
    Ok(kinds)
}

fn kind(id: KindId) -> &'static dyn SyncKind {
    match id {
        KindId::MasterDataIn => &master_data_in::MasterDataInKind,
        KindId::WorkLogsIn => &work_logs_in::WorkLogsIn,
        KindId::TimeOut => &time_out::TimeOut,
        KindId::TasksOut => &tasks_out::TasksOut,
        KindId::TimeIn => &time_in::TimeIn,
    }
}

/// Whether a kind runs once per project link.
fn per_link(id: KindId) -> bool {
    match id {
        KindId::WorkLogsIn => true,
        KindId::MasterDataIn | KindId::TimeOut | KindId::TasksOut | KindId::TimeIn => false,
    }
}

/// The units of a run of `scope`.
pub(crate) async fn plan_units(
    engine: &Engine,
    ws: &str,
    provider: &dyn Provider,
    scope: &RunScope,
) -> Result<Vec<Unit>, SyncError> {
    let id = provider.descriptor().id;
    let kinds = kinds_for(&provider.descriptor().capabilities, id)?;
    let mut links: Option<Vec<String>> = None;
    let mut units = Vec::new();
    for k in kinds {
        if let RunScope::Changes = scope {
            // Only kinds that take targeted work run for webhook changes.
            if k == KindId::MasterDataIn {
                units.push(Unit {
                    kind: k,
                    project: None,
                    changes_only: true,
                });
            }
            continue;
        }
        match (per_link(k), scope) {
            (true, RunScope::Project(p)) => units.push(Unit {
                kind: k,
                project: Some(p.to_string()),
                changes_only: false,
            }),
            (true, RunScope::Connection) => {
                if links.is_none() {
                    let q = engine.store.query::<ProjectLink>(
                        ws,
                        IndexSel::Index1(id.to_owned()),
                        1000,
                    );
                    links = Some(
                        engine
                            .store
                            .list_all::<ProjectLink>(q)
                            .await?
                            .into_iter()
                            .map(|l| l.project_id.to_string())
                            .collect(),
                    );
                }
                for p in links.iter().flatten() {
                    units.push(Unit {
                        kind: k,
                        project: Some(p.clone()),
                        changes_only: false,
                    });
                }
            }
            (false, RunScope::Connection) => units.push(Unit {
                kind: k,
                project: None,
                changes_only: false,
            }),
            // A project run only does the per-link kinds.
            (false, RunScope::Project(_)) => {}
            (_, RunScope::Changes) => {}
        }
    }
    Ok(units)
}

/// Opens a pass over `unit`.
pub(crate) async fn open(
    engine: &Engine,
    unit: &Unit,
    cx: UnitCx,
    checkpoint: serde_json::Value,
    run: &mut SyncRun,
) -> Result<Box<dyn KindPass>, SyncError> {
    kind(unit.kind).open(engine, cx, checkpoint, run).await
}

/// What a sync or reset would do, computed by running it with writes turned off.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Preview {
    /// Records that would be created.
    pub created: u64,
    /// Records that would change.
    pub updated: u64,
    /// Records that would be deleted.
    pub deleted: u64,
    /// Records already up to date.
    pub unchanged: u64,
    /// Remote records that would not be synced (running timers, unmatched or unassigned
    /// people).
    pub skipped: u64,
    /// People who would be reported missing.
    pub missing_people: Vec<MissingPerson>,
}

impl Engine {
    /// What a reset-and-sync of one project link would do: the same passes as the run, with
    /// writes turned off (nothing is written to the host, the run history or checkpoints).
    pub async fn preview(
        &self,
        ws: &str,
        provider: &str,
        project: &str,
        mode: RunMode,
    ) -> Result<Preview, SyncError> {
        let link = format!("{project}.{provider}");
        if self.store.get::<ProjectLink>(ws, &link).await?.is_none() {
            return Err(SyncError::Invalid(
                "the project is not linked to this provider".into(),
            ));
        }
        let p = self.provider(provider)?.clone();
        let project_id = hourbridge_domain::RecordId::parse(project)
            .map_err(|e| SyncError::Invalid(e.to_string()))?;
        let units =
            plan_units(self, ws, p.as_ref(), &RunScope::Project(project_id.clone())).await?;
        let mut run = SyncRun {
            id: hourbridge_domain::new_id(),
            provider: hourbridge_domain::ProviderId::parse(provider)
                .map_err(|e| SyncError::Invalid(e.to_string()))?,
            project_id: Some(project_id),
            state: hourbridge_domain::RunState::Running,
            counts: Default::default(),
            imported: Default::default(),
            tasks_pushed: Default::default(),
            problems: Vec::new(),
            failure: None,
            failure_message: None,
            created_at: self.clock.now(),
            started_at: None,
            finished_at: None,
            checkpoint: None,
        };
        let mut missing = std::collections::BTreeSet::new();
        for unit in &units {
            let cx = UnitCx {
                ws: ws.to_owned(),
                provider: provider.to_owned(),
                project: unit.project.clone(),
                mode,
                dry_run: true,
                run_id: run.id.to_string(),
                changes_only: unit.changes_only,
            };
            let mut pass = open(self, unit, cx, serde_json::Value::Null, &mut run).await?;
            while pass.step(&mut run, true).await? != Step::Done {}
            missing.extend(pass.missing_people());
        }
        Ok(Preview {
            created: run.counts.created,
            updated: run.counts.updated,
            deleted: run.counts.deleted,
            unchanged: run.counts.unchanged,
            skipped: run.counts.skipped,
            missing_people: missing.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hourbridge_provider_api::{MasterDataIn, WorkLogsIn};

    #[test]
    fn work_log_providers_get_the_work_logs_kind() {
        let caps = Capabilities {
            work_logs_in: Some(WorkLogsIn {
                deletion_feed: false,
                max_window_days: None,
            }),
            ..Capabilities::default()
        };
        assert_eq!(kinds_for(&caps, "x").unwrap(), vec![KindId::WorkLogsIn]);
    }

    #[test]
    fn two_way_providers_push_tasks_then_read_changes_then_push_time() {
        let caps = Capabilities {
            tasks_out: true,
            project_links: Some(hourbridge_provider_api::ProjectLinks {
                max_remote_projects: 1,
                requires_sync_from: false,
            }),
            time_two_way: Some(hourbridge_provider_api::TimeTwoWay {
                history_days: 90,
                overlap: std::time::Duration::from_secs(600),
            }),
            ..Capabilities::default()
        };
        assert_eq!(
            kinds_for(&caps, "x").unwrap(),
            vec![KindId::TasksOut, KindId::TimeIn, KindId::TimeOut]
        );
    }

    #[test]
    fn tasks_out_without_anywhere_to_push_fails_planning_instead_of_being_skipped() {
        let caps = Capabilities {
            tasks_out: true,
            ..Capabilities::default()
        };
        let err = kinds_for(&caps, "x").unwrap_err().to_string();
        assert!(err.contains("tasks_out"), "{err}");
    }

    #[test]
    fn master_data_comes_before_time_out() {
        let caps = Capabilities {
            master_data_in: Some(MasterDataIn::default()),
            time_out: true,
            ..Capabilities::default()
        };
        assert_eq!(
            kinds_for(&caps, "x").unwrap(),
            vec![KindId::MasterDataIn, KindId::TimeOut]
        );
    }
}

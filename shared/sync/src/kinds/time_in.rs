//! Time in: remote time changes of a two-way provider (capability `time_two_way`) applied to
//! the host, one unit per connection run, before time out.
//!
//! - **Window**: from where the last read ended minus the declared overlap, to the moment the
//!   pass was planned; never further back than the provider's change history
//!   ([`TimeTwoWay`](hourbridge_provider_api::TimeTwoWay)). The first read, and the first after
//!   a project is linked, start at the history's beginning. The window is in the checkpoint, so
//!   a resumed pass reads the same one; re-reading a page is harmless (see below).
//! - **Which**: changes on remote projects linked by hand to one host project
//!   ([`ProjectLink`]), by remote users linked to a host person. Work of an unlinked user is
//!   skipped and reported (a run problem `person_not_linked` and the link's missing people),
//!   never dropped silently. Changes on other remote projects are none of ours.
//! - **Echo suppression**: every synced registration has an outbound mapping (host log →
//!   remote id) whose fingerprint is that of the content last synced either way, computed with
//!   time-out's own function from what the host log would become. A change whose content has
//!   that fingerprint — our own write coming back, or a change applied before — changes nothing
//!   and counts as unchanged; so does a change made before the mapping was last synced (an old
//!   row re-read through the overlap), and one whose push is still pending (time out settles
//!   it), a create included: a registration with no mapping whose id is the one a pending
//!   create's key makes (`TimeSink::created_id`) was made by us, its answer lost or our
//!   process stopped before the mapping was saved; it is never imported as remote work.
//! - **Conflict rule**: when the remote record changed and the host log changed too since the
//!   last sync (its fingerprint differs from the mapping's), the later change wins: the remote
//!   change time against the host log's `updated_at`. The loser's value is listed on the run
//!   (`conflict_remote_won` / `conflict_host_won`); a host win is then pushed by time out. A
//!   remote deletion against a later host edit keeps the host log (time out re-creates the
//!   remote record); a host deletion always reaches the provider.
//! - **Writes**: a new registration becomes a host log with a derived id
//!   (`{provider}-wl-{remote id}`, so a retry after a crash finds it) and
//!   `source: {provider, remote_id}`; its mapping is written right after (time out repairs a
//!   missing one). Engine writes do not append to the host change feed: nothing needs pushing
//!   back.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hourbridge_domain::{
    HostKind, MissingPerson, OutboundMapping, ProjectLink, ProviderId, RecordId, RecordProblem,
    SyncRun, WorkLog, WorkLogSource,
};
use hourbridge_provider_api::{ChangeWindow, OutboundTime, RemoteWorkLog, TimeChange};
use hourbridge_store::Entity;
use serde::{Deserialize, Serialize};

use super::links::Links;
use super::shared::{Outcome, kind_state, load_state, save_state};
use super::time_out::fingerprint;
use super::{KindPass, Step, SyncKind, UnitCx};
use crate::outbound::{self, MappingKey};
use crate::{Engine, SyncError};

/// The kind's per-connection state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TimeInState {
    /// The provider (the record id).
    pub provider: String,
    /// Where the last completed read ended.
    pub until: Option<DateTime<Utc>>,
    /// Host projects linked when that read was made.
    #[serde(default)]
    pub projects: BTreeSet<String>,
}

kind_state!(TimeInState, "time_in_state");

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Progress {
    window: ChangeWindow,
    /// The next page to read (`None` with `started`: done).
    page: Option<String>,
    started: bool,
    projects: BTreeSet<String>,
}

/// The time-in sync kind; see the module docs.
pub(crate) struct TimeIn;

struct TimeInPass {
    engine: Engine,
    cx: UnitCx,
    provider: ProviderId,
    progress: Option<Progress>,
    links: Links,
    /// Missing people per host project, found in this pass.
    missing: HashMap<String, BTreeSet<MissingPerson>>,
    /// Remote users seen with a person link in this pass: no longer missing.
    linked_seen: BTreeSet<MissingPerson>,
    /// The remote ids our pending creates make (see [`TimeInPass::pending_create`]), read once
    /// per pass: time out, which settles them, runs after time in.
    pending_creates: Option<BTreeSet<String>>,
}

#[async_trait]
impl SyncKind for TimeIn {
    async fn open(
        &self,
        engine: &Engine,
        cx: UnitCx,
        checkpoint: serde_json::Value,
        _run: &mut SyncRun,
    ) -> Result<Box<dyn KindPass>, SyncError> {
        let progress = if checkpoint.is_null() {
            None
        } else {
            Some(
                serde_json::from_value(checkpoint)
                    .map_err(|e| SyncError::InvalidState(format!("time-in checkpoint: {e}")))?,
            )
        };
        let provider =
            ProviderId::parse(&cx.provider).map_err(|e| SyncError::Invalid(e.to_string()))?;
        Ok(Box::new(TimeInPass {
            engine: engine.clone(),
            links: Links::new(engine, &cx.ws, &provider),
            cx,
            provider,
            progress,
            missing: HashMap::new(),
            linked_seen: BTreeSet::new(),
            pending_creates: None,
        }))
    }
}

/// The host log id of a registration first seen in the provider.
fn host_id(provider: &ProviderId, remote: &str) -> Result<RecordId, SyncError> {
    RecordId::parse(format!("{provider}-wl-{remote}"))
        .map_err(|e| SyncError::InvalidState(format!("remote id {remote:?}: {e}")))
}

fn describe(minutes: u32, note: &str, date: chrono::NaiveDate) -> String {
    format!("{date} {}h{:02} {note:?}", minutes / 60, minutes % 60)
}

impl TimeInPass {
    fn ws(&self) -> &str {
        &self.cx.ws
    }

    async fn state(&self) -> Result<(TimeInState, Option<u64>), SyncError> {
        load_state(&self.engine, self.ws(), self.provider.as_str()).await
    }

    async fn plan(&mut self) -> Result<Progress, SyncError> {
        let two_way = self
            .engine
            .provider(&self.cx.provider)?
            .descriptor()
            .capabilities
            .time_two_way
            .ok_or_else(|| SyncError::InvalidState("time in needs time_two_way".into()))?;
        let (state, _) = self.state().await?;
        let projects: BTreeSet<String> = self
            .links
            .linked_projects()
            .await?
            .values()
            .map(|p| p.to_string())
            .collect();
        let now = self.engine.clock.now();
        let horizon = now - Duration::days(i64::from(two_way.history_days));
        let overlap = Duration::from_std(two_way.overlap).unwrap_or_else(|_| Duration::zero());
        let new_link = !projects.is_subset(&state.projects);
        let since = match state.until {
            Some(u) if !new_link => (u - overlap).max(horizon),
            _ => horizon,
        };
        Ok(Progress {
            window: ChangeWindow { since, until: now },
            page: None,
            started: false,
            projects,
        })
    }

    /// The content a host log would have after `r`, as time out would push it.
    async fn candidate(
        &mut self,
        r: &RemoteWorkLog,
        project: &RecordId,
        person: &RecordId,
    ) -> Result<(WorkLog, OutboundTime), SyncError> {
        let task = match &r.task_id {
            Some(t) => self.links.host_task(t).await?,
            None => None,
        };
        let time = OutboundTime {
            remote_project_id: r.project_id.clone(),
            remote_task_id: task.as_ref().and(r.task_id.clone()),
            remote_person_id: r.person.id.clone(),
            date: r.date,
            minutes: r.minutes,
            note: r.note.clone(),
        };
        let log = WorkLog {
            id: host_id(&self.provider, &r.id)?,
            person_id: person.clone(),
            project_id: project.clone(),
            task_id: task,
            date: r.date,
            minutes: r.minutes,
            note: r.note.clone(),
            source: Some(WorkLogSource {
                provider: self.provider.clone(),
                remote_id: r.id.clone(),
            }),
            updated_at: r.updated_at,
        };
        Ok((log, time))
    }

    /// The fingerprint of a host log as time out would push it now; `None` when it would not
    /// be pushed (then it cannot have changed in a way that matters to the provider).
    async fn host_fingerprint(&mut self, log: &WorkLog) -> Result<Option<String>, SyncError> {
        let Some(remote_project_id) = self.links.remote_project(&log.project_id).await? else {
            return Ok(None);
        };
        let remote_task_id = match &log.task_id {
            Some(t) => self.links.remote_task(t).await?,
            None => None,
        };
        let Some(remote_person_id) = self.links.remote_person(&log.person_id).await? else {
            return Ok(None);
        };
        Ok(Some(fingerprint(&OutboundTime {
            remote_project_id,
            remote_task_id,
            remote_person_id,
            date: log.date,
            minutes: log.minutes,
            note: log.note.clone(),
        })))
    }

    async fn remember(&self, key: &MappingKey, remote: &str, fp: &str) -> Result<(), SyncError> {
        outbound::record_synced(&self.engine.store, self.ws(), key, remote, fp).await?;
        Ok(())
    }

    async fn mapping_of(&self, remote: &str) -> Result<Option<OutboundMapping>, SyncError> {
        Ok(outbound::find_by_remote(
            &self.engine.store,
            self.ws(),
            &self.provider,
            HostKind::WorkLog,
            remote,
        )
        .await?)
    }

    /// Whether remote record `remote` is one our own create made whose push is still pending
    /// (the provider applied it, its answer was lost or the process died before the mapping was
    /// saved): its id is the one the provider's sink derives from the pending mark's key
    /// ([`TimeSink::created_id`](hourbridge_provider_api::TimeSink::created_id)). Imported, it
    /// would become a second host log of the same time; time out adopts it by key instead.
    async fn pending_create(&mut self, remote: &str) -> Result<bool, SyncError> {
        if self.pending_creates.is_none() {
            let provider = self.engine.provider(&self.cx.provider)?.clone();
            let mut ids = BTreeSet::new();
            if let Some(sink) = provider.time_sink() {
                let pending =
                    outbound::pending_pushes(&self.engine.store, self.ws(), &self.provider).await?;
                for m in pending {
                    if m.host_kind == HostKind::WorkLog
                        && m.remote_id.is_none()
                        && let Some(p) = &m.pending
                        && let Some(id) = sink.created_id(&p.idempotency_key)
                    {
                        ids.insert(id);
                    }
                }
            }
            self.pending_creates = Some(ids);
        }
        Ok(self
            .pending_creates
            .as_ref()
            .is_some_and(|ids| ids.contains(remote)))
    }

    /// Whether [`TimeInPass::upserted`] will compare or apply `r`'s content, so the provider
    /// must complete it ([`TimeChangeFeed::complete`](hourbridge_provider_api::TimeChangeFeed::complete)):
    /// not for rows it settles without (a pending push, a row older than the last sync, an
    /// unlinked project or person).
    async fn needs_content(
        &mut self,
        r: &RemoteWorkLog,
        mapping: Option<&OutboundMapping>,
    ) -> Result<bool, SyncError> {
        if let Some(m) = mapping
            && (m.pending.is_some() || r.updated_at.is_some_and(|at| at <= m.updated_at))
        {
            return Ok(false);
        }
        if !self
            .links
            .linked_projects()
            .await?
            .contains_key(&r.project_id)
        {
            return Ok(false);
        }
        Ok(self.links.host_person(&r.person.id).await?.is_some())
    }

    async fn upserted(
        &mut self,
        r: &RemoteWorkLog,
        mapping: Option<OutboundMapping>,
        run: &mut SyncRun,
    ) -> Result<Outcome, SyncError> {
        let project = self
            .links
            .linked_projects()
            .await?
            .get(&r.project_id)
            .cloned();
        let Some(project) = project else {
            return match mapping {
                // Moved in the provider to a project that is not linked: gone from ours.
                Some(m) => self.remove(&m, r.updated_at, run).await,
                None => Ok(Outcome::Ignored),
            };
        };
        let Some(person) = self.links.host_person(&r.person.id).await? else {
            run.problems.push(RecordProblem {
                record: r.id.clone(),
                code: "person_not_linked".into(),
                message: format!(
                    "{} ({}) registered time in {} but is not linked to a host person: link them on the person's profile",
                    r.person.name,
                    r.person.email.as_deref().unwrap_or("no e-mail"),
                    self.provider
                ),
            });
            self.missing
                .entry(project.to_string())
                .or_default()
                .insert(MissingPerson {
                    name: r.person.name.clone(),
                    email: r.person.email.as_ref().map(|e| e.trim().to_owned()),
                });
            return Ok(Outcome::Skipped);
        };
        self.linked_seen.insert(MissingPerson {
            name: r.person.name.clone(),
            email: r.person.email.as_ref().map(|e| e.trim().to_owned()),
        });
        let (mut log, time) = self.candidate(r, &project, &person).await?;
        let fp = fingerprint(&time);
        let Some(m) = mapping else {
            // First seen here: made in the provider.
            if self.cx.dry_run {
                return Ok(Outcome::Created);
            }
            let key = MappingKey::new(&self.provider, HostKind::WorkLog, &log.id);
            let existing = self
                .engine
                .store
                .get::<WorkLog>(self.ws(), log.id.as_str())
                .await?;
            let outcome = match existing {
                Some((old, _)) if old == log => Outcome::Unchanged,
                Some(_) => Outcome::Updated,
                None => Outcome::Created,
            };
            self.engine.store.put(self.ws(), &log).await?;
            self.remember(&key, &r.id, &fp).await?;
            return Ok(outcome);
        };
        if m.pending.is_some() || m.fingerprint.as_deref() == Some(fp.as_str()) {
            return Ok(Outcome::Unchanged);
        }
        if r.updated_at.is_some_and(|at| at <= m.updated_at) {
            // Made before the last sync of this record: a row re-read through the overlap.
            return Ok(Outcome::Unchanged);
        }
        let key = MappingKey::new(&self.provider, HostKind::WorkLog, &m.host_id);
        let Some((host, _)) = self
            .engine
            .store
            .get::<WorkLog>(self.ws(), m.host_id.as_str())
            .await?
        else {
            // Deleted in the host: time out deletes it in the provider.
            return Ok(Outcome::Unchanged);
        };
        let host_fp = self.host_fingerprint(&host).await?;
        let host_changed = host_fp.as_deref() != m.fingerprint.as_deref();
        if host_changed {
            let remote_later = match (r.updated_at, host.updated_at) {
                (Some(remote), Some(local)) => remote > local,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if !remote_later {
                run.problems.push(RecordProblem {
                    record: host.id.to_string(),
                    code: "conflict_host_won".into(),
                    message: format!(
                        "changed on both sides; the host's later change ({}) overwrites {}'s ({})",
                        describe(host.minutes, &host.note, host.date),
                        self.provider,
                        describe(r.minutes, &r.note, r.date)
                    ),
                });
                return Ok(Outcome::Skipped);
            }
            run.problems.push(RecordProblem {
                record: host.id.to_string(),
                code: "conflict_remote_won".into(),
                message: format!(
                    "changed on both sides; {}'s later change ({}) overwrites the host's ({})",
                    self.provider,
                    describe(r.minutes, &r.note, r.date),
                    describe(host.minutes, &host.note, host.date)
                ),
            });
        }
        if self.cx.dry_run {
            return Ok(Outcome::Updated);
        }
        // The host log keeps its id and origin; only the content follows the provider.
        log.id = host.id.clone();
        log.source = host.source.clone();
        self.engine.store.put(self.ws(), &log).await?;
        self.remember(&key, &r.id, &fp).await?;
        Ok(Outcome::Updated)
    }

    async fn deleted(
        &mut self,
        id: &str,
        at: Option<DateTime<Utc>>,
        run: &mut SyncRun,
    ) -> Result<Outcome, SyncError> {
        let mapping = outbound::find_by_remote(
            &self.engine.store,
            self.ws(),
            &self.provider,
            HostKind::WorkLog,
            id,
        )
        .await?;
        match mapping {
            Some(m) => self.remove(&m, at, run).await,
            None => Ok(Outcome::Ignored),
        }
    }

    /// The remote record of `m` is gone (deleted, or moved off the linked projects).
    async fn remove(
        &mut self,
        m: &OutboundMapping,
        at: Option<DateTime<Utc>>,
        run: &mut SyncRun,
    ) -> Result<Outcome, SyncError> {
        if m.pending.is_some() {
            return Ok(Outcome::Unchanged);
        }
        let host = self
            .engine
            .store
            .get::<WorkLog>(self.ws(), m.host_id.as_str())
            .await?
            .map(|(l, _)| l);
        if let Some(h) = &host {
            let host_fp = self.host_fingerprint(h).await?;
            let host_later = match (h.updated_at, at) {
                (Some(local), Some(remote)) => local > remote,
                (Some(_), None) => false,
                (None, _) => false,
            };
            if host_fp.as_deref() != m.fingerprint.as_deref() && host_later {
                run.problems.push(RecordProblem {
                    record: h.id.to_string(),
                    code: "conflict_host_won".into(),
                    message: format!(
                        "deleted in {} but changed later in the host ({}): it is registered again",
                        self.provider,
                        describe(h.minutes, &h.note, h.date)
                    ),
                });
                return Ok(Outcome::Skipped);
            }
        }
        if self.cx.dry_run {
            return Ok(if host.is_some() {
                Outcome::Deleted
            } else {
                Outcome::Unchanged
            });
        }
        if host.is_some() {
            self.engine
                .store
                .delete::<WorkLog>(self.ws(), m.host_id.as_str())
                .await?;
        }
        self.engine
            .store
            .delete::<OutboundMapping>(self.ws(), &m.id())
            .await?;
        Ok(if host.is_some() {
            Outcome::Deleted
        } else {
            Outcome::Unchanged
        })
    }

    /// Writes the missing people found to their links (only when they changed).
    async fn save_missing(&mut self) -> Result<(), SyncError> {
        let projects = self
            .progress
            .as_ref()
            .map(|p| p.projects.clone())
            .unwrap_or_default();
        for project in projects {
            let id = format!("{project}.{}", self.provider);
            let Some((mut link, version)) =
                self.engine.store.get::<ProjectLink>(self.ws(), &id).await?
            else {
                continue;
            };
            // Reads are incremental: people reported earlier stay listed until their work is
            // seen with a person link.
            let mut all: BTreeSet<MissingPerson> = link.missing_people.iter().cloned().collect();
            all.extend(self.missing.remove(&project).unwrap_or_default());
            let found: Vec<MissingPerson> = all
                .into_iter()
                .filter(|m| !self.linked_seen.contains(m))
                .collect();
            if link.missing_people != found {
                link.missing_people = found;
                self.engine.store.update(self.ws(), &link, version).await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl KindPass for TimeInPass {
    async fn step(&mut self, run: &mut SyncRun, _may_prefetch: bool) -> Result<Step, SyncError> {
        let progress = match self.progress.clone() {
            Some(p) => p,
            None => {
                let p = self.plan().await?;
                self.progress = Some(p);
                return Ok(Step::Progress { wrote: false });
            }
        };
        if progress.started && progress.page.is_none() {
            if !self.cx.dry_run {
                self.save_missing().await?;
                let (mut state, version) = self.state().await?;
                state.until = Some(progress.window.until);
                state.projects = progress.projects.clone();
                save_state(&self.engine, self.ws(), &state, version).await?;
            }
            return Ok(Step::Done);
        }
        let p = self.engine.provider(&self.cx.provider)?.clone();
        let (window, page) = (progress.window, progress.page.clone());
        let result = self
            .engine
            .call(self.ws(), &self.cx.provider, move |s| {
                let p = p.clone();
                let page = page.clone();
                async move {
                    match p.time_changes() {
                        Some(feed) => feed.changes(&s, window, page).await,
                        None => Err(hourbridge_provider_api::ProviderError::new(
                            p.descriptor().id,
                            hourbridge_provider_api::ProviderErrorKind::Unsupported,
                            "this provider has no time change feed",
                        )),
                    }
                }
            })
            .await?;
        // A record changed several times on one page: its last change is its state.
        let mut last: HashMap<String, usize> = HashMap::new();
        for (i, c) in result.items.iter().enumerate() {
            let id = match c {
                TimeChange::Upserted(r) => &r.id,
                TimeChange::Deleted { id, .. } => id,
            };
            last.insert(id.clone(), i);
        }
        // What each record's last row meets, and which rows the provider must complete.
        let mut items = result.items;
        let mut mappings: HashMap<usize, Option<OutboundMapping>> = HashMap::new();
        let mut ours_pending: BTreeSet<usize> = BTreeSet::new();
        let mut incomplete: Vec<usize> = Vec::new();
        for (i, c) in items.iter().enumerate() {
            if let TimeChange::Upserted(r) = c
                && last.get(&r.id) == Some(&i)
            {
                let m = self.mapping_of(&r.id).await?;
                if m.is_none() && self.pending_create(&r.id).await? {
                    ours_pending.insert(i);
                    continue;
                }
                if self.needs_content(r, m.as_ref()).await? {
                    incomplete.push(i);
                }
                mappings.insert(i, m);
            }
        }
        if !incomplete.is_empty() {
            let rows: Vec<RemoteWorkLog> = incomplete
                .iter()
                .filter_map(|i| match &items[*i] {
                    TimeChange::Upserted(r) => Some(r.clone()),
                    TimeChange::Deleted { .. } => None,
                })
                .collect();
            let p = self.engine.provider(&self.cx.provider)?.clone();
            let completed = self
                .engine
                .call(self.ws(), &self.cx.provider, move |s| {
                    let p = p.clone();
                    let mut rows = rows.clone();
                    async move {
                        if let Some(feed) = p.time_changes() {
                            feed.complete(&s, &mut rows).await?;
                        }
                        Ok(rows)
                    }
                })
                .await?;
            for (i, r) in incomplete.into_iter().zip(completed) {
                items[i] = TimeChange::Upserted(r);
            }
        }
        let mut wrote = false;
        for (i, c) in items.iter().enumerate() {
            let outcome = match c {
                // Our own create, not settled yet: time out adopts it.
                TimeChange::Upserted(_) if ours_pending.contains(&i) => Outcome::Unchanged,
                TimeChange::Upserted(r) if last.get(&r.id) == Some(&i) => {
                    let m = mappings.remove(&i).flatten();
                    self.upserted(r, m, run).await?
                }
                TimeChange::Deleted { id, at } if last.get(id) == Some(&i) => {
                    self.deleted(id, *at, run).await?
                }
                _ => Outcome::Ignored,
            };
            wrote |= outcome.count(&mut run.counts) && !self.cx.dry_run;
        }
        self.progress = Some(Progress {
            page: result.next,
            started: true,
            ..progress
        });
        Ok(Step::Progress { wrote })
    }

    async fn checkpoint(&mut self) -> Result<serde_json::Value, SyncError> {
        match &self.progress {
            Some(p) => serde_json::to_value(p)
                .map_err(|e| SyncError::InvalidState(format!("time-in checkpoint: {e}"))),
            None => Ok(serde_json::Value::Null),
        }
    }

    fn missing_people(&self) -> Vec<MissingPerson> {
        self.missing.values().flatten().cloned().collect()
    }
}

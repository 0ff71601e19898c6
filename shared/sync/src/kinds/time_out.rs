//! Time out: host work logs pushed to a provider that declares `time_out` (one unit per
//! connection run).
//!
//! - **What**: host work logs without a `source` (and, for a two-way provider, those whose
//!   source is this provider: they are editable in the host) on host projects synced with the
//!   provider: imported from it (`managed_by` = the provider, remote id from the master-data
//!   [`RemoteMapping`]) or linked to one remote project by hand ([`ProjectLink`]). The remote
//!   task is the imported task's mapping or the one tasks-out pushed ([`super::links`]).
//!   Declared [`TimeOutRules`](hourbridge_provider_api::TimeOutRules) decide whether logs
//!   without a task, or of people without a person link, are pushed or skipped and reported.
//! - **Which**: the host change feed from the kind's own watermark ([`TimeOutState`]); the first
//!   run, a feed that lost entries, and once a day a reconciliation, scan every log of the
//!   synced projects and every existing outbound mapping (so a person linked or a task pushed
//!   later gets its earlier logs pushed). Records refused by the provider are kept in the state and
//!   retried on the next run; the watermark moves only when the pass is finished.
//! - **How**: [`crate::outbound`] bookkeeping: `begin_push` before the remote call,
//!   `create` with the mapping's idempotency key (the same key after a crash, so the adapter
//!   adopts the entry it made), `update` for edits, delete + create for a log moved to another
//!   remote task, `delete` for deleted logs. An unchanged fingerprint makes no write at all.
//! - **People**: the remote person is the host person's [`PersonLink`] to the provider; without
//!   one the person is omitted (empty `remote_person_id`: the provider registers the time under
//!   the connecting user) and the run reports it.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use hourbridge_domain::{
    HostKind, ManagedBy, OutboundMapping, Person, Project, ProjectLink, ProviderId, RecordId,
    RecordProblem, RemoteMapping, SyncRun, WorkLog,
};
use hourbridge_provider_api::{OutboundTime, Provider, ProviderError, ProviderErrorKind, TimeSink};
use hourbridge_store::IndexSel;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::links::Links;
use super::shared::{Outcome, kind_state, load_state, read_feed, save_state, unsupported};
use super::{KindPass, Step, SyncKind, UnitCx};
use crate::outbound::{self, MappingKey, PushTicket};
use crate::{Engine, SyncError};

/// Pushes per step: the run checkpoints after every step that wrote.
const PUSHES_PER_STEP: usize = 10;
/// How often the kind reconciles every synced log instead of reading only the change feed.
const FULL_SCAN_EVERY_HOURS: i64 = 24;

/// The kind's per-connection state: where in the change feed it stands, and the records to
/// retry next run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TimeOutState {
    /// The provider (the record id).
    pub provider: String,
    /// Every change up to this sequence number is handled; `None` before the first full scan.
    pub watermark: Option<u64>,
    /// Host work logs refused by the provider, pushed again on the next run.
    #[serde(default)]
    pub retry: BTreeSet<String>,
    /// When the last full reconciliation was planned.
    #[serde(default)]
    pub last_full_at: Option<chrono::DateTime<chrono::Utc>>,
}

kind_state!(TimeOutState, "time_out_state");

/// The pass's checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    /// Host work-log ids still to handle, in order.
    queue: Vec<String>,
    /// The watermark to store once the queue is empty.
    target: u64,
    /// Refused so far in this run.
    retry: BTreeSet<String>,
    /// The queue is planned.
    planned: bool,
    /// This pass is a full reconciliation (stored as `last_full_at` when it finishes).
    #[serde(default)]
    full: bool,
}

/// The time-out sync kind; see the module docs.
pub(crate) struct TimeOut;

struct TimeOutPass {
    engine: Engine,
    cx: UnitCx,
    provider: ProviderId,
    progress: Progress,
    links: Links,
    /// Host person → remote person on a remote project (`None`: no link or no membership).
    people: HashMap<String, Option<String>>,
    /// Host project → closed in the provider.
    archived: HashMap<String, bool>,
    rules: hourbridge_provider_api::TimeOutRules,
    two_way: bool,
    /// Set by [`TimeOutPass::outbound`] when a declared rule (task, person link) keeps a log of
    /// a synced project from being pushed: what the provider has of it stays as it is.
    held: bool,
    /// Set by [`TimeOutPass::outbound`] for a log synced in on a remote task that is not one
    /// of ours: unchanged it is fine, edited here it cannot be pushed.
    task_missing: bool,
}

#[async_trait]
impl SyncKind for TimeOut {
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
                .map_err(|e| SyncError::InvalidState(format!("time-out checkpoint: {e}")))?
        };
        let provider =
            ProviderId::parse(&cx.provider).map_err(|e| SyncError::Invalid(e.to_string()))?;
        let caps = engine.provider(&cx.provider)?.descriptor().capabilities;
        Ok(Box::new(TimeOutPass {
            engine: engine.clone(),
            links: Links::new(engine, &cx.ws, &provider),
            cx,
            provider,
            progress,
            people: HashMap::new(),
            archived: HashMap::new(),
            rules: caps.time_out_rules,
            two_way: caps.time_two_way.is_some(),
            held: false,
            task_missing: false,
        }))
    }
}

/// What a pushed log's mapping remembers of it: the outbound content, hashed. Time-in computes
/// it the same way from a remote change, so our own writes coming back compare equal.
pub(crate) fn fingerprint(t: &OutboundTime) -> String {
    let json = serde_json::to_string(t).unwrap_or_default();
    let hash: String = Sha256::digest(json.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    // The recording is readable in front, so a move is told from an edit.
    format!("{}/{}:{hash}", t.remote_project_id, recording(t))
}

fn recording(t: &OutboundTime) -> &str {
    t.remote_task_id.as_deref().unwrap_or("-")
}

fn moved(old: Option<&str>, new: &str) -> bool {
    let place = |f: &str| f.rsplit_once(':').map(|(p, _)| p.to_owned());
    old.is_some_and(|o| place(o) != place(new))
}

impl TimeOutPass {
    fn ws(&self) -> &str {
        &self.cx.ws
    }

    async fn state(&self) -> Result<(TimeOutState, Option<u64>), SyncError> {
        load_state(&self.engine, self.ws(), self.provider.as_str()).await
    }

    /// Which logs to look at: pending marks, last run's refusals, then the feed (or a full scan).
    async fn plan(&mut self) -> Result<(), SyncError> {
        let engine = self.engine.clone();
        let ws = self.cx.ws.clone();
        let (state, _) = self.state().await?;
        let mut ids: Vec<String> = Vec::new();
        for m in outbound::pending_pushes(&engine.store, &ws, &self.provider).await? {
            if m.host_kind == HostKind::WorkLog {
                ids.push(m.host_id.to_string());
            }
        }
        ids.extend(state.retry.iter().cloned());
        let head = engine.store.change_head(&ws).await?;
        let now = engine.clock.now();
        let mut full = state.watermark.is_none()
            || state
                .last_full_at
                .is_none_or(|at| now - at >= chrono::Duration::hours(FULL_SCAN_EVERY_HOURS));
        let mut target = head;
        if let Some(w) = state.watermark {
            let read = read_feed(&engine, &ws, w, HostKind::WorkLog).await?;
            full |= read.lost;
            ids.extend(read.ids);
            target = read.target;
        }
        if full {
            target = head;
            let projects = engine
                .store
                .list_all::<Project>(engine.store.query::<Project>(&ws, IndexSel::Primary, 1000))
                .await?;
            let mut synced: BTreeSet<String> = projects
                .iter()
                .filter(|p| p.managed_by == ManagedBy::Provider(self.provider.clone()))
                .map(|p| p.id.to_string())
                .collect();
            let q = engine.store.query::<ProjectLink>(
                &ws,
                IndexSel::Index1(self.provider.to_string()),
                1000,
            );
            synced.extend(
                engine
                    .store
                    .list_all::<ProjectLink>(q)
                    .await?
                    .into_iter()
                    .map(|l| l.project_id.to_string()),
            );
            for p in &synced {
                let q = engine
                    .store
                    .query::<WorkLog>(&ws, IndexSel::Index1(p.clone()), 1000);
                ids.extend(
                    engine
                        .store
                        .list_all::<WorkLog>(q)
                        .await?
                        .into_iter()
                        .filter(|l| self.pushable_source(l))
                        .map(|l| l.id.to_string()),
                );
            }
            // Deleted logs and logs moved off imported projects still have a mapping.
            let mut q = engine
                .store
                .query::<OutboundMapping>(&ws, IndexSel::Primary, 1000);
            let prefix = format!("{}.{}.", self.provider, HostKind::WorkLog.as_str());
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
        }
        let mut seen = BTreeSet::new();
        ids.retain(|id| seen.insert(id.clone()));
        self.progress = Progress {
            queue: ids,
            target,
            retry: BTreeSet::new(),
            planned: true,
            full,
        };
        Ok(())
    }

    /// Whether a log's origin lets it be pushed: made in the host, or (two-way providers)
    /// synced from this provider and edited in the host since.
    fn pushable_source(&self, log: &WorkLog) -> bool {
        match &log.source {
            None => true,
            Some(src) => self.two_way && src.provider == self.provider,
        }
    }

    /// Whether `project` is imported from this provider and closed there (archived).
    async fn archived(&mut self, project: &RecordId) -> Result<bool, SyncError> {
        if let Some(a) = self.archived.get(project.as_str()) {
            return Ok(*a);
        }
        let archived = self
            .engine
            .store
            .get::<Project>(self.ws(), project.as_str())
            .await?
            .is_some_and(|(p, _)| {
                !p.active && p.managed_by == ManagedBy::Provider(self.provider.clone())
            });
        self.archived.insert(project.to_string(), archived);
        Ok(archived)
    }

    /// The remote person `person`'s time on `remote_project` is registered for: their
    /// [`PersonLink`], and — when the provider imports project members — only if they are a
    /// member of that project (a member who may not log time there is not a member).
    async fn remote_person(
        &mut self,
        person: &RecordId,
        remote_project: &str,
    ) -> Result<Option<String>, SyncError> {
        let cache_key = format!("{person}@{remote_project}");
        if let Some(r) = self.people.get(&cache_key) {
            return Ok(r.clone());
        }
        let mut link = self.links.remote_person(person).await?;
        let members_imported = self
            .engine
            .provider(&self.cx.provider)?
            .descriptor()
            .capabilities
            .master_data_in
            .is_some_and(|m| m.people);
        if members_imported && let Some(remote) = link.clone() {
            let membership = format!("{remote_project}-{remote}");
            let id = format!("{}.assignment.{membership}", self.provider);
            if self
                .engine
                .store
                .get::<RemoteMapping>(self.ws(), &id)
                .await?
                .is_none()
            {
                link = None;
            }
        }
        self.people.insert(cache_key, link.clone());
        Ok(link)
    }

    /// What `log` becomes in the provider, `None` when it is not pushed.
    async fn outbound(
        &mut self,
        log: &WorkLog,
        run: &mut SyncRun,
    ) -> Result<Option<OutboundTime>, SyncError> {
        if !self.pushable_source(log) {
            return Ok(None);
        }
        let Some(remote_project_id) = self.links.remote_project(&log.project_id).await? else {
            return Ok(None);
        };
        let remote_task_id = match &log.task_id {
            Some(t) => match self.links.remote_task(t).await? {
                Some(r) => Some(r),
                None => {
                    run.problems.push(RecordProblem {
                        record: log.id.to_string(),
                        code: "task_not_synced".into(),
                        message: format!(
                            "work log {} is on a task that is not in {} (not imported or not pushed yet)",
                            log.id, self.provider
                        ),
                    });
                    self.held = true;
                    return Ok(None);
                }
            },
            // Synced in from the provider on one of its own tasks (not one we pushed): it is
            // compared as it came in, and only an edit made here needs the task.
            None if self.rules.requires_task && log.source.is_some() => {
                self.task_missing = true;
                None
            }
            None if self.rules.requires_task => {
                run.problems.push(RecordProblem {
                    record: log.id.to_string(),
                    code: "task_required".into(),
                    message: format!(
                        "work log {} has no task: {} registers time on tasks only",
                        log.id, self.provider
                    ),
                });
                self.held = true;
                return Ok(None);
            }
            None => None,
        };
        let remote_person_id = match self
            .remote_person(&log.person_id, &remote_project_id)
            .await?
        {
            Some(p) => p,
            None => {
                let who = self
                    .engine
                    .store
                    .get::<Person>(self.ws(), log.person_id.as_str())
                    .await?
                    .map(|(p, _)| format!("{} ({})", p.name, p.email))
                    .unwrap_or_else(|| log.person_id.to_string());
                if self.rules.requires_person_link {
                    run.problems.push(RecordProblem {
                        record: log.id.to_string(),
                        code: "person_not_linked".into(),
                        message: format!(
                            "{who} is not linked to a {} user: link them on their profile and the time is pushed on the next daily reconciliation",
                            self.provider
                        ),
                    });
                    self.held = true;
                    return Ok(None);
                }
                run.problems.push(RecordProblem {
                    record: log.id.to_string(),
                    code: "person_not_found".into(),
                    message: format!(
                        "{who} is not a member of the {} project with the same e-mail: the time is registered under the connecting user",
                        self.provider
                    ),
                });
                String::new()
            }
        };
        Ok(Some(OutboundTime {
            remote_project_id,
            remote_task_id,
            remote_person_id,
            date: log.date,
            minutes: log.minutes,
            note: log.note.clone(),
        }))
    }

    /// Deletes remote record `remote` of host log `id`; `false` when the provider refused it for
    /// this record (a closed week): reported, and retried on the next run (the pending mark
    /// stays).
    async fn delete_remote(
        &mut self,
        id: &str,
        remote: String,
        what: &str,
        run: &mut SyncRun,
    ) -> Result<bool, SyncError> {
        let p = self.engine.provider(&self.cx.provider)?.clone();
        let deleted = self
            .engine
            .call(&self.cx.ws, &self.cx.provider, move |s| {
                let p = p.clone();
                let remote = remote.clone();
                async move { sink(&*p)?.delete(&s, &remote).await }
            })
            .await;
        match deleted {
            Ok(()) => Ok(true),
            Err(SyncError::Provider(e)) if e.concerns_item_only() => {
                run.problems.push(RecordProblem {
                    record: id.to_owned(),
                    code: e.code.unwrap_or("push_refused").into(),
                    message: format!("work log {id} was not {what}: {}", e.message),
                });
                self.progress.retry.insert(id.to_owned());
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Handles one host work log. With `batch`, a plain create (never pushed, no interrupted
    /// attempt) is only begun (its pending mark and idempotency key saved) and handed back, to
    /// be sent with the step's other creates by [`TimeOutPass::send_creates`].
    async fn handle(
        &mut self,
        id: &str,
        run: &mut SyncRun,
        batch: bool,
    ) -> Result<Prepared, SyncError> {
        let engine = self.engine.clone();
        let ws = self.cx.ws.clone();
        let host_id = RecordId::parse(id).map_err(|e| SyncError::Invalid(e.to_string()))?;
        let key = MappingKey::new(&self.provider, HostKind::WorkLog, &host_id);
        let mapping = outbound::mapping(&engine.store, &ws, &key).await?;
        let log = engine.store.get::<WorkLog>(&ws, id).await?.map(|(l, _)| l);
        if let Some(l) = &log
            && self.archived(&l.project_id).await?
        {
            // Closed in the provider: nothing more is sent to it, and what was sent stays.
            return Ok(Prepared::Done(Outcome::Skipped));
        }
        self.held = false;
        self.task_missing = false;
        let time = match &log {
            Some(l) => self.outbound(l, run).await?,
            None => None,
        };
        let provider = engine.provider(&self.cx.provider)?.clone();
        if time.is_none() && self.held {
            // Held by a rule, not gone: deleting the remote record would destroy time that
            // exists (a registration on a task we did not push, a person not linked yet).
            return Ok(Prepared::Done(Outcome::Skipped));
        }
        let Some(time) = time else {
            // Not (or no longer) pushed: remove what an earlier push made.
            let Some(m) = mapping else {
                return Ok(Prepared::Done(Outcome::Unchanged));
            };
            if self.cx.dry_run {
                return Ok(Prepared::Done(Outcome::Deleted));
            }
            let ticket = outbound::begin_push(&engine.store, &ws, &key).await?;
            if let Some(remote) = m.remote_id.clone()
                && !self.delete_remote(id, remote, "deleted", run).await?
            {
                return Ok(Prepared::Done(Outcome::Skipped));
            }
            outbound::complete_delete(&engine.store, &ws, &ticket).await?;
            return Ok(Prepared::Done(Outcome::Deleted));
        };
        let fp = fingerprint(&time);
        if mapping.is_none()
            && let Some(src) = log.as_ref().and_then(|l| l.source.as_ref())
        {
            // Synced in from this provider, but the mapping time-in writes right after the
            // log is missing (a crash between the two): the remote record is this log's, as
            // it is now. Record that instead of creating a second one.
            if !self.cx.dry_run {
                let ticket = outbound::begin_push(&engine.store, &ws, &key).await?;
                outbound::complete_push(&engine.store, &ws, &ticket, &src.remote_id, &fp).await?;
            }
            return Ok(Prepared::Done(Outcome::Unchanged));
        }
        let clean = mapping.as_ref().is_some_and(|m| m.pending.is_none());
        if clean && mapping.as_ref().and_then(|m| m.fingerprint.as_deref()) == Some(fp.as_str()) {
            return Ok(Prepared::Done(Outcome::Unchanged));
        }
        if self.task_missing {
            run.problems.push(RecordProblem {
                record: id.to_owned(),
                code: "task_not_synced".into(),
                message: format!(
                    "work log {id} came from {} on one of its own tasks; the edit made here is not sent back (give the log a task that is synced)",
                    self.provider
                ),
            });
            return Ok(Prepared::Done(Outcome::Skipped));
        }
        let existed = mapping.as_ref().is_some_and(|m| m.remote_id.is_some());
        if self.cx.dry_run {
            return Ok(Prepared::Done(if existed {
                Outcome::Updated
            } else {
                Outcome::Created
            }));
        }
        let ticket = outbound::begin_push(&engine.store, &ws, &key).await?;
        if batch && ticket.remote_id.is_none() && !ticket.resumed {
            // A plain create: the mark is saved, the request goes out with the batch.
            return Ok(Prepared::Create(Box::new(PlainCreate {
                id: id.to_owned(),
                ticket,
                time,
                fingerprint: fp,
            })));
        }
        let mut remote = ticket.remote_id.clone();
        if let Some(old) = remote.clone()
            && moved(ticket.fingerprint.as_deref(), &fp)
        {
            // A move to another remote task is a delete there and a create here.
            if !self.delete_remote(id, old, "moved", run).await? {
                return Ok(Prepared::Done(Outcome::Skipped));
            }
            remote = None;
        }
        let mut adopted = false;
        if remote.is_none() && ticket.resumed {
            // An earlier attempt may have reached the provider before a crash: adopt what it
            // made (and bring it up to date) instead of creating a second one.
            let p = provider.clone();
            let t = time.clone();
            let idem = ticket.idempotency_key.clone();
            remote = engine
                .call(&ws, &self.cx.provider, move |s| {
                    let p = p.clone();
                    let t = t.clone();
                    let idem = idem.clone();
                    async move { sink(&*p)?.find(&s, &t, &idem).await }
                })
                .await
                .or_else(|e| match e {
                    SyncError::Provider(pe) if pe.concerns_item_only() => Ok(None),
                    other => Err(other),
                })?;
            adopted = remote.is_some();
        }
        let p = provider.clone();
        let t = time.clone();
        let idem = ticket.idempotency_key.clone();
        let target = remote.clone();
        let result = engine
            .call(&ws, &self.cx.provider, move |s| {
                let p = p.clone();
                let t = t.clone();
                let idem = idem.clone();
                let target = target.clone();
                async move {
                    let sink = sink(&*p)?;
                    match target {
                        // An entry removed in the provider is made again.
                        Some(r) => match sink.update(&s, &r, &t).await {
                            Err(e) if e.kind == ProviderErrorKind::NotFound => {
                                sink.create(&s, &t, &idem).await
                            }
                            other => other.map(|()| r),
                        },
                        None => sink.create(&s, &t, &idem).await,
                    }
                }
            })
            .await;
        let remote_id = match result {
            Ok(r) => r,
            Err(SyncError::Provider(e)) if e.concerns_item_only() => {
                run.problems.push(RecordProblem {
                    record: id.to_owned(),
                    // The adapter's own code (`timesheets_disabled`) says what to do about it.
                    code: e.code.unwrap_or("push_refused").into(),
                    message: format!("work log {id} was not pushed: {}", e.message),
                });
                self.progress.retry.insert(id.to_owned());
                return Ok(Prepared::Done(Outcome::Skipped));
            }
            Err(e) => return Err(e),
        };
        outbound::complete_push(&engine.store, &ws, &ticket, &remote_id, &fp).await?;
        Ok(Prepared::Done(if adopted && !existed {
            Outcome::Created
        } else if remote.is_some() {
            Outcome::Updated
        } else if existed {
            // Moved: re-created elsewhere.
            Outcome::Updated
        } else {
            Outcome::Created
        }))
    }

    /// The most plain creates the provider takes in one request (1: no batching).
    fn create_batch_limit(&self) -> Result<usize, SyncError> {
        let p = self.engine.provider(&self.cx.provider)?;
        Ok(p.time_sink().map_or(1, |s| s.create_batch_limit()).max(1))
    }

    /// Sends begun plain creates, one [`TimeSink::create_many`] call per `limit` of them, and
    /// finishes each one's push by its own result; `true` when something was created. A
    /// request that fails as a whole with an error about the request (transient, unknown
    /// outcome, ...) is `Err`: the creates not finished keep their pending marks and go back to
    /// the front of the queue, and the retry, whose tickets are resumed, looks each up by its
    /// key before creating it again. One the provider refuses as a whole (a fault) is reported
    /// for each of its records, which are retried on the next run one by one.
    ///
    /// [`TimeSink::create_many`]: hourbridge_provider_api::TimeSink::create_many
    async fn send_creates(
        &mut self,
        creates: Vec<PlainCreate>,
        limit: usize,
        run: &mut SyncRun,
    ) -> Result<bool, SyncError> {
        let engine = self.engine.clone();
        let ws = self.cx.ws.clone();
        let provider = engine.provider(&self.cx.provider)?.clone();
        let mut wrote = false;
        let mut chunks: Vec<Vec<PlainCreate>> = Vec::new();
        let mut rest = creates.into_iter().peekable();
        while rest.peek().is_some() {
            chunks.push(rest.by_ref().take(limit.max(1)).collect());
        }
        let mut chunks = chunks.into_iter();
        while let Some(chunk) = chunks.next() {
            let items: Vec<(OutboundTime, String)> = chunk
                .iter()
                .map(|c| (c.time.clone(), c.ticket.idempotency_key.clone()))
                .collect();
            let p = provider.clone();
            let sent = engine
                .call(&ws, &self.cx.provider, move |s| {
                    let p = p.clone();
                    let items = items.clone();
                    async move { sink(&*p)?.create_many(&s, &items).await }
                })
                .await;
            let results = match sent {
                Ok(r) if r.len() == chunk.len() => r,
                Ok(r) => {
                    let e = ProviderError::new(
                        provider.descriptor().id,
                        ProviderErrorKind::InvalidResponse,
                        "the provider did not answer for every registration of a batch",
                    )
                    .with_detail(format!(
                        "{} results for {} items",
                        r.len(),
                        chunk.len()
                    ));
                    return self.settle_lost(chunk, chunks, e.into(), run).await;
                }
                Err(SyncError::Provider(e)) if e.concerns_item_only() => {
                    for c in &chunk {
                        self.refused(&c.id, &e, run);
                    }
                    continue;
                }
                Err(SyncError::Provider(e)) if outcome_unknown(&e) => {
                    match self.settle_lost(chunk, chunks, e.into(), run).await {
                        // Every create of the batch was made: carry on with the step.
                        Ok(adopted) => {
                            wrote |= adopted;
                            return Ok(wrote);
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => {
                    let unsent: Vec<PlainCreate> = chunks.flatten().collect();
                    self.requeue(chunk.iter().chain(unsent.iter()));
                    return Err(e);
                }
            };
            let mut failure: Option<SyncError> = None;
            let mut unfinished: Vec<&PlainCreate> = Vec::new();
            for (c, result) in chunk.iter().zip(results) {
                match result {
                    Ok(remote_id) => {
                        outbound::complete_push(
                            &engine.store,
                            &ws,
                            &c.ticket,
                            &remote_id,
                            &c.fingerprint,
                        )
                        .await?;
                        wrote |= Outcome::Created.count(&mut run.counts);
                    }
                    Err(e) if e.concerns_item_only() => self.refused(&c.id, &e, run),
                    Err(e) => {
                        failure.get_or_insert(SyncError::Provider(e));
                        unfinished.push(c);
                    }
                }
            }
            if let Some(e) = failure {
                let unsent: Vec<PlainCreate> = chunks.flatten().collect();
                self.requeue(unfinished.into_iter().chain(unsent.iter()));
                return Err(e);
            }
        }
        Ok(wrote)
    }

    /// After a batch whose outcome is unknown (`error`: a timeout, a 5xx, an answer that does
    /// not line up with the items), looks each create up by its key right away
    /// ([`TimeSink::find`]) and adopts what the provider made, so a lost answer does not leave
    /// registrations for the next run's time in to mistake for remote ones. `Ok` when every
    /// create was found (then the batches not sent yet are sent too); otherwise the creates not
    /// found, and those not sent, go back to the queue with their marks (the retry looks them up
    /// again before creating) and the step fails with `error` (or the look-up's own error).
    ///
    /// [`TimeSink::find`]: hourbridge_provider_api::TimeSink::find
    async fn settle_lost(
        &mut self,
        chunk: Vec<PlainCreate>,
        rest: impl Iterator<Item = Vec<PlainCreate>>,
        error: SyncError,
        run: &mut SyncRun,
    ) -> Result<bool, SyncError> {
        let engine = self.engine.clone();
        let ws = self.cx.ws.clone();
        let provider = engine.provider(&self.cx.provider)?.clone();
        let unsent: Vec<PlainCreate> = rest.flatten().collect();
        let mut wrote = false;
        let mut missing: Vec<&PlainCreate> = Vec::new();
        let mut failure = None;
        for c in &chunk {
            if failure.is_some() {
                missing.push(c);
                continue;
            }
            let p = provider.clone();
            let t = c.time.clone();
            let idem = c.ticket.idempotency_key.clone();
            let found = engine
                .call(&ws, &self.cx.provider, move |s| {
                    let p = p.clone();
                    let t = t.clone();
                    let idem = idem.clone();
                    async move { sink(&*p)?.find(&s, &t, &idem).await }
                })
                .await;
            match found {
                Ok(Some(remote_id)) => {
                    // Made by the lost request with exactly this content.
                    outbound::complete_push(
                        &engine.store,
                        &ws,
                        &c.ticket,
                        &remote_id,
                        &c.fingerprint,
                    )
                    .await?;
                    wrote |= Outcome::Created.count(&mut run.counts);
                }
                Ok(None) => missing.push(c),
                Err(SyncError::Provider(e)) if e.concerns_item_only() => missing.push(c),
                Err(e) => {
                    failure = Some(e);
                    missing.push(c);
                }
            }
        }
        if missing.is_empty() && failure.is_none() {
            if unsent.is_empty() {
                return Ok(wrote);
            }
            let limit = self.create_batch_limit()?;
            return Ok(Box::pin(self.send_creates(unsent, limit, run)).await? || wrote);
        }
        self.requeue(missing.into_iter().chain(unsent.iter()));
        Err(failure.unwrap_or(error))
    }

    /// Reports a create the provider refused for `id` and keeps it for the next run (its
    /// pending mark stays, so that run looks it up by key first).
    fn refused(&mut self, id: &str, e: &ProviderError, run: &mut SyncRun) {
        run.problems.push(RecordProblem {
            record: id.to_owned(),
            code: e.code.unwrap_or("push_refused").into(),
            message: format!("work log {id} was not pushed: {}", e.message),
        });
        Outcome::Skipped.count(&mut run.counts);
        self.progress.retry.insert(id.to_owned());
    }

    /// Puts unfinished creates back at the front of the queue, in order.
    fn requeue<'a>(&mut self, creates: impl Iterator<Item = &'a PlainCreate>) {
        let ids: Vec<String> = creates.map(|c| c.id.clone()).collect();
        self.progress.queue.splice(0..0, ids);
    }
}

/// Whether a failed request may have been applied although it failed: a timeout or a 5xx
/// (`OutcomeUnknown`, `Transient`) or an answer that cannot be read.
fn outcome_unknown(e: &ProviderError) -> bool {
    matches!(
        e.kind,
        ProviderErrorKind::OutcomeUnknown
            | ProviderErrorKind::Transient
            | ProviderErrorKind::InvalidResponse
    )
}

/// What [`TimeOutPass::handle`] left to do for one log.
enum Prepared {
    /// Handled (in a preview: counted, nothing sent).
    Done(Outcome),
    /// A plain create whose push is begun: sent with the step's batch.
    Create(Box<PlainCreate>),
}

/// A begun push that creates a remote record (see [`TimeOutPass::send_creates`]).
struct PlainCreate {
    id: String,
    ticket: PushTicket,
    time: OutboundTime,
    fingerprint: String,
}

#[async_trait]
impl KindPass for TimeOutPass {
    async fn step(&mut self, run: &mut SyncRun, _may_prefetch: bool) -> Result<Step, SyncError> {
        if !self.progress.planned {
            self.plan().await?;
            return Ok(Step::Progress { wrote: false });
        }
        if !self.progress.queue.is_empty() {
            // Up to PUSHES_PER_STEP logs handled one by one, and up to one batch of plain
            // creates (begun here, sent together below): a batch costs one request.
            let limit = if self.cx.dry_run {
                1
            } else {
                self.create_batch_limit()?
            };
            let batch = limit > 1;
            let mut creates: Vec<PlainCreate> = Vec::new();
            let (mut taken, mut handled, mut wrote) = (0, 0, false);
            let mut failure = None;
            while taken < self.progress.queue.len()
                && handled < PUSHES_PER_STEP
                && creates.len() < limit
            {
                let id = self.progress.queue[taken].clone();
                match self.handle(&id, run, batch).await {
                    Ok(Prepared::Done(o)) => {
                        handled += 1;
                        wrote |= o.count(&mut run.counts) && !self.cx.dry_run;
                    }
                    Ok(Prepared::Create(c)) => creates.push(*c),
                    Err(e) => {
                        // Not handled: the next attempt starts with it.
                        failure = Some(e);
                        break;
                    }
                }
                taken += 1;
            }
            self.progress.queue.drain(..taken);
            if !creates.is_empty() {
                // Sent even after a failure above: their marks are saved already.
                match self.send_creates(creates, limit, run).await {
                    Ok(w) => wrote |= w,
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = failure {
                return Err(e);
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
            if state.watermark != Some(target)
                || state.retry != retry
                || state.last_full_at != full_at
            {
                state.watermark = Some(target);
                state.retry = retry;
                state.last_full_at = full_at;
                save_state(&self.engine, self.ws(), &state, version).await?;
            }
        }
        Ok(Step::Done)
    }

    async fn checkpoint(&mut self) -> Result<serde_json::Value, SyncError> {
        serde_json::to_value(&self.progress)
            .map_err(|e| SyncError::InvalidState(format!("time-out checkpoint: {e}")))
    }
}

/// The provider's time sink, or `Unsupported` for a provider that takes no time (time out runs
/// only for providers that declare it, so this is a guard, not a path).
fn sink(p: &dyn Provider) -> Result<&dyn TimeSink, ProviderError> {
    p.time_sink()
        .ok_or_else(|| unsupported(p.descriptor().id, "time"))
}

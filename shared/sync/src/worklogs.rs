//! The work-log pull of one project link: remote work logs of the linked remote projects, from
//! `sync_from` on, become read-only host work logs of the host project.
//!
//! - Idempotent: a host log's id is derived from (provider, project, remote id), and a page is
//!   written only where content differs, so a re-run with no changes writes no work log.
//! - Resumable: progress (remote project, page token) and the remote ids seen so far are
//!   checkpointed after every page that wrote something (and at least every few seconds), so a
//!   run killed at any point resumes and ends with the same data as an uninterrupted one.
//! - Deletions and moves: providers without a deletion feed (Harvest, Hubstaff) are reconciled:
//!   after the pull, synced logs of the project whose remote id was not seen are deleted.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use hourbridge_domain::{
    Assignment, MissingPerson, Person, Project, ProjectLink, ProviderId, RecordId, RecordProblem,
    SyncRun, WorkLog, WorkLogSource, validate::normalize_email,
};
use hourbridge_provider_api::{DateWindow, RemotePage, RemotePerson, RemoteWorkLog};
use hourbridge_store::{Entity, EntityKind, IndexKey, IndexSel, Lease};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::runs::{RunMode, RunPlan, past};
use crate::{Engine, SyncError};

/// Checkpoint at least this often while nothing is being written.
const IDLE_CHECKPOINT_SECONDS: i64 = 10;

/// Where a link's sync stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct LinkProgress {
    /// Wipe done (wipe mode).
    pub wiped: bool,
    /// Index of the remote project being pulled.
    pub remote_idx: usize,
    /// Page token within it.
    pub page: Option<String>,
    /// Chunks of seen remote ids saved so far.
    pub seen_chunks: u32,
    /// Provider users without a host person so far.
    pub missing: BTreeSet<MissingPerson>,
    /// People skipped because they are not assigned (prevent-new-assignments).
    pub not_assigned: BTreeSet<String>,
    /// First and last day of each person's synced logs seen so far (for assignments).
    #[serde(default)]
    pub spans: BTreeMap<RecordId, (NaiveDate, NaiveDate)>,
}

/// Aborts a prefetch task if the page loop leaves early (error or pause).
struct AbortOnDrop(Option<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}

/// What [`sync_link`] needs.
pub(crate) struct LinkRun<'a> {
    pub ws: &'a str,
    pub provider: &'a str,
    pub project: &'a str,
    pub run: &'a mut SyncRun,
    pub version: &'a mut u64,
    pub plan: &'a mut RunPlan,
    pub stop_at: Option<DateTime<Utc>>,
    pub lease: &'a mut Lease,
    pub dry_run: bool,
}

/// How a link's sync ended.
pub(crate) enum LinkOutcome {
    Done,
    Paused,
}

/// Host ids of the synced logs a run has seen, saved in chunks so a resumed run can still reconcile deletions.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunSeen {
    run_id: String,
    n: u32,
    ids: Vec<String>,
    expires_at: DateTime<Utc>,
}

impl Entity for RunSeen {
    const KIND: EntityKind = EntityKind("run_seen");
    fn id(&self) -> String {
        format!("{}.{:06}", self.run_id, self.n)
    }
    fn index1(&self) -> Option<IndexKey> {
        Some(IndexKey {
            partition: self.run_id.clone(),
            sort: format!("{:06}", self.n),
        })
    }
    fn expires_at(&self) -> Option<DateTime<Utc>> {
        Some(self.expires_at)
    }
}

fn hex_digest(parts: &[&str], bytes: usize) -> String {
    Sha256::digest(parts.join("|").as_bytes())
        .iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn digest_id(prefix: &str, parts: &[&str]) -> RecordId {
    RecordId::parse(format!("{prefix}-{}", hex_digest(parts, 20)))
        .unwrap_or_else(|_| hourbridge_domain::new_id())
}

/// The host id of a synced work log: stable, so re-syncs update instead of duplicating.
///
/// It is `wl-{hash(provider, project)}-{remote id}` when the remote id fits the id alphabet, so
/// one link's logs sit together in the store's key order and follow the provider's (mostly
/// time-ordered) ids: bulk writes then touch few pages instead of scattering over the table.
/// Other remote ids fall back to a full hash.
pub fn work_log_id(provider: &str, project: &str, remote_id: &str) -> RecordId {
    let fits = !remote_id.is_empty()
        && remote_id.len() <= 40
        && remote_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if fits
        && let Ok(id) = RecordId::parse(format!(
            "wl-{}-{remote_id}",
            hex_digest(&[provider, project], 6)
        ))
    {
        return id;
    }
    digest_id("wl", &[provider, project, remote_id])
}

/// The id of an assignment created by sync.
pub fn assignment_id(provider: &str, project: &str, person: &str) -> RecordId {
    digest_id("as", &[provider, project, person])
}

/// Everything a page is matched against, loaded once per link pass.
pub(crate) struct LinkContext {
    pub provider: ProviderId,
    pub project: Project,
    pub link: ProjectLink,
    pub window: DateWindow,
    /// Normalised e-mail → host person.
    pub people: HashMap<String, RecordId>,
    /// Remote user id → remote user.
    pub remote_people: HashMap<String, RemotePerson>,
    /// People assigned to the project (any assignment).
    pub assigned: HashSet<RecordId>,
}

/// The decisions for one page.
#[derive(Debug, Default)]
pub(crate) struct PagePlan {
    pub writes: Vec<(WorkLog, u64)>,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
    /// Host ids of the logs that stay.
    pub seen: Vec<String>,
    /// (person, day) of the logs that stay.
    pub days: Vec<(RecordId, NaiveDate)>,
    pub missing: Vec<MissingPerson>,
    pub not_assigned: Vec<String>,
}

/// Decides what one page of remote logs does to the host, given the logs it already has.
pub(crate) fn plan_page(
    ctx: &LinkContext,
    entries: &[RemoteWorkLog],
    existing: &HashMap<String, (WorkLog, u64)>,
) -> PagePlan {
    let mut plan = PagePlan::default();
    let project_id = ctx.project.id.as_str();
    for e in entries {
        let id = work_log_id(ctx.provider.as_str(), project_id, &e.id);
        let current = existing.get(id.as_str());
        if e.running {
            // A running timer is not final: keep what an earlier run synced, add nothing new.
            if let Some((old, _)) = current {
                plan.seen.push(id.to_string());
                plan.days.push((old.person_id.clone(), old.date));
            }
            plan.skipped += 1;
            continue;
        }
        if e.date < ctx.window.from || e.date > ctx.window.to {
            continue;
        }
        let remote = ctx.remote_people.get(&e.person.id);
        let email = e
            .person
            .email
            .clone()
            .or_else(|| remote.and_then(|r| r.email.clone()));
        let name = remote
            .map(|r| r.name.clone())
            .unwrap_or_else(|| e.person.name.clone());
        let person = email
            .as_deref()
            .map(normalize_email)
            .filter(|m| !m.is_empty())
            .and_then(|m| ctx.people.get(&m));
        let Some(person) = person else {
            plan.missing.push(MissingPerson {
                name,
                email: email.map(|m| m.trim().to_owned()),
            });
            plan.skipped += 1;
            continue;
        };
        if ctx.link.prevent_new_assignments && !ctx.assigned.contains(person) {
            plan.not_assigned.push(name);
            plan.skipped += 1;
            continue;
        }
        let log = WorkLog {
            id,
            person_id: person.clone(),
            project_id: ctx.project.id.clone(),
            task_id: None,
            date: e.date,
            minutes: e.minutes,
            note: e.note.clone(),
            source: Some(WorkLogSource {
                provider: ctx.provider.clone(),
                remote_id: e.id.clone(),
            }),
        };
        plan.seen.push(log.id.to_string());
        plan.days.push((log.person_id.clone(), log.date));
        match current {
            None => {
                plan.created += 1;
                plan.writes.push((log, 1));
            }
            Some((old, _)) if *old == log => plan.unchanged += 1,
            Some((_, v)) => {
                plan.updated += 1;
                plan.writes.push((log, v + 1));
            }
        }
    }
    plan
}

async fn load_context(
    engine: &Engine,
    ws: &str,
    provider: &str,
    project: &str,
) -> Result<Option<LinkContext>, SyncError> {
    let Some((link, _)) = engine
        .store
        .get::<ProjectLink>(ws, &format!("{project}.{provider}"))
        .await?
    else {
        return Ok(None);
    };
    let Some((project, _)) = engine.store.get::<Project>(ws, project).await? else {
        return Ok(None);
    };
    let today = engine.clock.now().date_naive();
    let from = link
        .sync_from
        .or(project.start_date)
        .unwrap_or(today - Duration::days(365));
    // One day of slack for providers whose "today" is ahead of UTC.
    let window = DateWindow {
        from,
        to: today + Duration::days(1),
    };
    let people = engine
        .store
        .list_all::<Person>(engine.store.query::<Person>(ws, IndexSel::Primary, 1000))
        .await?
        .into_iter()
        .map(|p| (normalize_email(&p.email), p.id))
        .collect();
    let assigned = engine
        .store
        .list_all::<Assignment>(engine.store.query::<Assignment>(
            ws,
            IndexSel::Index1(project.id.to_string()),
            1000,
        ))
        .await?
        .into_iter()
        .map(|a| a.person_id)
        .collect();
    let source_provider = engine.provider(provider)?.clone();
    let mut remote_people = HashMap::new();
    let mut page = None;
    loop {
        let p = source_provider.clone();
        let token = page.clone();
        let got = engine
            .call(ws, provider, move |s| {
                let p = p.clone();
                let token = token.clone();
                async move {
                    match p.work_logs() {
                        Some(src) => src.list_people(&s, token).await,
                        None => Err(unsupported(p.descriptor().id)),
                    }
                }
            })
            .await?;
        for person in got.items {
            remote_people.insert(person.id.clone(), person);
        }
        match got.next {
            Some(n) => page = Some(n),
            None => break,
        }
    }
    Ok(Some(LinkContext {
        provider: ProviderId::parse(provider).map_err(|e| SyncError::Invalid(e.to_string()))?,
        project,
        link,
        window,
        people,
        remote_people,
        assigned,
    }))
}

fn unsupported(provider: &'static str) -> hourbridge_provider_api::ProviderError {
    hourbridge_provider_api::ProviderError::new(
        provider,
        hourbridge_provider_api::ProviderErrorKind::Unsupported,
        "this provider does not pull work logs",
    )
}

async fn fetch_page(
    engine: &Engine,
    ws: &str,
    provider: &str,
    remote_project: &str,
    window: DateWindow,
    page: Option<String>,
) -> Result<hourbridge_provider_api::RemotePage<RemoteWorkLog>, SyncError> {
    let p = engine.provider(provider)?.clone();
    let remote_project = remote_project.to_owned();
    engine
        .call(ws, provider, move |s| {
            let p = p.clone();
            let page = page.clone();
            let remote_project = remote_project.clone();
            async move {
                match p.work_logs() {
                    Some(src) => src.list_work_logs(&s, &remote_project, window, page).await,
                    None => Err(unsupported(p.descriptor().id)),
                }
            }
        })
        .await
}

/// The fields of a synced log that preview, wipe and clear need; decoding only these skips the
/// note.
#[derive(Debug, Deserialize)]
struct SyncedLog {
    id: RecordId,
    source: Option<WorkLogSource>,
}

/// Synced logs of `provider` on the project (all dates), one decode per record.
async fn synced_logs(
    engine: &Engine,
    ws: &str,
    provider: &str,
    project: &str,
) -> Result<Vec<SyncedLog>, SyncError> {
    let mut out = Vec::new();
    let mut q = engine
        .store
        .query::<WorkLog>(ws, IndexSel::Index1(project.to_owned()), 1000);
    loop {
        let page = engine.store.backend().query(&q).await?;
        for r in &page.records {
            let log: SyncedLog = serde_json::from_str(&r.data).map_err(|e| {
                SyncError::Store(hourbridge_store::StoreError::Corrupt {
                    kind: r.kind.clone(),
                    id: r.id.clone(),
                    reason: e.to_string(),
                })
            })?;
            if log
                .source
                .as_ref()
                .is_some_and(|s| s.provider.as_str() == provider)
            {
                out.push(log);
            }
        }
        match page.next {
            Some(c) => q.cursor = Some(c),
            None => return Ok(out),
        }
    }
}

async fn load_seen(engine: &Engine, ws: &str, run_id: &str) -> Result<HashSet<String>, SyncError> {
    let q = engine
        .store
        .query::<RunSeen>(ws, IndexSel::Index1(run_id.to_owned()), 100);
    Ok(engine
        .store
        .list_all::<RunSeen>(q)
        .await?
        .into_iter()
        .flat_map(|c| c.ids)
        .collect())
}

/// Deletes a run's saved seen-id chunks.
pub(crate) async fn drop_seen(
    engine: &Engine,
    ws: &str,
    run_id: &RecordId,
) -> Result<(), SyncError> {
    let q = engine
        .store
        .query::<RunSeen>(ws, IndexSel::Index1(run_id.to_string()), 100);
    let ids: Vec<String> = engine
        .store
        .list_all::<RunSeen>(q)
        .await?
        .iter()
        .map(Entity::id)
        .collect();
    if !ids.is_empty() {
        engine.store.delete_batch::<RunSeen>(ws, &ids).await?;
    }
    Ok(())
}

fn add_problems(run: &mut SyncRun, progress: &LinkProgress, project: &str) {
    for m in &progress.missing {
        run.problems.push(RecordProblem {
            record: m.email.clone().unwrap_or_else(|| m.name.clone()),
            code: "person_not_found".into(),
            message: match &m.email {
                Some(e) => format!("{} ({e}) has work logs on project {project} but no host person uses that e-mail", m.name),
                None => format!("{} has work logs on project {project} but no e-mail in the provider", m.name),
            },
        });
    }
    for name in &progress.not_assigned {
        run.problems.push(RecordProblem {
            record: name.clone(),
            code: "not_assigned".into(),
            message: format!(
                "{name} is not assigned to project {project}; new assignments are prevented"
            ),
        });
    }
}

/// Pulls one project link; see the module docs.
pub(crate) async fn sync_link(engine: &Engine, lr: LinkRun<'_>) -> Result<LinkOutcome, SyncError> {
    let LinkRun {
        ws,
        provider,
        project,
        run,
        version,
        plan,
        stop_at,
        lease,
        dry_run,
    } = lr;
    let Some(ctx) = load_context(engine, ws, provider, project).await? else {
        run.problems.push(RecordProblem {
            record: project.to_owned(),
            code: "link_missing".into(),
            message: "the project or its link was removed before the run reached it".into(),
        });
        return Ok(LinkOutcome::Done);
    };
    let run_id = run.id.to_string();
    let mut seen = if plan.progress.seen_chunks > 0 {
        load_seen(engine, ws, &run_id).await?
    } else {
        HashSet::new()
    };

    if plan.mode == RunMode::Wipe && !plan.progress.wiped {
        let ids: Vec<String> = synced_logs(engine, ws, provider, project)
            .await?
            .iter()
            .map(|l| l.id.to_string())
            .collect();
        if !dry_run {
            engine.store.delete_batch::<WorkLog>(ws, &ids).await?;
        }
        run.counts.deleted += ids.len() as u64;
        plan.progress.wiped = true;
        if !dry_run {
            engine.checkpoint(ws, run, version, plan, lease).await?;
        }
    }

    let remote_ids = ctx.link.remote_project_ids.clone();
    let mut unsaved: Vec<String> = Vec::new();
    let mut last_checkpoint = engine.clock.now();
    // The next page is fetched while this one is written: the provider's latency and the
    // store's overlap instead of adding up.
    let mut prefetch: Option<
        tokio::task::JoinHandle<Result<RemotePage<RemoteWorkLog>, SyncError>>,
    > = None;
    let spawn_fetch = |idx: usize, token: Option<String>| {
        let (engine, ws, provider, remote, window) = (
            engine.clone(),
            ws.to_owned(),
            provider.to_owned(),
            remote_ids[idx].clone(),
            ctx.window,
        );
        tokio::spawn(
            async move { fetch_page(&engine, &ws, &provider, &remote, window, token).await },
        )
    };
    while plan.progress.remote_idx < remote_ids.len() {
        let page = match prefetch.take() {
            Some(handle) => handle
                .await
                .map_err(|e| SyncError::Queue(format!("page fetch task: {e}")))??,
            None => spawn_fetch(plan.progress.remote_idx, plan.progress.page.clone())
                .await
                .map_err(|e| SyncError::Queue(format!("page fetch task: {e}")))??,
        };
        let (next_idx, next_token) = match &page.next {
            Some(n) => (plan.progress.remote_idx, Some(n.clone())),
            None => (plan.progress.remote_idx + 1, None),
        };
        if next_idx < remote_ids.len() && !past(stop_at, engine.clock.now()) {
            prefetch = Some(spawn_fetch(next_idx, next_token));
        }
        let mut guard = AbortOnDrop(prefetch.as_ref().map(|h| h.abort_handle()));
        let ids: Vec<String> = page
            .items
            .iter()
            .map(|e| work_log_id(provider, ctx.project.id.as_str(), &e.id).to_string())
            .collect();
        let existing = engine.store.get_many::<WorkLog>(ws, &ids).await?;
        let decided = plan_page(&ctx, &page.items, &existing);
        let wrote = !decided.writes.is_empty();
        if wrote && !dry_run {
            engine.store.put_batch(ws, &decided.writes).await?;
        }
        run.counts.created += decided.created;
        run.counts.updated += decided.updated;
        run.counts.unchanged += decided.unchanged;
        run.counts.skipped += decided.skipped;
        plan.progress.missing.extend(decided.missing);
        plan.progress.not_assigned.extend(decided.not_assigned);
        for (person, day) in decided.days {
            let e = plan.progress.spans.entry(person).or_insert((day, day));
            e.0 = e.0.min(day);
            e.1 = e.1.max(day);
        }
        seen.extend(decided.seen.iter().cloned());
        unsaved.extend(decided.seen);
        match page.next {
            Some(next) => plan.progress.page = Some(next),
            None => {
                plan.progress.remote_idx += 1;
                plan.progress.page = None;
            }
        }
        let now = engine.clock.now();
        let pausing = past(stop_at, now);
        if !dry_run
            && (wrote
                || pausing
                || now - last_checkpoint >= Duration::seconds(IDLE_CHECKPOINT_SECONDS))
        {
            if !unsaved.is_empty() {
                let chunk = RunSeen {
                    run_id: run_id.clone(),
                    n: plan.progress.seen_chunks,
                    ids: std::mem::take(&mut unsaved),
                    expires_at: now + Duration::days(7),
                };
                engine.store.put(ws, &chunk).await?;
                plan.progress.seen_chunks += 1;
            }
            engine.checkpoint(ws, run, version, plan, lease).await?;
            last_checkpoint = now;
        }
        if pausing && plan.progress.remote_idx < remote_ids.len() {
            return Ok(LinkOutcome::Paused);
        }
        // The prefetch is wanted: the next iteration awaits it.
        guard.0 = None;
    }

    // Reconcile: what the provider no longer lists (deleted, moved, before sync_from, on an
    // unlinked remote project) goes. Only ids are listed; only logs not seen are read.
    let mut candidates = Vec::new();
    let mut q = engine
        .store
        .query::<WorkLog>(ws, IndexSel::Index1(project.to_owned()), 1000);
    loop {
        let page = engine.store.backend().query_ids(&q).await?;
        candidates.extend(page.ids.into_iter().filter(|id| !seen.contains(id)));
        match page.next {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    let gone: Vec<String> = engine
        .store
        .get_many::<WorkLog>(ws, &candidates)
        .await?
        .into_iter()
        .filter(|(_, (l, _))| {
            l.source
                .as_ref()
                .is_some_and(|s| s.provider.as_str() == provider)
        })
        .map(|(id, _)| id)
        .collect();
    if !dry_run && !gone.is_empty() {
        engine.store.delete_batch::<WorkLog>(ws, &gone).await?;
    }
    run.counts.deleted += gone.len() as u64;
    let span = plan.progress.spans.clone();
    if !dry_run {
        sync_assignments(engine, ws, provider, &ctx, &span).await?;
        let mut link = ctx.link.clone();
        link.missing_people = plan.progress.missing.iter().cloned().collect();
        link.last_run_id = Some(run.id.clone());
        engine.store.upsert(ws, &link).await?;
    }
    add_problems(run, &plan.progress, ctx.project.name.as_str());
    Ok(LinkOutcome::Done)
}

/// Creates (or adjusts) one assignment per person with synced logs, unless new assignments are
/// prevented: trimmed to the person's first and last synced day, or spanning the project.
async fn sync_assignments(
    engine: &Engine,
    ws: &str,
    provider: &str,
    ctx: &LinkContext,
    span: &BTreeMap<RecordId, (NaiveDate, NaiveDate)>,
) -> Result<(), SyncError> {
    let project = ctx.project.id.as_str();
    let existing = engine
        .store
        .list_all::<Assignment>(engine.store.query::<Assignment>(
            ws,
            IndexSel::Index1(project.to_owned()),
            1000,
        ))
        .await?;
    let ours: HashSet<RecordId> = span
        .keys()
        .map(|p| assignment_id(provider, project, p.as_str()))
        .collect();
    // Sync-made assignments of people who no longer have synced logs are withdrawn.
    for a in &existing {
        let made_by_sync = a.id == assignment_id(provider, project, a.person_id.as_str());
        if made_by_sync && !ours.contains(&a.id) {
            engine.store.delete::<Assignment>(ws, a.id.as_str()).await?;
        }
    }
    if ctx.link.prevent_new_assignments {
        return Ok(());
    }
    for (person, (first, last)) in span {
        let id = assignment_id(provider, project, person.as_str());
        let has_own = existing
            .iter()
            .any(|a| &a.person_id == person && a.id != id);
        if has_own {
            continue;
        }
        let (start_date, end_date) = if ctx.link.trim_assignments {
            (Some(*first), Some(*last))
        } else {
            (ctx.project.start_date, ctx.project.end_date)
        };
        let a = Assignment {
            id,
            person_id: person.clone(),
            project_id: ctx.project.id.clone(),
            start_date,
            end_date,
        };
        engine.store.upsert(ws, &a).await?;
    }
    Ok(())
}

/// What a reset would do, computed without writing anything.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Preview {
    /// Logs that would be created.
    pub created: u64,
    /// Logs that would change.
    pub updated: u64,
    /// Logs that would be deleted.
    pub deleted: u64,
    /// Logs already up to date.
    pub unchanged: u64,
    /// Remote logs that would not be synced (running timers, unmatched or unassigned people).
    pub skipped: u64,
    /// People who would be reported missing.
    pub missing_people: Vec<MissingPerson>,
}

impl Engine {
    /// Computes what a reset-and-sync of one project link would do, without writing.
    pub async fn preview(
        &self,
        ws: &str,
        provider: &str,
        project: &str,
        mode: RunMode,
    ) -> Result<Preview, SyncError> {
        let Some(ctx) = load_context(self, ws, provider, project).await? else {
            return Err(SyncError::Invalid(
                "the project is not linked to this provider".into(),
            ));
        };
        let mut preview = Preview::default();
        let mut seen = HashSet::new();
        let mut missing = BTreeSet::new();
        let synced = synced_logs(self, ws, provider, project).await?;
        let wiped = mode == RunMode::Wipe;
        for remote in &ctx.link.remote_project_ids {
            let mut page = None;
            loop {
                let got = fetch_page(self, ws, provider, remote, ctx.window, page).await?;
                let ids: Vec<String> = got
                    .items
                    .iter()
                    .map(|e| work_log_id(provider, project, &e.id).to_string())
                    .collect();
                let existing = if wiped {
                    HashMap::new()
                } else {
                    self.store.get_many::<WorkLog>(ws, &ids).await?
                };
                let d = plan_page(&ctx, &got.items, &existing);
                preview.created += d.created;
                preview.updated += d.updated;
                preview.unchanged += d.unchanged;
                preview.skipped += d.skipped;
                missing.extend(d.missing);
                seen.extend(d.seen);
                match got.next {
                    Some(n) => page = Some(n),
                    None => break,
                }
            }
        }
        preview.deleted = if wiped {
            synced.len() as u64
        } else {
            synced
                .iter()
                .filter(|l| {
                    l.source
                        .as_ref()
                        .is_some_and(|s| !seen.contains(&s.remote_id))
                })
                .count() as u64
        };
        preview.missing_people = missing.into_iter().collect();
        Ok(preview)
    }

    /// Deletes every work log synced from `provider` on the project ("Clear data").
    pub async fn clear(&self, ws: &str, provider: &str, project: &str) -> Result<u64, SyncError> {
        let ids: Vec<String> = synced_logs(self, ws, provider, project)
            .await?
            .iter()
            .map(|l| l.id.to_string())
            .collect();
        self.store.delete_batch::<WorkLog>(ws, &ids).await?;
        Ok(ids.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn ctx(prevent: bool) -> LinkContext {
        let project = Project {
            id: RecordId::parse("p1").unwrap(),
            name: "P".into(),
            parent_id: None,
            customer_id: None,
            start_date: None,
            end_date: None,
            managed_by: Default::default(),
        };
        let link = ProjectLink {
            project_id: project.id.clone(),
            provider: ProviderId::parse("harvest").unwrap(),
            remote_project_ids: vec!["10".into()],
            sync_from: Some(d("2026-01-01")),
            prevent_new_assignments: prevent,
            trim_assignments: false,
            last_run_id: None,
            missing_people: vec![],
        };
        let remote_people = [
            ("u1", "Ada", Some("ADA@x.test ")),
            ("u2", "Dee", Some("dee@elsewhere.test")),
            ("u3", "Finn", None),
        ]
        .into_iter()
        .map(|(id, name, email)| {
            (
                id.to_string(),
                RemotePerson {
                    id: id.into(),
                    name: name.into(),
                    email: email.map(str::to_owned),
                },
            )
        })
        .collect();
        LinkContext {
            provider: ProviderId::parse("harvest").unwrap(),
            project,
            link,
            window: DateWindow {
                from: d("2026-01-01"),
                to: d("2026-12-31"),
            },
            people: [("ada@x.test".to_string(), RecordId::parse("ada").unwrap())]
                .into_iter()
                .collect(),
            remote_people,
            assigned: HashSet::new(),
        }
    }

    fn entry(id: &str, user: &str, date: &str, minutes: u32, running: bool) -> RemoteWorkLog {
        RemoteWorkLog {
            id: id.into(),
            project_id: "10".into(),
            person: RemotePerson {
                id: user.into(),
                name: "?".into(),
                email: None,
            },
            date: d(date),
            minutes,
            note: "n".into(),
            running,
            updated_at: None,
        }
    }

    #[test]
    fn people_are_matched_by_normalised_email_and_the_rest_reported() {
        let c = ctx(false);
        let page = [
            entry("1", "u1", "2026-02-01", 60, false),
            entry("2", "u2", "2026-02-01", 30, false),
            entry("3", "u3", "2026-02-02", 10, false),
        ];
        let p = plan_page(&c, &page, &HashMap::new());
        assert_eq!(p.created, 1);
        assert_eq!(p.writes[0].0.person_id.as_str(), "ada");
        assert_eq!(p.skipped, 2);
        assert_eq!(
            p.missing,
            vec![
                MissingPerson {
                    name: "Dee".into(),
                    email: Some("dee@elsewhere.test".into())
                },
                MissingPerson {
                    name: "Finn".into(),
                    email: None
                }
            ]
        );
    }

    #[test]
    fn unchanged_entries_write_nothing_and_changed_ones_bump_the_version() {
        let c = ctx(false);
        let first = plan_page(
            &c,
            &[entry("1", "u1", "2026-02-01", 60, false)],
            &HashMap::new(),
        );
        let (log, v) = first.writes[0].clone();
        let existing: HashMap<String, (WorkLog, u64)> = [(log.id.to_string(), (log.clone(), v))]
            .into_iter()
            .collect();
        let again = plan_page(&c, &[entry("1", "u1", "2026-02-01", 60, false)], &existing);
        assert!(again.writes.is_empty());
        assert_eq!(again.unchanged, 1);
        let edited = plan_page(&c, &[entry("1", "u1", "2026-02-01", 75, false)], &existing);
        assert_eq!(
            (
                edited.updated,
                edited.writes[0].1,
                edited.writes[0].0.minutes
            ),
            (1, 2, 75)
        );
    }

    #[test]
    fn running_timers_are_not_synced_until_stopped_but_keep_an_earlier_copy() {
        let c = ctx(false);
        let p = plan_page(
            &c,
            &[entry("9", "u1", "2026-02-03", 5, true)],
            &HashMap::new(),
        );
        assert!(p.writes.is_empty() && p.seen.is_empty());
        let stopped = plan_page(
            &c,
            &[entry("9", "u1", "2026-02-03", 50, false)],
            &HashMap::new(),
        );
        let (log, v) = stopped.writes[0].clone();
        let existing = [(log.id.to_string(), (log, v))].into_iter().collect();
        let restarted = plan_page(&c, &[entry("9", "u1", "2026-02-03", 55, true)], &existing);
        assert_eq!(
            restarted.seen,
            vec![work_log_id("harvest", "p1", "9").to_string()],
            "an already synced entry is not deleted while running again"
        );
    }

    #[test]
    fn prevent_new_assignments_skips_unassigned_people() {
        let mut c = ctx(true);
        let p = plan_page(
            &c,
            &[entry("1", "u1", "2026-02-01", 60, false)],
            &HashMap::new(),
        );
        assert_eq!((p.created, p.not_assigned.len()), (0, 1));
        c.assigned.insert(RecordId::parse("ada").unwrap());
        let p = plan_page(
            &c,
            &[entry("1", "u1", "2026-02-01", 60, false)],
            &HashMap::new(),
        );
        assert_eq!(p.created, 1);
    }

    #[test]
    fn entries_before_sync_from_are_ignored() {
        let c = ctx(false);
        let p = plan_page(
            &c,
            &[entry("1", "u1", "2025-12-31", 60, false)],
            &HashMap::new(),
        );
        assert!(p.writes.is_empty() && p.seen.is_empty());
    }

    #[test]
    fn synced_ids_are_stable_and_fit_record_ids() {
        let long = "x".repeat(41);
        let odd = work_log_id("harvest", "p", "a/b#c");
        assert!(
            odd.as_str().starts_with("wl-") && odd.as_str().len() == 43,
            "{odd}"
        );
        assert_ne!(
            work_log_id("harvest", "p", &long),
            work_log_id("harvest", "p", &"x".repeat(42))
        );
        assert_ne!(
            work_log_id("harvest", "p1", "7"),
            work_log_id("harvest", "p2", "7")
        );
        let a = work_log_id("harvest", "0190-project", "2400000000001");
        assert!(a.as_str().ends_with("-2400000000001"), "{a}");
        assert_eq!(a, work_log_id("harvest", "0190-project", "2400000000001"));
        assert_ne!(a, work_log_id("hubstaff", "0190-project", "2400000000001"));
        assert!(a.as_str().len() <= 64);
    }
}

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
//!   Providers that declare a deletion feed list deleted entries instead, and no window is
//!   reconciled.
//! - Windows: the sync window is cut to the provider's declared `max_window_days`, so no
//!   adapter has to split windows itself.
//! - The store's work hides behind the fetch: one background task fetches the pages in order,
//!   up to two ahead of the page being written (so one slow write does not delay the next
//!   request), the remote people are listed while the first page is fetched, and the ids the
//!   reconcile needs are listed from the store while the pages are pulled, not after them.
//!   Memory stays a few pages plus two compact id sets (8 bytes per numeric remote id).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use hourbridge_domain::{
    Assignment, MissingPerson, Person, Project, ProjectLink, ProviderId, RecordId, RecordProblem,
    SyncRun, WorkLog, WorkLogSource, validate::normalize_email,
};
use hourbridge_provider_api::{DateWindow, RemotePage, RemotePerson, RemoteWorkLog};
use hourbridge_store::{Entity, EntityKind, IndexKey, IndexSel};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use async_trait::async_trait;

use super::{KindPass, Step, SyncKind, UnitCx};
use crate::runs::RunMode;
use crate::{Engine, SyncError};

pub use super::Preview;

/// Where a link's sync stands: the kind's checkpoint, opaque to `runs.rs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct LinkProgress {
    /// Wipe done (wipe mode).
    pub wiped: bool,
    /// Index of the remote project being pulled.
    pub remote_idx: usize,
    /// Index of the date window (the sync window cut to the provider's `max_window_days`).
    #[serde(default)]
    pub window_idx: usize,
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

/// Where in a link's pages a fetch is: remote project, date window, page token.
type Position = (usize, usize, Option<String>);

/// A fetched page (or the error that ended the fetching) and where it was.
type Fetched = (Position, Result<RemotePage<RemoteWorkLog>, SyncError>);

/// The position after the page at `pos` whose next-page token is `next`, given how many date
/// windows and remote projects the link has.
fn next_position(
    pos: &Position,
    next: Option<&String>,
    windows: usize,
    remotes: usize,
) -> Option<Position> {
    let (r, w, _) = pos;
    if let Some(n) = next {
        return Some((*r, *w, Some(n.clone())));
    }
    if w + 1 < windows {
        return Some((*r, w + 1, None));
    }
    (r + 1 < remotes).then_some((r + 1, 0, None))
}

/// Pages fetched in order by one background task, ahead of the page being written. The task
/// fetches a page per permit; the pass hands out permits one page ahead of what it holds.
struct Pipeline {
    /// Position of the next page `rx` delivers.
    at: Position,
    rx: tokio::sync::mpsc::UnboundedReceiver<Fetched>,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // A pass left early (error, pause) must not leave a request running on its own.
        self.task.abort();
    }
}

/// Host ids of synced logs, held compactly: an id `{prefix}{n}` (the link's own prefix, see
/// [`work_log_id`], and a decimal remote id, as Harvest's and Hubstaff's are) is kept as the
/// number, any other id as a string. Exact: a number is kept only if it prints back to the id.
#[derive(Debug, Default)]
pub(crate) struct IdSet {
    prefix: String,
    nums: HashSet<u64>,
    other: HashSet<String>,
}

impl IdSet {
    fn new(prefix: String) -> Self {
        Self {
            prefix,
            ..Self::default()
        }
    }

    fn num(&self, id: &str) -> Option<u64> {
        let rest = id.strip_prefix(self.prefix.as_str())?;
        let canonical = !rest.is_empty()
            && rest.len() <= 20
            && rest.bytes().all(|b| b.is_ascii_digit())
            && (rest == "0" || !rest.starts_with('0'));
        canonical.then(|| rest.parse().ok()).flatten()
    }

    fn insert(&mut self, id: &str) {
        match self.num(id) {
            Some(n) => {
                self.nums.insert(n);
            }
            None => {
                self.other.insert(id.to_owned());
            }
        }
    }

    fn contains(&self, id: &str) -> bool {
        match self.num(id) {
            Some(n) => self.nums.contains(&n),
            None => self.other.contains(id),
        }
    }

    /// The ids in `self` that are not in `seen`.
    fn not_in(&self, seen: &IdSet) -> Vec<String> {
        self.nums
            .iter()
            .map(|n| format!("{}{n}", self.prefix))
            .chain(self.other.iter().cloned())
            .filter(|id| !seen.contains(id))
            .collect()
    }
}

/// The id prefix of a link's synced logs whose remote ids fit the id alphabet.
fn link_prefix(provider: &str, project: &str) -> String {
    format!("wl-{}-", hex_digest(&[provider, project], 6))
}

/// Cuts the sync window into windows of at most `max_days` days (inclusive), in order, so that
/// every provider with a window limit gets requests it accepts.
pub(crate) fn split_window(window: DateWindow, max_days: Option<u32>) -> Vec<DateWindow> {
    let Some(max) = max_days.filter(|m| *m > 0) else {
        return vec![window];
    };
    let mut out = Vec::new();
    let mut from = window.from;
    while from <= window.to {
        let to = (from + Duration::days(i64::from(max) - 1)).min(window.to);
        out.push(DateWindow { from, to });
        from = to + Duration::days(1);
    }
    if out.is_empty() {
        out.push(window);
    }
    out
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
        && let Ok(id) = RecordId::parse(format!("{}{remote_id}", link_prefix(provider, project)))
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
    /// Host ids of synced logs the provider reported deleted (deletion feeds).
    pub deletes: Vec<String>,
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
        if e.deleted {
            if current.is_some() {
                plan.deletes.push(id.to_string());
            }
            continue;
        }
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
            updated_at: None,
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

/// The link's context from the store; the remote people are listed by [`remote_people`].
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
    Ok(Some(LinkContext {
        provider: ProviderId::parse(provider).map_err(|e| SyncError::Invalid(e.to_string()))?,
        project,
        link,
        window,
        people,
        remote_people: HashMap::new(),
        assigned,
    }))
}

/// The provider's users, by remote id.
async fn remote_people(
    engine: &Engine,
    ws: &str,
    provider: &str,
) -> Result<HashMap<String, RemotePerson>, SyncError> {
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
            None => return Ok(remote_people),
        }
    }
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

/// Saves chunk `n` of the ids a pass has seen under `key` (a run id, or a kind's key within
/// the run); the run drops them when it finishes.
pub(crate) async fn save_seen(
    engine: &Engine,
    ws: &str,
    key: &str,
    n: u32,
    ids: Vec<String>,
) -> Result<(), SyncError> {
    let chunk = RunSeen {
        run_id: key.to_owned(),
        n,
        ids,
        expires_at: engine.clock.now() + Duration::days(7),
    };
    engine.store.put(ws, &chunk).await?;
    Ok(())
}

/// Every id saved with [`save_seen`] under `run_id`.
pub(crate) async fn load_seen(
    engine: &Engine,
    ws: &str,
    run_id: &str,
) -> Result<HashSet<String>, SyncError> {
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
pub(crate) async fn drop_seen(engine: &Engine, ws: &str, run_id: &str) -> Result<(), SyncError> {
    let q = engine
        .store
        .query::<RunSeen>(ws, IndexSel::Index1(run_id.to_owned()), 100);
    // Ids only (a covering index on SQLite): the chunks' contents are not read back.
    let ids = list_ids(engine, q).await?;
    if !ids.is_empty() {
        engine.store.delete_batch::<RunSeen>(ws, &ids).await?;
    }
    Ok(())
}

/// Every id a query lists, page by page, without reading the records.
async fn list_ids(
    engine: &Engine,
    mut q: hourbridge_store::Query,
) -> Result<Vec<String>, SyncError> {
    let mut ids = Vec::new();
    loop {
        let page = engine.store.backend().query_ids(&q).await?;
        ids.extend(page.ids);
        match page.next {
            Some(c) => q.cursor = Some(c),
            None => return Ok(ids),
        }
    }
}

/// Ids of the project's work logs (any source), into a compact set.
async fn list_project_logs(
    engine: Engine,
    ws: String,
    project: String,
    prefix: String,
) -> Result<IdSet, SyncError> {
    let mut out = IdSet::new(prefix);
    let mut q = engine
        .store
        .query::<WorkLog>(&ws, IndexSel::Index1(project), 1000);
    loop {
        let page = engine.store.backend().query_ids(&q).await?;
        for id in &page.ids {
            out.insert(id);
        }
        match page.next {
            Some(c) => q.cursor = Some(c),
            None => return Ok(out),
        }
    }
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

/// The work-logs-in sync kind; see the module docs.
pub(crate) struct WorkLogsIn;

/// A pass over one project link.
struct WorkLogsPass {
    engine: Engine,
    cx: UnitCx,
    /// `None` when the link or project vanished before the run reached it.
    ctx: Option<LinkContext>,
    progress: LinkProgress,
    windows: Vec<DateWindow>,
    deletion_feed: bool,
    /// Host ids of the synced logs seen so far in this run.
    seen: IdSet,
    /// Seen ids not yet saved to a chunk.
    unsaved: Vec<String>,
    /// A dry-run wipe: the host is treated as already emptied.
    assume_empty: bool,
    /// The pages ahead, fetched while the current one is written.
    pipeline: Option<Pipeline>,
    /// The project's work-log ids as they were when the pages began (listed in the
    /// background, for the reconcile): whatever the pass writes after that it also sees.
    listed: Option<tokio::task::JoinHandle<Result<IdSet, SyncError>>>,
}

impl Drop for WorkLogsPass {
    fn drop(&mut self) {
        if let Some(h) = &self.listed {
            h.abort();
        }
    }
}

#[async_trait]
impl SyncKind for WorkLogsIn {
    async fn open(
        &self,
        engine: &Engine,
        cx: UnitCx,
        checkpoint: serde_json::Value,
        run: &mut SyncRun,
    ) -> Result<Box<dyn KindPass>, SyncError> {
        let progress: LinkProgress = if checkpoint.is_null() {
            LinkProgress::default()
        } else {
            serde_json::from_value(checkpoint)
                .map_err(|e| SyncError::InvalidState(format!("work-log checkpoint: {e}")))?
        };
        let project = cx.project.clone().unwrap_or_default();
        let mut ctx = load_context(engine, &cx.ws, &cx.provider, &project).await?;
        if ctx.is_none() {
            run.problems.push(RecordProblem {
                record: project.clone(),
                code: "link_missing".into(),
                message: "the project or its link was removed before the run reached it".into(),
            });
        }
        let declared = engine
            .provider(&cx.provider)?
            .descriptor()
            .capabilities
            .work_logs_in;
        let windows = ctx.as_ref().map_or_else(Vec::new, |c| {
            split_window(c.window, declared.and_then(|d| d.max_window_days))
        });
        let mut seen = IdSet::new(link_prefix(&cx.provider, &project));
        if progress.seen_chunks > 0 && !cx.dry_run {
            for id in load_seen(engine, &cx.ws, &cx.run_id).await? {
                seen.insert(&id);
            }
        }
        let remote_people_needed = ctx.is_some();
        let taken = ctx.take();
        let mut pass = WorkLogsPass {
            engine: engine.clone(),
            cx,
            ctx: taken,
            progress,
            windows,
            deletion_feed: declared.is_some_and(|d| d.deletion_feed),
            seen,
            unsaved: Vec::new(),
            assume_empty: false,
            pipeline: None,
            listed: None,
        };
        if remote_people_needed {
            // The first page is fetched while the provider's users are listed; the session is
            // loaded first, so the two requests share it (one secret read per run).
            if pass.pages_left() {
                engine.session(&pass.cx.ws, &pass.cx.provider).await?;
                pass.pipeline = Some(pass.spawn_pipeline(pass.position(), 1));
            }
            let people = remote_people(engine, &pass.cx.ws, &pass.cx.provider).await?;
            if let Some(c) = pass.ctx.as_mut() {
                c.remote_people = people;
            }
        }
        Ok(Box::new(pass))
    }
}

impl WorkLogsPass {
    fn remote_ids(&self) -> &[String] {
        self.ctx
            .as_ref()
            .map_or(&[], |c| c.link.remote_project_ids.as_slice())
    }

    fn position(&self) -> Position {
        (
            self.progress.remote_idx,
            self.progress.window_idx,
            self.progress.page.clone(),
        )
    }

    fn pages_left(&self) -> bool {
        self.progress.remote_idx < self.remote_ids().len() && !self.windows.is_empty()
    }

    /// Starts fetching pages in order from `from`: that one and `ahead` more now, one more per
    /// permit added later. The task stops after the last page or the first error.
    fn spawn_pipeline(&self, from: Position, ahead: usize) -> Pipeline {
        let engine = self.engine.clone();
        let (ws, provider) = (self.cx.ws.clone(), self.cx.provider.clone());
        let remotes = self.remote_ids().to_vec();
        let windows = self.windows.clone();
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(1 + ahead));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Fetched>();
        let p = permits.clone();
        let mut pos = from.clone();
        let task = tokio::spawn(async move {
            loop {
                match p.acquire().await {
                    Ok(permit) => permit.forget(),
                    Err(_) => return,
                }
                let got = fetch_page(
                    &engine,
                    &ws,
                    &provider,
                    &remotes[pos.0],
                    windows[pos.1],
                    pos.2.clone(),
                )
                .await;
                let next = match &got {
                    Ok(page) => {
                        next_position(&pos, page.next.as_ref(), windows.len(), remotes.len())
                    }
                    Err(_) => None,
                };
                if tx.send((pos, got)).is_err() {
                    return;
                }
                match next {
                    Some(n) => pos = n,
                    None => return,
                }
            }
        });
        Pipeline {
            at: from,
            rx,
            permits,
            task,
        }
    }

    async fn wipe(&mut self, run: &mut SyncRun) -> Result<bool, SyncError> {
        let engine = &self.engine;
        let project = self.cx.project.as_deref().unwrap_or_default();
        let ids: Vec<String> = synced_logs(engine, &self.cx.ws, &self.cx.provider, project)
            .await?
            .iter()
            .map(|l| l.id.to_string())
            .collect();
        if self.cx.dry_run {
            self.assume_empty = true;
        } else {
            engine
                .store
                .delete_batch::<WorkLog>(&self.cx.ws, &ids)
                .await?;
        }
        run.counts.deleted += ids.len() as u64;
        self.progress.wiped = true;
        Ok(!self.cx.dry_run)
    }

    async fn page(&mut self, run: &mut SyncRun, may_prefetch: bool) -> Result<bool, SyncError> {
        let pos = self.position();
        if self.pipeline.as_ref().is_none_or(|p| p.at != pos) {
            self.pipeline = Some(self.spawn_pipeline(pos.clone(), usize::from(may_prefetch)));
        }
        // The ids the reconcile checks are listed while the pages are pulled (after a wipe, so
        // a wiped log is not listed).
        if self.listed.is_none() && !self.deletion_feed && !self.assume_empty {
            let project = self.cx.project.clone().unwrap_or_default();
            self.listed = Some(tokio::spawn(list_project_logs(
                self.engine.clone(),
                self.cx.ws.clone(),
                project,
                self.seen.prefix.clone(),
            )));
        }
        let (windows, remotes) = (self.windows.len(), self.remote_ids().len());
        let pipeline = self.pipeline.as_mut().ok_or_else(|| {
            SyncError::InvalidState("work-log pass without a page pipeline".into())
        })?;
        let fetched = pipeline.rx.recv().await;
        let page = match fetched {
            Some((at, Ok(page))) if at == pos => page,
            Some((_, Err(e))) => {
                self.pipeline = None;
                return Err(e);
            }
            _ => {
                self.pipeline = None;
                return Err(SyncError::Queue("the page fetch task ended early".into()));
            }
        };
        let next = next_position(&pos, page.next.as_ref(), windows, remotes);
        // The pages ahead are fetched while this one is written: the provider's latency and the
        // store's overlap instead of adding up. One more permit keeps the fetch two pages
        // ahead; none is given when the run is about to stop.
        match &next {
            Some(n) => {
                pipeline.at = n.clone();
                if may_prefetch {
                    pipeline.permits.add_permits(1);
                }
            }
            None => self.pipeline = None,
        }
        let ctx = self.ctx.as_ref().ok_or_else(|| {
            SyncError::InvalidState("work-log pass without a link context".into())
        })?;
        let (ws, provider) = (self.cx.ws.as_str(), self.cx.provider.as_str());
        let existing = if self.assume_empty {
            HashMap::new()
        } else {
            let ids: Vec<String> = page
                .items
                .iter()
                .map(|e| work_log_id(provider, ctx.project.id.as_str(), &e.id).to_string())
                .collect();
            self.engine.store.get_many::<WorkLog>(ws, &ids).await?
        };
        let decided = plan_page(ctx, &page.items, &existing);
        let wrote = !self.cx.dry_run && (!decided.writes.is_empty() || !decided.deletes.is_empty());
        if !self.cx.dry_run {
            if !decided.writes.is_empty() {
                self.engine.store.put_batch(ws, &decided.writes).await?;
            }
            if !decided.deletes.is_empty() {
                self.engine
                    .store
                    .delete_batch::<WorkLog>(ws, &decided.deletes)
                    .await?;
            }
        }
        run.counts.created += decided.created;
        run.counts.updated += decided.updated;
        run.counts.deleted += decided.deletes.len() as u64;
        run.counts.unchanged += decided.unchanged;
        run.counts.skipped += decided.skipped;
        self.progress.missing.extend(decided.missing);
        self.progress.not_assigned.extend(decided.not_assigned);
        for (person, day) in decided.days {
            let e = self.progress.spans.entry(person).or_insert((day, day));
            e.0 = e.0.min(day);
            e.1 = e.1.max(day);
        }
        for id in &decided.seen {
            self.seen.insert(id);
        }
        if !self.cx.dry_run {
            self.unsaved.extend(decided.seen);
        }
        match next {
            Some((r, w, p)) => {
                self.progress.remote_idx = r;
                self.progress.window_idx = w;
                self.progress.page = p;
            }
            None => {
                self.progress.remote_idx = self.remote_ids().len();
                self.progress.window_idx = 0;
                self.progress.page = None;
            }
        }
        Ok(wrote)
    }

    /// What the provider no longer lists (deleted, moved, before sync_from, on an unlinked
    /// remote project) goes — unless the provider has a deletion feed, whose deletions came
    /// with the pages. Only ids are listed; only logs not seen are read.
    async fn reconcile(&mut self, run: &mut SyncRun) -> Result<(), SyncError> {
        let engine = &self.engine;
        let (ws, provider) = (self.cx.ws.as_str(), self.cx.provider.as_str());
        let project = self.cx.project.as_deref().unwrap_or_default();
        let ctx = self.ctx.as_ref().ok_or_else(|| {
            SyncError::InvalidState("work-log pass without a link context".into())
        })?;
        if !self.deletion_feed && !self.assume_empty {
            let listed = match self.listed.take() {
                Some(h) => h
                    .await
                    .map_err(|e| SyncError::Queue(format!("work-log id listing: {e}")))??,
                // Resumed after the pages: list now.
                None => {
                    list_project_logs(
                        engine.clone(),
                        ws.to_owned(),
                        project.to_owned(),
                        self.seen.prefix.clone(),
                    )
                    .await?
                }
            };
            let candidates = listed.not_in(&self.seen);
            drop(listed);
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
            if !self.cx.dry_run && !gone.is_empty() {
                engine.store.delete_batch::<WorkLog>(ws, &gone).await?;
            }
            run.counts.deleted += gone.len() as u64;
        }
        if !self.cx.dry_run {
            sync_assignments(engine, ws, provider, ctx, &self.progress.spans).await?;
            let mut link = ctx.link.clone();
            link.missing_people = self.progress.missing.iter().cloned().collect();
            link.last_run_id = Some(run.id.clone());
            engine.store.upsert(ws, &link).await?;
        }
        add_problems(run, &self.progress, ctx.project.name.as_str());
        Ok(())
    }
}

#[async_trait]
impl KindPass for WorkLogsPass {
    async fn step(&mut self, run: &mut SyncRun, may_prefetch: bool) -> Result<Step, SyncError> {
        if self.ctx.is_none() {
            return Ok(Step::Done);
        }
        if self.cx.mode == RunMode::Wipe && !self.progress.wiped {
            let wrote = self.wipe(run).await?;
            return Ok(Step::Progress { wrote });
        }
        if self.pages_left() {
            let wrote = self.page(run, may_prefetch).await?;
            return Ok(Step::Progress { wrote });
        }
        self.reconcile(run).await?;
        Ok(Step::Done)
    }

    async fn checkpoint(&mut self) -> Result<serde_json::Value, SyncError> {
        if !self.unsaved.is_empty() {
            let chunk = RunSeen {
                run_id: self.cx.run_id.clone(),
                n: self.progress.seen_chunks,
                ids: std::mem::take(&mut self.unsaved),
                expires_at: self.engine.clock.now() + Duration::days(7),
            };
            self.engine.store.put(&self.cx.ws, &chunk).await?;
            self.progress.seen_chunks += 1;
        }
        serde_json::to_value(&self.progress)
            .map_err(|e| SyncError::InvalidState(format!("work-log checkpoint: {e}")))
    }

    fn missing_people(&self) -> Vec<MissingPerson> {
        self.progress.missing.iter().cloned().collect()
    }
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
            managed_by: Default::default(),
        };
        engine.store.upsert(ws, &a).await?;
    }
    Ok(())
}

impl Engine {
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
            active: true,
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
            deleted: false,
            task_id: None,
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
    fn windows_are_cut_to_the_declared_maximum_and_cover_every_day_once() {
        let w = DateWindow {
            from: d("2026-01-01"),
            to: d("2026-03-11"),
        };
        let parts = split_window(w, Some(31));
        assert_eq!(
            parts
                .iter()
                .map(|p| (p.from.to_string(), p.to.to_string()))
                .collect::<Vec<_>>(),
            [
                ("2026-01-01".into(), "2026-01-31".into()),
                ("2026-02-01".into(), "2026-03-03".into()),
                ("2026-03-04".into(), "2026-03-11".into()),
            ] as [(String, String); 3]
        );
        assert_eq!(split_window(w, None), vec![w]);
        let day = DateWindow {
            from: d("2026-05-05"),
            to: d("2026-05-05"),
        };
        assert_eq!(split_window(day, Some(31)), vec![day]);
    }

    #[test]
    fn a_deletion_feed_entry_deletes_the_synced_copy_and_nothing_else() {
        let c = ctx(false);
        let first = plan_page(
            &c,
            &[entry("1", "u1", "2026-02-01", 60, false)],
            &HashMap::new(),
        );
        let (log, v) = first.writes[0].clone();
        let existing = [(log.id.to_string(), (log.clone(), v))]
            .into_iter()
            .collect();
        let mut gone = entry("1", "u1", "2026-02-01", 60, false);
        gone.deleted = true;
        let mut never_synced = entry("2", "u1", "2026-02-01", 60, false);
        never_synced.deleted = true;
        let p = plan_page(&c, &[gone, never_synced], &existing);
        assert_eq!(p.deletes, vec![log.id.to_string()]);
        assert!(p.writes.is_empty() && p.seen.is_empty());
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
    fn id_sets_hold_numeric_remote_ids_as_numbers_and_everything_else_exactly() {
        let prefix = link_prefix("harvest", "p1");
        let mut set = IdSet::new(prefix.clone());
        let ids = [
            work_log_id("harvest", "p1", "2400000000001").to_string(),
            work_log_id("harvest", "p1", "0").to_string(),
            format!("{prefix}007"),
            format!("{prefix}99999999999999999999999"),
            work_log_id("harvest", "p1", "a/b#c").to_string(),
            work_log_id("hubstaff", "p1", "5").to_string(),
            "0190aaaa-host-log".to_string(),
        ];
        for id in &ids {
            set.insert(id);
        }
        assert_eq!((set.nums.len(), set.other.len()), (2, 5));
        for id in &ids {
            assert!(set.contains(id), "{id}");
        }
        assert!(!set.contains(&format!("{prefix}7")), "007 is not 7");
        assert!(!set.contains(work_log_id("harvest", "p1", "2400000000002").as_str()));
        let mut seen = IdSet::new(prefix.clone());
        seen.insert(&ids[0]);
        seen.insert(&ids[2]);
        let mut rest = set.not_in(&seen);
        rest.sort();
        let mut want: Vec<String> = ids
            .iter()
            .filter(|i| **i != ids[0] && **i != ids[2])
            .cloned()
            .collect();
        want.sort();
        assert_eq!(rest, want);
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

//! The tasks-out, time-in and time-out kinds of a two-way provider, through a test provider
//! defined here: an in-memory remote site with tasks, allocations, registrations and a change
//! log stamped by the test clock, that remote users can write to directly.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use common::{fields, world};
use hourbridge_domain::{
    ChangeDraft, ChangeOp, Clock, HostKind, ManagedBy, ManualClock, Person, PersonLink, Project,
    ProjectLink, ProviderId, RecordId, Role, SyncRun, Task, WorkLog,
};
use hourbridge_provider_api::{
    AccountInfo, AuthKind, Capabilities, ChangeWindow, CredentialField, Directory, OutboundTask,
    OutboundTime, ProjectLinks, Provider, ProviderDescriptor, ProviderError, ProviderErrorKind,
    ProviderSession, RemotePage, RemotePerson, RemoteProject, RemoteUser, RemoteWorkLog, Schedule,
    TaskSink, TimeChange, TimeChangeFeed, TimeOutRules, TimeSink, TimeTwoWay,
};
use hourbridge_store::{Condition, TransactItem};
use hourbridge_sync::runs::{Outcome, RunMode};
use hourbridge_sync::{Engine, RunScope, SyncJob, SyncSettings};

const WS: &str = "acme";
const P: &str = "twoway";
/// The remote project the host project `web` is linked to.
const REMOTE_PROJECT: &str = "612";
/// Ada's remote user.
const ADA: &str = "47";
/// A remote user nobody is linked to.
const STRANGER: &str = "99";

const FIELDS: &[CredentialField] = &[CredentialField {
    name: "password",
    label: "Password",
    secret: true,
    required: true,
}];

#[derive(Debug, Clone, PartialEq)]
struct RemoteTask {
    project: String,
    name: String,
    active: bool,
    key: String,
}

#[derive(Debug, Clone, PartialEq)]
struct Unit {
    project: String,
    task: String,
    person: String,
    date: NaiveDate,
    minutes: u32,
    note: String,
}

#[derive(Debug, Clone)]
enum Row {
    Upsert(String, Unit),
    Delete(String),
}

#[derive(Default)]
struct Site {
    tasks: BTreeMap<String, RemoteTask>,
    allocations: Vec<(String, String)>,
    units: BTreeMap<String, Unit>,
    log: Vec<(DateTime<Utc>, Row)>,
    /// Remote users whose week is closed: their registrations are refused per item.
    closed: Vec<String>,
}

struct TwoWay {
    d: ProviderDescriptor,
    site: Mutex<Site>,
    clock: Mutex<Option<Arc<ManualClock>>>,
    writes: AtomicUsize,
    next: AtomicUsize,
    /// Rows the engine asked to complete (each costs the provider a read).
    completed: AtomicUsize,
}

fn err(kind: ProviderErrorKind, m: &str) -> ProviderError {
    ProviderError::new(P, kind, m)
}

impl TwoWay {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            d: ProviderDescriptor {
                id: P,
                display_name: "Two-way",
                auth: AuthKind::CredentialSet { fields: FIELDS },
                install_role: Role::Admin,
                requires_add_on: false,
                rate_limit: None,
                schedule: Schedule::Every(StdDuration::from_secs(900)),
                capabilities: Capabilities {
                    time_two_way: Some(TimeTwoWay {
                        history_days: 90,
                        overlap: StdDuration::from_secs(600),
                    }),
                    time_out_rules: TimeOutRules {
                        requires_person_link: true,
                        requires_task: true,
                    },
                    tasks_out: true,
                    project_links: Some(ProjectLinks {
                        max_remote_projects: 1,
                        requires_sync_from: false,
                    }),
                    person_links: true,
                    ..Capabilities::default()
                },
            },
            site: Mutex::default(),
            clock: Mutex::default(),
            writes: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            completed: AtomicUsize::new(0),
        })
    }
    fn now(&self) -> DateTime<Utc> {
        self.clock.lock().unwrap().as_ref().expect("clock").now()
    }
    fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
    fn record(&self, site: &mut Site, row: Row) {
        let at = self.now();
        site.log.push((at, row));
    }
    fn units(&self) -> BTreeMap<String, Unit> {
        self.site.lock().unwrap().units.clone()
    }
    fn tasks(&self) -> BTreeMap<String, RemoteTask> {
        self.site.lock().unwrap().tasks.clone()
    }
    fn allocations(&self) -> Vec<(String, String)> {
        self.site.lock().unwrap().allocations.clone()
    }
    /// A remote user registers time (not through the engine).
    fn register(&self, person: &str, task: &str, minutes: u32, note: &str) -> String {
        let id = format!("u{}", self.next.fetch_add(1, Ordering::SeqCst));
        let unit = Unit {
            project: REMOTE_PROJECT.into(),
            task: task.into(),
            person: person.into(),
            date: day(3),
            minutes,
            note: note.into(),
        };
        let mut site = self.site.lock().unwrap();
        site.units.insert(id.clone(), unit.clone());
        self.record(&mut site, Row::Upsert(id.clone(), unit));
        id
    }
    /// A remote user edits a registration.
    fn edit(&self, id: &str, minutes: u32, note: &str) {
        let mut site = self.site.lock().unwrap();
        let unit = site.units.get_mut(id).expect("unit");
        unit.minutes = minutes;
        unit.note = note.into();
        let unit = unit.clone();
        self.record(&mut site, Row::Upsert(id.into(), unit));
    }
    /// A remote user deletes a registration.
    fn delete_unit(&self, id: &str) {
        let mut site = self.site.lock().unwrap();
        site.units.remove(id);
        self.record(&mut site, Row::Delete(id.into()));
    }
}

#[async_trait]
impl Provider for TwoWay {
    fn descriptor(&self) -> &ProviderDescriptor {
        &self.d
    }
    async fn check_credentials(&self, _: &ProviderSession) -> Result<AccountInfo, ProviderError> {
        Ok(AccountInfo {
            account_id: "site".into(),
            account_name: "Site".into(),
            other_accounts: vec![],
            identity: None,
        })
    }
    fn time_sink(&self) -> Option<&dyn TimeSink> {
        Some(self)
    }
    fn time_changes(&self) -> Option<&dyn TimeChangeFeed> {
        Some(self)
    }
    fn task_sink(&self) -> Option<&dyn TaskSink> {
        Some(self)
    }
    fn directory(&self) -> Option<&dyn Directory> {
        Some(self)
    }
}

#[async_trait]
impl Directory for TwoWay {
    async fn list_projects(
        &self,
        _: &ProviderSession,
        _: Option<&str>,
        _: Option<String>,
    ) -> Result<RemotePage<RemoteProject>, ProviderError> {
        Ok(RemotePage {
            items: vec![],
            next: None,
        })
    }
    async fn list_users(
        &self,
        _: &ProviderSession,
        _: Option<String>,
    ) -> Result<RemotePage<RemoteUser>, ProviderError> {
        Ok(RemotePage {
            items: vec![],
            next: None,
        })
    }
}

#[async_trait]
impl TaskSink for TwoWay {
    async fn create_task(
        &self,
        _: &ProviderSession,
        task: &OutboundTask,
        key: &str,
    ) -> Result<String, ProviderError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let id = format!("g{}", self.next.fetch_add(1, Ordering::SeqCst));
        self.site.lock().unwrap().tasks.insert(
            id.clone(),
            RemoteTask {
                project: task.remote_project_id.clone(),
                name: task.name.clone(),
                active: task.active,
                key: key.into(),
            },
        );
        Ok(id)
    }
    async fn find_task(
        &self,
        _: &ProviderSession,
        _: &str,
        key: &str,
    ) -> Result<Option<String>, ProviderError> {
        Ok(self
            .site
            .lock()
            .unwrap()
            .tasks
            .iter()
            .find(|(_, t)| t.key == key)
            .map(|(id, _)| id.clone()))
    }
    async fn update_task(
        &self,
        _: &ProviderSession,
        id: &str,
        task: &OutboundTask,
    ) -> Result<(), ProviderError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut site = self.site.lock().unwrap();
        let t = site
            .tasks
            .get_mut(id)
            .ok_or_else(|| err(ProviderErrorKind::NotFound, "no task"))?;
        t.name = task.name.clone();
        t.active = task.active;
        Ok(())
    }
    async fn allocate(
        &self,
        _: &ProviderSession,
        task: &str,
        person: &str,
    ) -> Result<(), ProviderError> {
        // Deliberately not idempotent: the engine must allocate once.
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.site
            .lock()
            .unwrap()
            .allocations
            .push((task.into(), person.into()));
        Ok(())
    }
}

fn unit_of(time: &OutboundTime) -> Result<Unit, ProviderError> {
    Ok(Unit {
        project: time.remote_project_id.clone(),
        task: time
            .remote_task_id
            .clone()
            .ok_or_else(|| err(ProviderErrorKind::Rejected, "a task is required"))?,
        person: time.remote_person_id.clone(),
        date: time.date,
        minutes: time.minutes,
        note: time.note.clone(),
    })
}

#[async_trait]
impl TimeSink for TwoWay {
    async fn create(
        &self,
        _: &ProviderSession,
        time: &OutboundTime,
        key: &str,
    ) -> Result<String, ProviderError> {
        let unit = unit_of(time)?;
        let mut site = self.site.lock().unwrap();
        if site.closed.contains(&unit.person) {
            return Err(err(ProviderErrorKind::Fault, "the week is closed")
                .with_code("registration_locked"));
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        let id = format!("w-{key}");
        site.units.insert(id.clone(), unit.clone());
        self.record(&mut site, Row::Upsert(id.clone(), unit));
        Ok(id)
    }
    async fn update(
        &self,
        _: &ProviderSession,
        id: &str,
        time: &OutboundTime,
    ) -> Result<(), ProviderError> {
        let unit = unit_of(time)?;
        let mut site = self.site.lock().unwrap();
        if site.closed.contains(&unit.person) {
            return Err(err(ProviderErrorKind::Fault, "the week is closed")
                .with_code("registration_locked"));
        }
        if !site.units.contains_key(id) {
            return Err(err(ProviderErrorKind::NotFound, "no such registration"));
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        site.units.insert(id.into(), unit.clone());
        self.record(&mut site, Row::Upsert(id.into(), unit));
        Ok(())
    }
    async fn delete(&self, _: &ProviderSession, id: &str) -> Result<(), ProviderError> {
        let mut site = self.site.lock().unwrap();
        if site.units.remove(id).is_some() {
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.record(&mut site, Row::Delete(id.into()));
        }
        Ok(())
    }
    async fn find(
        &self,
        _: &ProviderSession,
        _: &OutboundTime,
        key: &str,
    ) -> Result<Option<String>, ProviderError> {
        let id = format!("w-{key}");
        Ok(self
            .site
            .lock()
            .unwrap()
            .units
            .contains_key(&id)
            .then_some(id))
    }
}

#[async_trait]
impl TimeChangeFeed for TwoWay {
    async fn changes(
        &self,
        _: &ProviderSession,
        window: ChangeWindow,
        page: Option<String>,
    ) -> Result<RemotePage<TimeChange>, ProviderError> {
        // Two rows a page, so the engine pages.
        let skip: usize = page.as_deref().unwrap_or("0").parse().unwrap_or(0);
        let site = self.site.lock().unwrap();
        let rows: Vec<_> = site
            .log
            .iter()
            .filter(|(at, _)| *at >= window.since && *at < window.until)
            .collect();
        let items = rows
            .iter()
            .skip(skip)
            .take(2)
            .map(|(at, row)| match row {
                Row::Upsert(id, u) => TimeChange::Upserted(RemoteWorkLog {
                    id: id.clone(),
                    project_id: u.project.clone(),
                    person: RemotePerson {
                        id: u.person.clone(),
                        name: format!("user {}", u.person),
                        email: Some(format!("User{}@Site.Test", u.person)),
                    },
                    date: u.date,
                    minutes: u.minutes,
                    // Like TimeLog's rows: no note; `complete` reads it.
                    note: String::new(),
                    running: false,
                    updated_at: Some(*at),
                    deleted: false,
                    task_id: Some(u.task.clone()),
                }),
                Row::Delete(id) => TimeChange::Deleted {
                    id: id.clone(),
                    at: Some(*at),
                },
            })
            .collect();
        let next = (rows.len() > skip + 2).then(|| (skip + 2).to_string());
        Ok(RemotePage { items, next })
    }

    async fn complete(
        &self,
        _: &ProviderSession,
        logs: &mut [RemoteWorkLog],
    ) -> Result<(), ProviderError> {
        let site = self.site.lock().unwrap();
        for l in logs.iter_mut() {
            self.completed.fetch_add(1, Ordering::SeqCst);
            // The note as of that change: the last logged row of the record at its time.
            l.note = site
                .log
                .iter()
                .rev()
                .find_map(|(at, row)| match row {
                    Row::Upsert(id, u) if *id == l.id && Some(*at) <= l.updated_at => {
                        Some(u.note.clone())
                    }
                    _ => None,
                })
                .unwrap_or_default();
        }
        Ok(())
    }
}

fn id(s: &str) -> RecordId {
    RecordId::parse(s).unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
}

fn pid() -> ProviderId {
    ProviderId::parse(P).unwrap()
}

async fn setup() -> (common::World, Arc<TwoWay>) {
    let p = TwoWay::new();
    let w = world(vec![p.clone()], SyncSettings::default());
    *p.clock.lock().unwrap() = Some(w.clock.clone());
    w.engine
        .connect(WS, &id("olga"), P, fields(&[("password", "pw")]))
        .await
        .expect("connect");
    let s = &w.engine.store;
    s.insert(
        WS,
        &Project {
            id: id("web"),
            name: "Web".into(),
            parent_id: None,
            customer_id: None,
            start_date: None,
            end_date: None,
            managed_by: ManagedBy::Local,
            active: true,
        },
    )
    .await
    .unwrap();
    s.insert(
        WS,
        &ProjectLink {
            project_id: id("web"),
            provider: pid(),
            remote_project_ids: vec![REMOTE_PROJECT.into()],
            sync_from: None,
            prevent_new_assignments: false,
            trim_assignments: false,
            last_run_id: None,
            missing_people: vec![],
        },
    )
    .await
    .unwrap();
    for person in ["ada", "finn"] {
        s.insert(
            WS,
            &Person {
                id: id(person),
                name: person.into(),
                email: format!("{person}@acme.test"),
                role: Role::Member,
            },
        )
        .await
        .unwrap();
    }
    s.insert(
        WS,
        &PersonLink {
            person_id: id("ada"),
            provider: pid(),
            remote_person_id: ADA.into(),
        },
    )
    .await
    .unwrap();
    (w, p)
}

fn task(tid: &str, name: &str, assignees: &[&str], active: bool) -> Task {
    Task {
        id: id(tid),
        project_id: id("web"),
        name: name.into(),
        managed_by: ManagedBy::Local,
        assignee_ids: assignees.iter().map(|a| id(a)).collect(),
        active,
    }
}

fn log(
    lid: &str,
    person: &str,
    task: &str,
    minutes: u32,
    note: &str,
    at: DateTime<Utc>,
) -> WorkLog {
    WorkLog {
        id: id(lid),
        person_id: id(person),
        project_id: id("web"),
        task_id: Some(id(task)),
        date: day(2),
        minutes,
        note: note.into(),
        source: None,
        updated_at: Some(at),
    }
}

/// A host write as the API makes it: the record and its change-feed entry in one transaction.
async fn write<E: hourbridge_store::Entity>(
    e: &Engine,
    kind: HostKind,
    record_id: &str,
    record: Option<&E>,
) {
    let existing = e.store.get::<E>(WS, record_id).await.unwrap();
    let cond = existing
        .as_ref()
        .map_or(Condition::Absent, |(_, v)| Condition::Version(*v));
    let op = match (&existing, record) {
        (_, None) => ChangeOp::Deleted,
        (None, Some(_)) => ChangeOp::Created,
        (Some(_), Some(_)) => ChangeOp::Updated,
    };
    let item = match record {
        Some(r) => TransactItem::put_entity(WS, r, cond).unwrap(),
        None => TransactItem::delete_entity::<E>(WS, record_id, cond),
    };
    e.store
        .commit_with_changes(
            WS,
            vec![item],
            vec![ChangeDraft::new(kind, &id(record_id), &id("web"), op)],
        )
        .await
        .unwrap();
}

async fn run(w: &common::World) -> SyncRun {
    // Each run a little later, as the 15-minute schedule would.
    w.clock.advance(Duration::minutes(15));
    let e = &w.engine;
    let r = e
        .start_run(WS, P, RunScope::Connection, RunMode::Refetch)
        .await
        .expect("start");
    let job = SyncJob {
        workspace_id: WS.into(),
        provider: P.into(),
        run_id: r.id.to_string(),
    };
    let out = e.execute(&job, None).await.expect("execute");
    assert!(matches!(out, Outcome::Finished(_)), "{out:?}");
    e.run(WS, r.id.as_str()).await.unwrap().unwrap()
}

async fn host_logs(e: &Engine) -> Vec<WorkLog> {
    let q = e
        .store
        .query::<WorkLog>(WS, hourbridge_store::IndexSel::Index1("web".into()), 1000);
    e.store.list_all::<WorkLog>(q).await.unwrap()
}

#[tokio::test]
async fn host_tasks_are_created_once_renamed_deactivated_and_linked_assignees_allocated_once() {
    let (w, p) = setup().await;
    let e = &w.engine;
    write(
        e,
        HostKind::Task,
        "t1",
        Some(&task("t1", "Design", &["ada", "finn"], true)),
    )
    .await;
    let r = run(&w).await;
    assert_eq!(r.tasks_pushed.created, 1, "{r:?}");
    let tasks = p.tasks();
    assert_eq!(tasks.len(), 1);
    let (remote, t) = tasks.iter().next().unwrap();
    assert_eq!(
        (t.name.as_str(), t.key.as_str(), t.active),
        ("Design", "t1", true)
    );
    // Ada is linked and allocated; Finn has no link.
    assert_eq!(p.allocations(), vec![(remote.clone(), ADA.to_owned())]);

    let writes = p.writes();
    let r = run(&w).await;
    assert_eq!(
        p.writes(),
        writes,
        "an unchanged cycle writes nothing: {r:?}"
    );
    assert_eq!(p.allocations().len(), 1, "allocated once");

    write(
        e,
        HostKind::Task,
        "t1",
        Some(&task("t1", "Design v2", &["ada"], true)),
    )
    .await;
    run(&w).await;
    assert_eq!(p.tasks()[remote].name, "Design v2");
    assert_eq!(
        p.allocations().len(),
        1,
        "re-assignment allocates no second time"
    );

    write::<Task>(e, HostKind::Task, "t1", None).await;
    run(&w).await;
    let t = &p.tasks()[remote];
    assert!(
        !t.active,
        "a deleted host task is set inactive, not deleted: {t:?}"
    );
    assert_eq!(p.tasks().len(), 1);
}

#[tokio::test]
async fn host_logs_reach_the_remote_once_and_their_edits_and_deletions_follow() {
    let (w, p) = setup().await;
    let e = &w.engine;
    write(
        e,
        HostKind::Task,
        "t1",
        Some(&task("t1", "Design", &["ada"], true)),
    )
    .await;
    let now = w.clock.now();
    write(
        e,
        HostKind::WorkLog,
        "l1",
        Some(&log("l1", "ada", "t1", 90, "sketch", now)),
    )
    .await;
    write(
        e,
        HostKind::WorkLog,
        "l2",
        Some(&log("l2", "ada", "t1", 30, "call", now)),
    )
    .await;
    // Finn is not linked: reported, not pushed.
    write(
        e,
        HostKind::WorkLog,
        "l3",
        Some(&log("l3", "finn", "t1", 15, "x", now)),
    )
    .await;
    let r = run(&w).await;
    assert_eq!(r.counts.created, 2, "{r:?}");
    assert!(
        r.problems.iter().any(|pr| pr.code == "person_not_linked"),
        "{r:?}"
    );
    assert_eq!(p.units().len(), 2);

    // The next cycle reads our own two creations back: they change nothing, and cost no
    // request to complete them.
    let writes = p.writes();
    let completed = p.completed.load(Ordering::SeqCst);
    let r = run(&w).await;
    assert_eq!(
        p.completed.load(Ordering::SeqCst),
        completed,
        "echoes are not completed"
    );
    assert_eq!(
        (r.counts.created, r.counts.updated, r.counts.deleted),
        (0, 0, 0),
        "{r:?}"
    );
    assert_eq!(p.writes(), writes);
    assert_eq!(
        host_logs(e).await.len(),
        3,
        "no echo duplicates in the host"
    );

    let later = w.clock.now();
    write(
        e,
        HostKind::WorkLog,
        "l1",
        Some(&log("l1", "ada", "t1", 120, "sketch+", later)),
    )
    .await;
    write::<WorkLog>(e, HostKind::WorkLog, "l2", None).await;
    run(&w).await;
    let units = p.units();
    assert_eq!(units.len(), 1);
    let u = units.values().next().unwrap();
    assert_eq!((u.minutes, u.note.as_str()), (120, "sketch+"));
    let r = run(&w).await;
    assert_eq!(
        host_logs(e).await.len(),
        2,
        "the echo of a delete deletes nothing more: {r:?}"
    );
}

#[tokio::test]
async fn work_registered_edited_and_deleted_remotely_reaches_the_host() {
    let (w, p) = setup().await;
    let e = &w.engine;
    write(
        e,
        HostKind::Task,
        "t1",
        Some(&task("t1", "Design", &["ada"], true)),
    )
    .await;
    run(&w).await;
    let remote_task = p.tasks().keys().next().unwrap().clone();
    w.clock.advance(Duration::minutes(1));
    let u = p.register(ADA, &remote_task, 45, "remote work");
    let other = p.register(ADA, "their-own-task", 10, "on a task we did not push");
    let r = run(&w).await;
    assert_eq!(r.counts.created, 2, "{r:?}");
    let logs = host_logs(e).await;
    let l = logs
        .iter()
        .find(|l| l.source.as_ref().is_some_and(|s| s.remote_id == u))
        .expect("imported");
    assert_eq!(
        (l.person_id.as_str(), l.minutes, l.note.as_str()),
        ("ada", 45, "remote work")
    );
    assert_eq!(l.task_id.as_ref().map(|t| t.as_str()), Some("t1"));
    let o = logs
        .iter()
        .find(|l| l.source.as_ref().is_some_and(|s| s.remote_id == other))
        .expect("imported without a host task");
    assert_eq!(o.task_id, None);
    // The daily reconciliation of time out looks at every synced log, this one included: a
    // log it may not push (no host task) is left alone in the provider, never deleted there.
    w.clock.advance(Duration::hours(25));
    run(&w).await;
    assert!(p.units().contains_key(&other), "kept remotely");
    let writes = p.writes();

    w.clock.advance(Duration::minutes(1));
    p.edit(&u, 50, "remote work, more");
    let r = run(&w).await;
    assert_eq!(r.counts.updated, 1, "{r:?}");
    assert_eq!(
        p.writes(),
        writes,
        "applying a remote change writes nothing back"
    );
    let l = host_logs(e)
        .await
        .into_iter()
        .find(|l| l.source.as_ref().is_some_and(|s| s.remote_id == u))
        .unwrap();
    assert_eq!((l.minutes, l.note.as_str()), (50, "remote work, more"));

    w.clock.advance(Duration::minutes(1));
    p.delete_unit(&u);
    let r = run(&w).await;
    assert_eq!(r.counts.deleted, 1, "{r:?}");
    assert_eq!(host_logs(e).await.len(), 1);

    // A stranger's work is reported, not dropped silently.
    w.clock.advance(Duration::minutes(1));
    p.register(STRANGER, &remote_task, 5, "who?");
    let r = run(&w).await;
    assert!(
        r.problems.iter().any(|pr| pr.code == "person_not_linked"),
        "{r:?}"
    );
    let link = e
        .store
        .get::<ProjectLink>(WS, &format!("web.{P}"))
        .await
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(link.missing_people.len(), 1, "{link:?}");
    let missing = |e: &Engine| {
        let e = e.clone();
        async move {
            e.store
                .get::<ProjectLink>(WS, &format!("web.{P}"))
                .await
                .unwrap()
                .unwrap()
                .0
                .missing_people
        }
    };
    // Still listed on the next cycle, which reads only newer changes.
    run(&w).await;
    assert_eq!(missing(e).await.len(), 1);
    // Once linked, their next change comes in and they are no longer missing.
    e.store
        .insert(
            WS,
            &PersonLink {
                person_id: id("finn"),
                provider: pid(),
                remote_person_id: STRANGER.into(),
            },
        )
        .await
        .unwrap();
    w.clock.advance(Duration::minutes(1));
    let theirs = p.register(STRANGER, &remote_task, 10, "finn's");
    let r = run(&w).await;
    assert!(
        host_logs(e)
            .await
            .iter()
            .any(|l| l.source.as_ref().is_some_and(|s| s.remote_id == theirs)),
        "{r:?}"
    );
    assert!(missing(e).await.is_empty());
}

#[tokio::test]
async fn a_change_on_both_sides_goes_to_the_later_one_and_the_run_lists_the_overwritten_value() {
    let (w, p) = setup().await;
    let e = &w.engine;
    write(
        e,
        HostKind::Task,
        "t1",
        Some(&task("t1", "Design", &["ada"], true)),
    )
    .await;
    let t0 = w.clock.now();
    write(
        e,
        HostKind::WorkLog,
        "l1",
        Some(&log("l1", "ada", "t1", 60, "v1", t0)),
    )
    .await;
    run(&w).await;
    let remote = p.units().keys().next().unwrap().clone();

    // Remote first, host later: the host wins and is pushed.
    w.clock.advance(Duration::minutes(1));
    p.edit(&remote, 70, "remote v2");
    w.clock.advance(Duration::minutes(1));
    let host_at = w.clock.now();
    write(
        e,
        HostKind::WorkLog,
        "l1",
        Some(&log("l1", "ada", "t1", 80, "host v2", host_at)),
    )
    .await;
    let r = run(&w).await;
    let conflict = r
        .problems
        .iter()
        .find(|pr| pr.code == "conflict_host_won")
        .unwrap_or_else(|| panic!("reported: {r:?}"));
    assert!(conflict.message.contains("remote v2"), "{conflict:?}");
    assert_eq!(p.units()[&remote].minutes, 80);
    assert_eq!(host_logs(e).await[0].minutes, 80);

    // Host first, remote later: the remote wins and reaches the host.
    w.clock.advance(Duration::minutes(1));
    let host_at = w.clock.now();
    write(
        e,
        HostKind::WorkLog,
        "l1",
        Some(&log("l1", "ada", "t1", 90, "host v3", host_at)),
    )
    .await;
    w.clock.advance(Duration::minutes(1));
    p.edit(&remote, 95, "remote v3");
    let r = run(&w).await;
    let conflict = r
        .problems
        .iter()
        .find(|pr| pr.code == "conflict_remote_won")
        .unwrap_or_else(|| panic!("reported: {r:?}"));
    assert!(conflict.message.contains("host v3"), "{conflict:?}");
    let l = &host_logs(e).await[0];
    assert_eq!((l.minutes, l.note.as_str()), (95, "remote v3"));
    assert_eq!(
        p.units()[&remote].minutes,
        95,
        "nothing pushed over the winner"
    );
}

#[tokio::test]
async fn a_registration_the_provider_refuses_is_a_problem_and_is_retried_until_it_goes_through() {
    let (w, p) = setup().await;
    let e = &w.engine;
    write(
        e,
        HostKind::Task,
        "t1",
        Some(&task("t1", "Design", &["ada"], true)),
    )
    .await;
    p.site.lock().unwrap().closed.push(ADA.into());
    let now = w.clock.now();
    write(
        e,
        HostKind::WorkLog,
        "l1",
        Some(&log("l1", "ada", "t1", 60, "late", now)),
    )
    .await;
    let r = run(&w).await;
    assert!(
        r.problems.iter().any(|pr| pr.code == "registration_locked"),
        "{r:?}"
    );
    assert!(p.units().is_empty());
    assert_eq!(host_logs(e).await[0].minutes, 60, "the host value is kept");

    p.site.lock().unwrap().closed.clear();
    let r = run(&w).await;
    assert_eq!(r.counts.created, 1, "retried without a new edit: {r:?}");
    assert_eq!(p.units().len(), 1);
}

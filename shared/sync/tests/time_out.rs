//! The time-out kind through a test provider defined here: an in-memory time sink that counts
//! writes, adopts an entry it already holds for an idempotency key, can be told to apply a
//! create and then lose the answer, and refuses records on a "closed" remote project.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::NaiveDate;
use common::{fields, world};
use hourbridge_domain::{
    ChangeDraft, ChangeOp, HostKind, ManagedBy, Person, PersonLink, Project, ProviderId, RecordId,
    RemoteMapping, Role, SyncRun, WorkLog,
};
use hourbridge_provider_api::{
    AccountInfo, AuthKind, Capabilities, CredentialField, OutboundTime, Provider,
    ProviderDescriptor, ProviderError, ProviderErrorKind, ProviderSession, Schedule, TimeSink,
};
use hourbridge_store::{Condition, TransactItem};
use hourbridge_sync::runs::{Outcome, RunMode};
use hourbridge_sync::{Engine, RunScope, SyncJob, SyncSettings};

const WS: &str = "acme";
const P: &str = "sink";

const FIELDS: &[CredentialField] = &[CredentialField {
    name: "token",
    label: "Token",
    secret: true,
    required: true,
}];

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    time: OutboundTime,
    key: String,
}

#[derive(Default)]
struct Sink {
    entries: Mutex<BTreeMap<String, Entry>>,
    writes: AtomicUsize,
    next: AtomicUsize,
    lose_next_answer: AtomicBool,
}

struct TestProvider {
    d: ProviderDescriptor,
    sink: Sink,
}

impl TestProvider {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            d: ProviderDescriptor {
                id: P,
                display_name: P,
                auth: AuthKind::CredentialSet { fields: FIELDS },
                install_role: Role::Admin,
                requires_add_on: false,
                rate_limit: None,
                schedule: Schedule::Every(StdDuration::from_secs(86_400)),
                capabilities: Capabilities {
                    time_out: true,
                    ..Capabilities::default()
                },
            },
            sink: Sink::default(),
        })
    }
    fn writes(&self) -> usize {
        self.sink.writes.load(Ordering::SeqCst)
    }
    fn entries(&self) -> Vec<Entry> {
        self.sink
            .entries
            .lock()
            .unwrap()
            .values()
            .cloned()
            .collect()
    }
}

fn err(kind: ProviderErrorKind, m: &str) -> ProviderError {
    ProviderError::new(P, kind, m)
}

#[async_trait]
impl Provider for TestProvider {
    fn descriptor(&self) -> &ProviderDescriptor {
        &self.d
    }
    async fn check_credentials(&self, _: &ProviderSession) -> Result<AccountInfo, ProviderError> {
        Ok(AccountInfo {
            account_id: "a".into(),
            account_name: "A".into(),
            other_accounts: vec![],
            identity: None,
        })
    }
    fn time_sink(&self) -> Option<&dyn TimeSink> {
        Some(self)
    }
}

#[async_trait]
impl TimeSink for TestProvider {
    async fn create(
        &self,
        _: &ProviderSession,
        time: &OutboundTime,
        key: &str,
    ) -> Result<String, ProviderError> {
        let mut entries = self.sink.entries.lock().unwrap();
        // Adopt what an earlier attempt with the same key created.
        if let Some((id, _)) = entries.iter().find(|(_, e)| e.key == key) {
            return Ok(id.clone());
        }
        if time.remote_project_id == "closed" {
            return Err(err(ProviderErrorKind::Unsupported, "timesheets disabled"));
        }
        self.sink.writes.fetch_add(1, Ordering::SeqCst);
        let id = format!("r{}", self.sink.next.fetch_add(1, Ordering::SeqCst) + 1);
        entries.insert(
            id.clone(),
            Entry {
                time: time.clone(),
                key: key.to_owned(),
            },
        );
        if self.sink.lose_next_answer.swap(false, Ordering::SeqCst) {
            return Err(err(ProviderErrorKind::OutcomeUnknown, "answer lost"));
        }
        Ok(id)
    }
    async fn update(
        &self,
        _: &ProviderSession,
        remote_id: &str,
        time: &OutboundTime,
    ) -> Result<(), ProviderError> {
        self.sink.writes.fetch_add(1, Ordering::SeqCst);
        match self.sink.entries.lock().unwrap().get_mut(remote_id) {
            Some(e) => {
                e.time = time.clone();
                Ok(())
            }
            None => Err(err(ProviderErrorKind::NotFound, "no such entry")),
        }
    }
    async fn delete(&self, _: &ProviderSession, remote_id: &str) -> Result<(), ProviderError> {
        self.sink.writes.fetch_add(1, Ordering::SeqCst);
        self.sink.entries.lock().unwrap().remove(remote_id);
        Ok(())
    }
}

fn id(s: &str) -> RecordId {
    RecordId::parse(s).unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
}

async fn setup() -> (common::World, Arc<TestProvider>) {
    let p = TestProvider::new();
    let w = world(vec![p.clone()], SyncSettings::default());
    w.engine
        .connect(WS, &id("olga"), P, fields(&[("token", "t")]))
        .await
        .expect("connect");
    let s = &w.engine.store;
    for (pid, remote) in [("bridge", "100"), ("closedp", "closed")] {
        s.insert(
            WS,
            &Project {
                id: id(pid),
                name: pid.into(),
                parent_id: None,
                customer_id: None,
                start_date: None,
                end_date: None,
                managed_by: ManagedBy::Provider(ProviderId::parse(P).unwrap()),
                active: true,
            },
        )
        .await
        .unwrap();
        s.insert(WS, &mapping("project", remote, pid))
            .await
            .unwrap();
    }
    s.insert(WS, &mapping("task", "200", "todo-a"))
        .await
        .unwrap();
    s.insert(WS, &mapping("task", "201", "todo-b"))
        .await
        .unwrap();
    for (pid, email) in [("ada", "ada@acme.test"), ("finn", "finn@acme.test")] {
        s.insert(
            WS,
            &Person {
                id: id(pid),
                name: pid.into(),
                email: email.into(),
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
            provider: ProviderId::parse(P).unwrap(),
            remote_person_id: "9001".into(),
        },
    )
    .await
    .unwrap();
    (w, p)
}

fn mapping(entity: &str, remote: &str, local: &str) -> RemoteMapping {
    RemoteMapping {
        provider: ProviderId::parse(P).unwrap(),
        entity: entity.into(),
        remote_id: remote.into(),
        local_id: id(local),
        fingerprint: String::new(),
    }
}

fn log(lid: &str, person: &str, project: &str, task: Option<&str>, minutes: u32) -> WorkLog {
    WorkLog {
        id: id(lid),
        person_id: id(person),
        project_id: id(project),
        task_id: task.map(id),
        date: day(2),
        minutes,
        note: "work".into(),
        source: None,
        updated_at: None,
    }
}

/// A host write as the API makes it: the log and its change-feed entry in one transaction.
async fn write(e: &Engine, l: &WorkLog, op: ChangeOp) {
    let existing = e.store.get::<WorkLog>(WS, l.id.as_str()).await.unwrap();
    let cond = existing.map_or(Condition::Absent, |(_, v)| Condition::Version(v));
    let item = if op == ChangeOp::Deleted {
        TransactItem::delete_entity::<WorkLog>(WS, l.id.as_str(), cond)
    } else {
        TransactItem::put_entity(WS, l, cond).unwrap()
    };
    e.store
        .commit_with_changes(
            WS,
            vec![item],
            vec![ChangeDraft::new(
                HostKind::WorkLog,
                &l.id,
                &l.project_id,
                op,
            )],
        )
        .await
        .unwrap();
}

async fn run(e: &Engine) -> SyncRun {
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

#[tokio::test]
async fn logs_are_pushed_once_edited_moved_deleted_and_an_unchanged_rerun_writes_nothing() {
    let (w, p) = setup().await;
    let e = &w.engine;
    write(
        e,
        &log("l1", "ada", "bridge", Some("todo-a"), 20),
        ChangeOp::Created,
    )
    .await;
    write(e, &log("l2", "ada", "bridge", None, 60), ChangeOp::Created).await;
    let r = run(e).await;
    assert_eq!(r.counts.created, 2, "{r:?}");
    assert_eq!(p.writes(), 2);
    let entries = p.entries();
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|x| x.time.remote_person_id == "9001"));
    assert!(
        entries
            .iter()
            .any(|x| x.time.remote_task_id.as_deref() == Some("200"))
    );

    let r = run(e).await;
    assert_eq!((p.writes(), r.counts.created + r.counts.updated), (2, 0));

    write(
        e,
        &log("l1", "ada", "bridge", Some("todo-a"), 45),
        ChangeOp::Updated,
    )
    .await;
    let r = run(e).await;
    assert_eq!((r.counts.updated, p.writes()), (1, 3));
    assert!(p.entries().iter().any(|x| x.time.minutes == 45));

    // A move to another task: deleted there, created here.
    write(
        e,
        &log("l1", "ada", "bridge", Some("todo-b"), 45),
        ChangeOp::Updated,
    )
    .await;
    run(e).await;
    assert_eq!(p.writes(), 5);
    let entries = p.entries();
    assert_eq!(entries.len(), 2);
    assert!(
        entries
            .iter()
            .any(|x| x.time.remote_task_id.as_deref() == Some("201"))
    );
    assert!(
        !entries
            .iter()
            .any(|x| x.time.remote_task_id.as_deref() == Some("200"))
    );

    write(e, &log("l2", "ada", "bridge", None, 60), ChangeOp::Deleted).await;
    let r = run(e).await;
    assert_eq!((r.counts.deleted, p.writes(), p.entries().len()), (1, 6, 1));
    run(e).await;
    assert_eq!(p.writes(), 6, "unchanged re-run makes no provider write");
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_adopted_on_the_next_run() {
    let (w, p) = setup().await;
    let e = &w.engine;
    for n in 0..3 {
        write(
            e,
            &log(&format!("l{n}"), "ada", "bridge", None, 30),
            ChangeOp::Created,
        )
        .await;
    }
    p.sink.lose_next_answer.store(true, Ordering::SeqCst);
    let first = run(e).await;
    assert!(first.failure.is_some(), "{first:?}");
    run(e).await;
    assert_eq!(p.entries().len(), 3, "exactly one remote entry per log");
    run(e).await;
    assert_eq!(p.entries().len(), 3);
}

#[tokio::test]
async fn unmatched_people_are_omitted_and_reported_and_refusals_are_retried() {
    let (w, p) = setup().await;
    let e = &w.engine;
    write(e, &log("l1", "finn", "bridge", None, 30), ChangeOp::Created).await;
    write(e, &log("l2", "ada", "closedp", None, 30), ChangeOp::Created).await;
    let r = run(e).await;
    assert_eq!(p.entries().len(), 1);
    assert_eq!(p.entries()[0].time.remote_person_id, "");
    assert!(
        r.problems
            .iter()
            .any(|x| x.code == "person_not_found" && x.message.contains("finn@acme.test")),
        "{:?}",
        r.problems
    );
    assert!(
        r.problems
            .iter()
            .any(|x| x.code == "push_refused" && x.record == "l2")
    );
    // Retried next run (still refused, still reported), never dropped.
    let r = run(e).await;
    assert!(
        r.problems
            .iter()
            .any(|x| x.code == "push_refused" && x.record == "l2")
    );
}

//! Benchmark (issue 10): TimeLog 15-minute cycles with 50 linked projects and 5,000 changes in
//! each direction, end to end: the real engine and the real TimeLog adapter over HTTP against
//! the in-process TimeLog sandbox, with a SQLite file as the store.
//!
//! `cargo bench -p hourbridge-sync --bench timelog_cycle [-- RPS]`
//!
//! `RPS` is the adapter's pace (`HOURBRIDGE_TIMELOG_REQUESTS_PER_SECOND`, 1 to 50; default 50,
//! the maximum), enforced by the production budget ([`StoreRateBudget`], over the same SQLite
//! file, not counted below). `-- unpaced` uses no budget at all, to see our own cost.
//!
//! Set-up (not measured): 50 host projects, each linked by hand to its own TimeLog project
//! (`TimelogControl::add_project`); 5 host people linked to 5 TimeLog employees; one task per
//! project, assigned to all 5. Engine and sandbox share one clock that the bench moves 15
//! minutes between cycles (as the schedule would), so change windows and the declared overlap
//! behave as in production. Cycles, each one connection run (`RunScope::Connection`, tasks out
//! → time in → time out):
//!
//! - (a) first cycle: 50 tasks created, 250 allocations;
//! - (b) 5,000 host work logs created (written with change-feed entries, spread over the
//!   projects, people and the last four weeks) → 5,000 registrations;
//! - (c) 5,000 remote changes made in TimeLog through the control handle during the 15 minutes
//!   before it (2,500 new registrations, 2,500 edits of registrations from (b)) → pulled;
//! - (d) nothing changed: must write no work log, mapping or task, and nothing to TimeLog.
//!
//! Per cycle it prints the TimeLog requests by operation (the sandbox's own counters), the
//! measured time, what the requests cost at the default 5 requests/s, the store writes by
//! record kind (a wrapper around the backend) split into data and bookkeeping, and the run's
//! counts. It asserts what TimeLog and the host hold after each cycle.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use hourbridge_domain::{
    ChangeDraft, ChangeOp, Clock, HostKind, ManagedBy, PersonLink, ProviderId, RecordId,
    SecretValue, SyncRun, Task, WorkLog,
};
use hourbridge_provider_api::Registry;
use hourbridge_provider_http::ProviderEnv;
use hourbridge_provider_timelog::{
    ALLOW_HTTP_VAR, DEFAULT_REQUESTS_PER_SECOND, INSERT_WORK_BATCH, REQUESTS_PER_SECOND_VAR,
    TimeLog,
};
use hourbridge_sandbox::{Sandbox, Seed, TimelogControl};
use hourbridge_store::{Backend, Condition, IndexSel, Store, TransactItem};
use hourbridge_store_sqlite::SqliteBackend;
use hourbridge_sync::budget::StoreRateBudget;
use hourbridge_sync::runs::{Outcome, RunMode};
use hourbridge_sync::{Engine, RunScope, SyncJob};
use hourbridge_testkit::bench::{Counting, local_project, member, project_link};

const WS: &str = "bench";
const PROVIDER: &str = "timelog";
const PROJECTS: usize = 50;
const PEOPLE: usize = 5;
const CHANGES: usize = 5_000;
/// The schedule: a cycle every 15 minutes.
const QUARTER: chrono::Duration = chrono::Duration::minutes(15);

/// Operations the adapter sends (the sandbox counts requests by operation name).
const OPS: &[&str] = &[
    "GetToken",
    "ValidateCredentials",
    "GetEmployeesRaw",
    "GetProjects",
    "CreateTask",
    "GetTaskByExternalKey",
    "GetTaskById",
    "UpdateTask",
    "ChangeTaskStatus",
    "GetAllocationsToEmployee",
    "AddEmployeeToTask",
    "GetWorkChangesPaged",
    "GetWorkUnitsRaw",
    "InsertWork",
    "UpdateWork",
    "DeleteWork",
];

/// Operations that change TimeLog.
const WRITE_OPS: &[&str] = &[
    "CreateTask",
    "UpdateTask",
    "ChangeTaskStatus",
    "AddEmployeeToTask",
    "InsertWork",
    "UpdateWork",
    "DeleteWork",
];

/// Record kinds that are host data (or the sync's mappings of it): a no-change cycle must
/// write none. Everything else is run bookkeeping (run records, leases, open-run markers,
/// kind states, the connection).
const DATA_KINDS: &[&str] = &[
    "work_log",
    "outbound_mapping",
    "remote_mapping",
    "task",
    "project",
    "project_link",
    "person",
    "person_link",
    "change",
    "change_head",
    "customer",
    "assignment",
    "review_item",
];

/// Wall-clock time plus an offset the bench moves (the schedule's 15 minutes between cycles);
/// the sandbox's clock is moved by the same amount, so both sides agree.
#[derive(Debug, Default)]
struct Shifted(Mutex<chrono::Duration>);

impl Clock for Shifted {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.0.lock().unwrap()
    }
}

struct Clocks {
    host: Arc<Shifted>,
    tl: TimelogControl,
}

impl Clocks {
    fn advance(&self, d: chrono::Duration) {
        *self.host.0.lock().unwrap() += d;
        self.tl.advance_clock(d);
    }
}

fn id(s: &str) -> RecordId {
    RecordId::parse(s).unwrap()
}

fn pid() -> ProviderId {
    ProviderId::parse(PROVIDER).unwrap()
}

/// TimeLog request counts by operation.
fn requests(tl: &TimelogControl) -> (BTreeMap<&'static str, u64>, u64) {
    (
        OPS.iter().map(|op| (*op, tl.request_count(op))).collect(),
        tl.total_request_count(),
    )
}

struct Cycle {
    name: &'static str,
    took: Duration,
    run: SyncRun,
    /// Requests by operation (non-zero only), and in all.
    ops: BTreeMap<&'static str, u64>,
    total: u64,
    writes: BTreeMap<String, u64>,
}

impl Cycle {
    fn remote_writes(&self) -> u64 {
        WRITE_OPS
            .iter()
            .map(|op| self.ops.get(op).copied().unwrap_or(0))
            .sum()
    }
    fn split_writes(&self) -> (BTreeMap<&str, u64>, BTreeMap<&str, u64>) {
        let (mut data, mut books) = (BTreeMap::new(), BTreeMap::new());
        for (k, n) in &self.writes {
            if DATA_KINDS.contains(&k.as_str()) {
                data.insert(k.as_str(), *n);
            } else {
                books.insert(k.as_str(), *n);
            }
        }
        (data, books)
    }
}

async fn cycle(
    name: &'static str,
    engine: &Engine,
    counting: &Counting,
    clocks: &Clocks,
    advance: chrono::Duration,
) -> Cycle {
    // What is left of the schedule's 15 minutes since the previous cycle.
    clocks.advance(advance);
    counting.take();
    let (before, total_before) = requests(&clocks.tl);
    let started = Instant::now();
    let run = engine
        .start_run(WS, PROVIDER, RunScope::Connection, RunMode::Refetch)
        .await
        .expect("start");
    let job = SyncJob {
        workspace_id: WS.into(),
        provider: PROVIDER.into(),
        run_id: run.id.to_string(),
    };
    loop {
        match engine.execute(&job, None).await.expect("execute") {
            Outcome::Finished(hourbridge_domain::RunState::Succeeded) => break,
            Outcome::Paused => continue,
            other => panic!("{name}: {other:?}"),
        }
    }
    let took = started.elapsed();
    let (after, total_after) = requests(&clocks.tl);
    let ops = after
        .iter()
        .map(|(op, n)| (*op, n - before[op]))
        .filter(|(_, n)| *n > 0)
        .collect();
    let run = engine
        .run(WS, run.id.as_str())
        .await
        .expect("run")
        .expect("exists");
    Cycle {
        name,
        took,
        run,
        ops,
        total: total_after - total_before,
        writes: counting.take(),
    }
}

fn report(c: &Cycle, items: usize) {
    let (data, books) = c.split_writes();
    let default_pace = c.total as f64 / f64::from(DEFAULT_REQUESTS_PER_SECOND);
    println!("{}:", c.name);
    println!(
        "  time {:.2} s measured; {} TimeLog requests ({} writes) = {:.0} s at the default {} requests/s",
        c.took.as_secs_f64(),
        c.total,
        c.remote_writes(),
        default_pace,
        DEFAULT_REQUESTS_PER_SECOND
    );
    if items > 0 {
        println!(
            "  per item ({items}): {:.3} requests, {:.2} ms measured, {:.0} ms at the default pace",
            c.total as f64 / items as f64,
            c.took.as_secs_f64() * 1000.0 / items as f64,
            default_pace * 1000.0 / items as f64
        );
    }
    println!("  requests by operation: {:?}", c.ops);
    let named: u64 = c.ops.values().sum();
    if named != c.total {
        println!("  requests not named above: {}", c.total - named);
    }
    let r = &c.run;
    println!(
        "  run counts: created {}, updated {}, deleted {}, unchanged {}, skipped {}; tasks pushed {:?}; problems {}",
        r.counts.created,
        r.counts.updated,
        r.counts.deleted,
        r.counts.unchanged,
        r.counts.skipped,
        r.tasks_pushed,
        r.problems.len()
    );
    println!(
        "  store writes: data {:?} (total {}); bookkeeping {:?}",
        data,
        data.values().sum::<u64>(),
        books
    );
}

fn log_date(today: NaiveDate, i: usize) -> NaiveDate {
    // The last four weeks, yesterday first.
    today - chrono::Duration::days(1 + (i % 28) as i64)
}

/// A host write as the API makes it: records and their change-feed entries in one transaction.
async fn write_host<E: hourbridge_store::Entity>(
    store: &Store,
    kind: HostKind,
    records: &[(E, RecordId)],
) {
    for chunk in records.chunks(40) {
        let mut items = Vec::new();
        let mut drafts = Vec::new();
        for (r, project) in chunk {
            items.push(TransactItem::put_entity(WS, r, Condition::Absent).unwrap());
            drafts.push(ChangeDraft::new(
                kind,
                &id(&r.id()),
                project,
                ChangeOp::Created,
            ));
        }
        store
            .commit_with_changes(WS, items, drafts)
            .await
            .expect("host write");
    }
}

async fn host_logs(store: &Store, projects: &[RecordId]) -> Vec<WorkLog> {
    let mut all = Vec::new();
    for p in projects {
        let q = store.query::<WorkLog>(WS, IndexSel::Index1(p.to_string()), 1000);
        all.extend(store.list_all::<WorkLog>(q).await.unwrap());
    }
    all
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let arg = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let unpaced = arg.as_deref() == Some("unpaced");
    let rps: u32 = arg
        .as_deref()
        .and_then(|a| a.parse().ok())
        .unwrap_or(50)
        .clamp(1, 50);
    let started = Instant::now();

    let sb = Sandbox::start(Seed::Empty).await.expect("sandbox");
    let tl = sb.timelog();
    let host_clock = Arc::new(Shifted::default());
    let clocks = Clocks {
        host: host_clock.clone(),
        tl: tl.clone(),
    };
    let clock: Arc<dyn Clock> = host_clock;

    let dir = tempfile::tempdir().expect("tmp");
    let sqlite: Arc<dyn Backend> =
        Arc::new(SqliteBackend::open(&dir.path().join("bench.db"), clock.clone()).expect("sqlite"));
    // `query_ids` is left to the trait's default here (ids read through `query`), as it was.
    let counting = Arc::new(Counting::ids_through_query(sqlite.clone()));
    let store = Store::new(counting.clone(), clock.clone());
    let rps_text = rps.to_string();
    let mut env = ProviderEnv::for_tests(&[
        (ALLOW_HTTP_VAR, "1"),
        (REQUESTS_PER_SECOND_VAR, rps_text.as_str()),
    ]);
    if !unpaced {
        // The production budget, over the same file but not counted.
        env.budget = Arc::new(StoreRateBudget::new(
            Store::new(sqlite, clock.clone()),
            env.http.max_retry_wait,
        ));
    }
    let mut registry = Registry::new();
    registry
        .register(Arc::new(TimeLog::from_env(&env).expect("adapter")))
        .expect("registry");
    let engine = support::engine(store.clone(), registry, clock.clone());

    // TimeLog: 50 projects, 5 employees.
    let remote_projects: Vec<i32> = (0..PROJECTS)
        .map(|i| tl.add_project(&format!("Bench project {i:02}")))
        .collect();
    let initials: Vec<String> = (0..PEOPLE).map(|i| format!("BP{i}")).collect();
    let employees: Vec<i32> = initials
        .iter()
        .enumerate()
        .map(|(i, ini)| {
            tl.add_employee(
                "Bench",
                &format!("Person {i}"),
                ini,
                &format!("bench.person{i}@acme.test"),
            )
        })
        .collect();

    let fields: BTreeMap<String, SecretValue> = sb
        .timelog_connect_fields()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), SecretValue::new(v)))
        .collect();
    engine
        .connect(WS, &id("olga"), PROVIDER, fields)
        .await
        .expect("connect");

    // Host: 50 projects linked by hand, 5 linked people, a task per project for all 5.
    let projects: Vec<RecordId> = (0..PROJECTS).map(|i| id(&format!("p{i:02}"))).collect();
    let people: Vec<RecordId> = (0..PEOPLE).map(|i| id(&format!("u{i}"))).collect();
    for (i, p) in projects.iter().enumerate() {
        store
            .insert(WS, &local_project(p.clone(), format!("Project {i:02}")))
            .await
            .unwrap();
        store
            .insert(
                WS,
                &project_link(
                    p.clone(),
                    pid(),
                    vec![remote_projects[i].to_string()],
                    None,
                    false,
                ),
            )
            .await
            .unwrap();
    }
    for (i, person) in people.iter().enumerate() {
        store
            .insert(
                WS,
                &member(
                    person.clone(),
                    format!("Person {i}"),
                    format!("person{i}@acme.test"),
                ),
            )
            .await
            .unwrap();
        store
            .insert(
                WS,
                &PersonLink {
                    person_id: person.clone(),
                    provider: pid(),
                    remote_person_id: employees[i].to_string(),
                },
            )
            .await
            .unwrap();
    }
    let tasks: Vec<(Task, RecordId)> = projects
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                Task {
                    id: id(&format!("t{i:02}")),
                    project_id: p.clone(),
                    name: format!("Delivery {i:02}"),
                    managed_by: ManagedBy::Local,
                    assignee_ids: people.clone(),
                    active: true,
                },
                p.clone(),
            )
        })
        .collect();
    write_host(&store, HostKind::Task, &tasks).await;

    // (a) First cycle: the tasks go out and their assignees are allocated.
    let a = cycle(
        "(a) first cycle: 50 tasks out",
        &engine,
        &counting,
        &clocks,
        QUARTER,
    )
    .await;
    let remote_tasks = tl.tasks();
    assert_eq!(remote_tasks.len(), PROJECTS, "one task per project");
    assert_eq!(tl.allocations().len(), PROJECTS * PEOPLE);
    // Host task id → TimeLog task GUID (the external key is the host task id).
    let task_guid: BTreeMap<String, String> = remote_tasks
        .iter()
        .map(|t| {
            let key = t
                .external_keys
                .iter()
                .find(|(sys, _)| sys == "Hourbridge")
                .map(|(_, k)| k.clone())
                .expect("external key");
            (key, t.guid.clone())
        })
        .collect();

    // (b) 5,000 host work logs → 5,000 registrations.
    let today = clocks.host.now().date_naive();
    let now = clocks.host.now();
    let logs: Vec<(WorkLog, RecordId)> = (0..CHANGES)
        .map(|i| {
            let p = i % PROJECTS;
            let log = WorkLog {
                id: id(&format!("l{i:05}")),
                person_id: people[(i / PROJECTS) % PEOPLE].clone(),
                project_id: projects[p].clone(),
                task_id: Some(tasks[p].0.id.clone()),
                date: log_date(today, i / (PROJECTS * PEOPLE)),
                minutes: 15 * (1 + (i % 32) as u32),
                note: format!("host log {i}"),
                source: None,
                updated_at: Some(now),
            };
            (log, projects[p].clone())
        })
        .collect();
    write_host(&store, HostKind::WorkLog, &logs).await;
    let b = cycle(
        "(b) 5,000 host logs out",
        &engine,
        &counting,
        &clocks,
        QUARTER,
    )
    .await;
    let work = tl.work();
    assert_eq!(work.len(), CHANGES, "one registration per host log");
    // New registrations go out in batches, not one request each.
    assert_eq!(
        b.ops.get("InsertWork").copied(),
        Some(CHANGES.div_ceil(INSERT_WORK_BATCH) as u64),
        "one InsertWork per {INSERT_WORK_BATCH} new logs"
    );

    // (c) 5,000 changes in TimeLog during the next 15 minutes: 2,500 new registrations,
    // 2,500 edits of registrations (b) made.
    let step = chrono::Duration::milliseconds(15 * 60 * 1000 / CHANGES as i64);
    let changes_before = tl.change_count();
    for i in 0..CHANGES {
        clocks.advance(step);
        if i % 2 == 0 {
            let p = (i / 2) % PROJECTS;
            let guid = &task_guid[&format!("t{p:02}")];
            tl.register_work(
                &initials[(i / 2 / PROJECTS) % PEOPLE],
                guid,
                log_date(today, i / 2),
                30 + (i % 8) as u32 * 15,
                &format!("remote work {i}"),
            )
            .expect("register");
        } else {
            let w = &work[i / 2];
            assert!(tl.edit_work(
                &w.guid,
                w.minutes as u32 + 15,
                &format!("edited in TimeLog {i}")
            ));
        }
    }
    assert_eq!(tl.change_count() - changes_before, CHANGES);
    // The changes took the 15 minutes up to the cycle.
    let c = cycle(
        "(c) 5,000 remote changes in",
        &engine,
        &counting,
        &clocks,
        QUARTER - step * CHANGES as i32,
    )
    .await;
    let host = host_logs(&store, &projects).await;
    assert_eq!(host.len(), CHANGES + CHANGES / 2, "2,500 imported");
    assert_eq!(
        host.iter()
            .filter(|l| l.note.starts_with("edited in TimeLog"))
            .count(),
        CHANGES / 2,
        "2,500 edits applied"
    );

    // (d) Nothing changed.
    let work_before = tl.work();
    let d = cycle("(d) no-change cycle", &engine, &counting, &clocks, QUARTER).await;
    assert_eq!(tl.work(), work_before);
    assert_eq!(host_logs(&store, &projects).await, host);

    println!(
        "timelog_cycle: {PROJECTS} linked projects, {PEOPLE} linked people, {CHANGES} changes each way; pace {}",
        if unpaced {
            "unpaced (no budget)".to_owned()
        } else {
            format!("{rps} requests/s (production budget over the SQLite file)")
        }
    );
    report(&a, PROJECTS);
    report(&b, CHANGES);
    report(&c, CHANGES);
    report(&d, 0);
    let (d_data, _) = d.split_writes();
    println!(
        "  no-change cycle: data writes {}, TimeLog writes {}",
        d_data.values().sum::<u64>(),
        d.remote_writes()
    );
    println!("whole bench: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(
        d_data.values().sum::<u64>(),
        0,
        "a no-change cycle writes no data"
    );
    assert_eq!(
        d.remote_writes(),
        0,
        "a no-change cycle writes nothing to TimeLog"
    );
    sb.stop().await;
}

//! Time out in batches, end to end: the real engine and the real TimeLog adapter over HTTP
//! against the TimeLog sandbox. New host logs go out `create_batch_limit` at a time (one
//! InsertWork per batch), an item TimeLog refuses is a problem while the rest of its batch is
//! registered, and a batch whose answer is lost is adopted by key, never registered twice.

mod common;

use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use common::world;
use hourbridge_domain::{
    ChangeDraft, ChangeOp, Clock, HostKind, ManagedBy, PersonLink, ProviderId, RecordId, RunState,
    SecretValue, SyncRun, Task, WorkLog,
};
use hourbridge_provider_api::TimeSink;
use hourbridge_provider_http::ProviderEnv;
use hourbridge_provider_timelog::{ALLOW_HTTP_VAR, INSERT_WORK_BATCH, TimeLog};
use hourbridge_sandbox::{Sandbox, Seed, TimelogControl};
use hourbridge_store::{Condition, IndexSel, TransactItem};
use hourbridge_sync::runs::{Outcome, RunMode};
use hourbridge_sync::{RunScope, SyncJob, SyncSettings};
use hourbridge_testkit::bench::{local_project, member, project_link};

const WS: &str = "acme";
const P: &str = "timelog";
const INITIALS: &str = "ADA";

fn id(s: &str) -> RecordId {
    RecordId::parse(s).unwrap()
}

fn pid() -> ProviderId {
    ProviderId::parse(P).unwrap()
}

struct Setup {
    w: common::World,
    _sb: Sandbox,
    tl: TimelogControl,
}

/// A TimeLog site with one project and one employee, connected; host project "web" linked to
/// it, person "ada" linked to the employee, task "build" assigned to her, and a first run that
/// pushes the task and allocates her (so registrations on it are accepted).
async fn setup() -> Setup {
    let sb = Sandbox::start(Seed::Empty).await.expect("sandbox");
    let tl = sb.timelog();
    let env = ProviderEnv::for_tests(&[(ALLOW_HTTP_VAR, "1")]);
    let adapter = Arc::new(TimeLog::from_env(&env).expect("adapter"));
    assert_eq!(adapter.create_batch_limit(), INSERT_WORK_BATCH);
    let w = world(vec![adapter], SyncSettings::default());
    // One clock on both sides, so the change windows agree.
    tl.set_clock(w.clock.now());
    let remote_project = tl.add_project("Web");
    let employee = tl.add_employee("Ada", "Lovelace", INITIALS, "ada@acme.test");
    w.engine
        .connect(
            WS,
            &id("olga"),
            P,
            sb.timelog_connect_fields()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), SecretValue::new(v)))
                .collect(),
        )
        .await
        .expect("connect");
    let s = &w.engine.store;
    s.insert(WS, &local_project(id("web"), "Web".into()))
        .await
        .unwrap();
    s.insert(
        WS,
        &project_link(
            id("web"),
            pid(),
            vec![remote_project.to_string()],
            None,
            false,
        ),
    )
    .await
    .unwrap();
    s.insert(WS, &member(id("ada"), "Ada".into(), "ada@acme.test".into()))
        .await
        .unwrap();
    s.insert(
        WS,
        &PersonLink {
            person_id: id("ada"),
            provider: pid(),
            remote_person_id: employee.to_string(),
        },
    )
    .await
    .unwrap();
    let task = Task {
        id: id("build"),
        project_id: id("web"),
        name: "Build".into(),
        managed_by: ManagedBy::Local,
        assignee_ids: vec![id("ada")],
        active: true,
    };
    write(&w, HostKind::Task, &[task]).await;
    let setup = Setup { w, _sb: sb, tl };
    let first = run(&setup).await;
    assert_eq!(first.state, RunState::Succeeded, "{:?}", first.failure);
    assert_eq!(setup.tl.tasks().len(), 1);
    assert_eq!(setup.tl.allocations().len(), 1);
    setup
}

/// Host records as the API writes them: records and their change-feed entries together.
async fn write<E: hourbridge_store::Entity>(w: &common::World, kind: HostKind, records: &[E]) {
    for chunk in records.chunks(40) {
        let items = chunk
            .iter()
            .map(|r| TransactItem::put_entity(WS, r, Condition::Absent).unwrap())
            .collect();
        let drafts = chunk
            .iter()
            .map(|r| ChangeDraft::new(kind, &id(&r.id()), &id("web"), ChangeOp::Created))
            .collect();
        w.engine
            .store
            .commit_with_changes(WS, items, drafts)
            .await
            .unwrap();
    }
}

/// Monday two weeks before the engine's start (a whole open week before it).
fn monday(s: &Setup) -> NaiveDate {
    let today = s.w.clock.now().date_naive();
    today - Duration::days(14 + i64::from(chrono::Datelike::weekday(&today).num_days_from_monday()))
}

/// `n` host logs of Ada on task "build", numbered from `from`, on Monday to Friday of the
/// week of `monday`.
fn logs(from: usize, n: usize, monday: NaiveDate) -> Vec<WorkLog> {
    (from..from + n)
        .map(|i| WorkLog {
            id: id(&format!("l{i:04}")),
            person_id: id("ada"),
            project_id: id("web"),
            task_id: Some(id("build")),
            date: monday + Duration::days((i % 5) as i64),
            minutes: 15 * (1 + (i % 8) as u32),
            note: format!("host log {i}"),
            source: None,
            updated_at: None,
        })
        .collect()
}

/// Starts a connection run, 15 minutes after the last one on both clocks.
async fn start(s: &Setup) -> SyncJob {
    s.w.clock.advance(Duration::minutes(15));
    s.tl.set_clock(s.w.clock.now());
    let r =
        s.w.engine
            .start_run(WS, P, RunScope::Connection, RunMode::Refetch)
            .await
            .expect("start");
    SyncJob {
        workspace_id: WS.into(),
        provider: P.into(),
        run_id: r.id.to_string(),
    }
}

/// Executes `job` until it finishes or asks to be retried later.
async fn execute(s: &Setup, job: &SyncJob) -> Outcome {
    loop {
        match s.w.engine.execute(job, None).await.expect("execute") {
            Outcome::Paused => continue,
            other => return other,
        }
    }
}

async fn record(s: &Setup, job: &SyncJob) -> SyncRun {
    s.w.engine.run(WS, &job.run_id).await.unwrap().unwrap()
}

/// One connection run, 15 minutes after the last one on both clocks; its record when finished.
async fn run(s: &Setup) -> SyncRun {
    let job = start(s).await;
    let out = execute(s, &job).await;
    assert!(matches!(out, Outcome::Finished(_)), "{out:?}");
    record(s, &job).await
}

/// Host logs of project "web".
async fn host_logs(s: &Setup) -> Vec<WorkLog> {
    let q =
        s.w.engine
            .store
            .query::<WorkLog>(WS, IndexSel::Index1("web".into()), 1000);
    s.w.engine.store.list_all::<WorkLog>(q).await.unwrap()
}

/// TimeLog's registrations by description (the host note), sorted.
fn registered_notes(tl: &TimelogControl) -> Vec<String> {
    let mut notes: Vec<String> = tl.work().into_iter().map(|u| u.note).collect();
    notes.sort();
    notes
}

fn notes(logs: &[WorkLog]) -> Vec<String> {
    let mut n: Vec<String> = logs.iter().map(|l| l.note.clone()).collect();
    n.sort();
    n
}

#[tokio::test]
async fn new_host_logs_go_to_timelog_in_batches_not_one_request_each() {
    let s = setup().await;
    let new = logs(0, 120, monday(&s));
    write(&s.w, HostKind::WorkLog, &new).await;
    let inserts_before = s.tl.request_count("InsertWork");

    let r = run(&s).await;
    assert_eq!(r.state, RunState::Succeeded, "{:?}", r.failure);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.counts.created, 120);
    // ceil(120 / 50) = 3: 50, 50 and 20 work units.
    assert_eq!(INSERT_WORK_BATCH, 50);
    assert_eq!(s.tl.request_count("InsertWork") - inserts_before, 3);
    assert_eq!(s.tl.work().len(), 120);
    assert_eq!(registered_notes(&s.tl), notes(&new));
    // The batch needs no per-log reads or writes besides the InsertWork requests.
    assert_eq!(s.tl.request_count("UpdateWork"), 0);
    assert_eq!(s.tl.request_count("GetWorkUnitsRaw"), 0);

    // Our registrations come back through the change log and change nothing; nothing is sent.
    let again = run(&s).await;
    assert_eq!(again.state, RunState::Succeeded, "{:?}", again.failure);
    assert_eq!(again.counts.created, 0);
    assert_eq!(again.counts.updated, 0);
    assert_eq!(s.tl.request_count("InsertWork") - inserts_before, 3);
    assert_eq!(s.tl.work().len(), 120);
    assert_eq!(host_logs(&s).await.len(), 120, "no echo became a host log");
}

#[tokio::test]
async fn one_refused_item_in_a_batch_is_a_problem_and_the_others_are_registered() {
    let s = setup().await;
    let week = monday(&s);
    let mut new = logs(0, 9, week);
    // The tenth log is in the week before, which is closed for Ada.
    let mut locked = logs(9, 1, week - Duration::days(7));
    let locked_id = locked[0].id.to_string();
    new.append(&mut locked);
    assert!(s.tl.close_week(INITIALS, week - Duration::days(7)));
    write(&s.w, HostKind::WorkLog, &new).await;

    let r = run(&s).await;
    assert_eq!(r.state, RunState::Succeeded, "{:?}", r.failure);
    assert_eq!(s.tl.request_count("InsertWork"), 1, "one batch for all ten");
    assert_eq!(r.counts.created, 9);
    assert_eq!(r.counts.skipped, 1);
    assert_eq!(s.tl.work().len(), 9);
    let codes: Vec<(&str, &str)> = r
        .problems
        .iter()
        .map(|p| (p.record.as_str(), p.code.as_str()))
        .collect();
    assert_eq!(codes, [(locked_id.as_str(), "registration_locked")]);

    // Still refused while the week is closed: reported again, nothing registered twice.
    let r = run(&s).await;
    assert_eq!(r.counts.created, 0);
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(r.problems[0].code, "registration_locked");
    assert_eq!(s.tl.work().len(), 9);

    // Reopened: the refused log goes through on the next run, once.
    assert!(s.tl.reopen_week(INITIALS, week - Duration::days(7)));
    let r = run(&s).await;
    assert_eq!(r.state, RunState::Succeeded, "{:?}", r.failure);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.counts.created, 1);
    assert_eq!(s.tl.work().len(), 10);
    assert_eq!(registered_notes(&s.tl), notes(&new));
    assert_eq!(host_logs(&s).await.len(), 10);
}

#[tokio::test]
async fn a_batch_whose_answer_is_lost_is_adopted_by_key_not_created_twice() {
    let s = setup().await;
    let new = logs(0, 60, monday(&s));
    write(&s.w, HostKind::WorkLog, &new).await;
    // TimeLog registers the first batch (50 units), but its answer never arrives (a gateway
    // 504): the adapter never resends it.
    s.tl.lose_next_answers("InsertWork", 1, 504);

    let r = run(&s).await;
    assert_eq!(r.state, RunState::Succeeded, "{:?}", r.failure);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    // The 50 are looked up by the GUID derived from their key (one Reporting read each) and
    // adopted; the other 10 go out in one more batch.
    assert_eq!(s.tl.request_count("InsertWork"), 2);
    assert_eq!(s.tl.request_count("GetWorkUnitsRaw"), 50);
    assert_eq!(s.tl.request_count("UpdateWork"), 0);
    assert_eq!(r.counts.created, 60);
    assert_eq!(
        s.tl.work().len(),
        60,
        "exactly one registration per host log"
    );
    assert_eq!(registered_notes(&s.tl), notes(&new));

    // The registrations come back through the change log as ours: no host log is added.
    let quiet = run(&s).await;
    assert_eq!(quiet.state, RunState::Succeeded, "{:?}", quiet.failure);
    assert_eq!(quiet.counts.created + quiet.counts.updated, 0);
    assert_eq!(s.tl.request_count("InsertWork"), 2);
    assert_eq!(s.tl.work().len(), 60);
    assert_eq!(host_logs(&s).await.len(), 60);
}

#[tokio::test]
async fn a_batch_lost_while_timelog_is_down_is_adopted_when_the_run_is_retried() {
    let s = setup().await;
    let new = logs(0, 20, monday(&s));
    write(&s.w, HostKind::WorkLog, &new).await;
    // The batch is applied and its answer lost, and the look-ups by key fail too (TimeLog is
    // down): the run asks to be retried, every mark still pending.
    s.tl.lose_next_answers("InsertWork", 1, 504);
    s.tl.lose_next_answers("GetWorkUnitsRaw", 1000, 503);
    let job = start(&s).await;
    let out = execute(&s, &job).await;
    assert!(matches!(out, Outcome::RetryAfter(_)), "{out:?}");
    assert_eq!(s.tl.request_count("InsertWork"), 1);
    assert_eq!(s.tl.work().len(), 20, "applied, answer lost");

    // TimeLog is back: the retry's time out finds each by key (resumed tickets) and adopts it.
    s.tl.lose_next_answers("GetWorkUnitsRaw", 0, 503);
    let out = execute(&s, &job).await;
    assert!(
        matches!(out, Outcome::Finished(RunState::Succeeded)),
        "{out:?}"
    );
    let r = record(&s, &job).await;
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.counts.created, 20);
    assert_eq!(s.tl.request_count("InsertWork"), 1, "nothing sent twice");
    assert_eq!(
        s.tl.work().len(),
        20,
        "exactly one registration per host log"
    );
    assert_eq!(registered_notes(&s.tl), notes(&new));
    let quiet = run(&s).await;
    assert_eq!(quiet.counts.created + quiet.counts.updated, 0);
    assert_eq!(
        host_logs(&s).await.len(),
        20,
        "none came back as a new host log"
    );
}

#[tokio::test]
async fn a_batch_left_pending_by_a_failed_run_is_not_imported_by_the_next_runs_time_in() {
    let s = setup().await;
    let new = logs(0, 20, monday(&s));
    write(&s.w, HostKind::WorkLog, &new).await;
    // Applied, answer lost, and TimeLog stays down for every look-up the run retries: the run
    // ends failed with every mark still pending.
    s.tl.lose_next_answers("InsertWork", 1, 504);
    s.tl.lose_next_answers("GetWorkUnitsRaw", 10_000, 503);
    let job = start(&s).await;
    let end = loop {
        match s.w.engine.execute(&job, None).await.expect("execute") {
            Outcome::Finished(state) => break state,
            Outcome::Paused | Outcome::RetryAfter(_) => {}
        }
    };
    assert_eq!(end, RunState::Failed);
    assert_eq!(s.tl.work().len(), 20, "applied, answer lost");

    // The next run's time in reads the 20 registrations from the change log before its time
    // out settles the marks: they are ours (their GUIDs are the pending keys'), not remote work.
    s.tl.lose_next_answers("GetWorkUnitsRaw", 0, 503);
    let r = run(&s).await;
    assert_eq!(r.state, RunState::Succeeded, "{:?}", r.failure);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(s.tl.request_count("InsertWork"), 1, "nothing sent twice");
    assert_eq!(s.tl.work().len(), 20);
    let host = host_logs(&s).await;
    assert_eq!(
        host.len(),
        20,
        "no registration imported as a second host log"
    );
    assert!(host.iter().all(|l| l.source.is_none()), "{host:?}");

    // Settled: a later run reads them back as ours and changes nothing.
    let quiet = run(&s).await;
    assert_eq!(quiet.counts.created + quiet.counts.updated, 0, "{quiet:?}");
    assert_eq!(host_logs(&s).await.len(), 20);
    assert_eq!(s.tl.work().len(), 20);
}

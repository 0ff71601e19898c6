//! The conformance suite: one set of cases every [`Backend`] must pass.
//!
//! A backend's test file calls [`conformance_suite!`](crate::conformance_suite) with an async
//! constructor; the macro expands to one `#[tokio::test]` per case, so the test output lists
//! every case for every backend. Each case works in fresh random workspaces, so backends may
//! share a database between cases.

use std::sync::Arc;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use hourbridge_domain::{
    CHANGE_RETENTION_DAYS, ChangeDraft, ChangeOp, HostKind, ManualClock, Person, ProviderId,
    RecordId, Role, WorkLog, WorkLogSource, new_id,
};

use crate::{
    Backend, Condition, Cursor, EntityFilter, GLOBAL_SCOPE, IndexSel, MAX_TRANSACT_ITEMS,
    OAuthState, Store, StoreError, TransactItem, Upserted, WebhookDedup,
};

/// Generates one test per conformance case for the backend built by `$make`, an async fn
/// `(Arc<ManualClock>) -> Option<Arc<dyn Backend>>` (`None` skips, e.g. without an emulator).
#[macro_export]
macro_rules! conformance_suite {
    ($make:path) => {
        $crate::conformance_suite!(@cases $make;
            crud_round_trip,
            insert_of_a_live_id_conflicts,
            update_with_a_stale_version_conflicts,
            delete_with_a_stale_version_conflicts,
            lease_is_exclusive_until_released,
            lease_expires_and_can_be_taken_over,
            lease_renewal_by_holder_extends_it,
            release_by_a_former_holder_keeps_the_new_lease,
            expired_records_are_absent_to_get_list_and_insert,
            take_is_single_use,
            paging_walks_2600_items_exactly_once,
            index_range_query_with_filter_pages_exactly,
            changed_index_keys_move_the_record,
            workspaces_are_isolated,
            unicode_and_10kb_notes_round_trip,
            upsert_is_idempotent_and_writes_only_changes,
            invalid_cursor_is_rejected,
            get_many_and_delete_batch_cover_hundreds_of_ids,
            id_queries_page_like_record_queries,
            transact_is_all_or_nothing,
            transact_refuses_invalid_transactions,
            change_feed_reads_in_order_from_a_watermark_and_pages,
            change_feed_concurrent_appends_get_unique_consecutive_seqs,
            change_feed_failed_host_write_appends_nothing,
            change_feed_entries_expire_after_the_retention
        );
    };
    (@cases $make:path; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let clock = ::std::sync::Arc::new($crate::conformance::start_clock());
                let Some(backend) = $make(clock.clone()).await else { return };
                let h = $crate::conformance::Harness::new(backend, clock);
                $crate::conformance::$case(&h).await;
            }
        )*
    };
}

/// The instant every case starts at.
pub fn start_clock() -> ManualClock {
    ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
            .single()
            .unwrap_or_default(),
    )
}

/// What a case works with: a store over the backend, its clock, two fresh workspaces.
#[derive(Debug)]
pub struct Harness {
    /// The store under test.
    pub store: Store,
    /// Its clock.
    pub clock: Arc<ManualClock>,
    /// A fresh workspace.
    pub ws: String,
    /// Another fresh workspace.
    pub other_ws: String,
}

impl Harness {
    /// Wraps `backend` with `clock` and picks two fresh workspace ids.
    pub fn new(backend: Arc<dyn Backend>, clock: Arc<ManualClock>) -> Self {
        Self {
            store: Store::new(backend, clock.clone()),
            clock,
            ws: format!("ws-{}", new_id()),
            other_ws: format!("ws-{}", new_id()),
        }
    }
}

fn person(name: &str, email: &str) -> Person {
    Person {
        id: new_id(),
        name: name.to_owned(),
        email: email.to_owned(),
        role: Role::Member,
    }
}

fn log(project: &RecordId, person: &RecordId, date: NaiveDate, note: &str) -> WorkLog {
    WorkLog {
        id: new_id(),
        person_id: person.clone(),
        project_id: project.clone(),
        task_id: None,
        date,
        minutes: 30,
        note: note.to_owned(),
        source: None,
        updated_at: None,
    }
}

fn day(n: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default() + Duration::days(n)
}

/// Create, read, update, delete.
pub async fn crud_round_trip(h: &Harness) {
    let mut p = person("Ada", "ada@example.com");
    let v1 = h.store.insert(&h.ws, &p).await.unwrap();
    assert_eq!(v1, 1);
    let (read, v) = h
        .store
        .get::<Person>(&h.ws, p.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((read, v), (p.clone(), 1));

    p.name = "Ada Lovelace".into();
    let v2 = h.store.update(&h.ws, &p, v1).await.unwrap();
    assert_eq!(v2, 2);
    let (read, _) = h
        .store
        .get::<Person>(&h.ws, p.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.name, "Ada Lovelace");

    assert!(
        h.store
            .delete::<Person>(&h.ws, p.id.as_str())
            .await
            .unwrap()
    );
    assert!(
        h.store
            .get::<Person>(&h.ws, p.id.as_str())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !h.store
            .delete::<Person>(&h.ws, p.id.as_str())
            .await
            .unwrap()
    );
}

/// `insert` never overwrites a live record.
pub async fn insert_of_a_live_id_conflicts(h: &Harness) {
    let p = person("Ada", "ada@example.com");
    h.store.insert(&h.ws, &p).await.unwrap();
    let mut again = p.clone();
    again.name = "Impostor".into();
    assert!(matches!(
        h.store.insert(&h.ws, &again).await,
        Err(StoreError::Conflict)
    ));
    let (read, _) = h
        .store
        .get::<Person>(&h.ws, p.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.name, "Ada");
}

/// Optimistic concurrency: the second writer holding version 1 loses.
pub async fn update_with_a_stale_version_conflicts(h: &Harness) {
    let mut p = person("Ada", "ada@example.com");
    h.store.insert(&h.ws, &p).await.unwrap();
    p.name = "First".into();
    h.store.update(&h.ws, &p, 1).await.unwrap();
    p.name = "Second".into();
    assert!(matches!(
        h.store.update(&h.ws, &p, 1).await,
        Err(StoreError::Conflict)
    ));
    // Updating something that does not exist is a conflict too, never an insert.
    let ghost = person("Ghost", "g@example.com");
    assert!(matches!(
        h.store.update(&h.ws, &ghost, 1).await,
        Err(StoreError::Conflict)
    ));
    let (read, v) = h
        .store
        .get::<Person>(&h.ws, p.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((read.name.as_str(), v), ("First", 2));
}

/// Deletes can be conditional on the version read.
pub async fn delete_with_a_stale_version_conflicts(h: &Harness) {
    let mut p = person("Ada", "ada@example.com");
    h.store.insert(&h.ws, &p).await.unwrap();
    p.name = "Changed".into();
    h.store.update(&h.ws, &p, 1).await.unwrap();
    assert!(matches!(
        h.store.delete_at::<Person>(&h.ws, p.id.as_str(), 1).await,
        Err(StoreError::Conflict)
    ));
    assert!(
        h.store
            .delete_at::<Person>(&h.ws, p.id.as_str(), 2)
            .await
            .unwrap()
    );
}

/// One holder at a time.
pub async fn lease_is_exclusive_until_released(h: &Harness) {
    let ttl = Duration::seconds(60);
    let a = h
        .store
        .acquire_lease(&h.ws, "sync:harvest", "worker-a", ttl)
        .await
        .unwrap();
    let a = a.expect("a free lease is granted");
    assert_eq!(a.owner, "worker-a");
    assert!(
        h.store
            .acquire_lease(&h.ws, "sync:harvest", "worker-b", ttl)
            .await
            .unwrap()
            .is_none()
    );
    // Other names are independent.
    assert!(
        h.store
            .acquire_lease(&h.ws, "sync:hubstaff", "worker-b", ttl)
            .await
            .unwrap()
            .is_some()
    );
    h.store.release_lease(&a).await.unwrap();
    let b = h
        .store
        .acquire_lease(&h.ws, "sync:harvest", "worker-b", ttl)
        .await
        .unwrap();
    assert_eq!(b.map(|l| l.owner).as_deref(), Some("worker-b"));
}

/// A holder that dies stops blocking others once its lease lapses.
pub async fn lease_expires_and_can_be_taken_over(h: &Harness) {
    let ttl = Duration::seconds(30);
    h.store
        .acquire_lease(&h.ws, "refresh", "dead", ttl)
        .await
        .unwrap()
        .unwrap();
    h.clock.advance(Duration::seconds(29));
    assert!(
        h.store
            .acquire_lease(&h.ws, "refresh", "alive", ttl)
            .await
            .unwrap()
            .is_none()
    );
    h.clock.advance(Duration::seconds(2));
    let l = h
        .store
        .acquire_lease(&h.ws, "refresh", "alive", ttl)
        .await
        .unwrap();
    assert_eq!(l.map(|l| l.owner).as_deref(), Some("alive"));
}

/// Re-acquiring by the holder renews.
pub async fn lease_renewal_by_holder_extends_it(h: &Harness) {
    let ttl = Duration::seconds(30);
    h.store
        .acquire_lease(&h.ws, "job", "a", ttl)
        .await
        .unwrap()
        .unwrap();
    h.clock.advance(Duration::seconds(20));
    let renewed = h
        .store
        .acquire_lease(&h.ws, "job", "a", ttl)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renewed.expires_at, h.clock_now() + ttl);
    h.clock.advance(Duration::seconds(20));
    // 40 s after the first grant: without renewal it would have lapsed.
    assert!(
        h.store
            .acquire_lease(&h.ws, "job", "b", ttl)
            .await
            .unwrap()
            .is_none()
    );
}

/// A holder whose lease lapsed and was taken over cannot release the new holder's lease.
pub async fn release_by_a_former_holder_keeps_the_new_lease(h: &Harness) {
    let ttl = Duration::seconds(10);
    let old = h
        .store
        .acquire_lease(&h.ws, "job", "old", ttl)
        .await
        .unwrap()
        .unwrap();
    h.clock.advance(Duration::seconds(11));
    h.store
        .acquire_lease(&h.ws, "job", "new", ttl)
        .await
        .unwrap()
        .unwrap();
    h.store.release_lease(&old).await.unwrap();
    assert!(
        h.store
            .acquire_lease(&h.ws, "job", "third", ttl)
            .await
            .unwrap()
            .is_none()
    );
}

/// TTL: once expired, a record is gone for every read and for `insert`, even if the backend
/// has not physically deleted it.
pub async fn expired_records_are_absent_to_get_list_and_insert(h: &Harness) {
    let now = h.clock_now();
    let d = WebhookDedup {
        key: "delivery-1".into(),
        expires_at: now + Duration::seconds(60),
    };
    h.store.insert(&h.ws, &d).await.unwrap();
    assert!(matches!(
        h.store.insert(&h.ws, &d).await,
        Err(StoreError::Conflict)
    ));
    assert!(
        h.store
            .get::<WebhookDedup>(&h.ws, "delivery-1")
            .await
            .unwrap()
            .is_some()
    );

    h.clock.advance(Duration::seconds(61));
    assert!(
        h.store
            .get::<WebhookDedup>(&h.ws, "delivery-1")
            .await
            .unwrap()
            .is_none()
    );
    let q = h.store.query::<WebhookDedup>(&h.ws, IndexSel::Primary, 10);
    assert!(
        h.store
            .list::<WebhookDedup>(q, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // An expired id is free again.
    let again = WebhookDedup {
        key: "delivery-1".into(),
        expires_at: h.clock_now() + Duration::seconds(60),
    };
    assert_eq!(h.store.insert(&h.ws, &again).await.unwrap(), 1);
}

/// `take` hands a record to exactly one caller, and never an expired one.
pub async fn take_is_single_use(h: &Harness) {
    let state = OAuthState {
        state: format!("st-{}", new_id()),
        workspace_id: h.ws.clone(),
        person_id: "p1".into(),
        provider: "harvest".into(),
        pkce_verifier: Some("verifier".into()),
        expires_at: h.clock_now() + Duration::minutes(10),
    };
    h.store.insert(GLOBAL_SCOPE, &state).await.unwrap();
    let (a, b) = tokio::join!(
        h.store.take::<OAuthState>(GLOBAL_SCOPE, &state.state),
        h.store.take::<OAuthState>(GLOBAL_SCOPE, &state.state)
    );
    let winners = [a.unwrap(), b.unwrap()].into_iter().flatten().count();
    assert_eq!(winners, 1, "exactly one concurrent take wins");

    let late = OAuthState {
        state: format!("st-{}", new_id()),
        expires_at: h.clock_now() + Duration::minutes(10),
        ..state
    };
    h.store.insert(GLOBAL_SCOPE, &late).await.unwrap();
    h.clock.advance(Duration::minutes(11));
    assert!(
        h.store
            .take::<OAuthState>(GLOBAL_SCOPE, &late.state)
            .await
            .unwrap()
            .is_none()
    );
}

/// Batches larger than 25 are written whole, and paging returns every record exactly once
/// in order, whatever the page size.
pub async fn paging_walks_2600_items_exactly_once(h: &Harness) {
    let project = new_id();
    let who = new_id();
    let items: Vec<(WorkLog, u64)> = (0..2600)
        .map(|i| (log(&project, &who, day(i % 365), &format!("entry {i}")), 1))
        .collect();
    h.store.put_batch(&h.ws, &items).await.unwrap();
    let mut expected: Vec<String> = items.iter().map(|(l, _)| l.id.to_string()).collect();
    expected.sort();

    for limit in [1000, 333] {
        let mut seen = Vec::new();
        let mut q = h.store.query::<WorkLog>(&h.ws, IndexSel::Primary, limit);
        let mut pages = 0;
        loop {
            let page = h.store.list::<WorkLog>(q.clone(), None).await.unwrap();
            assert!(page.items.len() <= limit);
            pages += 1;
            seen.extend(page.items.into_iter().map(|(l, _)| l.id.to_string()));
            match page.next {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(
            seen, expected,
            "limit {limit}: every record once, in id order"
        );
        assert!(pages >= 2600 / limit, "limit {limit}: {pages} pages");
    }
}

/// A range on an index with an extra filter still returns full pages and exact cursors.
pub async fn index_range_query_with_filter_pages_exactly(h: &Harness) {
    let project = new_id();
    let (ada, bob) = (new_id(), new_id());
    let mut items = Vec::new();
    for i in 0..120 {
        let who = if i % 3 == 0 { &bob } else { &ada };
        items.push((log(&project, who, day(i % 60), "x"), 1));
    }
    // Noise in another project.
    let other = new_id();
    for i in 0..50 {
        items.push((log(&other, &ada, day(i), "noise"), 1));
    }
    h.store.put_batch(&h.ws, &items).await.unwrap();

    let want: Vec<String> = {
        let mut v: Vec<&WorkLog> = items
            .iter()
            .map(|(l, _)| l)
            .filter(|l| l.project_id == project && l.person_id == ada)
            .filter(|l| l.date >= day(10) && l.date <= day(39))
            .collect();
        v.sort_by(|a, b| (a.date, &a.id).cmp(&(b.date, &b.id)));
        v.into_iter().map(|l| l.id.to_string()).collect()
    };
    assert!(want.len() > 20);

    let mut q = h
        .store
        .query::<WorkLog>(&h.ws, IndexSel::Index1(project.to_string()), 7);
    q.from = Some(day(10).to_string());
    q.to = Some(day(39).to_string());
    let only_ada = ada.clone();
    let filter: EntityFilter<WorkLog> = Arc::new(move |l: &WorkLog| l.person_id == only_ada);
    let mut got = Vec::new();
    loop {
        let page = h
            .store
            .list::<WorkLog>(q.clone(), Some(filter.clone()))
            .await
            .unwrap();
        if page.next.is_some() {
            assert_eq!(page.items.len(), 7, "pages before the last are full");
        }
        got.extend(page.items.into_iter().map(|(l, _)| l));
        match page.next {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    let mut got_sorted = got.clone();
    got_sorted.sort_by(|a, b| (a.date, &a.id).cmp(&(b.date, &b.id)));
    let dates: Vec<_> = got.iter().map(|l| l.date).collect();
    assert!(
        dates.windows(2).all(|w| w[0] <= w[1]),
        "ordered by the index's sort value"
    );
    let mut got_ids: Vec<String> = got.iter().map(|l| l.id.to_string()).collect();
    got_ids.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got_ids, want_sorted);
}

/// Updating a record's indexed fields moves it between index partitions.
pub async fn changed_index_keys_move_the_record(h: &Harness) {
    let (p1, p2, who) = (new_id(), new_id(), new_id());
    let mut l = log(&p1, &who, day(3), "moving");
    h.store.insert(&h.ws, &l).await.unwrap();
    l.project_id = p2.clone();
    h.store.update(&h.ws, &l, 1).await.unwrap();
    let in_p1 = h
        .store
        .list::<WorkLog>(
            h.store
                .query::<WorkLog>(&h.ws, IndexSel::Index1(p1.to_string()), 10),
            None,
        )
        .await
        .unwrap();
    let in_p2 = h
        .store
        .list::<WorkLog>(
            h.store
                .query::<WorkLog>(&h.ws, IndexSel::Index1(p2.to_string()), 10),
            None,
        )
        .await
        .unwrap();
    assert!(in_p1.items.is_empty());
    assert_eq!(in_p2.items.len(), 1);
}

/// Nothing written in one workspace is visible, changeable or deletable from another.
pub async fn workspaces_are_isolated(h: &Harness) {
    let p = person("Ada", "ada@example.com");
    h.store.insert(&h.ws, &p).await.unwrap();
    assert!(
        h.store
            .get::<Person>(&h.other_ws, p.id.as_str())
            .await
            .unwrap()
            .is_none()
    );
    let q = h.store.query::<Person>(&h.other_ws, IndexSel::Primary, 100);
    assert!(
        h.store
            .list::<Person>(q, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let q = h
        .store
        .query::<Person>(&h.other_ws, IndexSel::Index1("ada@example.com".into()), 100);
    assert!(
        h.store
            .list::<Person>(q, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        !h.store
            .delete::<Person>(&h.other_ws, p.id.as_str())
            .await
            .unwrap()
    );
    assert!(matches!(
        h.store.update(&h.other_ws, &p, 1).await,
        Err(StoreError::Conflict)
    ));
    // The same id may exist in both workspaces independently.
    h.store.insert(&h.other_ws, &p).await.unwrap();
    assert!(
        h.store
            .delete::<Person>(&h.other_ws, p.id.as_str())
            .await
            .unwrap()
    );
    assert!(
        h.store
            .get::<Person>(&h.ws, p.id.as_str())
            .await
            .unwrap()
            .is_some()
    );
}

/// Text survives byte for byte, including non-BMP characters and 10 KB notes.
pub async fn unicode_and_10kb_notes_round_trip(h: &Harness) {
    let note = "Møte om kaffe ☕ – 日本語 – 𝄞 \"quoted\" \\ back\nslash; ".repeat(200);
    assert!(note.len() >= 10_000);
    let mut l = log(&new_id(), &new_id(), day(1), &note);
    l.source = Some(WorkLogSource {
        provider: ProviderId::parse("harvest").unwrap(),
        remote_id: "ünïcødé-42".into(),
    });
    h.store.insert(&h.ws, &l).await.unwrap();
    let (read, _) = h
        .store
        .get::<WorkLog>(&h.ws, l.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, l);
    let p = person("Åse Ørnulf-Ñandú 李", "ÅSE@Example.no");
    h.store.insert(&h.ws, &p).await.unwrap();
    let q = h
        .store
        .query::<Person>(&h.ws, IndexSel::Index1("åse@example.no".into()), 10);
    let found = h.store.list::<Person>(q, None).await.unwrap();
    assert_eq!(
        found.items.first().map(|(p, _)| p.name.as_str()),
        Some("Åse Ørnulf-Ñandú 李")
    );
}

/// Repeating an upsert with the same content writes nothing (the version stays).
pub async fn upsert_is_idempotent_and_writes_only_changes(h: &Harness) {
    let mut l = log(&new_id(), &new_id(), day(5), "same");
    assert_eq!(h.store.upsert(&h.ws, &l).await.unwrap(), Upserted::Created);
    for _ in 0..3 {
        assert_eq!(
            h.store.upsert(&h.ws, &l).await.unwrap(),
            Upserted::Unchanged
        );
    }
    assert_eq!(
        h.store
            .get::<WorkLog>(&h.ws, l.id.as_str())
            .await
            .unwrap()
            .unwrap()
            .1,
        1
    );
    l.minutes = 45;
    assert_eq!(h.store.upsert(&h.ws, &l).await.unwrap(), Upserted::Updated);
    assert_eq!(
        h.store
            .get::<WorkLog>(&h.ws, l.id.as_str())
            .await
            .unwrap()
            .unwrap()
            .1,
        2
    );
    // Concurrent identical upserts still leave exactly one record.
    let fresh = log(&new_id(), &new_id(), day(6), "race");
    let (a, b) = tokio::join!(h.store.upsert(&h.ws, &fresh), h.store.upsert(&h.ws, &fresh));
    let outcomes = [a.unwrap(), b.unwrap()];
    assert!(outcomes.contains(&Upserted::Created));
    assert_eq!(
        h.store
            .get::<WorkLog>(&h.ws, fresh.id.as_str())
            .await
            .unwrap()
            .unwrap()
            .1,
        1
    );
}

/// A cursor that the store did not issue is refused, not misread.
pub async fn invalid_cursor_is_rejected(h: &Harness) {
    let mut q = h.store.query::<Person>(&h.ws, IndexSel::Primary, 10);
    q.cursor = Some(Cursor::parse("not-a-cursor!").unwrap());
    assert!(matches!(
        h.store.list::<Person>(q, None).await,
        Err(StoreError::InvalidCursor)
    ));
    // A raw write with Condition::Absent on an unknown id succeeds (sanity for the above).
    let r = Store::to_record(&h.ws, &person("X", "x@example.com")).unwrap();
    assert_eq!(
        h.store
            .backend()
            .put(r, Condition::Absent)
            .await
            .unwrap()
            .version,
        1
    );
}

/// Bulk reads return exactly the live records asked for; bulk deletes remove exactly those.
pub async fn get_many_and_delete_batch_cover_hundreds_of_ids(h: &Harness) {
    let (project, who) = (new_id(), new_id());
    let items: Vec<(WorkLog, u64)> = (0..260)
        .map(|i| (log(&project, &who, day(i % 30), "bulk"), 1))
        .collect();
    h.store.put_batch(&h.ws, &items).await.unwrap();
    let mut ids: Vec<String> = items
        .iter()
        .step_by(2)
        .map(|(l, _)| l.id.to_string())
        .collect();
    ids.push("missing-id".into());
    let found = h.store.get_many::<WorkLog>(&h.ws, &ids).await.unwrap();
    assert_eq!(found.len(), 130);
    assert!(!found.contains_key("missing-id"));
    assert_eq!(found[&items[0].0.id.to_string()].0, items[0].0);
    // Another workspace sees none of them.
    assert!(
        h.store
            .get_many::<WorkLog>(&h.other_ws, &ids)
            .await
            .unwrap()
            .is_empty()
    );

    h.store.delete_batch::<WorkLog>(&h.ws, &ids).await.unwrap();
    let all: Vec<String> = items.iter().map(|(l, _)| l.id.to_string()).collect();
    let left = h.store.get_many::<WorkLog>(&h.ws, &all).await.unwrap();
    assert_eq!(left.len(), 130);
    assert!(left.keys().all(|k| !ids.contains(k)));
}

/// Keys-only paging returns the same ids, in the same order, as full paging.
pub async fn id_queries_page_like_record_queries(h: &Harness) {
    let (project, who) = (new_id(), new_id());
    let items: Vec<(WorkLog, u64)> = (0..150)
        .map(|i| (log(&project, &who, day(i % 20), "k"), 1))
        .collect();
    h.store.put_batch(&h.ws, &items).await.unwrap();
    let mut q = h
        .store
        .query::<WorkLog>(&h.ws, IndexSel::Index1(project.to_string()), 40);
    q.from = Some(day(5).to_string());
    let full: Vec<String> = {
        let mut out = Vec::new();
        let mut q = q.clone();
        loop {
            let page = h.store.backend().query(&q).await.unwrap();
            out.extend(page.records.into_iter().map(|r| r.id));
            match page.next {
                Some(c) => q.cursor = Some(c),
                None => break out,
            }
        }
    };
    let mut keys = Vec::new();
    loop {
        let page = h.store.backend().query_ids(&q).await.unwrap();
        assert!(page.ids.len() <= 40);
        keys.extend(page.ids);
        match page.next {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(keys, full);
    assert_eq!(
        keys.len(),
        items.iter().filter(|(l, _)| l.date >= day(5)).count()
    );
}

/// `transact` applies every item or none: one failed condition leaves everything as it was.
pub async fn transact_is_all_or_nothing(h: &Harness) {
    let mut ada = person("Ada", "ada@example.com");
    let gone = person("Gone", "gone@example.com");
    h.store.insert(&h.ws, &ada).await.unwrap();
    h.store.insert(&h.ws, &gone).await.unwrap();

    // A stale version on the last item cancels the create before it.
    let bob = person("Bob", "bob@example.com");
    ada.name = "Ada v2".into();
    let failed = h
        .store
        .transact(vec![
            TransactItem::put_entity(&h.ws, &bob, Condition::Absent).unwrap(),
            TransactItem::delete_entity::<Person>(&h.ws, gone.id.as_str(), Condition::Version(1)),
            TransactItem::put_entity(&h.ws, &ada, Condition::Version(7)).unwrap(),
        ])
        .await;
    assert!(matches!(failed, Err(StoreError::Conflict)), "{failed:?}");
    assert!(
        h.store
            .get::<Person>(&h.ws, bob.id.as_str())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        h.store
            .get::<Person>(&h.ws, gone.id.as_str())
            .await
            .unwrap()
            .is_some()
    );
    let (read, v) = h
        .store
        .get::<Person>(&h.ws, ada.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((read.name.as_str(), v), ("Ada", 1));

    // An absent-condition create of a live id cancels too.
    let failed = h
        .store
        .transact(vec![
            TransactItem::put_entity(&h.ws, &bob, Condition::Absent).unwrap(),
            TransactItem::put_entity(&h.ws, &ada, Condition::Absent).unwrap(),
        ])
        .await;
    assert!(matches!(failed, Err(StoreError::Conflict)), "{failed:?}");
    assert!(
        h.store
            .get::<Person>(&h.ws, bob.id.as_str())
            .await
            .unwrap()
            .is_none()
    );

    // All conditions hold: everything is applied, across scopes, with the new versions.
    let carl = person("Carl", "carl@example.com");
    let written = h
        .store
        .transact(vec![
            TransactItem::put_entity(&h.ws, &bob, Condition::Absent).unwrap(),
            TransactItem::delete_entity::<Person>(&h.ws, gone.id.as_str(), Condition::Version(1)),
            TransactItem::put_entity(&h.ws, &ada, Condition::Version(1)).unwrap(),
            TransactItem::put_entity(&h.other_ws, &carl, Condition::None).unwrap(),
            TransactItem::delete_entity::<Person>(&h.ws, "never-existed", Condition::None),
        ])
        .await
        .unwrap();
    let versions: Vec<(String, u64)> = written.iter().map(|r| (r.id.clone(), r.version)).collect();
    assert_eq!(
        versions,
        vec![
            (bob.id.to_string(), 1),
            (ada.id.to_string(), 2),
            (carl.id.to_string(), 1)
        ]
    );
    assert!(
        h.store
            .get::<Person>(&h.ws, gone.id.as_str())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        h.store
            .get::<Person>(&h.ws, ada.id.as_str())
            .await
            .unwrap()
            .unwrap(),
        (ada.clone(), 2)
    );
    assert!(
        h.store
            .get::<Person>(&h.other_ws, carl.id.as_str())
            .await
            .unwrap()
            .is_some()
    );

    // An unconditional put bumps the live version; an expired record counts as absent.
    let again = h
        .store
        .transact(vec![
            TransactItem::put_entity(&h.ws, &ada, Condition::None).unwrap(),
        ])
        .await
        .unwrap();
    assert_eq!(again[0].version, 3);
    let d = WebhookDedup {
        key: "delivery-tx".into(),
        expires_at: h.clock_now() + Duration::seconds(10),
    };
    h.store.insert(&h.ws, &d).await.unwrap();
    h.clock.advance(Duration::seconds(11));
    let d2 = WebhookDedup {
        expires_at: h.clock_now() + Duration::seconds(10),
        ..d
    };
    let fresh = h
        .store
        .transact(vec![
            TransactItem::put_entity(&h.ws, &d2, Condition::Absent).unwrap(),
        ])
        .await
        .unwrap();
    assert_eq!(fresh[0].version, 1);
}

/// Transactions the DynamoDB API would refuse are refused by every backend, writing nothing.
pub async fn transact_refuses_invalid_transactions(h: &Harness) {
    let people: Vec<Person> = (0..=MAX_TRANSACT_ITEMS)
        .map(|i| person(&format!("P{i}"), &format!("p{i}@example.com")))
        .collect();
    let too_many: Vec<TransactItem> = people
        .iter()
        .map(|p| TransactItem::put_entity(&h.ws, p, Condition::Absent).unwrap())
        .collect();
    assert!(matches!(
        h.store.transact(too_many).await,
        Err(StoreError::Backend(_))
    ));
    let twice = vec![
        TransactItem::put_entity(&h.ws, &people[0], Condition::Absent).unwrap(),
        TransactItem::put_entity(&h.ws, &people[0], Condition::None).unwrap(),
    ];
    assert!(matches!(
        h.store.transact(twice).await,
        Err(StoreError::Backend(_))
    ));
    assert!(matches!(
        h.store.transact(Vec::new()).await,
        Err(StoreError::Backend(_))
    ));
    let q = h.store.query::<Person>(&h.ws, IndexSel::Primary, 10);
    assert!(
        h.store
            .list::<Person>(q, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Exactly the limit is fine.
    let max: Vec<TransactItem> = people[..MAX_TRANSACT_ITEMS]
        .iter()
        .map(|p| TransactItem::put_entity(&h.ws, p, Condition::Absent).unwrap())
        .collect();
    assert_eq!(
        h.store.transact(max).await.unwrap().len(),
        MAX_TRANSACT_ITEMS
    );
}

/// Creates a work log in `project` with its change entry; returns the log and its seq.
async fn logged(h: &Harness, project: &RecordId) -> (WorkLog, u64) {
    let l = log(project, &new_id(), day(1), "feed");
    let c = h
        .store
        .commit_with_changes(
            &h.ws,
            vec![TransactItem::put_entity(&h.ws, &l, Condition::Absent).unwrap()],
            vec![ChangeDraft::new(
                HostKind::WorkLog,
                &l.id,
                project,
                ChangeOp::Created,
            )],
        )
        .await
        .unwrap();
    assert_eq!(c.records.len(), 1);
    (l, c.changes[0].seq)
}

/// The feed is read in seq order from any watermark, a page at a time, optionally only one
/// project's entries, and each workspace has its own.
pub async fn change_feed_reads_in_order_from_a_watermark_and_pages(h: &Harness) {
    assert_eq!(h.store.change_head(&h.ws).await.unwrap(), 0);
    let empty = h.store.changes_after(&h.ws, 0, 10, None).await.unwrap();
    assert!(empty.changes.is_empty() && !empty.lost);
    assert_eq!(empty.next_watermark, 0);

    let (p1, p2) = (new_id(), new_id());
    let mut logs = Vec::new();
    for i in 0..25 {
        let (l, seq) = logged(h, if i % 3 == 0 { &p2 } else { &p1 }).await;
        assert_eq!(seq, i + 1);
        logs.push(l);
    }
    // A task change with an update and a delete, in one commit: consecutive seqs.
    let t = new_id();
    let both = h
        .store
        .commit_with_changes(
            &h.ws,
            vec![TransactItem::delete_entity::<WorkLog>(
                &h.ws,
                logs[0].id.as_str(),
                Condition::Version(1),
            )],
            vec![
                ChangeDraft::new(HostKind::WorkLog, &logs[0].id, &p2, ChangeOp::Deleted),
                ChangeDraft::new(HostKind::Task, &t, &p1, ChangeOp::Updated),
            ],
        )
        .await
        .unwrap();
    assert!(both.records.is_empty());
    assert_eq!(
        both.changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
        vec![26, 27]
    );
    assert_eq!(h.store.change_head(&h.ws).await.unwrap(), 27);

    // Pages of 10 from 0: 1..=10, 11..=20, 21..=27, then nothing new.
    let mut watermark = 0;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = h
            .store
            .changes_after(&h.ws, watermark, 10, None)
            .await
            .unwrap();
        assert!(!page.lost);
        assert!(page.changes.len() <= 10);
        if page.changes.is_empty() {
            assert_eq!(page.next_watermark, watermark);
            break;
        }
        pages += 1;
        seen.extend(page.changes.iter().map(|c| c.seq));
        watermark = page.next_watermark;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (1..=27).collect::<Vec<_>>());

    // From a watermark in the middle.
    let mid = h.store.changes_after(&h.ws, 24, 10, None).await.unwrap();
    let got: Vec<_> = mid.changes.iter().map(|c| (c.seq, c.kind, c.op)).collect();
    assert_eq!(
        got,
        vec![
            (25, HostKind::WorkLog, ChangeOp::Created),
            (26, HostKind::WorkLog, ChangeOp::Deleted),
            (27, HostKind::Task, ChangeOp::Updated)
        ]
    );
    assert_eq!(mid.changes[1].id, logs[0].id);
    assert_eq!(mid.next_watermark, 27);

    // One project's entries, paged: the watermark moves past the other project's entries.
    let mut watermark = 0;
    let mut only_p2 = Vec::new();
    loop {
        let page = h
            .store
            .changes_after(&h.ws, watermark, 3, Some(&p2))
            .await
            .unwrap();
        assert!(page.changes.iter().all(|c| c.project_id == p2));
        only_p2.extend(page.changes.iter().map(|c| c.seq));
        if page.next_watermark == watermark {
            break;
        }
        watermark = page.next_watermark;
    }
    assert_eq!(watermark, 27);
    let want: Vec<u64> = (0..25u64)
        .filter(|i| i % 3 == 0)
        .map(|i| i + 1)
        .chain([26])
        .collect();
    assert_eq!(only_p2, want);

    // Other workspaces have their own feed.
    assert_eq!(h.store.change_head(&h.other_ws).await.unwrap(), 0);
    assert!(
        h.store
            .changes_after(&h.other_ws, 0, 100, None)
            .await
            .unwrap()
            .changes
            .is_empty()
    );
}

/// Writers racing for the next number retry instead of reusing one: every append gets a
/// distinct seq and the feed is 1..=n without gaps.
pub async fn change_feed_concurrent_appends_get_unique_consecutive_seqs(h: &Harness) {
    let (tasks, each) = (5u64, 4u64);
    let project = new_id();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (store, ws, project) = (h.store.clone(), h.ws.clone(), project.clone());
        handles.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for _ in 0..each {
                let l = log(&project, &new_id(), day(2), "race");
                let c = store
                    .commit_with_changes(
                        &ws,
                        vec![TransactItem::put_entity(&ws, &l, Condition::Absent).unwrap()],
                        vec![ChangeDraft::new(
                            HostKind::WorkLog,
                            &l.id,
                            &project,
                            ChangeOp::Created,
                        )],
                    )
                    .await
                    .unwrap();
                seqs.push((c.changes[0].seq, l.id));
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in handles {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let n = tasks * each;
    assert_eq!(
        all.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>()
    );
    let page = h.store.changes_after(&h.ws, 0, 1000, None).await.unwrap();
    let read: Vec<_> = page.changes.iter().map(|c| (c.seq, c.id.clone())).collect();
    assert_eq!(
        read, all,
        "each entry names the record its writer committed"
    );
    assert_eq!(h.store.change_head(&h.ws).await.unwrap(), n);
    let ids: Vec<String> = all.iter().map(|(_, id)| id.to_string()).collect();
    assert_eq!(
        h.store
            .get_many::<WorkLog>(&h.ws, &ids)
            .await
            .unwrap()
            .len() as u64,
        n
    );
}

/// A host write whose own condition fails appends nothing and takes no number.
pub async fn change_feed_failed_host_write_appends_nothing(h: &Harness) {
    let project = new_id();
    let (mut l, _) = logged(h, &project).await;
    l.minutes = 99;
    let stale = h
        .store
        .commit_with_changes(
            &h.ws,
            vec![TransactItem::put_entity(&h.ws, &l, Condition::Version(5)).unwrap()],
            vec![ChangeDraft::new(
                HostKind::WorkLog,
                &l.id,
                &project,
                ChangeOp::Updated,
            )],
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");
    let duplicate = h
        .store
        .commit_with_changes(
            &h.ws,
            vec![TransactItem::put_entity(&h.ws, &l, Condition::Absent).unwrap()],
            vec![ChangeDraft::new(
                HostKind::WorkLog,
                &l.id,
                &project,
                ChangeOp::Created,
            )],
        )
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict)),
        "{duplicate:?}"
    );
    assert_eq!(h.store.change_head(&h.ws).await.unwrap(), 1);
    let page = h.store.changes_after(&h.ws, 0, 10, None).await.unwrap();
    assert_eq!(page.changes.len(), 1);
    assert_eq!(page.changes[0].op, ChangeOp::Created);
    let (read, v) = h
        .store
        .get::<WorkLog>(&h.ws, l.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((read.minutes, v), (30, 1));

    // The next successful write takes the next number.
    let ok = h
        .store
        .commit_with_changes(
            &h.ws,
            vec![TransactItem::put_entity(&h.ws, &l, Condition::Version(1)).unwrap()],
            vec![ChangeDraft::new(
                HostKind::WorkLog,
                &l.id,
                &project,
                ChangeOp::Updated,
            )],
        )
        .await
        .unwrap();
    assert_eq!((ok.changes[0].seq, ok.records[0].version), (2, 2));
}

/// Entries expire after the retention; a reader behind them is told, and numbers are never
/// reused.
pub async fn change_feed_entries_expire_after_the_retention(h: &Harness) {
    let project = new_id();
    logged(h, &project).await;
    logged(h, &project).await;
    h.clock
        .advance(Duration::days(CHANGE_RETENTION_DAYS) - Duration::hours(1));
    let (_, third) = logged(h, &project).await;
    assert_eq!(third, 3);
    let page = h.store.changes_after(&h.ws, 0, 10, None).await.unwrap();
    assert_eq!((page.changes.len(), page.lost), (3, false));

    h.clock.advance(Duration::hours(2));
    let behind = h.store.changes_after(&h.ws, 0, 10, None).await.unwrap();
    assert!(behind.lost, "entries 1 and 2 expired");
    assert_eq!(
        behind.changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
        vec![3]
    );
    assert_eq!(behind.next_watermark, 3);
    let current = h.store.changes_after(&h.ws, 2, 10, None).await.unwrap();
    assert!(!current.lost);

    h.clock.advance(Duration::days(CHANGE_RETENTION_DAYS));
    let gone = h.store.changes_after(&h.ws, 1, 10, None).await.unwrap();
    assert!(gone.lost && gone.changes.is_empty());
    assert_eq!(gone.next_watermark, 3);
    let (_, fourth) = logged(h, &project).await;
    assert_eq!(fourth, 4);
}

impl Harness {
    fn clock_now(&self) -> chrono::DateTime<Utc> {
        use hourbridge_domain::Clock as _;
        self.clock.now()
    }
}

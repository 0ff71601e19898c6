//! The master-data-in kind through a test provider defined here: an in-memory catalogue of
//! customers, projects, tasks and memberships the test edits between runs, paged as the test
//! says, counting list and fetch calls per entity, and taking webhooks (path token) that name
//! one record.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::NaiveDate;
use common::{fields, world};
use hourbridge_domain::{
    Assignment, Customer, ManagedBy, Person, PersonLink, Project, ProviderId, RecordId,
    RemoteMapping, Role, SecretValue, SyncRun, Task, WorkLog,
};
use hourbridge_provider_api::{
    AccountInfo, AuthKind, Capabilities, CredentialField, MasterDataIn, MasterDataSource,
    MasterEntity, Provider, ProviderDescriptor, ProviderError, ProviderErrorKind, ProviderSession,
    RemotePage, RemoteRecord, Schedule, WebhookDelivery, WebhookEvent, WebhookReceiver,
    WebhookRequest, WebhookVerification,
};
use hourbridge_store::{Entity, IndexSel};
use hourbridge_sync::runs::{Outcome, RunMode};
use hourbridge_sync::webhooks::WebhookReceipt;
use hourbridge_sync::{Engine, RunScope, SyncJob, SyncSettings};

const WS: &str = "acme";
const P: &str = "ledger";

const FIELDS: &[CredentialField] = &[CredentialField {
    name: "token",
    label: "Token",
    secret: true,
    required: true,
}];

fn rec(entity: MasterEntity, id: &str, name: &str, parent: Option<&str>) -> RemoteRecord {
    RemoteRecord {
        entity,
        id: id.into(),
        name: name.into(),
        parent_id: parent.map(str::to_owned),
        customer_id: None,
        organization_number: None,
        start_date: None,
        end_date: None,
        deleted: false,
        email: None,
        inactive: false,
        version: None,
        number: None,
    }
}

fn member(person: &str, project: &str, email: &str) -> RemoteRecord {
    RemoteRecord {
        email: Some(email.into()),
        ..rec(MasterEntity::Person, person, person, Some(project))
    }
}

/// What the provider holds, by entity, in listing order.
#[derive(Default)]
struct Catalogue {
    records: BTreeMap<&'static str, Vec<RemoteRecord>>,
}

fn key(e: MasterEntity) -> &'static str {
    match e {
        MasterEntity::Customer => "customer",
        MasterEntity::Project => "project",
        MasterEntity::Task => "task",
        MasterEntity::Person => "person",
    }
}

impl Catalogue {
    fn standard() -> Self {
        let mut c = Self::default();
        c.records.insert(
            "customer",
            vec![RemoteRecord {
                organization_number: Some("999".into()),
                ..rec(MasterEntity::Customer, "c1", "Customer One", None)
            }],
        );
        c.records.insert(
            "project",
            vec![
                RemoteRecord {
                    customer_id: Some("c1".into()),
                    ..rec(MasterEntity::Project, "p1", "Bridge", None)
                },
                rec(MasterEntity::Project, "p2", "Tunnel", None),
                RemoteRecord {
                    deleted: true,
                    ..rec(MasterEntity::Project, "p9", "Archived long ago", None)
                },
            ],
        );
        c.records.insert(
            "task",
            vec![
                rec(MasterEntity::Task, "t1", "Design", Some("p1")),
                rec(MasterEntity::Task, "t2", "Build", Some("p1")),
                rec(MasterEntity::Task, "t3", "Dig", Some("p2")),
                rec(MasterEntity::Task, "t9", "On the old project", Some("p9")),
            ],
        );
        c.records.insert(
            "person",
            vec![
                member("u1", "p1", "  ADA@Acme.Test "),
                member("u2", "p1", "nobody@elsewhere.test"),
                member("u3", "p1", "bo@acme.test"),
                member("u3", "p2", "bo@acme.test"),
            ],
        );
        c
    }
}

struct TestProvider {
    d: ProviderDescriptor,
    catalogue: Mutex<Catalogue>,
    /// Records per page (0: everything on one page).
    page_size: AtomicUsize,
    /// `list:<entity>` / `fetch:<entity>` → calls.
    calls: Mutex<BTreeMap<String, usize>>,
}

impl TestProvider {
    fn new() -> Arc<Self> {
        Self::with_depth(1)
    }

    fn with_depth(max_project_depth: u8) -> Arc<Self> {
        Arc::new(Self {
            d: ProviderDescriptor {
                id: P,
                display_name: "Ledger",
                auth: AuthKind::CredentialSet { fields: FIELDS },
                install_role: Role::Admin,
                requires_add_on: false,
                rate_limit: None,
                schedule: Schedule::Every(StdDuration::from_secs(86_400)),
                capabilities: Capabilities {
                    master_data_in: Some(MasterDataIn {
                        customers: true,
                        projects: true,
                        tasks: true,
                        people: true,
                        max_project_depth,
                        match_existing: false,
                    }),
                    webhooks: Some(WebhookVerification::PathToken),
                    ..Capabilities::default()
                },
            },
            catalogue: Mutex::new(Catalogue::standard()),
            page_size: AtomicUsize::new(0),
            calls: Mutex::new(BTreeMap::new()),
        })
    }

    fn edit(&self, f: impl FnOnce(&mut BTreeMap<&'static str, Vec<RemoteRecord>>)) {
        f(&mut self.catalogue.lock().unwrap().records);
    }

    fn count(&self, what: &str) {
        *self
            .calls
            .lock()
            .unwrap()
            .entry(what.to_owned())
            .or_default() += 1;
    }

    fn calls(&self, prefix: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    fn reset_calls(&self) {
        self.calls.lock().unwrap().clear();
    }
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
    fn master_data(&self) -> Option<&dyn MasterDataSource> {
        Some(self)
    }
    fn webhooks(&self) -> Option<&dyn WebhookReceiver> {
        Some(self)
    }
}

#[async_trait]
impl MasterDataSource for TestProvider {
    async fn list(
        &self,
        _: &ProviderSession,
        entity: MasterEntity,
        _since: Option<chrono::DateTime<chrono::Utc>>,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteRecord>, ProviderError> {
        self.count(&format!("list:{}", key(entity)));
        let all = self
            .catalogue
            .lock()
            .unwrap()
            .records
            .get(key(entity))
            .cloned()
            .unwrap_or_default();
        let from: usize = page.as_deref().map_or(0, |p| p.parse().unwrap());
        let size = match self.page_size.load(Ordering::SeqCst) {
            0 => all.len().max(1),
            n => n,
        };
        let to = (from + size).min(all.len());
        Ok(RemotePage {
            items: all[from.min(to)..to].to_vec(),
            next: (to < all.len()).then(|| to.to_string()),
        })
    }

    async fn fetch(
        &self,
        _: &ProviderSession,
        entity: MasterEntity,
        remote_id: &str,
        parent_id: Option<&str>,
    ) -> Result<Option<RemoteRecord>, ProviderError> {
        self.count(&format!("fetch:{}", key(entity)));
        Ok(self
            .catalogue
            .lock()
            .unwrap()
            .records
            .get(key(entity))
            .and_then(|v| {
                v.iter()
                    .find(|r| {
                        r.id == remote_id
                            && (parent_id.is_none() || r.parent_id.as_deref() == parent_id)
                    })
                    .cloned()
            }))
    }
}

/// Deliveries are `{"entity": "task", "id": "t1", "parent": "p1", "deleted": false}`.
impl WebhookReceiver for TestProvider {
    fn verify(&self, _: &WebhookRequest, _: &SecretValue) -> Result<(), ProviderError> {
        Ok(())
    }
    fn handle(&self, r: &WebhookRequest) -> Result<WebhookDelivery, ProviderError> {
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .map_err(|_| ProviderError::new(P, ProviderErrorKind::InvalidResponse, "not JSON"))?;
        let entity = serde_json::from_value(v["entity"].clone())
            .map_err(|_| ProviderError::new(P, ProviderErrorKind::InvalidResponse, "entity"))?;
        Ok(WebhookDelivery {
            events: vec![WebhookEvent {
                entity,
                remote_id: v["id"].as_str().unwrap_or_default().to_owned(),
                deleted: v["deleted"].as_bool().unwrap_or(false),
                parent_id: v["parent"].as_str().map(str::to_owned),
            }],
        })
    }
}

fn id(s: &str) -> RecordId {
    RecordId::parse(s).unwrap()
}

fn pid() -> ProviderId {
    ProviderId::parse(P).unwrap()
}

fn ours() -> ManagedBy {
    ManagedBy::Provider(pid())
}

async fn setup() -> (common::World, Arc<TestProvider>) {
    setup_with(TestProvider::new()).await
}

async fn setup_with(p: Arc<TestProvider>) -> (common::World, Arc<TestProvider>) {
    let w = world(vec![p.clone()], SyncSettings::default());
    w.engine
        .connect(WS, &id("olga"), P, fields(&[("token", "t")]))
        .await
        .expect("connect");
    for (pid, email) in [("ada", "ada@acme.test"), ("bo", "Bo@Acme.test")] {
        w.engine
            .store
            .insert(
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
    (w, p)
}

fn job(run: &SyncRun) -> SyncJob {
    SyncJob {
        workspace_id: WS.into(),
        provider: P.into(),
        run_id: run.id.to_string(),
    }
}

async fn finish(e: &Engine, r: &SyncRun) -> SyncRun {
    let out = e.execute(&job(r), None).await.expect("execute");
    assert!(matches!(out, Outcome::Finished(_)), "{out:?}");
    let done = e.run(WS, r.id.as_str()).await.unwrap().unwrap();
    assert!(done.failure.is_none(), "{done:?}");
    done
}

/// A full connection run, executed to the end.
async fn run(e: &Engine) -> SyncRun {
    let r = e
        .start_run(WS, P, RunScope::Connection, RunMode::Refetch)
        .await
        .expect("start");
    finish(e, &r).await
}

/// The host id a remote record was imported under.
async fn local(e: &Engine, entity: &str, remote: &str) -> Option<RecordId> {
    e.store
        .get::<RemoteMapping>(WS, &format!("{P}.{entity}.{remote}"))
        .await
        .unwrap()
        .map(|(m, _)| m.local_id)
}

async fn get<E: Entity>(e: &Engine, id: &RecordId) -> Option<E> {
    e.store
        .get::<E>(WS, id.as_str())
        .await
        .unwrap()
        .map(|x| x.0)
}

async fn project(e: &Engine, remote: &str) -> Project {
    let id = local(e, "project", remote).await.expect("project mapped");
    get::<Project>(e, &id).await.expect("project exists")
}

async fn assignments_of(e: &Engine, person: &str) -> Vec<Assignment> {
    let q = e
        .store
        .query::<Assignment>(WS, IndexSel::Index2(person.to_owned()), 1000);
    e.store.list_all::<Assignment>(q).await.unwrap()
}

async fn all<E: Entity>(e: &Engine, ids: &[RecordId]) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for i in ids {
        let (_, v) = e.store.get::<E>(WS, i.as_str()).await.unwrap().unwrap();
        out.push((i.to_string(), v));
    }
    out
}

fn local_assignment(aid: &str, person: &str, project: &RecordId) -> Assignment {
    Assignment {
        id: id(aid),
        person_id: id(person),
        project_id: project.clone(),
        start_date: None,
        end_date: None,
        managed_by: ManagedBy::Local,
    }
}

#[tokio::test]
async fn first_import_creates_read_only_projects_tasks_and_member_assignments() {
    let (w, _p) = setup().await;
    let e = &w.engine;
    let r = run(e).await;
    // 1 customer, 2 projects, 3 tasks, ada on p1, bo on p1 and p2.
    assert_eq!(r.imported.created, 9, "{:?}", r.imported);
    assert!(r.imported.skipped >= 2, "unmatched member, task on p9");

    let cid = local(e, "customer", "c1").await.expect("customer mapped");
    assert_eq!(
        cid.as_str(),
        format!("{P}-customer-c1"),
        "id from remote id"
    );
    let c = get::<Customer>(e, &cid).await.unwrap();
    assert_eq!(
        (c.name.as_str(), c.organization_number.as_deref()),
        ("Customer One", Some("999"))
    );
    assert_eq!(c.managed_by, ours());

    let p1 = project(e, "p1").await;
    assert_eq!(p1.id.as_str(), format!("{P}-project-p1"));
    assert_eq!(p1.name, "Bridge");
    assert_eq!(p1.customer_id.as_ref(), Some(&cid));
    assert_eq!(p1.managed_by, ours(), "read-only: the provider is master");
    assert!(p1.active);
    let p2 = project(e, "p2").await;
    assert_eq!(p2.managed_by, ours());

    // Closed before it was ever imported: not imported, nor its tasks.
    assert!(local(e, "project", "p9").await.is_none());
    assert!(
        get::<Project>(e, &id(&format!("{P}-project-p9")))
            .await
            .is_none()
    );
    assert!(local(e, "task", "t9").await.is_none());

    for (t, name, on) in [
        ("t1", "Design", &p1),
        ("t2", "Build", &p1),
        ("t3", "Dig", &p2),
    ] {
        let tid = local(e, "task", t).await.expect("task mapped");
        assert_eq!(tid.as_str(), format!("{P}-task-{t}"));
        let task = get::<Task>(e, &tid).await.unwrap();
        assert_eq!(
            (task.name.as_str(), &task.project_id, &task.managed_by),
            (name, &on.id, &ours())
        );
    }

    // Ada matched by e-mail despite case and spaces; Bo on both projects.
    let ada = assignments_of(e, "ada").await;
    assert_eq!(ada.len(), 1, "{ada:?}");
    assert_eq!((&ada[0].project_id, &ada[0].managed_by), (&p1.id, &ours()));
    assert!(local(e, "assignment", "p1-u1").await.is_some());
    let mut bo: Vec<RecordId> = assignments_of(e, "bo")
        .await
        .into_iter()
        .inspect(|a| assert_eq!(a.managed_by, ours()))
        .map(|a| a.project_id)
        .collect();
    bo.sort();
    assert_eq!(bo, vec![p1.id.clone(), p2.id.clone()]);

    let link = e
        .store
        .get::<PersonLink>(WS, &format!("ada.{P}"))
        .await
        .unwrap()
        .expect("ada linked");
    assert_eq!(link.0.remote_person_id, "u1");
    assert!(
        e.store
            .get::<PersonLink>(WS, &format!("bo.{P}"))
            .await
            .unwrap()
            .is_some()
    );
    let q = e
        .store
        .query::<PersonLink>(WS, IndexSel::Index1(format!("{P}.u2")), 10);
    assert!(
        e.store.list_all::<PersonLink>(q).await.unwrap().is_empty(),
        "no link for an e-mail without a host person"
    );
    assert!(local(e, "assignment", "p1-u2").await.is_none());
}

#[tokio::test]
async fn an_unchanged_reimport_writes_nothing() {
    let (w, _p) = setup().await;
    let e = &w.engine;
    run(e).await;
    let mut projects = Vec::new();
    for r in ["p1", "p2"] {
        projects.push(local(e, "project", r).await.unwrap());
    }
    let mut tasks = Vec::new();
    for r in ["t1", "t2", "t3"] {
        tasks.push(local(e, "task", r).await.unwrap());
    }
    let assignments: Vec<RecordId> = [
        assignments_of(e, "ada").await,
        assignments_of(e, "bo").await,
    ]
    .concat()
    .into_iter()
    .map(|a| a.id)
    .collect();
    let customers = vec![local(e, "customer", "c1").await.unwrap()];
    let before = (
        all::<Project>(e, &projects).await,
        all::<Task>(e, &tasks).await,
        all::<Assignment>(e, &assignments).await,
        all::<Customer>(e, &customers).await,
    );

    let r = run(e).await;
    assert_eq!(
        (r.imported.created, r.imported.updated, r.imported.deleted),
        (0, 0, 0),
        "{:?}",
        r.imported
    );
    assert!(r.imported.unchanged >= 9, "{:?}", r.imported);
    let after = (
        all::<Project>(e, &projects).await,
        all::<Task>(e, &tasks).await,
        all::<Assignment>(e, &assignments).await,
        all::<Customer>(e, &customers).await,
    );
    assert_eq!(before, after, "no record was rewritten");
}

#[tokio::test]
async fn a_task_gone_from_the_provider_is_deleted_unless_work_logs_use_it() {
    let (w, p) = setup().await;
    let e = &w.engine;
    run(e).await;
    let t2 = local(e, "task", "t2").await.unwrap();
    let t3 = local(e, "task", "t3").await.unwrap();
    let p2 = local(e, "project", "p2").await.unwrap();
    e.store
        .insert(
            WS,
            &WorkLog {
                id: id("l1"),
                person_id: id("bo"),
                project_id: p2.clone(),
                task_id: Some(t3.clone()),
                date: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
                minutes: 30,
                note: "digging".into(),
                source: None,
                updated_at: None,
            },
        )
        .await
        .unwrap();
    p.edit(|c| c.get_mut("task").unwrap().retain(|t| t.id == "t1"));

    let r = run(e).await;
    assert_eq!(r.imported.deleted, 1, "{:?}", r.imported);
    assert!(get::<Task>(e, &t2).await.is_none(), "unused task deleted");
    assert!(local(e, "task", "t2").await.is_none(), "and unmapped");
    let kept = get::<Task>(e, &t3).await.expect("task with work logs kept");
    assert_eq!(kept.project_id, p2);
    assert!(get::<WorkLog>(e, &id("l1")).await.is_some());
    assert!(local(e, "task", "t1").await.is_some());
    assert!(
        get::<Task>(e, &local(e, "task", "t1").await.unwrap())
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_project_gone_or_closed_in_the_provider_is_archived_never_deleted() {
    let (w, p) = setup().await;
    let e = &w.engine;
    run(e).await;
    p.edit(|c| {
        let projects = c.get_mut("project").unwrap();
        projects.retain(|r| r.id != "p2");
        projects.iter_mut().find(|r| r.id == "p1").unwrap().deleted = true;
        c.get_mut("task").unwrap().retain(|t| t.id != "t3");
        c.get_mut("person")
            .unwrap()
            .retain(|m| m.parent_id.as_deref() != Some("p2"));
    });

    run(e).await;
    let p1 = project(e, "p1").await;
    let p2 = project(e, "p2").await;
    assert!(!p1.active, "closed in the provider: archived");
    assert!(!p2.active, "gone from the provider: archived");
    assert_eq!((p1.managed_by, p2.managed_by), (ours(), ours()));
    assert_eq!(p1.name, "Bridge");
    // Tasks of the closed project are still listed, and stay.
    assert!(local(e, "task", "t1").await.is_some());

    let r = run(e).await;
    assert_eq!(
        (r.imported.created, r.imported.updated),
        (0, 0),
        "archiving is stable: {:?}",
        r.imported
    );
    assert!(!project(e, "p2").await.active);
}

#[tokio::test]
async fn a_member_removed_from_a_project_loses_the_imported_assignment_but_own_assignments_stay() {
    let (w, p) = setup().await;
    let e = &w.engine;
    run(e).await;
    let p1 = local(e, "project", "p1").await.unwrap();
    let p2 = local(e, "project", "p2").await.unwrap();
    // Ada's own assignment on p2, made in the host; then the provider adds her there too.
    e.store
        .insert(WS, &local_assignment("ada-own", "ada", &p2))
        .await
        .unwrap();
    p.edit(|c| {
        c.get_mut("person")
            .unwrap()
            .push(member("u1", "p2", "ada@acme.test"))
    });
    run(e).await;
    let ada = assignments_of(e, "ada").await;
    let on_p2: Vec<&Assignment> = ada.iter().filter(|a| a.project_id == p2).collect();
    assert_eq!(on_p2.len(), 1, "no second assignment: {ada:?}");
    assert_eq!(
        (on_p2[0].id.as_str(), &on_p2[0].managed_by),
        ("ada-own", &ManagedBy::Local)
    );

    // Removed from both projects in the provider.
    p.edit(|c| c.get_mut("person").unwrap().retain(|m| m.id != "u1"));
    let r = run(e).await;
    assert_eq!(r.imported.deleted, 1, "{:?}", r.imported);
    let ada = assignments_of(e, "ada").await;
    assert_eq!(ada.len(), 1, "{ada:?}");
    assert_eq!(
        (ada[0].id.as_str(), &ada[0].project_id, &ada[0].managed_by),
        ("ada-own", &p2, &ManagedBy::Local),
        "her own assignment stays"
    );
    assert!(!ada.iter().any(|a| a.project_id == p1));
    assert!(local(e, "assignment", "p1-u1").await.is_none());
    assert!(local(e, "assignment", "p2-u1").await.is_none());
    assert_eq!(assignments_of(e, "bo").await.len(), 2, "other members stay");
}

async fn deliver(w: &common::World, body: &str) {
    let hook = w
        .engine
        .connection_webhook(WS, P)
        .await
        .unwrap()
        .expect("a webhook token on connect");
    let request = WebhookRequest {
        headers: BTreeMap::new(),
        body: body.as_bytes().to_vec(),
    };
    let got = w
        .engine
        .receive_webhook(P, &hook.token, &request)
        .await
        .unwrap();
    assert_eq!(got, WebhookReceipt::Accepted { records: 1 });
}

/// The changes run the webhook receipt queued (starting one of that scope coalesces onto it).
async fn changes_run(e: &Engine) -> SyncRun {
    let queued = e
        .start_run(WS, P, RunScope::Changes, RunMode::Refetch)
        .await
        .unwrap();
    finish(e, &queued).await
}

#[tokio::test]
async fn a_changes_run_fetches_only_the_records_webhooks_named() {
    let (w, p) = setup().await;
    let e = &w.engine;
    run(e).await;
    p.edit(|c| {
        c.get_mut("task")
            .unwrap()
            .iter_mut()
            .find(|t| t.id == "t1")
            .unwrap()
            .name = "Design, revised".into();
    });
    p.reset_calls();
    w.clock.advance(chrono::Duration::seconds(5));
    deliver(
        &w,
        r#"{"entity": "task", "id": "t1", "parent": "p1", "deleted": false}"#,
    )
    .await;
    assert_eq!(e.pending_refetches(WS, P).await.unwrap().len(), 1);

    let r = changes_run(e).await;
    assert_eq!(p.calls("list:"), 0, "{:?}", p.calls.lock().unwrap());
    assert_eq!(p.calls("fetch:task"), 1);
    assert_eq!(p.calls("fetch:"), 1);
    assert_eq!(r.imported.updated, 1, "{:?}", r.imported);
    let t1 = get::<Task>(e, &local(e, "task", "t1").await.unwrap())
        .await
        .unwrap();
    assert_eq!(t1.name, "Design, revised");
    assert!(e.pending_refetches(WS, P).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_webhook_about_a_project_fetches_just_that_project() {
    let (w, p) = setup().await;
    let e = &w.engine;
    run(e).await;
    p.edit(|c| {
        c.get_mut("project")
            .unwrap()
            .iter_mut()
            .find(|r| r.id == "p2")
            .unwrap()
            .name = "Tunnel two".into();
    });
    p.reset_calls();
    w.clock.advance(chrono::Duration::seconds(5));
    deliver(&w, r#"{"entity": "project", "id": "p2"}"#).await;
    changes_run(e).await;
    assert_eq!(p.calls("fetch:project"), 1);
    assert_eq!(p.calls("list:"), 0, "no full import for one project");
    assert_eq!(project(e, "p2").await.name, "Tunnel two");
    assert!(e.pending_refetches(WS, P).await.unwrap().is_empty());
}

#[tokio::test]
async fn disconnect_hands_imported_records_back_to_the_host() {
    let (w, _p) = setup().await;
    let e = &w.engine;
    run(e).await;
    let p1 = local(e, "project", "p1").await.unwrap();
    let p2 = local(e, "project", "p2").await.unwrap();
    let tasks = [
        local(e, "task", "t1").await.unwrap(),
        local(e, "task", "t2").await.unwrap(),
        local(e, "task", "t3").await.unwrap(),
    ];
    let cid = local(e, "customer", "c1").await.unwrap();
    assert!(e.disconnect(WS, P).await.unwrap());

    for p in [&p1, &p2] {
        let got = get::<Project>(e, p).await.expect("project kept");
        assert_eq!(got.managed_by, ManagedBy::Local);
        assert!(got.active);
    }
    for t in &tasks {
        let got = get::<Task>(e, t).await.expect("task kept");
        assert_eq!(got.managed_by, ManagedBy::Local);
    }
    let assignments = [
        assignments_of(e, "ada").await,
        assignments_of(e, "bo").await,
    ]
    .concat();
    assert_eq!(assignments.len(), 3, "assignments kept: {assignments:?}");
    assert!(assignments.iter().all(|a| a.managed_by == ManagedBy::Local));
    assert_eq!(
        get::<Customer>(e, &cid).await.expect("kept").managed_by,
        ManagedBy::Local
    );
}

/// A full connection run executed with a deadline already within the margin, so it pauses
/// after every step and is executed again from its checkpoint; answers it and its pauses.
async fn paged_run(e: &Engine) -> (SyncRun, usize) {
    let r = e
        .start_run(WS, P, RunScope::Connection, RunMode::Refetch)
        .await
        .unwrap();
    let mut pauses = 0;
    loop {
        match e.execute(&job(&r), Some(e.clock.now())).await.unwrap() {
            Outcome::Paused => pauses += 1,
            Outcome::Finished(_) => break,
            other => panic!("{other:?}"),
        }
        assert!(pauses < 100, "the run makes progress");
    }
    let done = e.run(WS, r.id.as_str()).await.unwrap().unwrap();
    assert!(done.failure.is_none(), "{done:?}");
    (done, pauses)
}

#[tokio::test]
async fn a_run_resumed_from_a_checkpoint_still_reconciles() {
    let (w, p) = setup().await;
    let e = &w.engine;
    run(e).await;
    // One record per page, and runs that pause after every page.
    p.page_size.store(1, Ordering::SeqCst);
    let (r, pauses) = paged_run(e).await;
    assert!(pauses > 5, "paused between pages: {pauses}");
    assert_eq!(
        (r.imported.created, r.imported.updated, r.imported.deleted),
        (0, 0, 0),
        "records seen before a pause are not reconciled away: {:?}",
        r.imported
    );
    for t in ["t1", "t2", "t3"] {
        let tid = local(e, "task", t).await.expect("still mapped");
        assert!(get::<Task>(e, &tid).await.is_some());
    }
    assert!(project(e, "p1").await.active);
    assert!(project(e, "p2").await.active);
    assert_eq!(assignments_of(e, "bo").await.len(), 2);
    assert_eq!(assignments_of(e, "ada").await.len(), 1);

    // And what is gone is still reconciled in a paused-and-resumed run.
    p.edit(|c| c.get_mut("task").unwrap().retain(|r| r.id != "t2"));
    let (r, _) = paged_run(e).await;
    assert_eq!(r.imported.deleted, 1, "{:?}", r.imported);
    assert!(local(e, "task", "t2").await.is_none());
    assert!(local(e, "task", "t1").await.is_some());
    assert!(local(e, "task", "t3").await.is_some());
}

#[tokio::test]
async fn projects_deeper_than_the_declared_depth_are_reported_not_synced() {
    let (w, p) = setup_with(TestProvider::with_depth(2)).await;
    let e = &w.engine;
    p.edit(|c| {
        c.insert(
            "project",
            vec![
                rec(MasterEntity::Project, "a", "Top", None),
                rec(MasterEntity::Project, "b", "Child", Some("a")),
                rec(MasterEntity::Project, "c", "Grandchild", Some("b")),
            ],
        );
        c.insert(
            "task",
            vec![rec(
                MasterEntity::Task,
                "tc",
                "On the grandchild",
                Some("c"),
            )],
        );
        c.insert("person", vec![]);
    });
    let r = run(e).await;
    let a = project(e, "a").await;
    let b = project(e, "b").await;
    assert_eq!((a.parent_id, b.parent_id.as_ref()), (None, Some(&a.id)));
    assert!(
        local(e, "project", "c").await.is_none(),
        "a third level is not mirrored (host projects have two levels)"
    );
    assert!(local(e, "task", "tc").await.is_none());
    assert!(
        r.problems.iter().any(|x| x.record == "c"),
        "reported: {:?}",
        r.problems
    );
}

#[tokio::test]
async fn an_older_revision_never_overwrites_a_newer_one() {
    let (w, p) = setup().await;
    let e = &w.engine;
    let set = |name: &'static str, version: u64| {
        p.edit(|c| {
            let r = c
                .get_mut("project")
                .unwrap()
                .iter_mut()
                .find(|r| r.id == "p1")
                .unwrap();
            r.name = name.into();
            r.version = Some(version);
        })
    };
    set("Revision five", 5);
    run(e).await;
    assert_eq!(project(e, "p1").await.name, "Revision five");
    // A stale answer (a webhook that skipped ahead, a lagging replica) is ignored.
    set("Revision three", 3);
    run(e).await;
    assert_eq!(project(e, "p1").await.name, "Revision five");
    set("Revision six", 6);
    run(e).await;
    assert_eq!(project(e, "p1").await.name, "Revision six");
}

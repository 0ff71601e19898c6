//! The host API a tasks-out, two-way-time provider (TimeLog) needs, over HTTP, through test
//! providers defined here (not shipped): task CRUD with one change-feed entry per write,
//! assignees, work-log `updated_at`, project links by declared capability (most remote
//! projects, `sync_from` only where required), remote users suggested by e-mail, person links
//! with at most one person per remote user (also under concurrent PUTs), and connect fields
//! shown without secrets.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use hourbridge_api::{AppState, Authenticator};
use hourbridge_domain::{
    ChangeOp, Clock, HostKind, ManagedBy, ManualClock, PersonLink, Project, ProviderId, RecordId,
    Role, Task, WorkLog, WorkLogSource,
};
use hourbridge_provider_api::{
    AccountInfo, AuthKind, Capabilities, ChangeWindow, CredentialField, Directory, OutboundTime,
    ProjectLinks, Provider, ProviderDescriptor, ProviderError, ProviderSession, Registry,
    RemotePage, RemoteProject, RemoteUser, Schedule, TimeChange, TimeChangeFeed, TimeSink,
    TimeTwoWay,
};
use hourbridge_store::{IndexSel, Store};
use serde_json::{Value, json};

use common::{WS, authenticator, code, engine, issue, json_request, memory_store, send};

const fn field(name: &'static str, secret: bool) -> CredentialField {
    CredentialField {
        name,
        label: name,
        secret,
        required: true,
    }
}

/// TimeLog's seven connect fields, two of them secret.
const SEVEN: &[CredentialField] = &[
    field("domain", false),
    field("account_name", false),
    field("username", false),
    field("password", true),
    field("site_code", false),
    field("reporting_username", false),
    field("reporting_password", true),
];

const PASSWORD: &[CredentialField] = &[field("password", true)];

/// A credential-set provider with a directory of projects and users (two users a page, each
/// page a little slow, so concurrent requests overlap), and, when it declares two-way time,
/// stub time traits.
struct Fake {
    d: ProviderDescriptor,
    user_pages: AtomicUsize,
}

#[async_trait]
impl Provider for Fake {
    fn descriptor(&self) -> &ProviderDescriptor {
        &self.d
    }
    async fn check_credentials(&self, _: &ProviderSession) -> Result<AccountInfo, ProviderError> {
        Ok(AccountInfo {
            account_id: "1".into(),
            account_name: "Acme ApS".into(),
            other_accounts: vec![],
            identity: None,
        })
    }
    fn directory(&self) -> Option<&dyn Directory> {
        let c = &self.d.capabilities;
        (c.person_links || c.project_links.is_some()).then_some(self as &dyn Directory)
    }
    fn time_sink(&self) -> Option<&dyn TimeSink> {
        self.d
            .capabilities
            .time_two_way
            .is_some()
            .then_some(self as &dyn TimeSink)
    }
    fn time_changes(&self) -> Option<&dyn TimeChangeFeed> {
        self.d
            .capabilities
            .time_two_way
            .is_some()
            .then_some(self as &dyn TimeChangeFeed)
    }
}

fn users() -> Vec<RemoteUser> {
    let u = |id: &str, initials: &str, name: &str, email: Option<&str>, active: bool| RemoteUser {
        id: id.into(),
        initials: Some(initials.into()),
        name: name.into(),
        email: email.map(Into::into),
        active,
    };
    vec![
        u(
            "u1",
            "ADA",
            "Ada Lovelace",
            Some("  Ada.Lovelace@ACME.test "),
            true,
        ),
        u("u2", "BO", "Bo Ek", Some("bo@acme.test"), true),
        u("u3", "NN", "No Mail", None, true),
        u("u4", "GH", "Gone Hire", Some("gone@elsewhere.test"), false),
        u("u5", "CY", "Cy Twombly", Some("cy@acme.test"), true),
    ]
}

#[async_trait]
impl Directory for Fake {
    async fn list_projects(
        &self,
        _: &ProviderSession,
        query: Option<&str>,
        _: Option<String>,
    ) -> Result<RemotePage<RemoteProject>, ProviderError> {
        let all = [
            ("p1", "Bridge rebuild"),
            ("p2", "Harbour"),
            ("p3", "Bridge paint"),
        ];
        let q = query.unwrap_or("").to_lowercase();
        Ok(RemotePage {
            items: all
                .iter()
                .filter(|(_, n)| n.to_lowercase().contains(&q))
                .map(|(id, name)| RemoteProject {
                    id: (*id).into(),
                    name: (*name).into(),
                    customer_name: None,
                    archived: false,
                    parent_id: None,
                })
                .collect(),
            next: None,
        })
    }
    async fn list_users(
        &self,
        _: &ProviderSession,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteUser>, ProviderError> {
        self.user_pages.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(StdDuration::from_millis(5)).await;
        let all = users();
        let start: usize = page.as_deref().map_or(0, |p| p.parse().unwrap());
        let end = (start + 2).min(all.len());
        Ok(RemotePage {
            items: all[start..end].to_vec(),
            next: (end < all.len()).then(|| end.to_string()),
        })
    }
}

#[async_trait]
impl TimeSink for Fake {
    async fn create(
        &self,
        _: &ProviderSession,
        _: &OutboundTime,
        _: &str,
    ) -> Result<String, ProviderError> {
        Ok("t1".into())
    }
    async fn update(
        &self,
        _: &ProviderSession,
        _: &str,
        _: &OutboundTime,
    ) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn delete(&self, _: &ProviderSession, _: &str) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[async_trait]
impl TimeChangeFeed for Fake {
    async fn changes(
        &self,
        _: &ProviderSession,
        _: ChangeWindow,
        _: Option<String>,
    ) -> Result<RemotePage<TimeChange>, ProviderError> {
        Ok(RemotePage {
            items: vec![],
            next: None,
        })
    }
}

fn descriptor(
    id: &'static str,
    display_name: &'static str,
    fields: &'static [CredentialField],
    capabilities: Capabilities,
) -> ProviderDescriptor {
    ProviderDescriptor {
        id,
        display_name,
        auth: AuthKind::CredentialSet { fields },
        install_role: Role::Admin,
        requires_add_on: false,
        rate_limit: None,
        schedule: Schedule::Every(StdDuration::from_secs(900)),
        capabilities,
    }
}

/// `linky`: TimeLog's shape (one project per link, no `sync_from`, person links, two-way
/// time). `strict`: Harvest's link rules on a small scale (up to 3 projects, `sync_from`
/// required), no person links, one-way. `plain`: no links at all.
fn providers() -> Vec<Arc<Fake>> {
    let fake = |d| {
        Arc::new(Fake {
            d,
            user_pages: AtomicUsize::new(0),
        })
    };
    vec![
        fake(descriptor(
            "linky",
            "Linky",
            SEVEN,
            Capabilities {
                project_links: Some(ProjectLinks {
                    max_remote_projects: 1,
                    requires_sync_from: false,
                }),
                person_links: true,
                time_two_way: Some(TimeTwoWay {
                    history_days: 90,
                    overlap: StdDuration::from_secs(600),
                }),
                ..Capabilities::default()
            },
        )),
        fake(descriptor(
            "strict",
            "Strict",
            PASSWORD,
            Capabilities {
                project_links: Some(ProjectLinks {
                    max_remote_projects: 3,
                    requires_sync_from: true,
                }),
                ..Capabilities::default()
            },
        )),
        fake(descriptor(
            "plain",
            "Plain",
            PASSWORD,
            Capabilities::default(),
        )),
    ]
}

struct World {
    app: axum::Router,
    auth: Arc<Authenticator>,
    store: Store,
    clock: Arc<ManualClock>,
    linky: Arc<Fake>,
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap()
}

async fn world() -> World {
    let clock = Arc::new(ManualClock::new(start()));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let store = memory_store(dyn_clock.clone());
    let mut registry = Registry::new();
    let fakes = providers();
    for p in &fakes {
        registry.register(p.clone()).unwrap();
    }
    let engine = engine(store.clone(), registry, Arc::default(), dyn_clock);
    let auth = Arc::new(authenticator());
    let app = hourbridge_api::router(AppState {
        store: store.clone(),
        auth: auth.clone(),
        engine,
    });
    let w = World {
        app,
        auth,
        store,
        clock,
        linky: fakes[0].clone(),
    };
    w.ok(
        Method::POST,
        "/v1/workspaces",
        Some(json!({"name": "Acme", "owner": {"name": "Olga", "email": "olga@acme.test"}})),
    )
    .await;
    w
}

impl World {
    async fn call_as(
        &self,
        person: &str,
        role: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let token = issue(&self.auth, person, role);
        send(&self.app, json_request(method, path, &token, body, &[])).await
    }

    /// As the owner.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as("olga", "owner", method, path, body).await
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (st, b) = self.call(method.clone(), path, body).await;
        assert!(st.is_success(), "{method} {path}: {st} {b}");
        b
    }

    async fn person(&self, id_hint: &str, email: &str) -> String {
        let b = self
            .ok(
                Method::POST,
                "/v1/people",
                Some(json!({"name": id_hint, "email": email, "role": "member"})),
            )
            .await;
        b["id"].as_str().unwrap().to_owned()
    }

    async fn project(&self, name: &str) -> String {
        let b = self
            .ok(Method::POST, "/v1/projects", Some(json!({"name": name})))
            .await;
        b["id"].as_str().unwrap().to_owned()
    }

    async fn connect_linky(&self) {
        self.ok(
            Method::PUT,
            "/v1/connections/linky",
            Some(json!({
                "domain": "https://app.linky.test", "account_name": "acme",
                "username": "olga", "password": "pw-secret-1", "site_code": "S1",
                "reporting_username": "reporter", "reporting_password": "pw-secret-2",
            })),
        )
        .await;
    }

    /// The change-feed entries of `kind` so far, as `(id, project, op)`.
    async fn changes(&self, kind: HostKind) -> Vec<(String, String, ChangeOp)> {
        let page = self.store.changes_after(WS, 0, 1000, None).await.unwrap();
        page.changes
            .into_iter()
            .filter(|c| c.kind == kind)
            .map(|c| (c.id.to_string(), c.project_id.to_string(), c.op))
            .collect()
    }

    async fn links_of_remote(&self, provider: &str, remote: &str) -> Vec<PersonLink> {
        let q = self.store.query::<PersonLink>(
            WS,
            IndexSel::Index1(format!("{provider}.{remote}")),
            100,
        );
        self.store.list_all::<PersonLink>(q).await.unwrap()
    }
}

fn id(s: &str) -> RecordId {
    RecordId::parse(s).unwrap()
}

#[tokio::test]
async fn task_writes_each_append_exactly_their_change_entry() {
    let w = world().await;
    let pid = w.project("Bridge").await;
    let ada = w.person("Ada", "ada@acme.test").await;
    let t = w
        .ok(
            Method::POST,
            &format!("/v1/projects/{pid}/tasks"),
            Some(json!({"name": "Design", "assignee_ids": [ada, "olga", ada]})),
        )
        .await;
    let tid = t["id"].as_str().unwrap().to_owned();
    assert_eq!(
        t["assignee_ids"],
        json!([ada, "olga"]),
        "deduplicated in order"
    );
    assert_eq!(t["active"], json!(true));
    let path = format!("/v1/projects/{pid}/tasks/{tid}");
    assert_eq!(w.ok(Method::GET, &path, None).await, t);
    let patched = w
        .ok(
            Method::PATCH,
            &path,
            Some(json!({"name": " Design v2 ", "active": false, "assignee_ids": ["olga"]})),
        )
        .await;
    assert_eq!(patched["name"], "Design v2");
    assert_eq!(patched["active"], json!(false));
    assert_eq!(patched["assignee_ids"], json!(["olga"]));
    // A patch that changes nothing writes nothing.
    w.ok(Method::PATCH, &path, Some(json!({"name": "Design v2"})))
        .await;
    let (st, _) = w.call(Method::DELETE, &path, None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, b) = w.call(Method::GET, &path, None).await;
    assert_eq!((st, code(&b)), (StatusCode::NOT_FOUND, "not_found"));
    assert_eq!(
        w.changes(HostKind::Task).await,
        vec![
            (tid.clone(), pid.clone(), ChangeOp::Created),
            (tid.clone(), pid.clone(), ChangeOp::Updated),
            (tid, pid, ChangeOp::Deleted),
        ]
    );
}

#[tokio::test]
async fn a_task_is_found_only_under_its_own_project() {
    let w = world().await;
    let (a, b) = (w.project("A").await, w.project("B").await);
    let t = w
        .ok(
            Method::POST,
            &format!("/v1/projects/{a}/tasks"),
            Some(json!({"name": "T"})),
        )
        .await;
    let tid = t["id"].as_str().unwrap();
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"name": "X"}))),
        (Method::DELETE, None),
    ] {
        let (st, body) = w
            .call(
                method.clone(),
                &format!("/v1/projects/{b}/tasks/{tid}"),
                body,
            )
            .await;
        assert_eq!(
            (st, code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{method}"
        );
    }
    let (st, _) = w
        .call(Method::GET, &format!("/v1/projects/{a}/tasks/nope"), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Reading is for every member, writing for managers.
    let (st, _) = w
        .call_as(
            "m",
            "member",
            Method::GET,
            &format!("/v1/projects/{a}/tasks/{tid}"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    for (method, body) in [
        (Method::PATCH, Some(json!({"name": "X"}))),
        (Method::DELETE, None),
    ] {
        let (st, body) = w
            .call_as(
                "m",
                "member",
                method,
                &format!("/v1/projects/{a}/tasks/{tid}"),
                body,
            )
            .await;
        assert_eq!((st, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    }
    assert_eq!(w.changes(HostKind::Task).await.len(), 1, "only the create");
}

#[tokio::test]
async fn assignees_must_be_known_people_and_at_most_200() {
    let w = world().await;
    let pid = w.project("Bridge").await;
    let tasks = format!("/v1/projects/{pid}/tasks");
    let (st, b) = w
        .call(
            Method::POST,
            &tasks,
            Some(json!({"name": "T", "assignee_ids": ["olga", "ghost"]})),
        )
        .await;
    assert_eq!(
        (st, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_person")
    );
    assert!(
        b["error"]["message"].as_str().unwrap().contains("ghost"),
        "{b}"
    );
    let many: Vec<String> = (0..201).map(|i| format!("p{i}")).collect();
    let (st, b) = w
        .call(
            Method::POST,
            &tasks,
            Some(json!({"name": "T", "assignee_ids": many})),
        )
        .await;
    assert_eq!(
        (st, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "too_many_assignees")
    );
    let (st, b) = w
        .call(
            Method::POST,
            &tasks,
            Some(json!({"name": "T", "assignee_ids": ["not an id!"]})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let t = w.ok(Method::POST, &tasks, Some(json!({"name": "T"}))).await;
    let (st, b) = w
        .call(
            Method::PATCH,
            &format!("{tasks}/{}", t["id"].as_str().unwrap()),
            Some(json!({"assignee_ids": ["ghost"]})),
        )
        .await;
    assert_eq!(
        (st, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_person")
    );
    assert_eq!(
        w.changes(HostKind::Task).await.len(),
        1,
        "refused writes append nothing"
    );
}

#[tokio::test]
async fn a_task_with_work_logs_is_kept_and_an_inactive_one_takes_no_new_time() {
    let w = world().await;
    let pid = w.project("Bridge").await;
    let t = w
        .ok(
            Method::POST,
            &format!("/v1/projects/{pid}/tasks"),
            Some(json!({"name": "T"})),
        )
        .await;
    let tid = t["id"].as_str().unwrap().to_owned();
    let log = w
        .ok(
            Method::POST,
            "/v1/worklogs",
            Some(json!({"project_id": pid, "task_id": tid, "date": "2026-12-01", "minutes": 30})),
        )
        .await;
    let path = format!("/v1/projects/{pid}/tasks/{tid}");
    let (st, b) = w.call(Method::DELETE, &path, None).await;
    assert_eq!((st, code(&b)), (StatusCode::CONFLICT, "task_in_use"));
    w.ok(Method::PATCH, &path, Some(json!({"active": false})))
        .await;
    let (st, b) = w
        .call(
            Method::POST,
            "/v1/worklogs",
            Some(json!({"project_id": pid, "task_id": tid, "date": "2026-12-02", "minutes": 30})),
        )
        .await;
    assert_eq!(
        (st, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "task_inactive")
    );
    // The log already on it stays editable.
    w.ok(
        Method::PATCH,
        &format!("/v1/worklogs/{}", log["id"].as_str().unwrap()),
        Some(json!({"minutes": 45})),
    )
    .await;
    // Once its logs are gone, the task may go.
    let (st, _) = w
        .call(
            Method::DELETE,
            &format!("/v1/worklogs/{}", log["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = w.call(Method::DELETE, &path, None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn tasks_of_provider_managed_projects_or_imported_tasks_stay_read_only() {
    let w = world().await;
    let managed = Project {
        id: id("imported"),
        name: "Imported".into(),
        parent_id: None,
        customer_id: None,
        start_date: None,
        end_date: None,
        managed_by: ManagedBy::Provider(ProviderId::parse("strict").unwrap()),
        active: true,
    };
    w.store.insert(WS, &managed).await.unwrap();
    let local = w.project("Local").await;
    let task = |tid: &str, project: &str, managed_by| Task {
        id: id(tid),
        project_id: id(project),
        name: tid.into(),
        managed_by,
        assignee_ids: vec![],
        active: true,
    };
    w.store
        .insert(WS, &task("t-of-imported", "imported", ManagedBy::Local))
        .await
        .unwrap();
    w.store
        .insert(
            WS,
            &task(
                "t-imported",
                &local,
                ManagedBy::Provider(ProviderId::parse("strict").unwrap()),
            ),
        )
        .await
        .unwrap();
    for path in [
        "/v1/projects/imported/tasks/t-of-imported".to_owned(),
        format!("/v1/projects/{local}/tasks/t-imported"),
    ] {
        for (method, body) in [
            (Method::PATCH, Some(json!({"name": "X"}))),
            (Method::DELETE, None),
        ] {
            let (st, b) = w.call(method.clone(), &path, body).await;
            assert_eq!(
                (st, code(&b)),
                (StatusCode::CONFLICT, "managed_by_provider"),
                "{method} {path}"
            );
        }
        let (st, _) = w.call(Method::GET, &path, None).await;
        assert_eq!(st, StatusCode::OK);
    }
    let (st, b) = w
        .call(
            Method::POST,
            "/v1/projects/imported/tasks",
            Some(json!({"name": "New"})),
        )
        .await;
    assert_eq!(
        (st, code(&b)),
        (StatusCode::CONFLICT, "managed_by_provider")
    );
    assert!(w.changes(HostKind::Task).await.is_empty());
}

#[tokio::test]
async fn work_log_writes_set_updated_at_and_a_two_way_logs_patch_appends_its_entry() {
    let w = world().await;
    let pid = w.project("Bridge").await;
    let log = w
        .ok(
            Method::POST,
            "/v1/worklogs",
            Some(json!({"project_id": pid, "date": "2026-12-01", "minutes": 30})),
        )
        .await;
    assert_eq!(
        log["updated_at"],
        json!("2026-12-02T09:00:00Z"),
        "the engine's clock"
    );
    w.clock.advance(Duration::minutes(5));
    let lid = log["id"].as_str().unwrap();
    let patched = w
        .ok(
            Method::PATCH,
            &format!("/v1/worklogs/{lid}"),
            Some(json!({"minutes": 40})),
        )
        .await;
    assert_eq!(patched["updated_at"], json!("2026-12-02T09:05:00Z"));
    // Logs synced from a two-way provider are editable; one-way ones are not.
    let synced = |lid: &str, provider: &str| WorkLog {
        id: id(lid),
        person_id: id("olga"),
        project_id: id(&pid),
        task_id: None,
        date: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
        minutes: 60,
        note: String::new(),
        source: Some(WorkLogSource {
            provider: ProviderId::parse(provider).unwrap(),
            remote_id: format!("r-{lid}"),
        }),
        updated_at: None,
    };
    w.store
        .insert(WS, &synced("two-way", "linky"))
        .await
        .unwrap();
    w.store
        .insert(WS, &synced("one-way", "strict"))
        .await
        .unwrap();
    w.clock.advance(Duration::minutes(5));
    let other = w.project("Harbour").await;
    let moved = w
        .ok(
            Method::PATCH,
            "/v1/worklogs/two-way",
            Some(json!({"minutes": 90, "project_id": other})),
        )
        .await;
    assert_eq!(moved["updated_at"], json!("2026-12-02T09:10:00Z"));
    assert_eq!(
        moved["source"]["provider"], "linky",
        "still the synced record"
    );
    let (st, b) = w
        .call(
            Method::PATCH,
            "/v1/worklogs/one-way",
            Some(json!({"minutes": 90})),
        )
        .await;
    assert_eq!(
        (st, code(&b)),
        (StatusCode::CONFLICT, "managed_by_provider")
    );
    let (st, _) = w.call(Method::DELETE, "/v1/worklogs/two-way", None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(
        w.changes(HostKind::WorkLog).await,
        vec![
            (lid.to_owned(), pid.clone(), ChangeOp::Created),
            (lid.to_owned(), pid.clone(), ChangeOp::Updated),
            // A move: one entry per project.
            ("two-way".into(), other.clone(), ChangeOp::Updated),
            ("two-way".into(), pid.clone(), ChangeOp::Updated),
            ("two-way".into(), other, ChangeOp::Deleted),
        ]
    );
}

#[tokio::test]
async fn a_provider_that_links_one_project_refuses_two_and_names_the_limit() {
    let w = world().await;
    w.connect_linky().await;
    let pid = w.project("Bridge").await;
    let path = format!("/v1/projects/{pid}/integrations/linky");
    let (st, b) = w
        .call(
            Method::PUT,
            &path,
            Some(json!({"remote_project_ids": ["p1", "p2"]})),
        )
        .await;
    assert_eq!(
        (st, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_remote_projects")
    );
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Linky links one project"),
        "{b}"
    );
    // The same id twice is one project.
    let b = w
        .ok(
            Method::PUT,
            &path,
            Some(json!({"remote_project_ids": ["p1", " p1 "]})),
        )
        .await;
    assert_eq!(b["remote_project_ids"], json!(["p1"]));
    assert_eq!(b["sync_from"], Value::Null, "not required by this provider");
}

#[tokio::test]
async fn sync_from_is_required_only_where_the_provider_declares_it() {
    let w = world().await;
    w.ok(
        Method::PUT,
        "/v1/connections/strict",
        Some(json!({"password": "pw"})),
    )
    .await;
    let pid = w.project("Bridge").await;
    let path = format!("/v1/projects/{pid}/integrations/strict");
    let (st, b) = w
        .call(
            Method::PUT,
            &path,
            Some(json!({"remote_project_ids": ["p1"]})),
        )
        .await;
    assert_eq!(
        (st, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "required")
    );
    assert_eq!(b["error"]["fields"], json!(["sync_from"]));
    let (st, b) = w
        .call(
            Method::PUT,
            &path,
            Some(
                json!({"remote_project_ids": ["p1", "p2", "p3", "p4"], "sync_from": "2026-01-01"}),
            ),
        )
        .await;
    assert_eq!(
        (st, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_remote_projects")
    );
    assert!(
        b["error"]["message"].as_str().unwrap().contains("1 to 3"),
        "{b}"
    );
    let b = w
        .ok(
            Method::PUT,
            &path,
            Some(json!({"remote_project_ids": ["p1", "p2", "p3"], "sync_from": "2026-01-01"})),
        )
        .await;
    assert_eq!(b["sync_from"], "2026-01-01");
    // A provider without project links.
    w.ok(
        Method::PUT,
        "/v1/connections/plain",
        Some(json!({"password": "pw"})),
    )
    .await;
    let (st, b) = w
        .call(
            Method::PUT,
            &format!("/v1/projects/{pid}/integrations/plain"),
            Some(json!({"remote_project_ids": ["p1"], "sync_from": "2026-01-01"})),
        )
        .await;
    assert_eq!(
        (st, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unsupported")
    );
    let (st, b) = w
        .call(Method::GET, "/v1/connections/plain/remote-projects", None)
        .await;
    assert_eq!(
        (st, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unsupported")
    );
}

#[tokio::test]
async fn remote_projects_are_searched_in_the_providers_directory() {
    let w = world().await;
    w.connect_linky().await;
    let b = w
        .ok(
            Method::GET,
            "/v1/connections/linky/remote-projects?q=BRIDGE",
            None,
        )
        .await;
    let ids: Vec<&str> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["p1", "p3"]);
}

#[tokio::test]
async fn remote_users_suggest_the_person_by_trimmed_case_insensitive_email() {
    let w = world().await;
    w.connect_linky().await;
    let ada = w.person("Ada", "ada.lovelace@acme.test").await;
    let bo = w.person("Bo", "BO@acme.test").await;
    w.ok(
        Method::PUT,
        &format!("/v1/people/{bo}/integrations/linky"),
        Some(json!({"remote_user_id": "u2"})),
    )
    .await;
    let page = w
        .ok(Method::GET, "/v1/connections/linky/remote-users", None)
        .await;
    assert_eq!(
        page["items"],
        json!([
            {"id": "u1", "initials": "ADA", "name": "Ada Lovelace", "email": "  Ada.Lovelace@ACME.test ",
             "active": true, "suggested_person_id": ada, "linked_person_id": null},
            {"id": "u2", "initials": "BO", "name": "Bo Ek", "email": "bo@acme.test",
             "active": true, "suggested_person_id": bo, "linked_person_id": bo},
        ])
    );
    let next = page["next_cursor"].as_str().unwrap();
    let page = w
        .ok(
            Method::GET,
            &format!("/v1/connections/linky/remote-users?cursor={next}"),
            None,
        )
        .await;
    assert_eq!(page["items"][0]["id"], "u3");
    assert_eq!(
        page["items"][0]["suggested_person_id"],
        Value::Null,
        "no e-mail"
    );
    assert_eq!(
        page["items"][1]["active"],
        json!(false),
        "inactive users are listed"
    );
    assert_eq!(page["items"][1]["suggested_person_id"], Value::Null);
    // Admins only; providers without person links are refused.
    let (st, b) = w
        .call_as(
            "m",
            "manager",
            Method::GET,
            "/v1/connections/linky/remote-users",
            None,
        )
        .await;
    assert_eq!((st, code(&b)), (StatusCode::FORBIDDEN, "forbidden"));
    let (st, b) = w
        .call(Method::GET, "/v1/connections/strict/remote-users", None)
        .await;
    assert_eq!(
        (st, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unsupported")
    );
}

#[tokio::test]
async fn a_remote_user_linked_to_one_person_is_refused_for_another_with_409() {
    let w = world().await;
    w.connect_linky().await;
    let ada = w.person("Ada", "ada@acme.test").await;
    let bo = w.person("Bo", "bo@acme.test").await;
    let link = |p: &str| format!("/v1/people/{p}/integrations/linky");
    let b = w
        .ok(
            Method::PUT,
            &link(&ada),
            Some(json!({"remote_user_id": "u5"})),
        )
        .await;
    assert_eq!(
        b,
        json!({"person_id": ada, "provider": "linky", "remote_user_id": "u5"})
    );
    let (st, b) = w
        .call(
            Method::PUT,
            &link(&bo),
            Some(json!({"remote_user_id": "u5"})),
        )
        .await;
    assert_eq!((st, code(&b)), (StatusCode::CONFLICT, "remote_user_linked"));
    assert!(
        b["error"]["message"].as_str().unwrap().contains("Ada"),
        "{b}"
    );
    // Not in the directory (found on its last page or not at all).
    let (st, b) = w
        .call(
            Method::PUT,
            &link(&bo),
            Some(json!({"remote_user_id": "u9"})),
        )
        .await;
    assert_eq!(
        (st, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_remote_user")
    );
    // Re-linking Ada replaces her link and frees u5.
    w.ok(
        Method::PUT,
        &link(&ada),
        Some(json!({"remote_user_id": "u1"})),
    )
    .await;
    w.ok(
        Method::PUT,
        &link(&bo),
        Some(json!({"remote_user_id": "u5"})),
    )
    .await;
    assert_eq!(
        w.ok(Method::GET, &link(&ada), None).await["remote_user_id"],
        "u1"
    );
    assert_eq!(w.links_of_remote("linky", "u5").await.len(), 1);
    // Admins and the person themselves read a link; a member reads only their own.
    let (st, _) = w
        .call_as(&ada, "member", Method::GET, &link(&ada), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, b) = w
        .call_as(&ada, "member", Method::GET, &link(&bo), None)
        .await;
    assert_eq!((st, code(&b)), (StatusCode::FORBIDDEN, "forbidden"));
    let (st, b) = w
        .call_as(
            &ada,
            "manager",
            Method::PUT,
            &link(&ada),
            Some(json!({"remote_user_id": "u2"})),
        )
        .await;
    assert_eq!((st, code(&b)), (StatusCode::FORBIDDEN, "forbidden"));
    // Unlinking.
    let (st, _) = w.call(Method::DELETE, &link(&ada), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, b) = w.call(Method::GET, &link(&ada), None).await;
    assert_eq!((st, code(&b)), (StatusCode::NOT_FOUND, "not_found"));
    let (st, _) = w.call(Method::DELETE, &link(&ada), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // u1 is free again.
    w.ok(
        Method::PUT,
        &link(&bo),
        Some(json!({"remote_user_id": "u1"})),
    )
    .await;
    // Unknown people and providers without person links.
    let (st, _) = w
        .call(
            Method::PUT,
            &link("ghost"),
            Some(json!({"remote_user_id": "u2"})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, b) = w
        .call(
            Method::PUT,
            &format!("/v1/people/{ada}/integrations/strict"),
            Some(json!({"remote_user_id": "u2"})),
        )
        .await;
    assert_eq!(
        (st, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unsupported")
    );
}

#[tokio::test]
async fn deleting_a_person_frees_their_remote_user() {
    let w = world().await;
    w.connect_linky().await;
    let ada = w.person("Ada", "ada@acme.test").await;
    let bo = w.person("Bo", "bo@acme.test").await;
    w.ok(
        Method::PUT,
        &format!("/v1/people/{ada}/integrations/linky"),
        Some(json!({"remote_user_id": "u1"})),
    )
    .await;
    let (st, _) = w
        .call(Method::DELETE, &format!("/v1/people/{ada}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(w.links_of_remote("linky", "u1").await.is_empty());
    w.ok(
        Method::PUT,
        &format!("/v1/people/{bo}/integrations/linky"),
        Some(json!({"remote_user_id": "u1"})),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_links_of_one_remote_user_leave_exactly_one() {
    let w = Arc::new(world().await);
    w.connect_linky().await;
    let mut people = Vec::new();
    for i in 0..12 {
        people.push(w.person(&format!("P{i}"), &format!("p{i}@acme.test")).await);
    }
    let before = w.linky.user_pages.load(Ordering::SeqCst);
    let calls = people.iter().cloned().map(|p| {
        let w = w.clone();
        tokio::spawn(async move {
            w.call(
                Method::PUT,
                &format!("/v1/people/{p}/integrations/linky"),
                Some(json!({"remote_user_id": "u5"})),
            )
            .await
        })
    });
    let mut answers = Vec::new();
    for c in calls.collect::<Vec<_>>() {
        answers.push(c.await.unwrap());
    }
    assert!(w.linky.user_pages.load(Ordering::SeqCst) > before);
    let won = answers
        .iter()
        .filter(|(st, _)| *st == StatusCode::OK)
        .count();
    assert_eq!(won, 1, "{answers:?}");
    for (st, b) in answers.iter().filter(|(st, _)| *st != StatusCode::OK) {
        assert_eq!(*st, StatusCode::CONFLICT, "{b}");
        assert_eq!(code(b), "remote_user_linked", "{b}");
    }
    let links = w.links_of_remote("linky", "u5").await;
    assert_eq!(links.len(), 1, "{links:?}");
}

#[tokio::test]
async fn a_connection_shows_its_non_secret_fields_and_never_a_secret_one() {
    let w = world().await;
    w.connect_linky().await;
    let (st, raw) = w.call(Method::GET, "/v1/connections/linky", None).await;
    assert_eq!(st, StatusCode::OK, "{raw}");
    assert_eq!(
        raw["fields"],
        json!({
            "domain": "https://app.linky.test", "account_name": "acme", "username": "olga",
            "site_code": "S1", "reporting_username": "reporter",
        })
    );
    assert_eq!(raw["account"]["name"], "Acme ApS");
    let list = w.ok(Method::GET, "/v1/connections", None).await;
    for role in ["owner", "member"] {
        let (_, one) = w
            .call_as("olga", role, Method::GET, "/v1/connections/linky", None)
            .await;
        for body in [one.to_string(), list.to_string()] {
            for secret in [
                "pw-secret-1",
                "pw-secret-2",
                "\"password\"",
                "reporting_password",
            ] {
                assert!(!body.contains(secret), "{role}: {secret} in {body}");
            }
        }
    }
}

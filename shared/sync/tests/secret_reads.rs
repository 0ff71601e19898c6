//! A run in a fresh process (a new engine over the same store and secret store, as a scheduled
//! Lambda is) reads the connection's secret once, however many pages it fetches.

mod common;

use std::sync::Arc;

use chrono::Utc;
use common::{CountingSecrets, Discard};
use hourbridge_domain::{
    Clock, ManagedBy, Person, Project, ProjectLink, ProviderId, RecordId, Role, SecretValue,
    SystemClock,
};
use hourbridge_provider_api::Unlimited;
use hourbridge_provider_http::{HttpConfig, ProviderEnv};
use hourbridge_sandbox::{Sandbox, Seed};
use hourbridge_store::Store;
use hourbridge_store_sqlite::SqliteBackend;
use hourbridge_sync::runs::{Outcome, RunMode};
use hourbridge_sync::{Engine, RunScope, SyncJob, SyncSettings};

fn engine(store: &Store, secrets: &Arc<CountingSecrets>, env: &ProviderEnv) -> Engine {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Engine {
        store: store.clone(),
        secrets: secrets.clone(),
        providers: Arc::new(hourbridge_provider_registry::builtin(env).expect("registry")),
        oauth: Arc::new(hourbridge_provider_http::oauth::HttpOAuth::new("test").expect("oauth")),
        queue: Arc::new(Discard),
        events: Arc::new(hourbridge_sync::runs::LogEvents),
        clock,
        settings: SyncSettings::default(),
        sessions: Default::default(),
    }
}

#[tokio::test]
async fn a_multi_page_run_in_a_fresh_process_reads_the_secret_once() {
    let sb = Sandbox::start(Seed::Empty).await.expect("sandbox");
    let hv = sb.harvest();
    hv.register_client("app", "app-secret");
    let user = hv.add_user("Ada", "Admin", "ada@acme.test");
    let remote = hv.add_project("Fleet", "Northwind", true);
    let today = Utc::now().date_naive();
    let entries = 4500;
    hv.bulk_time_entries(
        remote,
        &[user],
        entries,
        today - chrono::Duration::days(300),
        290,
    );
    let vars = [
        ("HOURBRIDGE_HARVEST_API_URL", sb.harvest_api_url()),
        ("HOURBRIDGE_HARVEST_ID_URL", sb.harvest_id_url()),
    ];
    let env = ProviderEnv {
        lookup: Arc::new(move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())),
        http: HttpConfig::default(),
        budget: Arc::new(Unlimited),
        cache: Arc::new(hourbridge_provider_api::NoCache),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = Store::new(
        Arc::new(SqliteBackend::in_memory(clock.clone()).expect("sqlite")),
        clock,
    );
    let secrets = Arc::new(CountingSecrets::default());
    let api = engine(&store, &secrets, &env);
    let (ws, olga) = ("acme", RecordId::parse("olga").unwrap());
    api.install(ws, &olga, "harvest", "app", SecretValue::new("app-secret"))
        .await
        .expect("install");
    let url = api
        .authorize(ws, &olga, "harvest")
        .await
        .expect("authorize");
    let q = hourbridge_sandbox::consent(&url).await.expect("consent");
    api.complete_authorization("harvest", &q.code, &q.state)
        .await
        .expect("callback");
    store
        .insert(
            ws,
            &Person {
                id: RecordId::parse("ada").unwrap(),
                name: "Ada".into(),
                email: "ada@acme.test".into(),
                role: Role::Member,
            },
        )
        .await
        .unwrap();
    let project = Project {
        id: RecordId::parse("fleet").unwrap(),
        name: "Fleet".into(),
        parent_id: None,
        customer_id: None,
        start_date: None,
        end_date: None,
        managed_by: ManagedBy::Local,
        active: true,
    };
    store.insert(ws, &project).await.unwrap();
    store
        .insert(
            ws,
            &ProjectLink {
                project_id: project.id.clone(),
                provider: ProviderId::parse("harvest").unwrap(),
                remote_project_ids: vec![remote.to_string()],
                sync_from: Some(today - chrono::Duration::days(365)),
                prevent_new_assignments: false,
                trim_assignments: true,
                last_run_id: None,
                missing_people: vec![],
            },
        )
        .await
        .unwrap();
    let run = api
        .start_run(
            ws,
            "harvest",
            RunScope::Project(project.id.clone()),
            RunMode::Refetch,
        )
        .await
        .expect("start");

    // The worker is another process: nothing cached.
    let worker = engine(&store, &secrets, &env);
    secrets.reset();
    let job = SyncJob {
        workspace_id: ws.into(),
        provider: "harvest".into(),
        run_id: run.id.to_string(),
    };
    let outcome = worker.execute(&job, None).await.expect("execute");
    assert!(
        matches!(
            outcome,
            Outcome::Finished(hourbridge_domain::RunState::Succeeded)
        ),
        "{outcome:?}"
    );
    let done = worker.run(ws, run.id.as_str()).await.unwrap().unwrap();
    assert_eq!(done.counts.created, entries as u64);
    assert_eq!(
        secrets.reads(),
        1,
        "one secret read for a run of several pages"
    );
}

//! Peak memory of the packaged `sync-worker` Lambda during an N-entry Harvest sync (DESIGN §5:
//! under 64 MB for 100,000 entries). The real `target/sam-build/SyncWorkerFunction/bootstrap` runs against
//! a minimal Lambda Runtime API on loopback, DynamoDB and EventBridge on moto_server and the
//! Harvest sandbox; the job is set up through the same engine the API uses.
//!
//! ```text
//! sam build -t infra/template.yaml --build-dir target/sam-build --beta-features
//! TEST_AWS_ENDPOINT=http://127.0.0.1:5000 cargo bench -p hourbridge-e2e --bench worker_memory -- 100000
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use chrono::Utc;
use hourbridge_domain::{
    ManagedBy, Person, Project, ProjectLink, ProviderId, RecordId, Role, SecretValue, Workspace,
};
use hourbridge_runtime::{AppContext, Config, Mode, env};
use hourbridge_sandbox::{Sandbox, Seed};
use hourbridge_store_dynamodb::DynamoBackend;
use hourbridge_sync::RunScope;
use hourbridge_sync::runs::RunMode;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

#[derive(Clone)]
struct Runtime {
    event: Arc<Mutex<Option<Value>>>,
    done: mpsc::UnboundedSender<String>,
}

async fn next(State(rt): State<Runtime>) -> (HeaderMap, String) {
    let mut h = HeaderMap::new();
    let deadline = Utc::now().timestamp_millis() + 900_000;
    h.insert("lambda-runtime-aws-request-id", "bench".parse().unwrap());
    h.insert(
        "lambda-runtime-deadline-ms",
        deadline.to_string().parse().unwrap(),
    );
    h.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:eu-west-1:1:function:sync-worker"
            .parse()
            .unwrap(),
    );
    match rt.event.lock().await.take() {
        Some(e) => (h, e.to_string()),
        None => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            (h, String::new())
        }
    }
}

async fn respond(State(rt): State<Runtime>, body: String) -> &'static str {
    let _ = rt.done.send(body);
    "{}"
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let Ok(endpoint) = std::env::var("TEST_AWS_ENDPOINT") else {
        println!("worker_memory: set TEST_AWS_ENDPOINT to a running moto_server");
        return;
    };
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/sam-build/SyncWorkerFunction/bootstrap");
    if !bin.exists() {
        println!(
            "worker_memory: build it first: sam build -t infra/template.yaml --build-dir target/sam-build --beta-features"
        );
        return;
    }
    let aws = hourbridge_testkit::config_for(&endpoint).await;
    let name = hourbridge_testkit::unique_name("bench");
    DynamoBackend::create_table(&aws_sdk_dynamodb::Client::new(&aws), &name)
        .await
        .expect("table");
    aws_sdk_eventbridge::Client::new(&aws)
        .create_event_bus()
        .name(&name)
        .send()
        .await
        .expect("bus");
    let sb = Sandbox::start(Seed::Empty).await.expect("sandbox");
    let hv = sb.harvest();
    hv.register_client("bench", "bench-secret");
    hv.set_rate_limit(1_000_000, Duration::from_secs(15));
    let user = hv.add_user("Ada", "A", "ada@acme.test");
    let remote = hv.add_project("Fleet", "C", true);
    let today = Utc::now().date_naive();
    hv.bulk_time_entries(remote, &[user], n, today - chrono::Duration::days(364), 360);

    let vars: BTreeMap<String, String> = [
        (env::STORE, "dynamodb".to_owned()),
        (env::TABLE_NAME, name.clone()),
        (env::SECRETS_BACKEND, "secretsmanager".to_owned()),
        (env::SECRETS_PREFIX, format!("hourbridge/{name}/")),
        (env::AUTH, "gateway".to_owned()),
        (env::JOBS_BUS, name.clone()),
        (env::PUBLIC_URL, "https://api.example.com".to_owned()),
        (env::LOG_FORMAT, "json".to_owned()),
        ("HOURBRIDGE_HARVEST_API_URL", sb.harvest_api_url()),
        ("HOURBRIDGE_HARVEST_ID_URL", sb.harvest_id_url()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let cfg = Config::from_lookup(Mode::Lambda, |k| vars.get(k).cloned()).expect("config");
    let ctx = AppContext::build(cfg, Some(aws.clone()))
        .await
        .expect("context");
    let e = &ctx.engine;
    let ws = "bench";
    let olga = RecordId::parse("olga").unwrap();
    e.store
        .put(
            ws,
            &Workspace {
                id: ws.into(),
                name: "Bench".into(),
                time_zone: "UTC".into(),
                owner_id: olga.clone(),
                created_at: Utc::now(),
                addons: Default::default(),
            },
        )
        .await
        .unwrap();
    e.store
        .put(
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
    e.store.put(ws, &project).await.unwrap();
    e.store
        .put(
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
    e.install(
        ws,
        &olga,
        "harvest",
        "bench",
        SecretValue::new("bench-secret"),
    )
    .await
    .expect("install");
    let url = e.authorize(ws, &olga, "harvest").await.expect("authorize");
    let q = hourbridge_sandbox::consent(&url).await.expect("consent");
    e.complete_authorization("harvest", &q.code, &q.state)
        .await
        .expect("callback");
    let run = e
        .start_run(
            ws,
            "harvest",
            RunScope::Project(project.id.clone()),
            RunMode::Refetch,
        )
        .await
        .expect("run");

    let (tx, mut rx) = mpsc::unbounded_channel();
    let event = json!({"version": "0", "id": "1", "detail-type": "SyncJob", "source": "hourbridge.sync", "account": "1",
        "time": "2026-11-21T09:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {"workspace_id": ws, "provider": "harvest", "run_id": run.id.to_string(), "not_before": null}});
    let rt = Runtime {
        event: Arc::new(Mutex::new(Some(event))),
        done: tx,
    };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(respond))
        .route("/2018-06-01/runtime/init/error", post(respond))
        .with_state(rt);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "sync-worker")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in &vars {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn sync-worker");
    let pid = child.id().expect("pid");
    let answer = tokio::time::timeout(Duration::from_secs(1800), rx.recv())
        .await
        .expect("in time")
        .expect("answer");
    let took = started.elapsed();
    let peak = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let _ = child.kill().await;
    let counts = e
        .run(ws, run.id.as_str())
        .await
        .unwrap()
        .map(|r| (r.state, r.counts));
    println!("worker_memory: sync-worker binary, {n} Harvest entries into DynamoDB (moto)");
    println!("  answer: {answer}");
    println!("  run: {counts:?}");
    println!(
        "  time {:.1} s, peak RSS (VmHWM) {:.1} MiB",
        took.as_secs_f64(),
        peak as f64 / 1024.0
    );
    sb.stop().await;
}

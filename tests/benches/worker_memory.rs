//! Peak memory of the `sync-worker` Lambda binary during an N-entry Harvest sync into DynamoDB
//! (DESIGN §5: under 64 MB for 100,000 entries), at several sizes, with the growth slope. The
//! real binary runs as its own process against a minimal Lambda Runtime API on loopback,
//! DynamoDB and EventBridge on moto_server and the Harvest sandbox; the job is set up through the
//! same engine the API uses. Peak memory is the worker process's VmHWM, read from /proc just
//! after it answers (one fresh process per size).
//!
//! ```text
//! cargo build --release -p sync-worker        # or sam build (then the bootstrap is used)
//! cargo bench -p hourbridge-e2e --bench worker_memory                  # 5000 10000 20000
//! cargo bench -p hourbridge-e2e --bench worker_memory -- 2000 4000     # other sizes
//! ```
//!
//! moto_server: `TEST_AWS_ENDPOINT` if set, else the bench starts one on a free loopback port
//! from the venv `tests/run.sh` installs (`$HOURBRIDGE_VENV`, else
//! `~/.cache/hourbridge/venv-*`). The binary: `$HOURBRIDGE_WORKER_BIN`, else
//! `target/sam-build/SyncWorkerFunction/bootstrap`, else `target/release/sync-worker`.

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
use hourbridge_domain::{ProviderId, RecordId, SecretValue, Workspace};
use hourbridge_runtime::{AppContext, Config, Mode, env};
use hourbridge_sandbox::{Sandbox, Seed};
use hourbridge_store_dynamodb::DynamoBackend;
use hourbridge_sync::RunScope;
use hourbridge_sync::runs::RunMode;
use hourbridge_testkit::bench::{local_project, member, peak_kib, project_link};
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

/// moto_server from the test venv on a free loopback port; killed when dropped.
struct Moto(std::process::Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> Option<(Moto, String)> {
    let venv = std::env::var("HOURBRIDGE_VENV")
        .map(PathBuf::from)
        .ok()
        .or_else(|| {
            let cache = std::env::var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .ok()?
                .join("hourbridge");
            std::fs::read_dir(cache)
                .ok()?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.join("bin/moto_server").exists())
        })?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let log = std::fs::File::create(std::env::temp_dir().join(format!("moto-{port}.log"))).ok()?;
    let child = std::process::Command::new(venv.join("bin/moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(log.try_clone().ok()?)
        .stderr(log)
        .spawn()
        .ok()?;
    let moto = Moto(child);
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((moto, format!("http://127.0.0.1:{port}")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = vec![5_000, 10_000, 20_000];
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = std::env::var("HOURBRIDGE_WORKER_BIN")
        .map(PathBuf::from)
        .ok()
        .or_else(|| {
            [
                "target/sam-build/SyncWorkerFunction/bootstrap",
                "target/release/sync-worker",
            ]
            .into_iter()
            .map(|p| root.join(p))
            .find(|p| p.exists())
        });
    let Some(bin) = bin else {
        println!("worker_memory: build it first: cargo build --release -p sync-worker");
        return;
    };
    let (_moto, endpoint) = match std::env::var("TEST_AWS_ENDPOINT") {
        Ok(e) => (None, e),
        Err(_) => match start_moto() {
            Some((m, e)) => (Some(m), e),
            None => {
                println!(
                    "worker_memory: set TEST_AWS_ENDPOINT or install the test venv (bash tests/run.sh)"
                );
                return;
            }
        },
    };
    println!(
        "worker_memory: {} into DynamoDB (moto at {endpoint}), Harvest sandbox pages of 2000",
        bin.display()
    );
    let mut points = Vec::new();
    for &n in &sizes {
        let (took, peak_kib) = measure(n, &endpoint, &bin).await;
        points.push((n as f64, peak_kib as f64 / 1024.0));
        println!(
            "  {n:>7} entries: time {:.1} s, peak RSS (VmHWM) {:.1} MiB",
            took.as_secs_f64(),
            peak_kib as f64 / 1024.0
        );
    }
    if points.len() >= 2 {
        // Least-squares line through the points: MiB = a + b * entries.
        let k = points.len() as f64;
        let (sx, sy) = points
            .iter()
            .fold((0.0, 0.0), |(x, y), (px, py)| (x + px, y + py));
        let (mx, my) = (sx / k, sy / k);
        let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
        let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
        let b = sxy / sxx;
        let a = my - b * mx;
        println!(
            "  slope {:.3} MiB per 10,000 entries ({:.0} bytes per entry), intercept {a:.1} MiB; \
             extrapolated to 100,000 entries: {:.1} MiB",
            b * 10_000.0,
            b * 1024.0 * 1024.0,
            a + b * 100_000.0
        );
    }
}

/// One sync of `n` entries by a fresh worker process; its time and peak RSS in KiB.
async fn measure(n: usize, endpoint: &str, bin: &std::path::Path) -> (Duration, u64) {
    let endpoint = endpoint.to_owned();
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
            &member(
                RecordId::parse("ada").unwrap(),
                "Ada".into(),
                "ada@acme.test".into(),
            ),
        )
        .await
        .unwrap();
    let project = local_project(RecordId::parse("fleet").unwrap(), "Fleet".into());
    e.store.put(ws, &project).await.unwrap();
    e.store
        .put(
            ws,
            &project_link(
                project.id.clone(),
                ProviderId::parse("harvest").unwrap(),
                vec![remote.to_string()],
                Some(today - chrono::Duration::days(365)),
                true,
            ),
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
    let mut cmd = tokio::process::Command::new(bin);
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
    let peak = peak_kib(pid);
    let _ = child.kill().await;
    let counts = e
        .run(ws, run.id.as_str())
        .await
        .unwrap()
        .map(|r| (r.state, r.counts));
    assert!(answer.contains("succeeded"), "worker answered {answer}");
    let (state, counts) = counts.expect("run exists");
    assert_eq!(
        (state, counts.created),
        (hourbridge_domain::RunState::Succeeded, n as u64),
        "{counts:?}"
    );
    sb.stop().await;
    (took, peak)
}

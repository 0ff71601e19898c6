//! Cold start of the packaged Lambdas: for each `target/lambda/<function>/bootstrap` (built by
//! `cargo lambda build --release`), start the process against a minimal Lambda Runtime API on
//! loopback, hand it one event, and measure the time from process start to the posted response,
//! plus the process's peak resident memory (VmHWM).
//!
//! `bash tests/run.sh` (or `sam build`) first, then `cargo bench -p hourbridge-e2e --bench cold_start`;
//! it measures `target/sam-build/<Function>/bootstrap`.
//!
//! HTTP functions get `GET /health` (no AWS call); event functions get their event shape with
//! AWS endpoints pointed at a closed local port, so the measurement covers start-up and the
//! first dispatch, not network round trips.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use hourbridge_testkit::bench::peak_kib;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

#[derive(Clone)]
struct Runtime {
    event: Arc<Mutex<Option<Value>>>,
    done: mpsc::UnboundedSender<(Instant, String)>,
}

async fn next(State(rt): State<Runtime>) -> (HeaderMap, String) {
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", "bench-1".parse().unwrap());
    headers.insert(
        "lambda-runtime-deadline-ms",
        (chrono_ms() + 60_000).to_string().parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:eu-west-1:123456789012:function:bench"
            .parse()
            .unwrap(),
    );
    match rt.event.lock().await.take() {
        Some(e) => (headers, e.to_string()),
        // Only one event: later polls wait until the process is killed.
        None => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            (headers, String::new())
        }
    }
}

fn chrono_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

async fn response(State(rt): State<Runtime>, body: String) -> &'static str {
    let _ = rt.done.send((Instant::now(), body));
    "{}"
}

fn event_for(function: &str) -> Value {
    match function {
        "ScheduledSyncFunction" => {
            json!({"version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-21T09:00:00Z", "region": "eu-west-1", "resources": [], "detail": {}})
        }
        "sync-worker" => {
            json!({"version": "0", "id": "1", "detail-type": "SyncJob", "source": "hourbridge.sync",
            "account": "123456789012", "time": "2026-11-21T09:00:00Z", "region": "eu-west-1", "resources": [],
            "detail": {"workspace_id": "bench", "provider": "harvest", "run_id": "none", "not_before": null}})
        }
        _ => {
            json!({"version": "2.0", "routeKey": "$default", "rawPath": "/health", "rawQueryString": "",
            "headers": {"host": "api.example.com"},
            "requestContext": {"accountId": "1", "apiId": "a", "domainName": "api.example.com", "domainPrefix": "api",
                "http": {"method": "GET", "path": "/health", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "b"},
                "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "21/Nov/2026:09:00:00 +0000", "timeEpoch": 0},
            "isBase64Encoded": false})
        }
    }
}

#[tokio::main]
async fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut functions: Vec<String> = std::fs::read_dir(root.join("target/sam-build"))
        .expect("target/sam-build: run sam build first")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("bootstrap").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    functions.sort();
    println!("cold_start: process start -> first response posted; peak RSS (VmHWM)");
    for f in functions {
        let bin = root.join("target/sam-build").join(&f).join("bootstrap");
        if !bin.exists() {
            println!(
                "  {f:<16} not built ({}); run cargo lambda build --release",
                bin.display()
            );
            continue;
        }
        let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
        let mut samples = Vec::new();
        let mut peak = 0;
        for _ in 0..5 {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let rt = Runtime {
                event: Arc::new(Mutex::new(Some(event_for(&f)))),
                done: tx,
            };
            let app = Router::new()
                .route("/2018-06-01/runtime/invocation/next", get(next))
                .route(
                    "/2018-06-01/runtime/invocation/{id}/response",
                    post(response),
                )
                .route("/2018-06-01/runtime/invocation/{id}/error", post(response))
                .route("/2018-06-01/runtime/init/error", post(response))
                .with_state(rt);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move { axum::serve(listener, app).await });
            let started = Instant::now();
            let mut child = tokio::process::Command::new(&bin)
                .env_clear()
                .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
                .env("AWS_LAMBDA_FUNCTION_NAME", &f)
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                .env("AWS_REGION", "eu-west-1")
                .env("AWS_ACCESS_KEY_ID", "bench")
                .env("AWS_SECRET_ACCESS_KEY", "bench")
                .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("HOURBRIDGE_TABLE_NAME", "bench")
                .env("HOURBRIDGE_SECRETS_PREFIX", "hourbridge/bench/")
                .env("HOURBRIDGE_JOBS_BUS", "bench")
                .env("HOURBRIDGE_PUBLIC_URL", "https://api.example.com")
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn bootstrap");
            let (at, _body) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("response in time")
                .expect("response");
            samples.push(at - started);
            if let Some(pid) = child.id() {
                peak = peak.max(peak_kib(pid));
            }
            let _ = child.kill().await;
            server.abort();
        }
        samples.sort();
        println!(
            "  {f:<16} binary {:>5.1} MiB   first event: median {:>6.1} ms (min {:.1}, max {:.1})   peak RSS {:>5.1} MiB",
            size as f64 / 1048576.0,
            samples[samples.len() / 2].as_secs_f64() * 1000.0,
            samples[0].as_secs_f64() * 1000.0,
            samples[samples.len() - 1].as_secs_f64() * 1000.0,
            peak as f64 / 1024.0
        );
    }
}

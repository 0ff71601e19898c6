//! Black box: the `workspace-api` function runs as a real process under `cargo lambda watch`
//! (the Lambda runtime emulator, which builds and starts the function's binary) against DynamoDB
//! on moto, and is called over HTTP through the emulator's function URL.
//!
//! Needs `cargo lambda` on PATH (the test command installs it into `.venv`) and moto; without
//! them it skips loudly, unless `HOURBRIDGE_REQUIRE_MOTO=1`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use hourbridge_store_dynamodb::DynamoBackend;

struct Killed(tokio::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

fn cargo_lambda_available() -> bool {
    std::process::Command::new("cargo")
        .args(["lambda", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn workspace_api_runs_under_cargo_lambda_watch_and_answers_over_http() {
    let Some(endpoint) =
        hourbridge_testkit::moto_endpoint("black-box Lambda under cargo lambda watch")
    else {
        return;
    };
    if !cargo_lambda_available() {
        assert!(
            std::env::var(hourbridge_testkit::REQUIRE_VAR).as_deref() != Ok("1"),
            "cargo lambda is not on PATH; run the README test command"
        );
        eprintln!("SKIPPED black-box test: cargo lambda not on PATH");
        return;
    }
    let config = hourbridge_testkit::config_for(&endpoint).await;
    let table = hourbridge_testkit::unique_name("blackbox");
    DynamoBackend::create_table(&aws_sdk_dynamodb::Client::new(&config), &table)
        .await
        .expect("table");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let vars = [
        format!("HOURBRIDGE_TABLE_NAME={table}"),
        "HOURBRIDGE_SECRETS_PREFIX=hourbridge/blackbox/".into(),
        "HOURBRIDGE_JOBS_BUS=blackbox".into(),
        "HOURBRIDGE_PUBLIC_URL=https://api.example.com".into(),
        format!("AWS_ENDPOINT_URL={endpoint}"),
        "AWS_REGION=us-east-1".into(),
        "AWS_ACCESS_KEY_ID=testing".into(),
        "AWS_SECRET_ACCESS_KEY=testing".into(),
        "AWS_EC2_METADATA_DISABLED=true".into(),
    ];
    let mut cmd = tokio::process::Command::new("cargo");
    cmd.current_dir(root)
        .args([
            "lambda",
            "watch",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
            "-p",
            "workspace-api",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for v in &vars {
        cmd.args(["--env-var", v]);
    }
    let _watch = Killed(cmd.spawn().expect("cargo lambda watch"));
    let base = format!("http://127.0.0.1:{port}/lambda-url/workspace-api");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    let health = loop {
        match http.get(format!("{base}/health")).send().await {
            Ok(r) if r.status().is_success() => {
                break r.json::<serde_json::Value>().await.expect("json");
            }
            _ if Instant::now() > deadline => {
                panic!("workspace-api did not come up under cargo lambda watch")
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    assert_eq!(health["status"], "ok");
    let doc: serde_json::Value = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/v1/worklogs"].is_object());
    // Function URLs carry no JWT authorizer context: behind them the API refuses, whatever
    // Authorization header a caller invents.
    let res = http
        .get(format!("{base}/v1/people"))
        .bearer_auth("forged.token.value")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
}

//! The real `hourbridge` binary: `token` and `serve` agree on the generated key, data survives a
//! restart of the process, SIGTERM stops it cleanly, JSON logs carry no secrets.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hourbridge");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn token(dir: &Path, ws: &str, person: &str, role: &str) -> String {
    let out = Command::new(BIN)
        .args([
            "token",
            "--workspace",
            ws,
            "--person",
            person,
            "--role",
            role,
            "--data-dir",
        ])
        .arg(dir)
        .env_remove("HOURBRIDGE_JWT_SECRET")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

struct Served {
    child: Child,
    base: String,
}

fn serve(dir: &Path) -> Served {
    let port = free_port();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .env("HOURBRIDGE_LOG_FORMAT", "json")
        .env_remove("HOURBRIDGE_JWT_SECRET")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        assert!(child.try_wait().unwrap().is_none(), "server exited early");
        std::thread::sleep(Duration::from_millis(50));
    }
    Served { child, base }
}

fn stop(mut s: Served) -> Vec<String> {
    let pid = s.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = s.child.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM should stop the server cleanly, got {status}"
    );
    BufReader::new(s.child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect()
}

#[tokio::test]
async fn binary_serves_tokens_it_issued_and_keeps_data_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let owner = token(dir.path(), "acme", "olga", "owner");
    let http = reqwest::Client::new();

    let s = serve(dir.path());
    let res = http
        .post(format!("{}/v1/workspaces", s.base))
        .bearer_auth(&owner)
        .json(&serde_json::json!({"name": "Acme", "owner": {"name": "Olga", "email": "olga@acme.test"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = http
        .post(format!("{}/v1/projects", s.base))
        .bearer_auth(&owner)
        .json(&serde_json::json!({"name": "Survivor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let logs = stop(s);
    let request_lines: Vec<&String> = logs.iter().filter(|l| l.contains("\"request\"")).collect();
    assert!(
        !request_lines.is_empty(),
        "JSON request logs expected: {logs:?}"
    );
    for line in &logs {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(!line.contains(&owner), "a token leaked into the logs");
    }

    let s = serve(dir.path());
    let body: serde_json::Value = http
        .get(format!("{}/v1/projects", s.base))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["items"][0]["name"], "Survivor");
    stop(s);
}

#[test]
fn token_refuses_an_unknown_role() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "token",
            "--workspace",
            "acme",
            "--person",
            "p",
            "--role",
            "emperor",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("role"));
}

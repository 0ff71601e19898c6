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

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn a_fresh_data_directory_and_its_database_files_are_private() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let owner = token(&dir, "acme", "olga", "owner");
    let s = serve(&dir);
    let res = reqwest::Client::new()
        .post(format!("{}/v1/workspaces", s.base))
        .bearer_auth(&owner)
        .json(&serde_json::json!({"name": "Acme", "owner": {"name": "Olga", "email": "olga@acme.test"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // While the server runs, SQLite's WAL and shared-memory files exist beside the database.
    assert_eq!(mode(&dir), 0o700, "data directory");
    for f in [
        "hourbridge.db",
        "hourbridge.db-wal",
        "hourbridge.db-shm",
        "jwt.secret",
    ] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    stop(s);
}

#[cfg(unix)]
#[test]
fn a_data_directory_others_can_read_gets_a_warning_at_start() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = serve(dir.path());
    let logs = stop(s);
    assert!(
        logs.iter()
            .any(|l| l.contains("data directory is readable by other users")),
        "{logs:?}"
    );
    assert_eq!(
        mode(dir.path()),
        0o755,
        "an existing directory is not changed"
    );
}

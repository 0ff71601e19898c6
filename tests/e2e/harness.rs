use std::path::{Path, PathBuf};

use hourbridge_runtime::{AppContext, Config, Mode, env};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running local server over a data directory.
pub struct Server {
    pub ctx: AppContext,
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    http: reqwest::Client,
}

pub fn config(dir: &Path, vars: &[(&str, String)]) -> Config {
    let d = dir.display().to_string();
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    Config::from_lookup(Mode::Local, |k| {
        if k == env::DATA_DIR {
            return Some(d.clone());
        }
        vars.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    })
    .expect("local config")
}

impl Server {
    /// Starts a server on a free loopback port, built by the same constructor as `main`.
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[]).await
    }

    /// Starts a server with extra configuration (provider URLs), its in-process worker and
    /// scheduler included, and `HOURBRIDGE_PUBLIC_URL` set to its own address.
    pub async fn start_with(dir: &Path, vars: &[(&str, String)]) -> Self {
        let s = Self::start_idle(dir, vars).await;
        let _ = s.ctx.start_local_workers();
        s
    }

    /// Like [`Server::start_with`], but without the in-process worker and scheduler: queued runs
    /// stay queued until the test executes them itself (or calls `ctx.start_local_workers()`),
    /// so a test can be sure which executor holds a run's lease.
    pub async fn start_idle(dir: &Path, vars: &[(&str, String)]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut vars = vars.to_vec();
        vars.push((env::PUBLIC_URL, base.clone()));
        let ctx = AppContext::build(config(dir, &vars), None)
            .await
            .expect("context");
        let (tx, rx) = oneshot::channel::<()>();
        let serve_ctx = ctx.clone();
        let task = tokio::spawn(async move {
            hourbridge::serve(&serve_ctx, listener, async {
                let _ = rx.await;
            })
            .await
        });
        Self {
            ctx,
            base,
            stop: Some(tx),
            task: Some(task),
            http: reqwest::Client::new(),
        }
    }

    /// Stops the server and waits until it has let go of the port and requests.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task").expect("server result");
        }
    }

    pub fn token(&self, ws: &str, person: &str, role: &str) -> String {
        hourbridge::issue_token(&self.ctx, ws, person, role, chrono::Duration::hours(1))
            .expect("token")
    }

    /// Sends a request; returns status and JSON body (`Null` when empty).
    pub async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.expect("body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    pub async fn raw(
        &self,
        token: &str,
        method: Method,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let res = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

/// A temporary data directory that lives as long as the test.
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().expect("temp dir");
    let p = d.path().to_path_buf();
    (d, p)
}

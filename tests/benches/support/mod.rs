//! Set-up the end-to-end benches share: the local server's configuration over a temporary data
//! directory, and an HTTP client of its API.

use std::path::Path;

use hourbridge_runtime::{Config, Mode, env};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The API of the local server, as one caller (`token`).
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    /// One request; answers the status and the JSON body (`Null` when empty, a string when not
    /// JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.expect("body");
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    /// One request that must succeed; answers its body.
    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (st, v) = self.call(method.clone(), path, body).await;
        assert!(st.is_success(), "{method} {path}: {st} {v}");
        v
    }
}

/// The local mode's configuration with its data in `dir` and `vars` set.
pub fn config(dir: &Path, vars: &[(&str, String)]) -> Config {
    let d = dir.display().to_string();
    Config::from_lookup(Mode::Local, |k| {
        if k == env::DATA_DIR {
            return Some(d.clone());
        }
        vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    })
    .expect("local config")
}

//! Provider failures as API clients see them: the provider's wait as `Retry-After`, and no
//! provider URL or response body in the error JSON.

use reqwest::StatusCode;

use crate::worklog_sync::{connect, world};

async fn remote_projects(w: &crate::worklog_sync::World) -> (StatusCode, Option<String>, String) {
    let res = reqwest::Client::new()
        .get(format!(
            "{}/v1/connections/harvest/remote-projects?q=fleet",
            w.s.base
        ))
        .bearer_auth(&w.owner)
        .send()
        .await
        .expect("request");
    let status = res.status();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, res.text().await.expect("body"))
}

#[tokio::test]
async fn a_providers_retry_after_reaches_the_api_client() {
    let w = world().await;
    connect(&w, "harvest", "hv-client", "hv-secret").await;
    // Longer than the HTTP helper sleeps through: returned to the caller with the wait.
    w.sb.harvest().rate_limit_next(1, 3600);
    let (status, retry, body) = remote_projects(&w).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(retry.as_deref(), Some("3600"), "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "provider_unavailable");
}

#[tokio::test]
async fn provider_errors_reach_the_api_without_urls_or_bodies() {
    let w = world().await;
    connect(&w, "harvest", "hv-client", "hv-secret").await;
    for status in [403, 404, 422] {
        w.sb.harvest().fail_next(1, status);
        let (st, _, body) = remote_projects(&w).await;
        assert!(st.is_client_error() || st.is_server_error(), "{st} {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"]["code"].is_string(), "{body}");
        let base = w.sb.base_url();
        let host = base.trim_start_matches("http://");
        // A leaked body would show up escaped inside the message string.
        for leak in [
            base.as_str(),
            host,
            "http://",
            "/v2/",
            "/projects",
            "\\\"message\\\"",
        ] {
            assert!(!body.contains(leak), "{status}: {leak:?} leaked in {body}");
        }
    }
}

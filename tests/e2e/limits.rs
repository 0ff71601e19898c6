//! Inputs the HTTP layer refuses still answer the documented JSON error shape.

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Server, data_dir};

async fn error_code(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.unwrap();
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("not the JSON error shape ({status}): {text:?}"));
    (status, body["error"].clone())
}

#[tokio::test]
async fn an_oversized_body_answers_413_payload_too_large_naming_the_limit() {
    let (_d, dir) = data_dir();
    let s = Server::start(&dir).await;
    let owner = s.token("acme", "olga", "owner");
    let http = reqwest::Client::new();
    let body =
        serde_json::json!({"name": "Acme", "owner": {"name": "Olga", "email": "olga@acme.test"}});
    let (st, _) = s
        .call(
            Some(&owner),
            reqwest::Method::POST,
            "/v1/workspaces",
            Some(body),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let big = format!(
        r#"{{"name":"{}"}}"#,
        "x".repeat(hourbridge_api::MAX_BODY_BYTES + 1)
    );
    let res = http
        .post(format!("{}/v1/projects", s.base))
        .bearer_auth(&owner)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let (st, e) = error_code(res).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(e["code"], "payload_too_large");
    assert!(e["message"].as_str().unwrap().contains("1 MiB"), "{e}");

    let res = http
        .post(format!("{}/webhooks/harvest/{}", s.base, "a".repeat(64)))
        .body(big)
        .send()
        .await
        .unwrap();
    let (st, e) = error_code(res).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    s.stop().await;
}

#[tokio::test]
async fn a_path_segment_that_is_not_utf8_answers_400_invalid_path() {
    let (_d, dir) = data_dir();
    let s = Server::start(&dir).await;
    let res = reqwest::Client::new()
        .post(format!("{}/webhooks/harvest/%ff%fe", s.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    let (st, e) = error_code(res).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_path"))
    );
    s.stop().await;
}

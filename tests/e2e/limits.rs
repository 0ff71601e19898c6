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

/// Sends `head` (a request head, blank line included) on a new raw connection, writing while
/// reading so a server that stops reading cannot wedge the test, and returns the status and the
/// body of the answer (status 0 when the connection closed without one).
async fn raw_request(base: &str, head: String) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        // The server may close before it has read everything: a failed write is expected then.
        let _ = wr.write_all(head.as_bytes()).await;
        let _ = wr.flush().await;
        wr
    });
    let mut got = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut buf = [0u8; 8192];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server neither answered nor closed");
    drop(writer.await);
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn json_error(status: u16, body: &str) -> (u16, String, String) {
    let v: Value = serde_json::from_str(body)
        .unwrap_or_else(|_| panic!("not the JSON error shape ({status}): {body:?}"));
    (
        status,
        v["error"]["code"].as_str().unwrap_or_default().to_owned(),
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

async fn still_serves(s: &Server) {
    let res = reqwest::Client::new()
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_oversized_uri_answers_414_uri_too_long_in_the_error_shape() {
    let (_d, dir) = data_dir();
    let s = Server::start(&dir).await;
    // Over the deliberate limit (8 KiB) and far over it (100 KB: beyond what hyper itself parses).
    for len in [9 * 1024, 100 * 1024] {
        let head = format!(
            "GET /v1/projects?q={} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            "a".repeat(len)
        );
        let (st, body) = raw_request(&s.base, head).await;
        let (st, code, message) = json_error(st, &body);
        assert_eq!((st, code.as_str()), (414, "uri_too_long"), "{len}: {body}");
        assert!(message.contains("8 KiB"), "{message}");
        still_serves(&s).await;
    }
    // Just under the limit is served as usual (here: refused for the missing token).
    let head = format!(
        "GET /v1/projects?q={} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        "a".repeat(8 * 1024 - 100)
    );
    let (st, _) = raw_request(&s.base, head).await;
    assert_eq!(st, 401);
    s.stop().await;
}

#[tokio::test]
async fn oversized_headers_answer_431_headers_too_large_in_the_error_shape() {
    let (_d, dir) = data_dir();
    let s = Server::start(&dir).await;
    let cases = [
        // One header over 16 KiB.
        format!("x-big: {}\r\n", "h".repeat(17 * 1024)),
        // Headers of 40 KB in all, none over 16 KiB.
        (0..5)
            .map(|i| format!("x-part-{i}: {}\r\n", "h".repeat(8 * 1024)))
            .collect(),
        // A header of 2 MB: far beyond hyper's read buffer.
        format!("x-huge: {}\r\n", "h".repeat(2 << 20)),
    ];
    for extra in cases {
        let head =
            format!("GET /v1/projects HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{extra}\r\n");
        let (st, body) = raw_request(&s.base, head).await;
        let (st, code, message) = json_error(st, &body);
        assert_eq!(
            (st, code.as_str()),
            (431, "headers_too_large"),
            "{}: {body}",
            extra.len()
        );
        assert!(message.contains("32 KiB"), "{message}");
        still_serves(&s).await;
    }
    // Headers under the limits are served as usual (here: refused for the missing token).
    let head = format!(
        "GET /v1/projects HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-ok: {}\r\n\r\n",
        "h".repeat(15 * 1024)
    );
    let (st, _) = raw_request(&s.base, head).await;
    assert_eq!(st, 401);
    s.stop().await;
}

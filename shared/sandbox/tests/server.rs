//! The server itself: URLs, `describe`, binding, unknown paths and shutdown.

use std::net::SocketAddr;

use hourbridge_sandbox::{Sandbox, Seed};

#[tokio::test]
async fn urls_and_description() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let base = sb.base_url();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert_eq!(sb.harvest_api_url(), format!("{base}/harvest/api/v2"));
    assert_eq!(sb.harvest_id_url(), format!("{base}/harvest/id"));
    assert_eq!(sb.hubstaff_api_url(), format!("{base}/hubstaff/api/v2"));
    assert_eq!(
        sb.hubstaff_account_url(),
        format!("{base}/hubstaff/account")
    );
    let text = sb.describe();
    for needle in [
        sb.harvest_api_url(),
        sb.hubstaff_api_url(),
        "demo-harvest-client / demo-harvest-secret".to_owned(),
        "demo-hubstaff-client / demo-hubstaff-secret".to_owned(),
        "1000001".to_owned(),
        "7001".to_owned(),
    ] {
        assert!(text.contains(&needle), "{needle} missing from:\n{text}");
    }
    let resp = reqwest::get(format!("{base}/nowhere")).await.unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::NOT_FOUND);
    sb.stop().await;
}

#[tokio::test]
async fn start_on_a_given_address_and_stop_frees_it() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = probe.local_addr().unwrap();
    drop(probe);
    let sb = Sandbox::start_on(addr, Seed::Empty).await.unwrap();
    assert_eq!(sb.base_url(), format!("http://{addr}"));
    assert!(sb.describe().contains("none registered"));
    let client = reqwest::Client::new();
    // Keep a pooled keep-alive connection open: stop must not hang on it.
    let resp = client
        .get(format!("{}/nowhere", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::NOT_FOUND);
    sb.stop().await;
    assert!(
        client
            .get(format!("http://{addr}/nowhere"))
            .send()
            .await
            .is_err()
    );
    // The port can be bound again.
    let again = Sandbox::start_on(addr, Seed::Empty).await.unwrap();
    again.stop().await;
}

#[tokio::test]
async fn wildcard_binds_are_reached_through_loopback() {
    let sb = Sandbox::start_on("0.0.0.0:0".parse().unwrap(), Seed::Demo)
        .await
        .unwrap();
    assert!(sb.base_url().starts_with("http://127.0.0.1:"));
    let resp = reqwest::get(format!("{}/nowhere", sb.base_url()))
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::NOT_FOUND);
    drop(sb);
}

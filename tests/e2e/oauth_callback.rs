//! OAuth callback errors say what happened: a code the provider refuses is the user's to retry,
//! not a sign that stored credentials were rejected.

use reqwest::{Method, StatusCode};

use crate::worklog_sync::{connect, world};

#[tokio::test]
async fn a_replayed_authorization_code_answers_authorization_failed_and_keeps_the_connection() {
    let w = world().await;
    connect(&w, "harvest", "hv-client", "hv-secret").await;
    let (_, before) =
        w.s.call(Some(&w.owner), Method::GET, "/v1/connections/harvest", None)
            .await;
    assert_eq!(before["state"], "active", "{before}");

    // Authorize twice: the first code is used, then replayed with the second (valid) state.
    let authorize = || async {
        let (st, a) =
            w.s.call(
                Some(&w.owner),
                Method::POST,
                "/v1/connections/harvest/authorize",
                None,
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{a}");
        hourbridge_sandbox::consent(a["authorize_url"].as_str().unwrap())
            .await
            .expect("consent")
    };
    let first = authorize().await;
    let http = reqwest::Client::new();
    let ok = http.get(&first.callback_url).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let second = authorize().await;
    let replay = format!(
        "{}/oauth/harvest/callback?code={}&state={}",
        w.s.base, first.code, second.state
    );
    let res = http.get(&replay).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "authorization_failed", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("authorize again"),
        "{body}"
    );
    let (_, after) =
        w.s.call(Some(&w.owner), Method::GET, "/v1/connections/harvest", None)
            .await;
    assert_eq!(
        after["state"], "active",
        "the connection's state is unchanged: {after}"
    );
}

//! Harvest ID: the authorization-code flow, refresh without rotation, client authentication,
//! RFC 6749 errors and the accounts listing.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use hourbridge_sandbox::{
    HARVEST_DEMO_ACCOUNT_ID, HARVEST_DEMO_CLIENT_ID, HARVEST_DEMO_CLIENT_SECRET, Sandbox, Seed,
};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn code_flow_then_refresh_keeps_the_same_refresh_token() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let c = client();

    // Auto-consent: straight back to our callback with code, state and the granted scope.
    let pairs = authorize(
        &c,
        &sb.harvest_authorize_url(),
        &[
            ("client_id", HARVEST_DEMO_CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("state", "xyz"),
        ],
    )
    .await;
    assert_eq!(pair(&pairs, "state"), Some("xyz"));
    assert_eq!(pair(&pairs, "scope"), Some("harvest:1000001"));
    let code = pair(&pairs, "code").unwrap().to_owned();

    let (status, body) = json(
        c.post(sb.harvest_token_url())
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", HARVEST_DEMO_CLIENT_ID),
                ("client_secret", HARVEST_DEMO_CLIENT_SECRET),
                ("redirect_uri", REDIRECT_URI),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["access_token", "expires_in", "refresh_token", "token_type"]
    );
    let first = tokens_of(&body);
    assert_eq!(first.expires_in, 14 * 24 * 3600);

    // Harvest does not rotate: a refresh answers a new access token and the same refresh token,
    // which keeps working.
    let (status, body) = json(harvest_refresh(&sb, &first.refresh).await).await;
    assert_eq!(status, StatusCode::OK);
    let second = tokens_of(&body);
    assert_ne!(second.access, first.access);
    assert_eq!(second.refresh, first.refresh);
    let (status, body) = json(harvest_refresh(&sb, &first.refresh).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for token in [&first.access, &second.access] {
        let resp = harvest_get(&sb, token, "/users/me").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert_eq!(sb.harvest().token_request_count(), 3);

    // Codes are single-use.
    let (status, body) = json(
        c.post(sb.harvest_token_url())
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", HARVEST_DEMO_CLIENT_ID),
                ("client_secret", HARVEST_DEMO_CLIENT_SECRET),
                ("redirect_uri", REDIRECT_URI),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    sb.stop().await;
}

#[tokio::test]
async fn token_endpoint_accepts_json_bodies_and_http_basic() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let c = client();

    let code = harvest_code(&sb, &c).await;
    let resp = c
        .post(sb.harvest_token_url())
        .json(&serde_json::json!({
            "grant_type": "authorization_code",
            "code": code,
            "client_id": HARVEST_DEMO_CLIENT_ID,
            "client_secret": HARVEST_DEMO_CLIENT_SECRET,
            "redirect_uri": REDIRECT_URI,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let code = harvest_code(&sb, &c).await;
    let resp = c
        .post(sb.harvest_token_url())
        .basic_auth(HARVEST_DEMO_CLIENT_ID, Some(HARVEST_DEMO_CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    sb.stop().await;
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc6749() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let c = client();
    let post = |form: Vec<(&'static str, String)>| {
        let c = c.clone();
        let url = sb.harvest_token_url();
        async move { json(c.post(url).form(&form).send().await.unwrap()).await }
    };

    let code = harvest_code(&sb, &c).await;
    let (status, body) = post(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.clone()),
        ("client_id", HARVEST_DEMO_CLIENT_ID.into()),
        ("client_secret", "wrong".into()),
        ("redirect_uri", REDIRECT_URI.into()),
    ])
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"].is_string());

    let (status, body) = post(vec![
        ("grant_type", "password".into()),
        ("client_id", HARVEST_DEMO_CLIENT_ID.into()),
        ("client_secret", HARVEST_DEMO_CLIENT_SECRET.into()),
    ])
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");

    // A code only works with the redirect_uri it was issued for.
    let (status, body) = post(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code),
        ("client_id", HARVEST_DEMO_CLIENT_ID.into()),
        ("client_secret", HARVEST_DEMO_CLIENT_SECRET.into()),
        ("redirect_uri", "http://localhost:9999/elsewhere".into()),
    ])
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let (status, body) = post(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", "never-issued".into()),
        ("client_id", HARVEST_DEMO_CLIENT_ID.into()),
        ("client_secret", HARVEST_DEMO_CLIENT_SECRET.into()),
    ])
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    sb.stop().await;
}

#[tokio::test]
async fn authorize_rejects_unknown_clients_and_bad_requests() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let c = client();
    for params in [
        vec![
            ("client_id", "nobody"),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
        ],
        vec![
            ("client_id", HARVEST_DEMO_CLIENT_ID),
            ("response_type", "token"),
            ("redirect_uri", REDIRECT_URI),
        ],
        vec![
            ("client_id", HARVEST_DEMO_CLIENT_ID),
            ("response_type", "code"),
        ],
    ] {
        let resp = c
            .get(sb.harvest_authorize_url())
            .query(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{params:?}");
    }
    sb.stop().await;
}

#[tokio::test]
async fn pkce_is_enforced_when_the_client_sends_a_challenge() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let c = client();
    let verifier = "a-long-random-verifier-string-of-at-least-43-characters-xyz";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let authorize_url = sb.harvest_authorize_url();
    let params = [
        ("client_id", HARVEST_DEMO_CLIENT_ID),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT_URI),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let authorize_with_pkce = || authorize(&c, &authorize_url, &params);
    let exchange = |code: String, verifier: &'static str| {
        c.post(sb.harvest_token_url())
            .basic_auth(HARVEST_DEMO_CLIENT_ID, Some(HARVEST_DEMO_CLIENT_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
            ])
            .send()
    };
    let code = pair(&authorize_with_pkce().await, "code")
        .unwrap()
        .to_owned();
    let (status, body) = json(exchange(code, "wrong-verifier").await.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let code = pair(&authorize_with_pkce().await, "code")
        .unwrap()
        .to_owned();
    let resp = exchange(code, verifier).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    sb.stop().await;
}

#[tokio::test]
async fn accounts_lists_harvest_and_forecast_accounts() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tokens = harvest_tokens(&sb).await;
    let url = format!("{}/api/v2/accounts", sb.harvest_id_url());

    let (status, body) = json(
        client()
            .get(&url)
            .bearer_auth(&tokens.access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user"]["email"], "ada@acme.test");
    for key in ["id", "first_name", "last_name", "email"] {
        assert!(!body["user"][key].is_null(), "user.{key}");
    }
    let accounts = body["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 2);
    assert_eq!(
        accounts[0],
        serde_json::json!({"id": HARVEST_DEMO_ACCOUNT_ID, "name": "Acme Harvest", "product": "harvest"})
    );
    assert_eq!(accounts[1]["product"], "forecast");

    let resp = client()
        .get(&url)
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // set_accounts replaces the listing; the first Harvest account holds the data.
    sb.harvest().set_accounts(vec![
        (42, "Forecast only".into(), "forecast"),
        (43, "Northwind".into(), "harvest"),
        (44, "Side account".into(), "harvest"),
    ]);
    assert_eq!(sb.harvest().account_id(), 43);
    let (_, body) = json(
        client()
            .get(&url)
            .bearer_auth(&tokens.access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["accounts"].as_array().unwrap().len(), 3);
    sb.stop().await;
}

#[tokio::test]
async fn revoking_invalidates_access_and_refresh_tokens() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tokens = harvest_tokens(&sb).await;
    sb.harvest().revoke_all_tokens();

    let (status, body) = json(
        harvest_get(&sb, &tokens.access, "/users/me")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_token");

    let (status, body) = json(harvest_refresh(&sb, &tokens.refresh).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    sb.stop().await;
}

#[tokio::test]
async fn oauth_faults_are_separate_from_api_faults() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tokens = harvest_tokens(&sb).await;
    sb.harvest().fail_next(1, 500);
    // The queued API failure does not touch the token endpoint...
    assert_eq!(
        harvest_refresh(&sb, &tokens.refresh).await.status(),
        StatusCode::OK
    );
    // ...and the OAuth knob does not touch the API.
    sb.harvest().fail_next_oauth(1, 502);
    assert_eq!(
        harvest_refresh(&sb, &tokens.refresh).await.status(),
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        harvest_refresh(&sb, &tokens.refresh).await.status(),
        StatusCode::OK
    );
    let resp = harvest_get(&sb, &tokens.access, "/users/me")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    sb.stop().await;
}

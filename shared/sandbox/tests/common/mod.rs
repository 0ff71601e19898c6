//! Client-side helpers shared by the integration tests: they drive the sandbox the way a real
//! integration would (browser redirect, token endpoint, bearer calls).
#![allow(dead_code)] // each test binary uses a different subset

use hourbridge_sandbox::{
    HARVEST_DEMO_ACCOUNT_ID, HARVEST_DEMO_CLIENT_ID, HARVEST_DEMO_CLIENT_SECRET,
    HUBSTAFF_DEMO_CLIENT_ID, HUBSTAFF_DEMO_CLIENT_SECRET, Sandbox,
};
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::Value;

pub const USER_AGENT: &str = "Hourbridge tests (dev@hourbridge.test)";
pub const REDIRECT_URI: &str = "http://localhost:8080/oauth/callback";

/// A client that sends a User-Agent and does not follow redirects (so tests see the 302).
pub fn client() -> Client {
    Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A client that sends no User-Agent at all (reqwest adds none by default).
pub fn client_without_user_agent() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub expires_in: u64,
}

impl Tokens {
    fn from_json(v: &Value) -> Tokens {
        assert_eq!(v["token_type"], "bearer", "{v}");
        Tokens {
            access: v["access_token"].as_str().unwrap().to_owned(),
            refresh: v["refresh_token"].as_str().unwrap().to_owned(),
            expires_in: v["expires_in"].as_u64().unwrap(),
        }
    }
}

/// Follows an authorize URL and answers the query pairs of the redirect `Location`.
pub async fn authorize(c: &Client, url: &str, params: &[(&str, &str)]) -> Vec<(String, String)> {
    let resp = c.get(url).query(params).send().await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "{}",
        resp.text().await.unwrap()
    );
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

pub fn pair<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub async fn harvest_code(sb: &Sandbox, c: &Client) -> String {
    let pairs = authorize(
        c,
        &sb.harvest_authorize_url(),
        &[
            ("client_id", HARVEST_DEMO_CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("state", "s1"),
        ],
    )
    .await;
    pair(&pairs, "code").unwrap().to_owned()
}

/// Runs the Harvest authorization-code flow with the demo client (form body, body credentials).
pub async fn harvest_tokens(sb: &Sandbox) -> Tokens {
    let c = client();
    let code = harvest_code(sb, &c).await;
    let resp = c
        .post(sb.harvest_token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", HARVEST_DEMO_CLIENT_ID),
            ("client_secret", HARVEST_DEMO_CLIENT_SECRET),
            ("redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    Tokens::from_json(&resp.json().await.unwrap())
}

pub async fn harvest_refresh(sb: &Sandbox, refresh: &str) -> reqwest::Response {
    client()
        .post(sb.harvest_token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", HARVEST_DEMO_CLIENT_ID),
            ("client_secret", HARVEST_DEMO_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap()
}

pub fn tokens_of(v: &Value) -> Tokens {
    Tokens::from_json(v)
}

/// A Harvest data-API GET with every required header. `path_and_query` starts with `/`.
pub fn harvest_get(sb: &Sandbox, token: &str, path_and_query: &str) -> RequestBuilder {
    harvest_get_url(token, &format!("{}{path_and_query}", sb.harvest_api_url()))
}

pub fn harvest_get_url(token: &str, url: &str) -> RequestBuilder {
    harvest_request(Method::GET, token, url)
}

/// A Harvest data-API request with every required header (the body and its type are the
/// caller's).
pub fn harvest_request(method: Method, token: &str, url: &str) -> RequestBuilder {
    client()
        .request(method, url)
        .bearer_auth(token)
        .header("Harvest-Account-Id", HARVEST_DEMO_ACCOUNT_ID.to_string())
}

pub async fn hubstaff_code(sb: &Sandbox, c: &Client) -> String {
    let pairs = authorize(
        c,
        &sb.hubstaff_authorize_url(),
        &[
            ("client_id", HUBSTAFF_DEMO_CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "openid profile email hubstaff:read"),
            ("state", "st"),
            ("nonce", "n-123"),
        ],
    )
    .await;
    assert_eq!(pair(&pairs, "state"), Some("st"));
    pair(&pairs, "code").unwrap().to_owned()
}

/// Runs the Hubstaff authorization-code flow with the demo client (HTTP Basic credentials).
pub async fn hubstaff_tokens(sb: &Sandbox) -> Tokens {
    let c = client();
    let code = hubstaff_code(sb, &c).await;
    let resp = c
        .post(sb.hubstaff_token_url())
        .basic_auth(HUBSTAFF_DEMO_CLIENT_ID, Some(HUBSTAFF_DEMO_CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    Tokens::from_json(&resp.json().await.unwrap())
}

pub async fn hubstaff_refresh(sb: &Sandbox, refresh: &str) -> reqwest::Response {
    client()
        .post(sb.hubstaff_token_url())
        .basic_auth(HUBSTAFF_DEMO_CLIENT_ID, Some(HUBSTAFF_DEMO_CLIENT_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap()
}

/// A Hubstaff API GET. `path` starts with `/`; `query` may repeat keys (`include[]`).
pub fn hubstaff_get(
    sb: &Sandbox,
    token: &str,
    path: &str,
    query: &[(&str, &str)],
) -> RequestBuilder {
    client()
        .get(format!("{}{path}", sb.hubstaff_api_url()))
        .query(query)
        .bearer_auth(token)
}

pub async fn json(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, v)
}

//! The Lambda handler with real API Gateway HTTP API (v2) events carrying JWT authorizer claims.

use hourbridge_runtime::{AppContext, Config, Mode, env};
use http::StatusCode;
use serde_json::{Value, json};
use tower::ServiceExt as _;

async fn context(dir: &std::path::Path) -> AppContext {
    let d = dir.display().to_string();
    let config = Config::from_lookup(Mode::Lambda, |k| match k {
        k if k == env::STORE => Some("sqlite".into()),
        k if k == env::SECRETS_BACKEND => Some("local".into()),
        k if k == env::DATA_DIR => Some(d.clone()),
        k if k == env::JOBS_BUS => Some("jobs".into()),
        k if k == env::PUBLIC_URL => Some("https://api.example.com".into()),
        _ => None,
    })
    .unwrap();
    AppContext::build(config, None).await.unwrap()
}

fn event(
    method: &str,
    path: &str,
    body: Option<Value>,
    claims: Option<(&str, &str, &str)>,
) -> lambda_http::Request {
    let authorizer = claims.map(|(sub, ws, role)| {
        json!({"jwt": {"claims": {"sub": sub, "ws": ws, "role": role, "iss": "https://idp.example"}, "scopes": null}})
    });
    let e = json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "api.example.com"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "authorizer": authorizer,
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": "r1",
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "21/Nov/2026:08:00:00 +0000",
            "timeEpoch": 1_795_000_000_000_i64
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&e.to_string()).expect("valid API Gateway v2 event")
}

async fn call(ctx: &AppContext, req: lambda_http::Request) -> (StatusCode, Value) {
    let res = workspace_api::app(ctx).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn lambda_takes_identity_from_the_jwt_authorizer_context() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let owner = Some(("owner-1", "ws-gw", "owner"));
    let body = json!({"name": "Acme", "owner": {"name": "Olga", "email": "olga@acme.test"}});
    let (status, created) = call(&ctx, event("POST", "/v1/workspaces", Some(body), owner)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["owner"]["id"], "owner-1");

    let (status, people) = call(&ctx, event("GET", "/v1/people", None, owner)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(people["items"][0]["email"], "olga@acme.test");

    // A member of the same workspace may read but not add people.
    let member = Some(("m-1", "ws-gw", "member"));
    let new_person = json!({"name": "Max", "email": "max@acme.test", "role": "member"});
    let (status, err) = call(&ctx, event("POST", "/v1/people", Some(new_person), member)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(err["error"]["code"], "forbidden");
}

#[tokio::test]
async fn lambda_without_authorizer_claims_answers_401_even_with_a_bearer_header() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let mut req = event("GET", "/v1/people", None, None);
    req.headers_mut()
        .insert("authorization", "Bearer forged".parse().unwrap());
    let (status, err) = call(&ctx, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(err["error"]["code"], "unauthorized");
}

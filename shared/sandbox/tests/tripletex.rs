//! Tripletex API v2: sessions and Basic auth, entitlements, customers/projects with paging,
//! `fields`, `changedSince`, versions, the budget, and signed event-subscription callbacks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{Days, Utc};
use hourbridge_sandbox::{
    Sandbox, Seed, TRIPLETEX_COMPANY_ID, TRIPLETEX_DEMO_CONSUMER_TOKEN, TRIPLETEX_DEMO_EMPLOYEE_ID,
    TRIPLETEX_DEMO_EMPLOYEE_TOKEN, TRIPLETEX_DEMO_LIMITED_EMPLOYEE_TOKEN,
    TripletexSubscriptionStatus,
};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};

fn client() -> Client {
    Client::new()
}

fn tomorrow() -> String {
    (Utc::now().date_naive() + Days::new(2))
        .format("%Y-%m-%d")
        .to_string()
}

async fn create_session(sb: &Sandbox, consumer: &str, employee: &str) -> reqwest::Response {
    client()
        .put(format!("{}/token/session/:create", sb.tripletex_api_url()))
        .query(&[
            ("consumerToken", consumer),
            ("employeeToken", employee),
            ("expirationDate", &tomorrow()),
        ])
        .send()
        .await
        .unwrap()
}

async fn session(sb: &Sandbox) -> String {
    let resp = create_session(
        sb,
        TRIPLETEX_DEMO_CONSUMER_TOKEN,
        TRIPLETEX_DEMO_EMPLOYEE_TOKEN,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    v["value"]["token"].as_str().unwrap().to_owned()
}

async fn get(
    sb: &Sandbox,
    token: &str,
    path: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let resp = client()
        .get(format!("{}{path}", sb.tripletex_api_url()))
        .basic_auth("0", Some(token))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

fn assert_error(v: &Value, status: u16, code: u64) {
    assert_eq!(v["status"], status, "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert!(v["message"].is_string(), "{v}");
    assert!(v["requestId"].is_string(), "{v}");
    assert!(v.get("validationMessages").is_some(), "{v}");
}

fn names(v: &Value) -> Vec<String> {
    v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn session_create_rejects_bad_tokens_and_dates() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let resp = create_session(&sb, "nope", TRIPLETEX_DEMO_EMPLOYEE_TOKEN).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let rid = resp.headers()["x-tlx-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let v: Value = resp.json().await.unwrap();
    assert_error(&v, 403, 9000);
    assert_eq!(v["requestId"], rid.as_str());
    let resp = create_session(&sb, TRIPLETEX_DEMO_CONSUMER_TOKEN, "nope").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // Missing parameters and a date that is not later than today.
    let url = format!("{}/token/session/:create", sb.tripletex_api_url());
    let resp = client().put(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = resp.json().await.unwrap();
    assert_error(&v, 422, 18000);
    assert_eq!(v["validationMessages"].as_array().unwrap().len(), 3);
    let resp = client()
        .put(&url)
        .query(&[
            ("consumerToken", TRIPLETEX_DEMO_CONSUMER_TOKEN),
            ("employeeToken", TRIPLETEX_DEMO_EMPLOYEE_TOKEN),
            ("expirationDate", "2020-01-01"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["validationMessages"][0]["field"], "expirationDate");
    // Not PUT: refused; percent-encoded `:create` works.
    assert_eq!(
        client().post(&url).send().await.unwrap().status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    let resp = client()
        .put(format!(
            "{}/token/session/%3Acreate",
            sb.tripletex_api_url()
        ))
        .query(&[
            ("consumerToken", TRIPLETEX_DEMO_CONSUMER_TOKEN),
            ("employeeToken", TRIPLETEX_DEMO_EMPLOYEE_TOKEN),
            ("expirationDate", &tomorrow()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["value"]["version"], 0);
    assert_eq!(v["value"]["expirationDate"], tomorrow().as_str());
    assert!(v["value"]["consumerToken"]["id"].is_u64());
    assert!(v["value"]["token"].as_str().unwrap().len() > 20);
}

#[tokio::test]
async fn basic_auth_with_company_zero_is_required() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let token = session(&sb).await;
    let who = format!("{}/token/session/>whoAmI", sb.tripletex_api_url());

    let resp = client().get(&who).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    assert_error(&resp.json().await.unwrap(), 401, 3000);
    let resp = client().get(&who).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = client()
        .get(&who)
        .basic_auth("0", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = client()
        .get(&who)
        .basic_auth("4242", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // `>` as reqwest sends it (`%3E`) and literally.
    let (status, _, v) = get(&sb, &token, "/token/session/%3EwhoAmI").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["value"]["companyId"], TRIPLETEX_COMPANY_ID);
    assert_eq!(v["value"]["employeeId"], TRIPLETEX_DEMO_EMPLOYEE_ID);
    assert_eq!(v["value"]["company"]["name"], "Fjordtech AS");
    let (status, _, _) = get(&sb, &token, "/token/session/>whoAmI").await;
    assert_eq!(status, StatusCode::OK);
    let raw = raw_get(
        &sb,
        // hyper's parser refuses a raw `>` in the request line (400), so on the wire it is
        // always `%3E`; a URL string with a literal `>` (above) is encoded by the client.
        "/tripletex/v2/token/session/%3EwhoAmI",
        &STANDARD.encode(format!("0:{token}")),
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let resp = client()
        .get(&who)
        .basic_auth(TRIPLETEX_COMPANY_ID, Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // A token without entitlements.
    let resp = create_session(
        &sb,
        TRIPLETEX_DEMO_CONSUMER_TOKEN,
        TRIPLETEX_DEMO_LIMITED_EMPLOYEE_TOKEN,
    )
    .await;
    let limited: Value = resp.json().await.unwrap();
    let limited = limited["value"]["token"].as_str().unwrap().to_owned();
    let (status, _, v) = get(&sb, &limited, "/token/session/%3EwhoAmI").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&v, 403, 9000);
    let (status, _, _) = get(&sb, &limited, "/customer").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Expired and deleted sessions.
    let tx = sb.tripletex();
    let other = session(&sb).await;
    let resp = client()
        .delete(format!("{}/token/session/{other}", sb.tripletex_api_url()))
        .basic_auth("0", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get(&sb, &other, "/customer").await.0,
        StatusCode::UNAUTHORIZED
    );
    tx.expire_sessions();
    let (status, _, v) = get(&sb, &token, "/customer").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&v, 401, 3000);
    assert_eq!(
        get(&sb, &session(&sb).await, "/customer").await.0,
        StatusCode::OK
    );
}

async fn raw_get(sb: &Sandbox, path: &str, basic: &str) -> String {
    let stream = tokio::net::TcpStream::connect(sb.local_addr())
        .await
        .unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {basic}\r\nConnection: close\r\n\r\n",
        sb.local_addr()
    );
    let mut data = req.as_bytes();
    while !data.is_empty() {
        stream.writable().await.unwrap();
        match stream.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        stream.readable().await.unwrap();
        match stream.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn customers_page_filter_and_select_fields() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let t = session(&sb).await;
    let (status, headers, all) = get(&sb, &t, "/customer").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.contains_key("x-tlx-request-id"));
    let all_names = names(&all);
    assert_eq!(all["from"], 0);
    assert_eq!(all["count"], all_names.len());
    assert!(all["versionDigest"].is_string());
    assert!(
        !all_names.contains(&"Bergen Bakeri AS".to_owned()),
        "inactive hidden by default"
    );
    let nordlys: Vec<&Value> = all["values"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "Nordlys Consulting AS")
        .collect();
    assert_eq!(nordlys.len(), 2);
    assert_ne!(
        nordlys[0]["organizationNumber"],
        nordlys[1]["organizationNumber"]
    );
    assert!(
        all["values"][0].get("changes").is_none(),
        "changes only on request"
    );
    assert_eq!(
        all["values"][0]["accountManager"]
            .as_object()
            .unwrap()
            .len(),
        2
    );

    // Paging: from/count walk the same list.
    let mut walked = Vec::new();
    let mut from = 0;
    loop {
        let (_, _, page) = get(&sb, &t, &format!("/customer?from={from}&count=2")).await;
        let n = page["values"].as_array().unwrap().len();
        assert_eq!(page["count"], n);
        assert_eq!(page["from"], from);
        walked.extend(names(&page));
        if n < 2 {
            break;
        }
        from += 2;
    }
    assert_eq!(walked, all_names);
    let (status, _, v) = get(&sb, &t, "/customer?count=abc").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&v, 422, 21000);

    let (_, _, inactive) = get(&sb, &t, "/customer?isInactive=true").await;
    assert_eq!(names(&inactive), ["Bergen Bakeri AS"]);
    let (_, _, by_org) = get(&sb, &t, "/customer?organizationNumber=922222226").await;
    assert_eq!(by_org["values"].as_array().unwrap().len(), 1);

    let (status, _, v) = get(
        &sb,
        &t,
        "/customer?fields=id,name,accountManager(firstName),changes",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let first = &v["values"][0];
    assert_eq!(first.as_object().unwrap().len(), 4, "{first}");
    assert_eq!(first["accountManager"]["firstName"], "Kari");
    assert_eq!(first["changes"][0]["changeType"], "CREATE");
    let (status, _, v) = get(&sb, &t, "/customer?fields=id,nonsense").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&v, 400, 11000);
    let (status, _, _) = get(&sb, &t, "/customer?sorting=-nonsense").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, _, sorted) = get(
        &sb,
        &t,
        "/customer?sorting=-customerNumber&fields=customerNumber",
    )
    .await;
    let numbers: Vec<u64> = sorted["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customerNumber"].as_u64().unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] > w[1]), "{numbers:?}");

    let id = all["values"][0]["id"].as_u64().unwrap();
    let (status, _, one) = get(&sb, &t, &format!("/customer/{id}?fields=id,version")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["value"]["id"], id);
    assert_eq!(get(&sb, &t, "/customer/1").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&sb, &t, "/customer/abc").await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn changed_since_and_versions_bump() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tx = sb.tripletex();
    let t = session(&sb).await;
    let since = (Utc::now() - chrono::Duration::seconds(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (_, _, v) = get(&sb, &t, &format!("/customer?changedSince={since}")).await;
    assert_eq!(v["values"].as_array().unwrap().len(), 0);
    let (_, _, v) = get(&sb, &t, "/customer?changedSince=2000-01-01T00:00:00").await;
    assert!(v["values"].as_array().unwrap().len() >= 4);
    assert_eq!(
        get(&sb, &t, "/customer?changedSince=yesterday").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let id = tx.find_customers("Hansen Rørlegger ENK")[0];
    let before = tx.customer(id).unwrap().version;
    assert!(tx.rename_customer(id, "Hansen Rør AS"));
    let (_, _, v) = get(
        &sb,
        &t,
        &format!("/customer?changedSince={since}&fields=id,version,name"),
    )
    .await;
    assert_eq!(names(&v), ["Hansen Rør AS"]);
    assert_eq!(v["values"][0]["version"], before + 1);
    let new = tx.add_customer("Ny Kunde AS", "955555555");
    let (_, _, v) = get(&sb, &t, &format!("/customer?changedSince={since}")).await;
    assert_eq!(v["values"].as_array().unwrap().len(), 2);
    assert_eq!(tx.customer(new).unwrap().version, 0);

    // Projects: three levels, closed ones, version bumps.
    let top = tx.find_project("Fjordkraft intranett").unwrap();
    let third = tx.find_project("Søk - indeksering").unwrap();
    let (_, _, p) = get(
        &sb,
        &t,
        &format!("/project/{third}?fields=*,mainProject(name,mainProject(id))"),
    )
    .await;
    assert_eq!(p["value"]["hierarchyLevel"], 2);
    assert_eq!(
        p["value"]["mainProject"]["name"],
        "Fjordkraft intranett - tillegg søk"
    );
    assert_eq!(p["value"]["mainProject"]["mainProject"]["id"], top);
    assert!(p["value"]["number"].is_string());
    let (_, _, tp) = get(&sb, &t, &format!("/project/{top}")).await;
    assert_eq!(tp["value"]["numberOfSubProjects"], 2);
    let v0 = tp["value"]["version"].as_u64().unwrap();
    assert!(tx.rename_project(top, "Fjordkraft intranett 2"));
    let (_, _, tp) = get(&sb, &t, &format!("/project/{top}")).await;
    assert_eq!(tp["value"]["version"], v0 + 1);

    let (_, _, all) = get(&sb, &t, "/project").await;
    let (_, _, open) = get(&sb, &t, "/project?isClosed=false").await;
    let (_, _, recent) = get(
        &sb,
        &t,
        "/project?isClosed=false&includeRecentlyClosed=true",
    )
    .await;
    let (_, _, closed) = get(&sb, &t, "/project?isClosed=true").await;
    let mut closed_names = names(&closed);
    closed_names.sort();
    assert_eq!(closed_names, ["Hansen nettside", "Intern utvikling"]);
    assert_eq!(closed["values"].as_array().unwrap().len(), 2);
    assert_eq!(
        all["values"].as_array().unwrap().len(),
        open["values"].as_array().unwrap().len() + 2
    );
    assert!(names(&recent).contains(&"Hansen nettside".to_owned()));
    assert!(!names(&recent).contains(&"Intern utvikling".to_owned()));
}

#[tokio::test]
async fn over_budget_answers_429_with_rate_headers() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let t = session(&sb).await;
    sb.tripletex().set_rate_limit(3, Duration::from_secs(60));
    for remaining in [2, 1, 0] {
        let (status, h, _) = get(&sb, &t, "/customer").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h["x-rate-limit-limit"], "3");
        assert_eq!(h["x-rate-limit-remaining"], remaining.to_string().as_str());
        assert!(
            h["x-rate-limit-reset"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 0
        );
    }
    for _ in 0..2 {
        let (status, h, v) = get(&sb, &t, "/project").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(h["x-rate-limit-remaining"], "0");
        assert!(
            h["x-rate-limit-reset"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 0
        );
        assert_eq!(v["status"], 429);
    }
    assert!(sb.tripletex().request_count() >= 5);
}

type Got = Arc<Mutex<Vec<(reqwest::header::HeaderMap, String)>>>;

/// A target URL that records what it receives.
async fn receiver() -> (String, Got) {
    let got: Got = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                let mut h = reqwest::header::HeaderMap::new();
                for (k, v) in &headers {
                    h.insert(
                        reqwest::header::HeaderName::from_bytes(k.as_str().as_bytes()).unwrap(),
                        reqwest::header::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
                    );
                }
                sink.lock().unwrap().push((h, body));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hooks"), got)
}

/// HMAC-SHA512 written out here, independent of the sandbox's.
fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > 128 {
        Sha512::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(128, 0);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha512::digest([ipad.as_slice(), msg].concat());
    Sha512::digest([opad.as_slice(), inner.as_slice()].concat()).to_vec()
}

async fn subscribe(sb: &Sandbox, t: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/event/subscription", sb.tripletex_api_url()))
        .basic_auth("0", Some(t))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn subscriptions_deliver_signed_callbacks_duplicates_and_losses() {
    // RFC 4231 test case 2, so the check below is itself checked.
    assert!(
        hmac(b"Jefe", b"what do ya want for nothing?")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .starts_with("164b7a7bfcf819e2")
    );
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tx = sb.tripletex();
    let t = session(&sb).await;
    let (target, got) = receiver().await;

    // Event list needs no auth.
    let resp = client()
        .get(format!("{}/event", sb.tripletex_api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert!(v["value"]["customer.update"].is_object());

    // Rejections: unknown event, non-https target, unknown field.
    let bad = subscribe(
        &sb,
        &t,
        json!({"event": "customer.renamed", "targetUrl": target}),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bad = subscribe(
        &sb,
        &t,
        json!({"event": "customer.update", "targetUrl": "http://example.com/x"}),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = bad.json().await.unwrap();
    assert_eq!(v["validationMessages"][0]["field"], "targetUrl");
    let bad = subscribe(
        &sb,
        &t,
        json!({"event": "customer.update", "targetUrl": target, "fields": "id,bogus"}),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let secret = "s3cret-shared";
    let resp = subscribe(
        &sb,
        &t,
        json!({"event": "customer.update", "targetUrl": target, "fields": "id,version,name", "hmacSharedSecret": secret}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let sub: Value = resp.json().await.unwrap();
    let sub_id = sub["value"]["id"].as_u64().unwrap();
    assert_eq!(sub["value"]["status"], "ACTIVE");
    assert!(sub["value"].get("hmacSharedSecret").is_none(), "write-only");
    let resp = subscribe(
        &sb,
        &t,
        json!({"event": "customer.delete", "targetUrl": target}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = subscribe(
        &sb,
        &t,
        json!({"event": "project.create", "targetUrl": target, "fields": "id,name,mainProject"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let (_, _, list) = get(&sb, &t, "/event/subscription").await;
    assert_eq!(list["values"].as_array().unwrap().len(), 3);

    let id = tx.find_customers("Fjordkraft Digital AS")[0];
    tx.rename_customer(id, "Fjordkraft Digital ASA");
    tx.flush_deliveries().await;
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 1);
        let (h, body) = &got[0];
        let key = h["idempotency-key"].to_str().unwrap();
        let sig = STANDARD
            .decode(h["x-request-signature"].to_str().unwrap())
            .unwrap();
        assert_eq!(
            sig,
            hmac(secret.as_bytes(), format!("{key}&{body}").as_bytes())
        );
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["subscriptionId"], sub_id);
        assert_eq!(v["event"], "customer.update");
        assert_eq!(v["id"], id);
        assert_eq!(
            v["value"],
            json!({"id": id, "version": tx.customer(id).unwrap().version, "name": "Fjordkraft Digital ASA"})
        );
    }

    // Duplicates share the idempotency key; a lost one never arrives.
    tx.deliver_duplicates(1);
    tx.rename_customer(id, "Fjordkraft Digital AS");
    tx.flush_deliveries().await;
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].0["idempotency-key"], got[2].0["idempotency-key"]);
        assert_eq!(got[1].1, got[2].1);
    }
    tx.lose_next_deliveries(1);
    tx.rename_customer(id, "Lost rename");
    tx.flush_deliveries().await;
    assert_eq!(got.lock().unwrap().len(), 3);
    let deliveries = tx.deliveries();
    assert_eq!(deliveries.len(), 4);
    assert!(deliveries[3].lost && deliveries[3].status.is_none());
    assert!(deliveries[2].duplicate);
    assert_eq!(deliveries[0].status, Some(200));

    // Unsigned delete callback with value null; project create with a sub-project.
    let gone = tx.add_customer("Kortvarig AS", "");
    tx.delete_customer(gone);
    let top = tx.find_project("Nordlys nettbutikk").unwrap();
    let sub_project = tx
        .add_project("Nettbutikk - fase 2", None, None, Some(top))
        .unwrap();
    tx.flush_deliveries().await;
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 5);
        let (h, body) = &got[3];
        assert!(!h.contains_key("x-request-signature"));
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["event"], "customer.delete");
        assert_eq!(v["id"], gone);
        assert!(v["value"].is_null());
        let v: Value = serde_json::from_str(&got[4].1).unwrap();
        assert_eq!(v["event"], "project.create");
        assert_eq!(v["value"]["id"], sub_project);
        assert_eq!(v["value"]["mainProject"]["id"], top);
    }

    // A disabled subscription delivers nothing and shows its status.
    assert!(tx.disable_subscription(sub_id));
    tx.rename_customer(id, "Quiet");
    tx.flush_deliveries().await;
    assert_eq!(got.lock().unwrap().len(), 5);
    let (_, _, one) = get(&sb, &t, &format!("/event/subscription/{sub_id}")).await;
    assert_eq!(one["value"]["status"], "DISABLED_TOO_MANY_ERRORS");
    assert_eq!(
        tx.subscriptions()
            .iter()
            .find(|s| s.id == sub_id)
            .unwrap()
            .status,
        TripletexSubscriptionStatus::DisabledTooManyErrors
    );
    // Reactivate with a stale version: 409; with the current one: delivers again.
    let resp = client()
        .put(format!(
            "{}/event/subscription/{sub_id}",
            sb.tripletex_api_url()
        ))
        .basic_auth("0", Some(&t))
        .json(&json!({"version": 0, "status": "ACTIVE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let version = one["value"]["version"].as_u64().unwrap();
    let resp = client()
        .put(format!(
            "{}/event/subscription/{sub_id}",
            sb.tripletex_api_url()
        ))
        .basic_auth("0", Some(&t))
        .json(&json!({"version": version, "status": "ACTIVE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    tx.rename_customer(id, "Loud");
    tx.flush_deliveries().await;
    assert_eq!(got.lock().unwrap().len(), 6);
    let resp = client()
        .delete(format!(
            "{}/event/subscription/{sub_id}",
            sb.tripletex_api_url()
        ))
        .basic_auth("0", Some(&t))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get(&sb, &t, &format!("/event/subscription/{sub_id}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert!(tx.write_count() >= 5);
}

#[tokio::test]
async fn empty_seed_has_no_tokens_until_registered() {
    let sb = Sandbox::start(Seed::Empty).await.unwrap();
    let resp = create_session(
        &sb,
        TRIPLETEX_DEMO_CONSUMER_TOKEN,
        TRIPLETEX_DEMO_EMPLOYEE_TOKEN,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let tx = sb.tripletex();
    tx.register_consumer_token("c");
    tx.register_employee_token("e", TRIPLETEX_DEMO_EMPLOYEE_ID, true);
    let resp = create_session(&sb, "c", "e").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    let token = v["value"]["token"].as_str().unwrap();
    let (_, _, list) = get(&sb, token, "/customer").await;
    assert_eq!(list["values"], json!([]));
    assert!(sb.describe().contains("/tripletex/v2"));
}

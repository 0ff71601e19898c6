//! The adapter against a mock Tripletex (wiremock) and the reference fixtures.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use chrono::{TimeZone, Utc};
use hourbridge_domain::SecretValue;
use hourbridge_provider_api::{
    CredentialCheckError, MasterDataSource, MasterEntity, Provider, ProviderErrorKind,
    ProviderSession, SESSION_TOKEN, WebhookEndpoint, WebhookRequest, check_provider,
};
use hourbridge_provider_http::ProviderEnv;
use hourbridge_provider_tripletex::{
    API_URL_VAR, CONSUMER_TOKEN_VAR, DESCRIPTOR, EMPLOYEE_TOKEN, ENV_VARS, Tripletex, codes, sign,
};
use serde_json::{Value, json};
use wiremock::matchers::{
    body_partial_json, header, method, path, query_param, query_param_is_missing,
};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SESSION: &str = "sess-123";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn adapter(server: &MockServer) -> Tripletex {
    let base = format!("{}/v2", server.uri());
    Tripletex::from_env(&ProviderEnv::for_tests(&[
        (API_URL_VAR, &base),
        (CONSUMER_TOKEN_VAR, "consumer-abc"),
    ]))
    .unwrap()
}

fn session() -> ProviderSession {
    ProviderSession {
        workspace_id: "w1".into(),
        secrets: BTreeMap::from([(SESSION_TOKEN.to_owned(), SecretValue::new(SESSION))]),
        settings: json!({}),
    }
}

fn credentials() -> ProviderSession {
    ProviderSession {
        workspace_id: "w1".into(),
        secrets: BTreeMap::from([(EMPLOYEE_TOKEN.to_owned(), SecretValue::new("employee-xyz"))]),
        settings: json!({}),
    }
}

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("0:{SESSION}"))
    )
}

#[test]
fn the_descriptor_is_coherent_and_the_adapter_offers_what_it_declares() {
    let t = Tripletex::from_env(&ProviderEnv::for_tests(&[])).unwrap();
    check_provider(&t).unwrap();
    assert_eq!(DESCRIPTOR.id, "tripletex");
    assert_eq!(t.api_base(), "https://tripletex.no/v2");
    assert_eq!(ENV_VARS, [API_URL_VAR, CONSUMER_TOKEN_VAR]);
    assert!(DESCRIPTOR.requires_add_on);
    let md = DESCRIPTOR.capabilities.master_data_in.unwrap();
    assert!(md.customers && md.projects && !md.tasks && !md.people);
    assert_eq!(md.max_project_depth, 2);
    assert!(format!("{t:?}").contains("consumer_token: false"));
}

#[tokio::test]
async fn a_session_is_created_on_the_literal_create_path_with_query_params_and_no_auth() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v2/token/session/:create"))
        .and(query_param("consumerToken", "consumer-abc"))
        .and(query_param("employeeToken", "employee-xyz"))
        .and(query_param("expirationDate", "2026-07-12"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("tripletex-session-token-create.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let t = adapter(&server);
    // 00:30 on 11 July in Oslo: ask for the 12th; it dies at midnight Oslo starting the 12th.
    let until = Utc.with_ymd_and_hms(2026, 7, 10, 22, 30, 0).unwrap();
    let grant = t.create_session(&credentials(), until).await.unwrap();
    assert!(grant.token.expose().ends_with("FAKE-SESSION-TOKEN-0001"));
    // The fixture grants 2026-08-02, later than asked: our date wins.
    assert_eq!(
        grant.expires_at,
        Utc.with_ymd_and_hms(2026, 7, 11, 22, 0, 0).unwrap()
    );
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].url.as_str().contains("/token/session/:create?"));
    assert!(requests[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn a_refused_employee_token_needs_reauthorisation() {
    for status in [401, 403, 422] {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                "status": status, "code": 3000, "message": "Invalid token",
                "requestId": "req-77"
            })))
            .mount(&server)
            .await;
        let e = adapter(&server)
            .create_session(&credentials(), Utc::now())
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::ReauthRequired, "{status}");
        assert!(!e.message.contains("req-77"));
        assert!(!e.message.contains("employee-xyz") && !e.message.contains("consumer-abc"));
        assert!(e.detail.unwrap().contains("req-77"));
    }
}

#[tokio::test]
async fn without_a_consumer_token_the_adapter_builds_but_no_session_is_made() {
    let server = MockServer::start().await;
    let base = format!("{}/v2", server.uri());
    let t = Tripletex::from_env(&ProviderEnv::for_tests(&[(API_URL_VAR, &base)])).unwrap();
    let e = t
        .create_session(&credentials(), Utc::now())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Rejected);
    assert_eq!(e.code, Some(codes::NOT_CONFIGURED));
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn who_am_i_uses_basic_zero_and_the_session_and_names_company_and_employee() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/token/session/%3EwhoAmI"))
        .and(header("authorization", basic().as_str()))
        .and(query_param(
            "fields",
            hourbridge_provider_tripletex::WHO_AM_I_FIELDS,
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": {
            "employeeId": 1170452, "companyId": 990011,
            "company": {"id": 990011, "name": "Fjordkraft Digital AS"},
            "employee": {"id": 1170452, "firstName": "Kari", "lastName": "Nordmann"}
        }})))
        .mount(&server)
        .await;
    let t = adapter(&server);
    let who = t.who_am_i(&session()).await.unwrap();
    assert_eq!(who.company.id, "990011");
    assert_eq!(who.company.name, "Fjordkraft Digital AS");
    assert_eq!(who.employee.id, "1170452");
    assert_eq!(who.employee.name, "Kari Nordmann");
    let account = t.check_credentials(&session()).await.unwrap();
    assert_eq!(account.account_id, "990011");
    assert_eq!(account.account_name, "Fjordkraft Digital AS");
}

#[tokio::test]
async fn a_403_is_a_missing_entitlement_with_tripletex_s_message() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "status": 403, "code": 9000,
            "message": "You do not have access to this resource",
            "requestId": "0b1c-req"
        })))
        .mount(&server)
        .await;
    let e = adapter(&server)
        .check_credentials(&session())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Forbidden);
    assert_eq!(e.code, Some(codes::MISSING_ENTITLEMENT));
    assert!(
        e.message
            .contains("You do not have access to this resource")
    );
    assert!(!e.message.contains("0b1c-req"));
    let detail = e.detail.unwrap();
    assert!(detail.contains("requestId 0b1c-req") && detail.contains("code 9000"));
    match adapter(&server).validate_credentials(&session()).await {
        Err(CredentialCheckError::MissingEntitlement { message }) => {
            assert!(message.contains("You do not have access"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn validation_errors_keep_the_request_id_and_field_messages_in_the_detail() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "status": 422, "code": 11000, "message": "Illegal filter",
            "validationMessages": [{"field": "changedSince", "message": "bad date"}],
            "requestId": "rq-9"
        })))
        .mount(&server)
        .await;
    let e = adapter(&server)
        .fetch(&session(), MasterEntity::Project, "5", None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Rejected);
    assert_eq!(e.message, "Tripletex rejected the request: Illegal filter");
    let detail = e.detail.unwrap();
    assert!(detail.contains("rq-9") && detail.contains("changedSince: bad date"));
}

#[tokio::test]
async fn a_429_waits_for_x_rate_limit_reset() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("X-Rate-Limit-Reset", "3600"))
        .mount(&server)
        .await;
    let e = adapter(&server)
        .fetch(&session(), MasterEntity::Customer, "1", None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(3600)));

    // A short reset is slept through and retried.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("X-Rate-Limit-Reset", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/customer/18800341"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": fixture("tripletex-customers-changed.json")["values"][0]
        })))
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    let r = adapter(&server)
        .fetch(&session(), MasterEntity::Customer, "18800341", None)
        .await
        .unwrap()
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(r.name, "Fjordkraft Digital AS");
    assert_eq!(r.organization_number.as_deref(), Some("998877665"));
    assert_eq!(r.number.as_deref(), Some("10027"));
    assert_eq!(r.version, Some(12));
}

#[tokio::test]
async fn fetch_answers_none_for_a_gone_record_and_refuses_odd_ids() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/project/31200911"))
        .and(query_param(
            "fields",
            hourbridge_provider_tripletex::PROJECT_FIELDS,
        ))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "status": 404, "code": 6000, "message": "Object not found"
        })))
        .mount(&server)
        .await;
    let t = adapter(&server);
    assert!(
        t.fetch(&session(), MasterEntity::Project, "31200911", None)
            .await
            .unwrap()
            .is_none()
    );
    let e = t
        .fetch(&session(), MasterEntity::Project, "../x", None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Rejected);
}

/// Customers page by `from`/`count` until a short page, active first, then inactive ones;
/// `changedSince` goes to customers only.
#[tokio::test]
async fn customers_page_until_a_short_page_in_two_passes_with_changed_since() {
    let server = MockServer::start().await;
    let customers = fixture("tripletex-customers-changed.json")["values"].clone();
    let page = |values: Value| ResponseTemplate::new(200).set_body_json(json!({"values": values}));
    for (inactive, from, values) in [
        ("false", "0", customers.clone()),
        ("false", "2", json!([customers[0].clone()])),
        ("true", "0", json!([])),
    ] {
        Mock::given(method("GET"))
            .and(path("/v2/customer"))
            .and(header("authorization", basic().as_str()))
            .and(query_param("isInactive", inactive))
            .and(query_param("from", from))
            .and(query_param("count", "2"))
            .and(query_param("changedSince", "2026-05-19T08:00:00"))
            .and(query_param(
                "fields",
                hourbridge_provider_tripletex::CUSTOMER_FIELDS,
            ))
            .respond_with(page(values))
            .expect(1)
            .mount(&server)
            .await;
    }
    let t = adapter(&server).with_page_size(2);
    let md = t.master_data().unwrap();
    let since = Some(Utc.with_ymd_and_hms(2026, 5, 19, 8, 0, 0).unwrap());
    let mut next = None;
    let mut all = Vec::new();
    let mut tokens = Vec::new();
    loop {
        let p = md
            .list(&session(), MasterEntity::Customer, since, next)
            .await
            .unwrap();
        all.extend(p.items);
        tokens.push(p.next.clone());
        match p.next {
            Some(n) => next = Some(n),
            None => break,
        }
    }
    assert_eq!(tokens, [Some("a:2".into()), Some("i:0".into()), None]);
    assert_eq!(all.len(), 3);
    assert_eq!(all[1].name, "Hansen Rørlegger ENK");
    assert!(!all[1].inactive && !all[1].deleted);
}

#[tokio::test]
async fn projects_carry_parent_customer_number_and_closed_state_without_changed_since() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/project"))
        .and(query_param_is_missing("changedSince"))
        .and(query_param("from", "0"))
        .and(query_param("count", "1000"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("tripletex-projects-list.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let t = adapter(&server);
    let since = Some(Utc::now());
    let p = t
        .master_data()
        .unwrap()
        .list(&session(), MasterEntity::Project, since, None)
        .await
        .unwrap();
    assert_eq!(p.next, None, "a short page is the last");
    let [main, sub, closed] = &p.items[..] else {
        panic!("{:?}", p.items)
    };
    assert_eq!(
        (main.parent_id.as_deref(), main.customer_id.as_deref()),
        (None, Some("18800341"))
    );
    assert_eq!(sub.parent_id.as_deref(), Some("31200587"));
    assert_eq!(sub.number.as_deref(), Some("1043"));
    assert_eq!(sub.end_date, chrono::NaiveDate::from_ymd_opt(2026, 6, 30));
    assert_eq!(sub.version, Some(2));
    assert!(!main.inactive && !main.deleted);
    assert!(closed.inactive && closed.deleted && closed.customer_id.is_none());
    assert!(
        t.master_data()
            .unwrap()
            .list(&session(), MasterEntity::Task, None, None)
            .await
            .is_err()
    );
}

fn delivery(body: &[u8], key: Option<&str>, signature: Option<String>) -> WebhookRequest {
    let mut headers = BTreeMap::new();
    if let Some(k) = key {
        headers.insert("idempotency-key".to_owned(), k.to_owned());
    }
    if let Some(s) = signature {
        headers.insert("x-request-signature".to_owned(), s);
    }
    WebhookRequest {
        headers,
        body: body.to_vec(),
    }
}

#[tokio::test]
async fn signatures_are_hmac_sha512_over_key_and_body() {
    let t = Tripletex::from_env(&ProviderEnv::for_tests(&[])).unwrap();
    let hooks = t.webhooks().unwrap();
    let secret = SecretValue::new("shh");
    let body = fixture_bytes("tripletex-webhook-project-update.json");
    let good = sign(&secret, "key-1", &body);
    hooks
        .verify(&delivery(&body, Some("key-1"), Some(good.clone())), &secret)
        .unwrap();
    // Known answer: base64(HMAC-SHA512("shh", "k&{}")).
    assert_eq!(sign(&secret, "k", b"{}"), {
        use hmac::Mac;
        let mut m = hmac::Hmac::<sha2::Sha512>::new_from_slice(b"shh").unwrap();
        m.update(b"k&{}");
        base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
    });
    for (req, what) in [
        (
            delivery(&body, Some("key-2"), Some(good.clone())),
            "another key",
        ),
        (
            delivery(b"{}", Some("key-1"), Some(good.clone())),
            "another body",
        ),
        (
            delivery(
                &body,
                Some("key-1"),
                Some(sign(&SecretValue::new("x"), "key-1", &body)),
            ),
            "forged",
        ),
        (
            delivery(&body, Some("key-1"), Some("not base64!".into())),
            "garbage",
        ),
        (delivery(&body, Some("key-1"), None), "unsigned"),
        (delivery(&body, None, Some(good.clone())), "no key"),
    ] {
        let e = hooks.verify(&req, &secret).unwrap_err();
        assert_eq!(e.code, Some(codes::BAD_SIGNATURE), "{what}");
    }
    assert_eq!(
        hooks
            .delivery_id(&delivery(&body, Some("key-1"), None))
            .as_deref(),
        Some("key-1")
    );
    assert_eq!(hooks.delivery_id(&delivery(&body, None, None)), None);
}

#[tokio::test]
async fn deliveries_name_the_record_and_deletes_remove_it() {
    let t = Tripletex::from_env(&ProviderEnv::for_tests(&[])).unwrap();
    let hooks = t.webhooks().unwrap();
    let update = hooks
        .handle(&delivery(
            &fixture_bytes("tripletex-webhook-project-update.json"),
            None,
            None,
        ))
        .unwrap();
    assert_eq!(update.events.len(), 1);
    assert_eq!(update.events[0].entity, MasterEntity::Project);
    assert_eq!(update.events[0].remote_id, "31200911");
    assert!(!update.events[0].deleted);
    assert_eq!(update.events[0].parent_id, None);
    let delete = hooks
        .handle(&delivery(
            &fixture_bytes("tripletex-webhook-customer-delete.json"),
            None,
            None,
        ))
        .unwrap();
    assert_eq!(delete.events[0].entity, MasterEntity::Customer);
    assert_eq!(delete.events[0].remote_id, "18801990");
    assert!(delete.events[0].deleted);
    let other = hooks
        .handle(&delivery(
            br#"{"event":"employee.update","id":1,"value":null}"#,
            None,
            None,
        ))
        .unwrap();
    assert!(other.events.is_empty());
    assert!(hooks.handle(&delivery(b"nope", None, None)).is_err());
}

const HOOK: &str = "https://hb.example/webhooks/tripletex/tok123";

fn endpoint() -> WebhookEndpoint {
    WebhookEndpoint {
        url: HOOK.into(),
        signing_secret: Some(SecretValue::new("sign-secret")),
    }
}

async fn mount_subscriptions(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/v2/event/subscription"))
        .and(header("authorization", basic().as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"values": [
            {"id": 1, "event": "customer.create", "targetUrl": HOOK, "status": "ACTIVE"},
            {"id": 2, "event": "project.update", "targetUrl": HOOK, "status": "DISABLED_TOO_MANY_ERRORS"},
            {"id": 3, "event": "project.update", "targetUrl": "https://other.example/x", "status": "ACTIVE"}
        ]})))
        .mount(server)
        .await;
}

#[tokio::test]
async fn subscribe_creates_missing_and_recreates_disabled_subscriptions_signed_and_narrow() {
    let server = MockServer::start().await;
    mount_subscriptions(&server).await;
    Mock::given(method("DELETE"))
        .and(path("/v2/event/subscription/2"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/event/subscription"))
        .and(header("authorization", basic().as_str()))
        .and(body_partial_json(
            json!({"targetUrl": HOOK, "hmacSharedSecret": "sign-secret"}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"value": {"id": 9}})))
        .expect(5)
        .mount(&server)
        .await;
    let t = adapter(&server);
    t.webhooks()
        .unwrap()
        .subscribe(&session(), &endpoint())
        .await
        .unwrap();
    let posted: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r: &&Request| r.method.as_str() == "POST")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let events: Vec<&str> = posted
        .iter()
        .map(|b| b["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "customer.update",
            "customer.delete",
            "project.create",
            "project.update",
            "project.delete"
        ]
    );
    assert_eq!(posted[3]["fields"], "id,version,mainProject(id)");
    assert_eq!(posted[1]["fields"], "id");
    // Without a signing secret nothing is subscribed.
    let e = t
        .webhooks()
        .unwrap()
        .subscribe(
            &session(),
            &WebhookEndpoint {
                url: HOOK.into(),
                signing_secret: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Rejected);
}

#[tokio::test]
async fn unsubscribe_deletes_only_ours() {
    let server = MockServer::start().await;
    mount_subscriptions(&server).await;
    for id in [1, 2] {
        Mock::given(method("DELETE"))
            .and(path(format!("/v2/event/subscription/{id}")))
            .respond_with(ResponseTemplate::new(if id == 1 { 204 } else { 404 }))
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("DELETE"))
        .and(path("/v2/event/subscription/3"))
        .respond_with(ResponseTemplate::new(204))
        .expect(0)
        .mount(&server)
        .await;
    adapter(&server)
        .webhooks()
        .unwrap()
        .unsubscribe(&session(), &endpoint())
        .await
        .unwrap();
}

#[tokio::test]
async fn revoke_deletes_the_session_and_keeps_the_token_out_of_the_detail() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v2/token/session/{SESSION}")))
        .and(header("authorization", basic().as_str()))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let t = adapter(&server);
    t.revoke(&session()).await.unwrap();

    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(400).set_body_string("nope"))
        .mount(&server)
        .await;
    let e = adapter(&server).revoke(&session()).await.unwrap_err();
    assert!(!e.detail.unwrap_or_default().contains(SESSION));
}

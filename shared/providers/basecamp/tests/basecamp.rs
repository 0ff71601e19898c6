//! The adapter against the Basecamp sandbox (real HTTP on 127.0.0.1) and the reference
//! fixtures.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::NaiveDate;
use hourbridge_domain::SecretValue;
use hourbridge_provider_api::{CachedResponse, ResponseCache};
use hourbridge_provider_api::{
    ClientCredentials, Endpoints, MasterEntity, OAuthFlow, OutboundTime, Provider, ProviderError,
    ProviderErrorKind, ProviderSession, RateBudget, RateLimit, RemoteRecord, WebhookEndpoint,
    WebhookRequest,
};
use hourbridge_provider_basecamp::{
    API_URL_VAR, Basecamp, BasecampFailure, DESCRIPTOR, LAUNCHPAD_URL_VAR, format_hours,
    parse_hours, wire,
};
use hourbridge_provider_http::ProviderEnv;
use hourbridge_provider_http::oauth::HttpOAuth;
use hourbridge_sandbox::{
    BASECAMP_DEMO_ACCOUNT_ID, BASECAMP_DEMO_CLIENT_ID, BASECAMP_DEMO_CLIENT_SECRET,
    BASECAMP_DEMO_SECOND_ACCOUNT_ID, BasecampStatus, Sandbox, Seed,
};
use serde_json::json;

const A: u64 = BASECAMP_DEMO_ACCOUNT_ID;
const REDIRECT: &str = "http://localhost:8080/oauth/basecamp/callback";

fn env_for(sb: &Sandbox) -> ProviderEnv {
    ProviderEnv::for_tests(&[
        (LAUNCHPAD_URL_VAR, &sb.basecamp_launchpad_url()),
        (API_URL_VAR, &sb.basecamp_api_url()),
    ])
}

fn adapter(sb: &Sandbox) -> Basecamp {
    Basecamp::from_env(&env_for(sb)).unwrap()
}

/// Runs the authorization-code flow as the engine does: the shared OAuth helper driven by the
/// descriptor, the browser step done by hand (the sandbox auto-consents).
async fn connect(sb: &Sandbox) -> (SecretValue, SecretValue) {
    let b = adapter(sb);
    let (authorize_url, token_url) = b.oauth_urls().unwrap();
    let endpoints = Endpoints {
        authorize_url,
        token_url,
        redirect_url: REDIRECT.into(),
    };
    let client = ClientCredentials {
        id: BASECAMP_DEMO_CLIENT_ID.into(),
        secret: SecretValue::new(BASECAMP_DEMO_CLIENT_SECRET),
    };
    let spec = DESCRIPTOR.auth.oauth2().unwrap();
    let flow = HttpOAuth::new("Hourbridge tests (dev@hourbridge.test)").unwrap();
    let auth = flow
        .authorize("basecamp", spec, &endpoints, &client, "state-1")
        .unwrap();
    assert!(auth.url.contains("type=web_server"), "{}", auth.url);
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&auth.url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens = flow
        .exchange_code(
            "basecamp",
            spec,
            &endpoints,
            &client,
            &code,
            auth.pkce_verifier.as_ref(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let refresh = tokens.refresh_token.clone().unwrap();
    let again = flow
        .refresh(
            "basecamp",
            spec,
            &endpoints,
            &client,
            &refresh,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    assert_ne!(again.access_token.expose(), tokens.access_token.expose());
    let days = (again.expires_at.unwrap() - chrono::Utc::now()).num_days();
    assert!((13..=14).contains(&days), "{days}");
    (again.access_token, refresh)
}

fn session(token: &SecretValue, account: u64) -> ProviderSession {
    ProviderSession {
        workspace_id: "ws".into(),
        secrets: BTreeMap::from([("access_token".to_owned(), token.clone())]),
        settings: json!({ "account_id": account.to_string(), "client_id": BASECAMP_DEMO_CLIENT_ID }),
    }
}

async fn demo() -> (Sandbox, Basecamp, ProviderSession) {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let (token, _) = connect(&sb).await;
    let b = adapter(&sb);
    let s = session(&token, A);
    (sb, b, s)
}

async fn all(b: &Basecamp, s: &ProviderSession, entity: MasterEntity) -> Vec<RemoteRecord> {
    let source = b.master_data().unwrap();
    let mut page = None;
    let mut out = Vec::new();
    loop {
        let p = source.list(s, entity, None, page).await.unwrap();
        out.extend(p.items);
        match p.next {
            Some(n) => page = Some(n),
            None => return out,
        }
    }
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn time(project: u64, todo: Option<u64>, person: &str, minutes: u32) -> OutboundTime {
    OutboundTime {
        remote_project_id: project.to_string(),
        remote_task_id: todo.map(|t| t.to_string()),
        remote_person_id: person.into(),
        date: day("2026-05-20"),
        minutes,
        note: "Wrote emails".into(),
    }
}

#[tokio::test]
async fn check_credentials_offers_only_bc3_accounts() {
    let (sb, b, s) = demo().await;
    let info = b.check_credentials(&s).await.unwrap();
    assert_eq!(info.account_id, A.to_string());
    assert_eq!(info.account_name, "Nordlys Digital");
    assert_eq!(
        info.other_accounts,
        [(
            BASECAMP_DEMO_SECOND_ACCOUNT_ID.to_string(),
            "Nordlys Labs".to_owned()
        )],
        "bcx and hey accounts are not offered"
    );
    let token = s.secrets["access_token"].clone();
    let mut unset = session(&token, A);
    unset.settings = json!({});
    assert_eq!(
        b.check_credentials(&unset).await.unwrap().account_id,
        A.to_string()
    );
    let second = session(&token, BASECAMP_DEMO_SECOND_ACCOUNT_ID);
    let info = b.check_credentials(&second).await.unwrap();
    assert_eq!(info.account_id, BASECAMP_DEMO_SECOND_ACCOUNT_ID.to_string());
    assert_eq!(info.other_accounts[0].0, A.to_string());

    sb.basecamp().remove_account(A);
    sb.basecamp()
        .remove_account(BASECAMP_DEMO_SECOND_ACCOUNT_ID);
    let e = b.check_credentials(&s).await.unwrap_err();
    assert_eq!(
        BasecampFailure::of(&e),
        Some(BasecampFailure::NoBasecampAccount)
    );
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn projects_import_active_then_archived_and_trashed_as_deleted() {
    let (_sb, b, s) = demo().await;
    let projects = all(&b, &s, MasterEntity::Project).await;
    let got: Vec<(&str, bool)> = projects
        .iter()
        .map(|p| (p.name.as_str(), p.deleted))
        .collect();
    assert_eq!(
        got,
        [
            ("Internal tools", false),
            ("Nordlys website relaunch", false),
            ("Autumn campaign 2025", true),
            ("Scratch project", true),
        ]
    );
}

#[tokio::test]
async fn tasks_are_every_todo_of_every_list_and_group_one_request_per_call() {
    let (sb, b, s) = demo().await;
    let source = b.master_data().unwrap();
    let mut page = None;
    let mut tasks = Vec::new();
    loop {
        let before = sb.basecamp().request_count();
        let p = source
            .list(&s, MasterEntity::Task, None, page)
            .await
            .unwrap();
        assert_eq!(
            sb.basecamp().request_count() - before,
            1,
            "one request per call"
        );
        tasks.extend(p.items);
        match p.next {
            Some(n) => page = Some(n),
            None => break,
        }
    }
    let mut names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "Collect brand assets from client",
            "Draft onboarding email sequence",
            "Review copy",
            "Set up staging",
            "Upgrade CI",
            "Write launch post",
        ],
        "completed included, trashed and other accounts' to-dos left out"
    );
    let web = sb
        .basecamp()
        .find_project("Nordlys website relaunch")
        .unwrap()
        .to_string();
    let post = tasks
        .iter()
        .find(|t| t.name == "Write launch post")
        .unwrap();
    assert_eq!(post.parent_id.as_deref(), Some(web.as_str()));
    assert!(
        tasks
            .iter()
            .all(|t| t.entity == MasterEntity::Task && !t.deleted)
    );

    let bad = source
        .list(&s, MasterEntity::Task, None, Some("garbage".into()))
        .await
        .unwrap_err();
    assert_eq!(bad.kind, ProviderErrorKind::Rejected);
    assert_eq!(
        source
            .list(&s, MasterEntity::Customer, None, None)
            .await
            .unwrap_err()
            .kind,
        ProviderErrorKind::Unsupported
    );
}

#[tokio::test]
async fn paging_follows_link_across_geared_pages() {
    let (sb, b, s) = demo().await;
    let bc = sb.basecamp();
    // More than 50 requests: lift the sandbox's budget so the test does not wait out 429s.
    bc.set_rate_limit(1000, Duration::from_secs(10));
    for i in 0..20 {
        bc.add_project(A, &format!("Extra {i:02}"));
    }
    let list = bc.find_todolist("Backlog").unwrap();
    for i in 0..70 {
        bc.add_todo(list, &format!("Chore {i:02}"));
    }
    let projects = all(&b, &s, MasterEntity::Project).await;
    assert_eq!(projects.iter().filter(|p| !p.deleted).count(), 22);
    let tasks = all(&b, &s, MasterEntity::Task).await;
    assert_eq!(
        tasks.iter().filter(|t| t.name.starts_with("Chore")).count(),
        70
    );
    assert_eq!(tasks.len(), 76);
}

#[tokio::test]
async fn people_with_emails_and_client_flags() {
    let (sb, b, s) = demo().await;
    let people = all(&b, &s, MasterEntity::Person).await;
    assert_eq!(people.len(), 4);
    let web = sb
        .basecamp()
        .find_project("Nordlys website relaunch")
        .unwrap()
        .to_string();
    let members = b.list_people(&s, Some(&web), None).await.unwrap();
    let got: Vec<(&str, Option<&str>, bool)> = members
        .items
        .iter()
        .map(|p| (p.person.name.as_str(), p.person.email.as_deref(), p.client))
        .collect();
    assert_eq!(
        got,
        [
            ("Ingrid Solberg", Some("ingrid@nordlys.example"), false),
            ("Jonas Berg", Some("jonas.berg@nordlys.example"), false),
            ("Mia Kunde", Some("mia@customer.example"), true),
        ]
    );
    let everyone = b.list_people(&s, None, None).await.unwrap();
    assert_eq!(
        everyone.items[2].person.email.as_deref(),
        Some(" Per.Hansen@Nordlys.example "),
        "as Basecamp stores it; the engine trims and compares case-insensitively"
    );
}

#[tokio::test]
async fn push_creates_updates_and_deletes_entries_with_exact_hours() {
    let (sb, b, s) = demo().await;
    let bc = sb.basecamp();
    let sink = b.time_sink().unwrap();
    let web = bc.find_project("Nordlys website relaunch").unwrap();
    let todo = bc.find_todo("Draft onboarding email sequence").unwrap();
    let jonas = bc.find_person(A, "jonas.berg@nordlys.example").unwrap();
    let ingrid = bc.find_person(A, "ingrid@nordlys.example").unwrap();

    let id = sink
        .create(&s, &time(web, Some(todo), &jonas.to_string(), 20), "key-1")
        .await
        .unwrap();
    let e = bc.timesheet_entry(id.parse().unwrap()).unwrap();
    assert_eq!(e.seconds, 20 * 60, "0:20 exactly");
    assert_eq!(e.hours, "0.33");
    assert_eq!(e.person_id, jonas);
    assert_eq!(e.recording_id, todo);
    assert_eq!(e.description, "Wrote emails [hb:key-1]");

    // Unmatched person: omitted, Basecamp registers it under the connecting user.
    let id2 = sink
        .create(&s, &time(web, Some(todo), "", 65), "key-2")
        .await
        .unwrap();
    assert_eq!(
        bc.timesheet_entry(id2.parse().unwrap()).unwrap().person_id,
        ingrid
    );

    // Read back without float drift.
    let back = b
        .list_timesheet_entries(&s, &web.to_string(), None)
        .await
        .unwrap();
    let minutes: BTreeMap<String, u32> = back
        .items
        .iter()
        .map(|w| (w.id.clone(), w.minutes))
        .collect();
    assert_eq!(minutes[&id], 20);
    assert_eq!(minutes[&id2], 65);

    // The lost-answer lookup finds an entry by its idempotency key.
    assert_eq!(
        b.find_entry(&s, &time(web, Some(todo), "", 65), "key-2")
            .await
            .unwrap(),
        Some(id2.clone())
    );
    assert_eq!(
        b.find_entry(&s, &time(web, Some(todo), "", 65), "key-3")
            .await
            .unwrap(),
        None
    );

    let mut edited = time(web, Some(todo), &jonas.to_string(), 90);
    edited.date = day("2026-05-21");
    edited.note = "Rewrote emails".into();
    sink.update(&s, &id, &edited).await.unwrap();
    let e = bc.timesheet_entry(id.parse().unwrap()).unwrap();
    assert_eq!(
        (e.seconds, e.date, e.description.as_str()),
        (5400, day("2026-05-21"), "Rewrote emails")
    );

    let writes = bc.timesheet_write_count();
    sink.delete(&s, &id).await.unwrap();
    assert!(bc.timesheet_entry(id.parse().unwrap()).is_none());
    sink.delete(&s, &id).await.unwrap();
    assert_eq!(
        bc.timesheet_write_count(),
        writes + 1,
        "a missing entry is no error"
    );
    assert_eq!(
        sink.update(&s, &id, &edited).await.unwrap_err().kind,
        ProviderErrorKind::NotFound
    );
}

#[tokio::test]
async fn project_level_time_goes_on_the_discovered_timesheet_recording() {
    let (sb, b, s) = demo().await;
    let bc = sb.basecamp();
    let sink = b.time_sink().unwrap();
    let web = bc.find_project("Nordlys website relaunch").unwrap();
    let id = sink
        .create(&s, &time(web, None, "", 30), "p1")
        .await
        .unwrap();
    let e = bc.timesheet_entry(id.parse().unwrap()).unwrap();
    assert_eq!(Some(e.recording_id), bc.timesheet_recording_id(web));

    // A project without any project-level entry: a typed per-record problem, not a guess.
    let fresh = bc.add_project(A, "Fresh");
    let e = sink
        .create(&s, &time(fresh, None, "", 30), "p2")
        .await
        .unwrap_err();
    assert_eq!(
        BasecampFailure::of(&e),
        Some(BasecampFailure::TimesheetRecordingUnknown)
    );
    assert_eq!(e.kind, ProviderErrorKind::NotFound);
    let owner = bc.find_person(A, "ingrid@nordlys.example").unwrap();
    bc.add_timesheet_entry(
        bc.timesheet_recording_id(fresh).unwrap(),
        owner,
        day("2026-05-01"),
        "1",
        "",
    );
    sink.create(&s, &time(fresh, None, "", 30), "p2")
        .await
        .unwrap();
}

#[tokio::test]
async fn disabled_timesheets_are_a_typed_skip() {
    let (sb, b, s) = demo().await;
    let bc = sb.basecamp();
    let sink = b.time_sink().unwrap();
    let tools = bc.find_project("Internal tools").unwrap();
    let todo = bc.find_todo("Upgrade CI").unwrap();
    let e = sink
        .create(&s, &time(tools, Some(todo), "", 15), "t1")
        .await
        .unwrap_err();
    assert_eq!(
        BasecampFailure::of(&e),
        Some(BasecampFailure::TimesheetsDisabled)
    );
    assert_eq!(e.kind, ProviderErrorKind::Unsupported);
    assert!(!e.is_retryable());
    // The whole account without timesheets.
    let web = bc.find_project("Nordlys website relaunch").unwrap();
    let draft = bc.find_todo("Draft onboarding email sequence").unwrap();
    bc.set_account_timesheet(A, false);
    let e = sink
        .create(&s, &time(web, Some(draft), "", 15), "t2")
        .await
        .unwrap_err();
    assert_eq!(
        BasecampFailure::of(&e),
        Some(BasecampFailure::TimesheetsDisabled)
    );
    // A client user as person: rejected, not retried, not called "disabled".
    bc.set_account_timesheet(A, true);
    let mia = bc.find_person(A, "mia@customer.example").unwrap();
    let e = sink
        .create(&s, &time(web, Some(draft), &mia.to_string(), 15), "t3")
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Rejected);
    assert_eq!(BasecampFailure::of(&e), None);
    assert_eq!(bc.timesheet_entries(web).len(), 1, "only the seeded entry");
}

#[tokio::test]
async fn inactive_account_is_a_typed_failure_not_a_retry_loop() {
    let (sb, b, s) = demo().await;
    sb.basecamp().set_account_active(A, false);
    let before = sb.basecamp().request_count();
    let e = b
        .master_data()
        .unwrap()
        .list(&s, MasterEntity::Project, None, None)
        .await
        .unwrap_err();
    assert_eq!(
        BasecampFailure::of(&e),
        Some(BasecampFailure::AccountInactive)
    );
    assert!(!e.is_retryable());
    assert_eq!(
        sb.basecamp().request_count() - before,
        2,
        "the call and one probe"
    );
    // A missing record on an active account stays a plain NotFound.
    sb.basecamp().set_account_active(A, true);
    let e = b
        .time_sink()
        .unwrap()
        .update(&s, "1", &time(1, Some(2), "", 5))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::NotFound);
    assert_eq!(BasecampFailure::of(&e), None);
    // And a delete on an inactive account is not swallowed as "already gone".
    sb.basecamp().set_account_active(A, false);
    let e = b.time_sink().unwrap().delete(&s, "1").await.unwrap_err();
    assert_eq!(
        BasecampFailure::of(&e),
        Some(BasecampFailure::AccountInactive)
    );
}

#[tokio::test]
async fn revoked_tokens_need_reauth_and_429_5xx_are_retried() {
    let (sb, b, s) = demo().await;
    let bc = sb.basecamp();
    let source = b.master_data().unwrap();

    bc.rate_limit_next(1, 1);
    let started = Instant::now();
    source
        .list(&s, MasterEntity::Person, None, None)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for Retry-After"
    );

    bc.fail_next(2, 503);
    source
        .list(&s, MasterEntity::Person, None, None)
        .await
        .unwrap();

    // A create answered 502 was not applied (the sandbox fails before serving): the lookup
    // finds nothing and says a resend is safe; the resend creates exactly one entry.
    let web = bc.find_project("Nordlys website relaunch").unwrap();
    let todo = bc.find_todo("Review copy").unwrap();
    bc.fail_next(1, 502);
    let e = b
        .time_sink()
        .unwrap()
        .create(&s, &time(web, Some(todo), "", 45), "k")
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Transient);
    b.time_sink()
        .unwrap()
        .create(&s, &time(web, Some(todo), "", 45), "k")
        .await
        .unwrap();
    assert_eq!(bc.timesheet_entries(web).len(), 2);

    // Applied, but the 201 was lost (a gateway timeout): the marker finds the entry, which is
    // adopted instead of created twice.
    bc.lose_next_write_answers(1, 504);
    let adopted = b
        .time_sink()
        .unwrap()
        .create(&s, &time(web, Some(todo), "", 30), "lost-1")
        .await
        .unwrap();
    let entries = bc.timesheet_entries(web);
    assert_eq!(entries.len(), 3, "exactly one more entry");
    assert!(
        entries
            .iter()
            .any(|e| e.id.to_string() == adopted && e.description.ends_with("[hb:lost-1]"))
    );

    bc.revoke_all_tokens();
    let e = source
        .list(&s, MasterEntity::Project, None, None)
        .await
        .unwrap_err();
    assert!(e.needs_reauth());
}

/// Records the keys every request was budgeted under.
#[derive(Default)]
struct Keys(Mutex<Vec<String>>);

#[async_trait]
impl RateBudget for Keys {
    async fn acquire(&self, key: &str, limit: &RateLimit) -> Result<(), ProviderError> {
        assert_eq!(limit.requests, 50);
        self.0.lock().unwrap().push(key.to_owned());
        Ok(())
    }
}

#[tokio::test]
async fn every_request_is_budgeted_per_account() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let (token, _) = connect(&sb).await;
    let keys = Arc::new(Keys::default());
    let mut env = env_for(&sb);
    env.budget = keys.clone();
    let b = Basecamp::from_env(&env).unwrap();
    let s = session(&token, A);
    b.check_credentials(&s).await.unwrap();
    all(&b, &s, MasterEntity::Task).await;
    let keys = keys.0.lock().unwrap();
    assert_eq!(keys[0], "basecamp:launchpad");
    assert!(
        keys[1..]
            .iter()
            .all(|k| k == &format!("basecamp:account:{A}"))
    );
    assert_eq!(keys.len() as u64, sb.basecamp().request_count() + 1);
}

/// A payload URL that keeps what it receives.
async fn receiver() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let got: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let sink = got.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    stream.readable().await.unwrap();
                    match stream.try_read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(_) => break,
                    }
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            sink.lock().unwrap().push(body.as_bytes().to_vec());
                            break;
                        }
                    }
                }
                stream.writable().await.unwrap();
                let _ = stream.try_write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
            });
        }
    });
    (format!("http://{addr}/webhooks/basecamp/tok-abc"), got)
}

#[tokio::test]
async fn webhooks_subscribe_idempotently_and_deliveries_become_events() {
    let (sb, b, s) = demo().await;
    let bc = sb.basecamp();
    let hooks = b.webhooks().unwrap();
    let (url, got) = receiver().await;
    let endpoint = WebhookEndpoint {
        url: url.clone(),
        signing_secret: None,
    };
    hooks.subscribe(&s, &endpoint).await.unwrap();
    hooks.subscribe(&s, &endpoint).await.unwrap();
    let web = bc.find_project("Nordlys website relaunch").unwrap();
    let tools = bc.find_project("Internal tools").unwrap();
    for p in [web, tools] {
        let h = bc.webhooks(p);
        assert_eq!(h.len(), 1, "one per project, however often subscribed");
        assert_eq!(h[0].types, ["Todo", "Todolist"]);
        assert_eq!(h[0].payload_url, url);
    }
    // Removed in Basecamp: re-created on the next subscribe.
    bc.remove_webhook(bc.webhooks(web)[0].id);
    hooks.subscribe(&s, &endpoint).await.unwrap();
    assert_eq!(bc.webhooks(web).len(), 1);

    let todo = bc.find_todo("Collect brand assets from client").unwrap();
    bc.complete_todo(todo, true);
    bc.trash_todo(todo);
    bc.flush_webhooks().await;
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    let request = |body: &[u8]| WebhookRequest {
        headers: BTreeMap::from([("user-agent".to_owned(), "Basecamp3 Webhook".to_owned())]),
        body: body.to_vec(),
    };
    let first = hooks.handle(&request(&bodies[0])).unwrap();
    assert_eq!(first.events.len(), 1);
    assert_eq!(first.events[0].entity, MasterEntity::Task);
    assert_eq!(first.events[0].remote_id, todo.to_string());
    assert!(!first.events[0].deleted);
    assert!(hooks.handle(&request(&bodies[1])).unwrap().events[0].deleted);
    hooks
        .verify(&request(&bodies[0]), &SecretValue::new("unused"))
        .unwrap();
    let list_event = json!({"id": 1, "kind": "todolist_archived", "recording": {"id": 5, "type": "Todolist", "bucket": {"id": web, "name": "x"}}});
    let d = hooks
        .handle(&request(list_event.to_string().as_bytes()))
        .unwrap();
    assert_eq!(d.events[0].entity, MasterEntity::Project);
    assert_eq!(d.events[0].remote_id, web.to_string());
    let other =
        json!({"id": 2, "kind": "message_created", "recording": {"id": 6, "type": "Message"}});
    assert!(
        hooks
            .handle(&request(other.to_string().as_bytes()))
            .unwrap()
            .events
            .is_empty()
    );
    assert!(hooks.handle(&request(b"not json")).is_err());

    // Archived projects keep theirs until unsubscribe, which removes every one.
    bc.set_project_status(tools, BasecampStatus::Archived);
    hooks.unsubscribe(&s, &endpoint).await.unwrap();
    assert!(bc.webhooks(web).is_empty());
    assert!(bc.webhooks(tools).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Reference fixtures

const TODOS: &str = include_str!("fixtures/basecamp-todos-list.json");
const ENTRY: &str = include_str!("fixtures/basecamp-timesheet-entry-created.json");

#[test]
fn fixtures_match_the_shared_reference_copies() {
    let reference = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../../shared/reference/fixtures"
    ));
    if !reference.is_dir() {
        eprintln!(
            "note: {} is absent; skipping the comparison with the reference fixtures",
            reference.display()
        );
        return;
    }
    let local = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"));
    for name in [
        "basecamp-todos-list.json",
        "basecamp-timesheet-entry-created.json",
    ] {
        let ours = std::fs::read(local.join(name)).unwrap();
        let theirs = std::fs::read(reference.join(name)).unwrap();
        assert!(
            ours == theirs,
            "tests/fixtures/{name} differs from the reference copy"
        );
    }
}

#[test]
fn reference_todos_parse() {
    let todos: Vec<wire::Todo> = serde_json::from_str(TODOS).unwrap();
    assert_eq!(todos.len(), 2);
    assert_eq!(todos[0].id, 7_301_440_021);
    assert_eq!(todos[0].title, "Draft onboarding email sequence");
    assert_eq!(todos[0].bucket.id, 38_800_117);
    assert_eq!(todos[0].parent.kind, "Todolist");
    assert_eq!(
        todos[0].assignees[0].email_address.as_deref(),
        Some("jonas.berg@nordlys.example")
    );
    assert!(todos[1].assignees.is_empty());
    assert!(!todos[1].completed);
}

#[test]
fn reference_entry_parses_with_exact_minutes() {
    let e: wire::Entry = serde_json::from_str(ENTRY).unwrap();
    assert_eq!(e.id, 7_309_911_402);
    assert_eq!(e.hours, "2.75");
    assert_eq!(parse_hours(&e.hours), Some(165));
    assert_eq!(e.parent.kind, "Todo");
    assert_eq!(e.parent.id, 7_301_440_021);
    assert_eq!(e.person.id, 51_200_047);
    assert_eq!(e.date, day("2026-05-20"));
    assert!(e.description.unwrap().contains("[tt:entry:"));
    assert_eq!(format_hours(20), "0:20");
}

/// A response cache in memory that counts its writes.
#[derive(Default)]
struct MemoryCache {
    entries: Mutex<BTreeMap<(String, String), CachedResponse>>,
    puts: std::sync::atomic::AtomicU32,
}

#[async_trait]
impl ResponseCache for MemoryCache {
    async fn get(&self, workspace: &str, key: &str) -> Option<CachedResponse> {
        let entries = self.entries.lock().unwrap();
        entries
            .get(&(workspace.to_owned(), key.to_owned()))
            .cloned()
    }

    async fn put(&self, workspace: &str, key: &str, response: CachedResponse) {
        self.puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut entries = self.entries.lock().unwrap();
        entries.insert((workspace.to_owned(), key.to_owned()), response);
    }
}

#[tokio::test]
async fn a_repeated_import_revalidates_with_etags_and_replays_304s() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let (token, _) = connect(&sb).await;
    let cache = Arc::new(MemoryCache::default());
    let mut env = env_for(&sb);
    env.cache = cache.clone();
    let b = Basecamp::from_env(&env).unwrap();
    let s = session(&token, A);
    let bc = sb.basecamp();
    let puts = || cache.puts.load(std::sync::atomic::Ordering::SeqCst);

    let projects = all(&b, &s, MasterEntity::Project).await;
    let tasks = all(&b, &s, MasterEntity::Task).await;
    let first_requests = bc.request_count();
    // The task crawl reads `projects.json` again, already remembered by the project listing.
    let first_304s = bc.not_modified_count();
    assert!(first_304s < first_requests);
    assert_eq!(puts() as usize, cache.entries.lock().unwrap().len());
    assert!(puts() > 0);
    let first_puts = puts();

    // Nothing changed: every GET is answered 304 and replayed, nothing is written.
    assert_eq!(all(&b, &s, MasterEntity::Project).await, projects);
    assert_eq!(all(&b, &s, MasterEntity::Task).await, tasks);
    let second_requests = bc.request_count() - first_requests;
    assert_eq!(second_requests, first_requests, "same pages, same requests");
    assert_eq!(bc.not_modified_count() - first_304s, second_requests);
    assert_eq!(puts(), first_puts);

    // A change is seen: the changed page comes in full and is remembered, the rest is 304.
    bc.add_project(A, "Fresh project");
    let before = (bc.request_count(), bc.not_modified_count());
    let again = all(&b, &s, MasterEntity::Project).await;
    assert!(again.iter().any(|p| p.name == "Fresh project"));
    let full = (bc.request_count() - before.0) - (bc.not_modified_count() - before.1);
    assert!(full >= 1, "the changed page was sent in full");
    assert!(puts() > first_puts);

    // Another workspace never uses this workspace's entries.
    let other = ProviderSession {
        workspace_id: "ws-other".into(),
        ..s.clone()
    };
    let before = bc.not_modified_count();
    all(&b, &other, MasterEntity::Project).await;
    assert_eq!(bc.not_modified_count(), before);
}

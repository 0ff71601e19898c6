//! The TimeLog adapter against the sandbox's TimeLog emulation (Transactional SOAP and
//! Reporting), end to end.

use std::collections::BTreeMap;

use chrono::Duration;
use hourbridge_domain::SecretValue;
use hourbridge_provider_api::{
    ChangeWindow, CredentialCheckError, OutboundTask, OutboundTime, Provider, ProviderErrorKind,
    ProviderSession, TimeChange,
};
use hourbridge_provider_http::ProviderEnv;
use hourbridge_provider_timelog::{self as timelog, TimeLog};
use hourbridge_sandbox::{
    Sandbox, Seed, TIMELOG_ACCOUNT, TIMELOG_PASSWORD, TIMELOG_REPORTING_PASSWORD,
    TIMELOG_REPORTING_USERNAME, TIMELOG_SITE_CODE, TIMELOG_USERNAME,
};

fn session(sb: &Sandbox) -> ProviderSession {
    let mut secrets = BTreeMap::new();
    secrets.insert("password".into(), SecretValue::new(TIMELOG_PASSWORD));
    secrets.insert(
        "reporting_password".into(),
        SecretValue::new(TIMELOG_REPORTING_PASSWORD),
    );
    ProviderSession {
        workspace_id: "w1".into(),
        secrets,
        settings: serde_json::json!({
            "domain": sb.timelog_domain(),
            "account_name": TIMELOG_ACCOUNT,
            "username": TIMELOG_USERNAME,
            "site_code": TIMELOG_SITE_CODE,
            "reporting_username": TIMELOG_REPORTING_USERNAME,
        }),
    }
}

fn adapter() -> TimeLog {
    TimeLog::from_env(&ProviderEnv::for_tests(&[(timelog::ALLOW_HTTP_VAR, "1")])).unwrap()
}

fn employee_id(sb: &Sandbox, initials: &str) -> String {
    sb.timelog()
        .employees()
        .into_iter()
        .find(|e| e.initials == initials)
        .map(|e| e.id.to_string())
        .unwrap_or_else(|| panic!("no employee {initials} in the sandbox"))
}

#[tokio::test]
async fn validation_attributes_each_failure_to_its_fields() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let t = adapter();
    let info = t.validate_credentials(&session(&sb)).await.unwrap();
    assert_eq!(info.account_name, TIMELOG_ACCOUNT);
    assert_eq!(
        info.account_id,
        format!("{}/{TIMELOG_ACCOUNT}", sb.timelog_domain())
    );
    assert_eq!(
        info.identity.as_ref().map(|i| i.0.as_str()),
        Some(hourbridge_sandbox::TIMELOG_SYNC_INITIALS)
    );

    let fields = |e: CredentialCheckError| match e {
        CredentialCheckError::Invalid { fields, .. } => ("invalid", fields),
        CredentialCheckError::UnreachableDomain { fields, .. } => ("domain", fields),
        other => panic!("{other:?}"),
    };
    let mut s = session(&sb);
    s.secrets
        .insert("password".into(), SecretValue::new("wrong"));
    assert_eq!(
        fields(t.validate_credentials(&s).await.unwrap_err()),
        ("invalid", vec!["username".into(), "password".into()])
    );
    let mut s = session(&sb);
    s.secrets
        .insert("reporting_password".into(), SecretValue::new("wrong"));
    assert_eq!(
        fields(t.validate_credentials(&s).await.unwrap_err()),
        (
            "invalid",
            vec![
                "site_code".into(),
                "reporting_username".into(),
                "reporting_password".into()
            ]
        )
    );
    let mut s = session(&sb);
    s.settings["account_name"] = "no-such-account".into();
    assert_eq!(
        fields(t.validate_credentials(&s).await.unwrap_err()),
        ("domain", vec!["domain".into(), "account_name".into()])
    );
}

#[tokio::test]
async fn time_tasks_and_changes_round_trip_through_the_sandbox() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tl = sb.timelog();
    let t = adapter();
    let s = session(&sb);

    // Directory.
    let projects = t
        .directory()
        .unwrap()
        .list_projects(&s, Some("intranet"), None)
        .await
        .unwrap();
    assert_eq!(projects.items.len(), 1, "{projects:?}");
    assert_eq!(projects.items[0].id, "612");
    let all = t
        .directory()
        .unwrap()
        .list_projects(&s, None, None)
        .await
        .unwrap();
    assert!(
        all.items.iter().all(|p| p.id != "590"),
        "inactive projects are not offered"
    );
    let users = t.directory().unwrap().list_users(&s, None).await.unwrap();
    let bob = users
        .items
        .iter()
        .find(|u| u.initials.as_deref() == Some("BBU"))
        .expect("Bob is listed");
    assert_eq!(bob.email.as_deref(), Some("Bob.Builder@Acme.test"));
    assert!(bob.active);
    assert!(
        users
            .items
            .iter()
            .any(|u| u.initials.as_deref() == Some("CCO") && !u.active)
    );
    let bob_id = employee_id(&sb, "BBU");
    assert_eq!(bob.id, bob_id);

    // Tasks out.
    let sink = t.task_sink().unwrap();
    let task = OutboundTask {
        remote_project_id: "612".into(),
        name: "Design & <review>".into(),
        active: true,
    };
    let task_id = sink.create_task(&s, &task, "host-task-1").await.unwrap();
    let remote = tl.task(&task_id).expect("the task exists in the sandbox");
    assert_eq!(remote.name, "Design & <review>");
    assert_eq!(remote.project_id, 612);
    assert!(
        remote
            .external_keys
            .contains(&("Hourbridge".into(), "host-task-1".into())),
        "{:?}",
        remote.external_keys
    );
    assert_eq!(
        sink.find_task(&s, "612", "host-task-1").await.unwrap(),
        Some(task_id.clone())
    );
    assert_eq!(
        sink.find_task(&s, "612", "no-such-key").await.unwrap(),
        None
    );

    sink.allocate(&s, &task_id, &bob_id).await.unwrap();
    sink.allocate(&s, &task_id, &bob_id).await.unwrap();
    assert_eq!(
        tl.allocation_count(bob_id.parse().unwrap(), remote.id),
        1,
        "allocating twice creates one allocation"
    );

    // Time out.
    let day = tl.now().date_naive();
    let mut time = OutboundTime {
        remote_project_id: "612".into(),
        remote_task_id: Some(task_id.clone()),
        remote_person_id: bob_id.clone(),
        date: day,
        minutes: 95,
        note: "Sketches <v2> & notes".into(),
    };
    let since = tl.now() - Duration::minutes(1);
    let ts = t.time_sink().unwrap();
    let guid = ts.create(&s, &time, "hb:log:1").await.unwrap();
    assert_eq!(guid, timelog::work_unit_guid("hb:log:1"));
    let unit = tl
        .work()
        .into_iter()
        .find(|w| w.guid == guid)
        .expect("the registration exists");
    assert_eq!(unit.minutes, 95);
    assert_eq!(unit.note, "Sketches <v2> & notes");
    assert_eq!(unit.initials, "BBU");
    assert_eq!(unit.date, day);
    assert_eq!(
        ts.find(&s, &time, "hb:log:1").await.unwrap(),
        Some(guid.clone())
    );
    assert_eq!(ts.find(&s, &time, "hb:log:2").await.unwrap(), None);

    time.minutes = 60;
    time.note = "Sketches, final".into();
    ts.update(&s, &guid, &time).await.unwrap();
    let unit = tl.work().into_iter().find(|w| w.guid == guid).unwrap();
    assert_eq!((unit.minutes, unit.note.as_str()), (60, "Sketches, final"));

    // A registration made in TimeLog comes back with its note.
    let theirs = tl
        .register_work("BBU", &task_id, day, 30, "Made in TimeLog")
        .expect("registered");

    // Changes: ours (created, updated) and theirs, in order, with notes and people.
    let window = ChangeWindow {
        since,
        until: tl.now() + Duration::minutes(1),
    };
    let feed = t.time_changes().unwrap();
    let page = feed.changes(&s, window, None).await.unwrap();
    assert_eq!(page.next, None);
    let mut upserts: Vec<_> = page
        .items
        .iter()
        .filter_map(|c| match c {
            TimeChange::Upserted(w) => Some(w.clone()),
            TimeChange::Deleted { .. } => None,
        })
        .collect();
    // The rows carry no note; `complete` reads them.
    feed.complete(&s, &mut upserts).await.unwrap();
    let ours: Vec<_> = upserts.iter().filter(|w| w.id == guid).collect();
    assert_eq!(ours.len(), 2, "{:?}", page.items);
    assert_eq!(ours[1].minutes, 60);
    assert_eq!(ours[1].note, "Sketches, final");
    assert_eq!(ours[1].project_id, "612");
    assert_eq!(ours[1].task_id.as_deref(), Some(task_id.as_str()));
    assert_eq!(ours[1].person.id, bob_id);
    assert_eq!(
        ours[1].person.email.as_deref(),
        Some("Bob.Builder@Acme.test")
    );
    assert!(ours[1].updated_at.is_some());
    let made = upserts
        .iter()
        .find(|w| w.id == theirs.to_lowercase())
        .expect("their registration is in the feed");
    assert_eq!((made.minutes, made.note.as_str()), (30, "Made in TimeLog"));

    // Delete: gone in TimeLog, a Deleted change, and deleting again is fine.
    ts.delete(&s, &guid).await.unwrap();
    assert!(tl.work().iter().all(|w| w.guid != guid));
    ts.delete(&s, &guid).await.unwrap();
    let page = feed
        .changes(
            &s,
            ChangeWindow {
                since,
                until: tl.now() + Duration::minutes(1),
            },
            None,
        )
        .await
        .unwrap();
    assert!(
        page.items
            .iter()
            .any(|c| matches!(c, TimeChange::Deleted { id, at } if *id == guid && at.is_some()))
    );
    assert!(
        page.items
            .iter()
            .all(|c| !matches!(c, TimeChange::Upserted(w) if w.id == guid)),
        "rows of a deleted unit carry only its GUID and are not upserts"
    );

    // Paging: one row per page, the last page is short.
    let paged = adapter().with_changes_page_size(1);
    let mut next = None;
    let mut rows = 0;
    loop {
        let page = paged
            .time_changes()
            .unwrap()
            .changes(&s, window, next)
            .await
            .unwrap();
        rows += page.items.len();
        match page.next {
            Some(n) => next = Some(n),
            None => break,
        }
        assert!(rows < 100, "paging must end");
    }
    assert!(rows >= 1);

    // Rename and deactivate the task; reactivate it.
    let renamed = OutboundTask {
        remote_project_id: "612".into(),
        name: "Design review".into(),
        active: false,
    };
    sink.update_task(&s, &task_id, &renamed).await.unwrap();
    let remote = tl.task(&task_id).unwrap();
    assert_eq!(remote.name, "Design review");
    assert!(!remote.active);
    sink.update_task(
        &s,
        &task_id,
        &OutboundTask {
            active: true,
            ..renamed
        },
    )
    .await
    .unwrap();
    assert!(tl.task(&task_id).unwrap().active);

    // A closed week refuses the registration with a typed code.
    assert!(tl.close_week("BBU", day));
    let e = ts.create(&s, &time, "hb:log:3").await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Fault);
    assert_eq!(e.code, Some(timelog::codes::REGISTRATION_LOCKED), "{e:?}");
}

#[tokio::test]
async fn an_expired_token_is_renewed_once() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tl = sb.timelog();
    let t = adapter();
    let s = session(&sb);
    let dir = t.directory().unwrap();
    dir.list_projects(&s, None, None).await.unwrap();
    dir.list_projects(&s, None, None).await.unwrap();
    assert_eq!(tl.token_count(), 1, "the token is cached");
    tl.expire_tokens();
    dir.list_projects(&s, None, None).await.unwrap();
    assert_eq!(tl.token_count(), 2, "renewed after the token was refused");

    // A password changed in TimeLog: the renewal is refused, the connection needs re-auth.
    tl.expire_tokens();
    assert!(tl.set_password(hourbridge_sandbox::TIMELOG_SYNC_INITIALS, Some("changed")));
    let e = dir.list_projects(&s, None, None).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::ReauthRequired);
}

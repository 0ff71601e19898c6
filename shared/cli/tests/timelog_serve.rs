//! TimeLog end to end through the built binary: `hourbridge serve` as a process against the
//! TimeLog sandbox, driven over HTTP the way the README tells an admin and a manager to —
//! Activate with wrong and right credentials, person and project links, then cycle after
//! cycle: a host task appears once and its rename follows, its assignee is allocated once,
//! host logs are registered once each and their edits and deletions follow, work registered,
//! edited and deleted in TimeLog reaches the host, our echo changes nothing, both conflict
//! outcomes, a closed week, an expired token. A second test kills the server at random points
//! of a 500-log cycle.
//!
//! What TimeLog holds is read from the sandbox's own state, not from the server.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::*;
use hourbridge_sandbox::{
    Sandbox, Seed, TIMELOG_PASSWORD, TIMELOG_REPORTING_PASSWORD, TIMELOG_SITE_CODE,
    TIMELOG_USERNAME, TimelogControl,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// TimeLog's `ProjectID` of "Intranet relaunch", in both seeds.
const INTRANET: &str = "612";

/// Restarts after a SIGKILL find the dead server's lease expired after 3 s.
const LEASE: [&str; 2] = ["--lease-ttl-secs", "3"];

struct World {
    sb: Sandbox,
    tl: TimelogControl,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    server: ServerProc,
    api: Api,
    ws: String,
}

async fn world(extra: &[(&str, &str)]) -> World {
    let sb = Sandbox::start(Seed::Empty).await.expect("sandbox");
    let tl = sb.timelog();
    let env = vars_with(
        vec![("HOURBRIDGE_TIMELOG_ALLOW_HTTP".to_owned(), "1".to_owned())],
        extra,
    );
    let s = serve_workspace(&env, &LEASE, nordlys_workspace()).await;
    World {
        sb,
        tl,
        env,
        _dir: s.dir,
        dir: s.path,
        server: s.server,
        api: s.api,
        ws: s.ws,
    }
}

impl World {
    fn fields(&self) -> Value {
        self.sb.timelog_connect_body()
    }

    /// Activate with `fields`, as answered.
    async fn try_activate(&self, fields: Value) -> (StatusCode, Value) {
        self.api
            .call(Method::PUT, "/v1/connections/timelog", Some(fields))
            .await
    }

    async fn activate(&self) -> Value {
        let c = self
            .api
            .ok(Method::PUT, "/v1/connections/timelog", Some(self.fields()))
            .await;
        assert_eq!(c["state"], "active", "{c}");
        c
    }

    async fn person(&self, name: &str, email: &str) -> String {
        let p = self
            .api
            .ok(
                Method::POST,
                "/v1/people",
                Some(json!({"name": name, "email": email, "role": "member"})),
            )
            .await;
        p["id"].as_str().unwrap().to_owned()
    }

    async fn link_person(&self, person: &str, remote: &str) {
        self.api
            .ok(
                Method::PUT,
                &format!("/v1/people/{person}/integrations/timelog"),
                Some(json!({"remote_user_id": remote})),
            )
            .await;
    }

    async fn linked_project(&self) -> String {
        let p = self
            .api
            .ok(
                Method::POST,
                "/v1/projects",
                Some(json!({"name": "Intranet"})),
            )
            .await;
        let id = p["id"].as_str().unwrap().to_owned();
        self.api
            .ok(
                Method::PUT,
                &format!("/v1/projects/{id}/integrations/timelog"),
                Some(json!({"remote_project_ids": [INTRANET]})),
            )
            .await;
        id
    }

    /// A task on `project` assigned to `assignee`; answers its id.
    async fn task(&self, project: &str, name: &str, assignee: &str) -> String {
        let t = self
            .api
            .ok(
                Method::POST,
                &format!("/v1/projects/{project}/tasks"),
                Some(json!({"name": name, "assignee_ids": [assignee]})),
            )
            .await;
        t["id"].as_str().unwrap().to_owned()
    }

    /// A work log of `person` on `task`; answers its id.
    async fn log(
        &self,
        person: &str,
        project: &str,
        task: &str,
        date: chrono::NaiveDate,
        minutes: u32,
        note: &str,
    ) -> String {
        let l = self
            .api
            .ok(
                Method::POST,
                "/v1/worklogs",
                Some(
                    json!({"person_id": person, "project_id": project, "task_id": task,
                    "date": date.to_string(), "minutes": minutes, "note": note}),
                ),
            )
            .await;
        l["id"].as_str().unwrap().to_owned()
    }

    /// The host log imported from TimeLog registration `guid`, if any.
    async fn log_from(&self, project: &str, guid: &str) -> Option<Value> {
        self.logs(project)
            .await
            .into_iter()
            .find(|l| l["source"]["remote_id"] == guid)
    }

    async fn patch_log(&self, id: &str, body: Value) {
        self.api
            .ok(Method::PATCH, &format!("/v1/worklogs/{id}"), Some(body))
            .await;
    }

    /// "Synchronize now" and the run's end.
    async fn cycle(&self) -> Value {
        self.api.sync_succeeded("timelog", &self.server).await
    }

    async fn logs(&self, project: &str) -> Vec<Value> {
        self.api
            .ok(
                Method::GET,
                &format!("/v1/worklogs?project_id={project}&limit=1000"),
                None,
            )
            .await["items"]
            .as_array()
            .unwrap()
            .clone()
    }
}

fn problem<'a>(run: &'a Value, code: &str) -> Option<&'a Value> {
    run["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == code)
}

fn today() -> chrono::NaiveDate {
    Utc::now().date_naive() - chrono::Days::new(1)
}

#[tokio::test]
async fn activate_checks_both_apis_and_names_the_failing_fields_storing_nothing() {
    let w = world(&[]).await;
    let mut wrong = w.fields();
    wrong["password"] = json!("not-it");
    let (st, v) = w.try_activate(wrong).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "invalid_credentials", "{v}");
    assert_eq!(v["error"]["fields"], json!(["username", "password"]), "{v}");

    let mut wrong = w.fields();
    wrong["reporting_password"] = json!("not-it");
    let (st, v) = w.try_activate(wrong).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(
        v["error"]["fields"],
        json!(["site_code", "reporting_username", "reporting_password"]),
        "{v}"
    );

    let mut wrong = w.fields();
    wrong["domain"] = json!(format!("127.0.0.1:{}", free_port()));
    let (st, v) = w.try_activate(wrong).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "unreachable_domain", "{v}");

    let (st, v) = w
        .api
        .call(Method::GET, "/v1/connections/timelog", None)
        .await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "nothing stored after failures: {v}"
    );

    let c = w.activate().await;
    assert!(c["next_run_at"].is_string(), "scheduled: {c}");
    let c = w.api.ok(Method::GET, "/v1/connections/timelog", None).await;
    let text = c.to_string();
    assert!(
        text.contains(TIMELOG_SITE_CODE) && text.contains(TIMELOG_USERNAME),
        "{c}"
    );
    assert!(
        !text.contains(TIMELOG_PASSWORD) && !text.contains(TIMELOG_REPORTING_PASSWORD),
        "passwords are never returned: {c}"
    );
}

#[tokio::test]
async fn every_cycle_pushes_tasks_and_time_out_and_pulls_time_in_without_echoes() {
    let w = world(&[]).await;
    let jonas_tl =
        w.tl.add_employee("Jonas", "Berg", "JBE", "Jonas.Berg@Nordlys.example")
            .to_string();
    w.tl.add_employee("Eve", "Stranger", "EST", "eve@elsewhere.example");
    w.activate().await;

    // People: suggested by e-mail, linked by hand, one person per TimeLog user.
    let jonas = w.person("Jonas Berg", "jonas.berg@nordlys.example").await;
    let other = w.person("Jonas B. (duplicate)", "jb@nordlys.example").await;
    let users = w
        .api
        .ok(Method::GET, "/v1/connections/timelog/remote-users", None)
        .await;
    let row = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == jonas_tl.as_str())
        .unwrap_or_else(|| panic!("{users}"))
        .clone();
    assert_eq!(row["initials"], "JBE", "{row}");
    assert_eq!(row["suggested_person_id"], jonas.as_str(), "{row}");
    w.link_person(&jonas, &jonas_tl).await;
    let (st, v) = w
        .api
        .call(
            Method::PUT,
            &format!("/v1/people/{other}/integrations/timelog"),
            Some(json!({"remote_user_id": jonas_tl})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");

    // The project: one TimeLog project only.
    let remote = w
        .api
        .ok(
            Method::GET,
            "/v1/connections/timelog/remote-projects?q=intranet",
            None,
        )
        .await;
    assert!(
        remote["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == INTRANET),
        "{remote}"
    );
    let p = w
        .api
        .ok(Method::POST, "/v1/projects", Some(json!({"name": "Two"})))
        .await;
    let (st, v) = w
        .api
        .call(
            Method::PUT,
            &format!(
                "/v1/projects/{}/integrations/timelog",
                p["id"].as_str().unwrap()
            ),
            Some(json!({"remote_project_ids": [INTRANET, "640"]})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let web = w.linked_project().await;

    // Tasks out and allocation.
    let task_id = w.task(&web, "Design", &jonas).await;
    let run = w.cycle().await;
    assert_eq!(run["tasks_pushed"]["created"], 1, "{run}");
    let ours = |tl: &TimelogControl| {
        tl.tasks()
            .into_iter()
            .filter(|t| t.external_keys.iter().any(|(_, k)| *k == task_id))
            .collect::<Vec<_>>()
    };
    let pushed = ours(&w.tl);
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    let remote_task = pushed[0].clone();
    assert_eq!(
        (remote_task.name.as_str(), remote_task.active),
        ("Design", true)
    );
    let jonas_num: i32 = jonas_tl.parse().unwrap();
    assert_eq!(w.tl.allocation_count(jonas_num, remote_task.id), 1);

    w.api
        .ok(
            Method::PATCH,
            &format!("/v1/projects/{web}/tasks/{task_id}"),
            Some(json!({"name": "Design v2"})),
        )
        .await;
    w.cycle().await;
    let pushed = ours(&w.tl);
    assert_eq!(pushed.len(), 1, "renamed, not duplicated: {pushed:?}");
    assert_eq!(pushed[0].name, "Design v2");
    assert_eq!(
        w.tl.allocation_count(jonas_num, remote_task.id),
        1,
        "allocated once"
    );

    // Time out.
    let day = today();
    let mut ids = Vec::new();
    for (minutes, note) in [(90, "wireframes"), (30, "call")] {
        ids.push(w.log(&jonas, &web, &task_id, day, minutes, note).await);
    }
    let run = w.cycle().await;
    assert_eq!(run["counts"]["created"], 2, "{run}");
    let units = w.tl.work();
    assert_eq!(units.len(), 2, "{units:?}");
    assert!(
        units
            .iter()
            .all(|u| u.initials == "JBE" && u.task_id == remote_task.id)
    );

    // The next cycle reads our two registrations back: they change nothing.
    let changes = w.tl.change_count();
    let run = w.cycle().await;
    assert_eq!(
        (
            run["counts"]["created"].as_u64(),
            run["counts"]["updated"].as_u64()
        ),
        (Some(0), Some(0)),
        "{run}"
    );
    assert_eq!(w.tl.change_count(), changes, "no write back to TimeLog");
    assert_eq!(w.logs(&web).await.len(), 2, "no echo copies in the host");

    w.patch_log(&ids[0], json!({"minutes": 120})).await;
    w.api
        .ok(Method::DELETE, &format!("/v1/worklogs/{}", ids[1]), None)
        .await;
    w.cycle().await;
    let units = w.tl.work();
    assert_eq!(units.len(), 1, "{units:?}");
    assert_eq!(units[0].minutes, 120);
    let pushed_unit = units[0].guid.clone();

    // Time in: registered, edited (there and here), deleted in TimeLog.
    let g =
        w.tl.register_work("JBE", &remote_task.guid, day, 45, "from TimeLog")
            .expect("registered");
    w.cycle().await;
    let imported = w
        .log_from(&web, &g)
        .await
        .unwrap_or_else(|| panic!("imported {g}"));
    assert_eq!(imported["source"]["provider"], "timelog");
    assert_eq!(
        (
            imported["minutes"].as_u64(),
            imported["note"].as_str(),
            imported["task_id"].as_str()
        ),
        (Some(45), Some("from TimeLog"), Some(task_id.as_str()))
    );
    w.tl.edit_work(&g, 50, "edited in TimeLog");
    w.cycle().await;
    let l = w.log_from(&web, &g).await.unwrap();
    assert_eq!(l["minutes"], 50, "{l}");
    // A log from TimeLog is editable in the host, and the edit goes back.
    w.patch_log(l["id"].as_str().unwrap(), json!({"minutes": 55}))
        .await;
    w.cycle().await;
    let unit = w.tl.work().into_iter().find(|u| u.guid == g).unwrap();
    assert_eq!(unit.minutes, 55);
    w.tl.delete_work(&g);
    let run = w.cycle().await;
    assert_eq!(run["counts"]["deleted"], 1, "{run}");
    assert!(w.log_from(&web, &g).await.is_none());

    // An unlinked TimeLog user's work is reported, not dropped silently.
    w.tl.register_work("EST", &remote_task.guid, day, 15, "who?")
        .unwrap();
    let run = w.cycle().await;
    assert!(problem(&run, "person_not_linked").is_some(), "{run}");
    let link = w
        .api
        .ok(
            Method::GET,
            &format!("/v1/projects/{web}/integrations/timelog"),
            None,
        )
        .await;
    assert!(link["missing_people"].to_string().contains("Eve"), "{link}");

    // Both sides change: the later change wins, the run names the overwritten value.
    w.tl.edit_work(&pushed_unit, 100, "TimeLog side");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.patch_log(&ids[0], json!({"minutes": 150, "note": "host side"}))
        .await;
    let run = w.cycle().await;
    let c = problem(&run, "conflict_host_won").unwrap_or_else(|| panic!("{run}"));
    assert!(
        c["message"].as_str().unwrap().contains("TimeLog side"),
        "{c}"
    );
    let unit =
        w.tl.work()
            .into_iter()
            .find(|u| u.guid == pushed_unit)
            .unwrap();
    assert_eq!((unit.minutes, unit.note.as_str()), (150, "host side"));

    w.patch_log(&ids[0], json!({"minutes": 160, "note": "host again"}))
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.tl.edit_work(&pushed_unit, 170, "TimeLog later");
    let run = w.cycle().await;
    let c = problem(&run, "conflict_remote_won").unwrap_or_else(|| panic!("{run}"));
    assert!(c["message"].as_str().unwrap().contains("host again"), "{c}");
    let host = w
        .api
        .ok(Method::GET, &format!("/v1/worklogs/{}", ids[0]), None)
        .await;
    assert_eq!(
        (host["minutes"].as_u64(), host["note"].as_str()),
        (Some(170), Some("TimeLog later"))
    );

    // The 12-hour token expiring mid-way fails nothing.
    w.tl.expire_tokens();
    w.patch_log(&ids[0], json!({"minutes": 180})).await;
    w.cycle().await;
    let unit =
        w.tl.work()
            .into_iter()
            .find(|u| u.guid == pushed_unit)
            .unwrap();
    assert_eq!(unit.minutes, 180);

    // A closed week refuses the item: a problem on the run, the host value kept and retried.
    w.tl.close_week("JBE", day);
    w.patch_log(&ids[0], json!({"minutes": 190})).await;
    let run = w.cycle().await;
    assert!(problem(&run, "registration_locked").is_some(), "{run}");
    let host = w
        .api
        .ok(Method::GET, &format!("/v1/worklogs/{}", ids[0]), None)
        .await;
    assert_eq!(host["minutes"], 190, "the host value is kept");
    w.tl.reopen_week("JBE", day);
    w.cycle().await;
    let unit =
        w.tl.work()
            .into_iter()
            .find(|u| u.guid == pushed_unit)
            .unwrap();
    assert_eq!(unit.minutes, 190, "retried without a new edit");

    // A deleted host task is set inactive in TimeLog, never deleted.
    w.api
        .ok(Method::DELETE, &format!("/v1/worklogs/{}", ids[0]), None)
        .await;
    w.api
        .ok(
            Method::DELETE,
            &format!("/v1/projects/{web}/tasks/{task_id}"),
            None,
        )
        .await;
    w.cycle().await;
    let t = w.tl.task(&remote_task.guid).expect("still there");
    assert!(!t.active, "{t:?}");
}

#[tokio::test]
async fn a_cycle_of_500_logs_killed_at_random_points_ends_with_500_registrations_and_no_duplicates()
{
    let w = world(&[("HOURBRIDGE_TIMELOG_REQUESTS_PER_SECOND", "50")]).await;
    let jonas_tl =
        w.tl.add_employee("Jonas", "Berg", "JBE", "Jonas.Berg@Nordlys.example")
            .to_string();
    w.activate().await;
    let jonas = w.person("Jonas Berg", "jonas.berg@nordlys.example").await;
    w.link_person(&jonas, &jonas_tl).await;
    let web = w.linked_project().await;
    let task_id = w.task(&web, "Build", &jonas).await;
    w.cycle().await;
    for i in 0..500u32 {
        let day = today() - chrono::Days::new(u64::from(i % 20));
        w.log(&jonas, &web, &task_id, day, 15 + i % 7, &format!("log {i}"))
            .await;
    }
    let r = w
        .api
        .ok(Method::POST, "/v1/connections/timelog/sync", None)
        .await;
    let run_id = r["run_id"].as_str().unwrap().to_owned();
    let mut server = w.server;
    let mut seed = u64::from(std::process::id());
    for round in 0..3 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let at = 50 + (seed >> 33) as usize % 300 + round * 30;
        let deadline = Instant::now() + Duration::from_secs(120);
        while w.tl.work().len() < at.min(499) {
            assert!(
                Instant::now() < deadline,
                "cycle stalled at {}",
                w.tl.work().len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill();
        server = ServerProc::start_vars(&w.dir, &w.env, &LEASE, &format!("serve{round}.log"));
    }
    let api = Api::new(&server, &token(&w.dir, &w.ws));
    let run = api.wait_run_end(&run_id, &server).await;
    assert_eq!(run["state"], "succeeded", "{run}\n{}", server.log());
    let units = w.tl.work();
    assert_eq!(units.len(), 500, "exactly one registration per host log");
    let notes: std::collections::BTreeSet<_> = units.iter().map(|u| u.note.clone()).collect();
    assert_eq!(notes.len(), 500, "no log registered twice");
    // The next cycle reads the 500 back: no host duplicates, nothing written to TimeLog.
    let changes = w.tl.change_count();
    let next = api.sync_succeeded("timelog", &server).await;
    assert_eq!(w.tl.change_count(), changes);
    let logs = api
        .ok(
            Method::GET,
            &format!("/v1/worklogs?project_id={web}&limit=1000"),
            None,
        )
        .await;
    assert_eq!(
        logs["items"].as_array().unwrap().len(),
        500,
        "no duplicate host logs; the cycle run: {run}\nthe next: {next}\nimported: {:?}\n{}",
        logs["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| !l["source"].is_null())
            .map(|l| (l["note"].clone(), l["id"].clone()))
            .collect::<Vec<_>>(),
        server.log()
    );
}

//! The TimeLog flow on the deployed shape: every function's handler built by the constructor its
//! `main.rs` uses, over DynamoDB, Secrets Manager and EventBridge on moto_server, against the
//! TimeLog sandbox (`HOURBRIDGE_TIMELOG_ALLOW_HTTP=1` in the functions' environment, so the
//! `domain` may be the sandbox's `127.0.0.1:PORT`). Requests are API Gateway HTTP API (v2)
//! events with JWT authorizer claims, routed to the function `infra/template.yaml` routes them
//! to; the jobs the API puts on the bus are read back from an SQS target and delivered to
//! `sync-worker` until the run finishes, and the `scheduled-sync` tick is invoked with the
//! EventBridge schedule event.
//!
//! Mirrors `shared/cli/tests/timelog_serve.rs` (the same flow through the local binary):
//! Activate with wrong and right credentials (the passwords only in Secrets Manager), person and
//! project links, then cycle after cycle: a host task appears once and its rename follows, its
//! assignee is allocated once, host logs are registered once each and their edits and deletions
//! follow, work registered, edited and deleted in TimeLog reaches the host, our echo changes
//! nothing, both conflict outcomes, an expired token, a closed week, and the 15-minute schedule.
//!
//! What TimeLog holds is read from the sandbox's own state, not from the functions.

use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use axum::Router;
use chrono::Utc;
use hourbridge_domain::Connection;
use hourbridge_runtime::AppContext;
use hourbridge_runtime::queue::JobEnvelope;
use hourbridge_sandbox::{
    Sandbox, Seed, TIMELOG_PASSWORD, TIMELOG_REPORTING_PASSWORD, TIMELOG_SITE_CODE,
    TIMELOG_USERNAME, TimelogControl,
};
use hourbridge_store::GLOBAL_SCOPE;
use hourbridge_sync::schedule::{ScheduleEntry, TickReport};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};

use crate::aws_common::{Bus, Claims, Moto, PUBLIC, Run, context, http_event, invoke};

const WS: &str = "nordlys";
/// TimeLog's `ProjectID` of "Intranet relaunch" in the empty seed.
const INTRANET: &str = "612";
/// The provider's 15-minute schedule.
const EVERY: chrono::Duration = chrono::Duration::minutes(15);

const OWNER: Option<Claims<'static>> = Some(("ingrid", WS, "owner"));

/// The function `infra/template.yaml` routes a request to.
#[derive(Debug, Clone, Copy)]
enum Function {
    /// `/v1/people`, `/v1/worklogs`, `/v1/projects`, `/v1/projects/{id}/tasks/{task_id}`, ...
    WorkspaceApi,
    /// `/v1/connections/...`, `/v1/people/{id}/integrations/{provider}`, `/v1/runs/{id}`.
    Connections,
    /// `/v1/projects/{id}/integrations/...`.
    ProjectSync,
}

struct Aws {
    ctx: AppContext,
    bus: Bus,
    secrets: aws_sdk_secretsmanager::Client,
    prefix: String,
    sb: Sandbox,
    tl: TimelogControl,
}

async fn aws() -> Option<Aws> {
    let moto = Moto::start("the TimeLog flow on the AWS emulator", "hbtl").await?;
    println!("aws_timelog: using moto_server through the AWS SDK");
    let sb = Sandbox::start(Seed::Empty).await.expect("sandbox");
    let tl = sb.timelog();
    let ctx = moto
        .context(PUBLIC, [("HOURBRIDGE_TIMELOG_ALLOW_HTTP", "1".to_owned())])
        .await;
    let a = Aws {
        ctx,
        bus: moto.bus,
        secrets: moto.secrets,
        prefix: moto.prefix,
        sb,
        tl,
    };
    let (st, v) = a
        .call(
            Function::WorkspaceApi,
            "POST",
            "/v1/workspaces",
            Some(json!({"name": "Nordlys", "time_zone": "Europe/Oslo",
                "owner": {"name": "Ingrid Solberg", "email": "ingrid@nordlys.example"}})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    Some(a)
}

fn problem<'a>(run: &'a Value, code: &str) -> Option<&'a Value> {
    run["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .find(|p| p["code"] == code)
}

fn yesterday() -> chrono::NaiveDate {
    Utc::now().date_naive() - chrono::Days::new(1)
}

/// The EventBridge schedule event (`rate(15 minutes)`).
fn tick_event() -> EventBridgeEvent {
    serde_json::from_value(
        json!({"version": "0", "id": "t", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-21T09:00:00Z",
        "region": "eu-west-1", "resources": [], "detail": {}}),
    )
    .expect("schedule event")
}

impl Aws {
    fn app(&self, f: Function) -> Router {
        match f {
            Function::WorkspaceApi => workspace_api::app(&self.ctx),
            Function::Connections => connections::app(&self.ctx),
            Function::ProjectSync => project_sync::app(&self.ctx),
        }
    }

    /// Invokes the function as the owner; answers the status and body.
    async fn call(
        &self,
        f: Function,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        invoke(self.app(f), http_event(method, path, query, body, OWNER)).await
    }

    /// Invokes the function as the owner and expects a 2xx answer.
    async fn ok(&self, f: Function, method: &str, path: &str, body: Option<Value>) -> Value {
        let (st, v) = self.call(f, method, path, body).await;
        assert!((200..300).contains(&st), "{f:?} {method} {path}: {st} {v}");
        v
    }

    fn fields(&self) -> Value {
        self.sb.timelog_connect_body()
    }

    /// Activate with `fields` (connections function), as answered.
    async fn try_activate(&self, fields: Value) -> (u16, Value) {
        self.call(
            Function::Connections,
            "PUT",
            "/v1/connections/timelog",
            Some(fields),
        )
        .await
    }

    /// Activate with the right fields; expects the connection active.
    async fn activate(&self) -> Value {
        let c = self
            .ok(
                Function::Connections,
                "PUT",
                "/v1/connections/timelog",
                Some(self.fields()),
            )
            .await;
        assert_eq!(c["state"], "active", "{c}");
        c
    }

    /// The connection's view (connections function).
    async fn connection(&self) -> Value {
        self.ok(
            Function::Connections,
            "GET",
            "/v1/connections/timelog",
            None,
        )
        .await
    }

    /// A work log of `person` on `task` (workspace API); answers its id.
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
            .ok(
                Function::WorkspaceApi,
                "POST",
                "/v1/worklogs",
                Some(
                    json!({"person_id": person, "project_id": project, "task_id": task,
                    "date": date.to_string(), "minutes": minutes, "note": note}),
                ),
            )
            .await;
        l["id"].as_str().expect("log id").to_owned()
    }

    /// One 15-minute tick of the scheduled-sync function.
    async fn tick(&self) -> TickReport {
        scheduled_sync::handler(&self.ctx, LambdaEvent::new(tick_event(), context(60)))
            .await
            .expect("tick")
    }

    /// Stores `entry` as the connection's schedule entry, then ticks once.
    async fn tick_with(&self, entry: &ScheduleEntry) -> TickReport {
        self.ctx
            .engine
            .store
            .put(GLOBAL_SCOPE, entry)
            .await
            .expect("schedule entry stored");
        self.tick().await
    }

    /// The connections' secrets in Secrets Manager (names under the prefix).
    async fn secret_names(&self) -> Vec<String> {
        let list = self
            .secrets
            .list_secrets()
            .send()
            .await
            .expect("list secrets");
        list.secret_list()
            .iter()
            .filter_map(|s| s.name())
            .filter(|n| n.starts_with(&self.prefix))
            .map(str::to_owned)
            .collect()
    }

    /// Every item of the table, as text.
    async fn table_dump(&self) -> String {
        let table = self.ctx.config.table_name.clone().expect("table");
        let ddb = aws_sdk_dynamodb::Client::new(
            &hourbridge_testkit::moto_config("scan").await.expect("moto"),
        );
        let mut dump = String::new();
        let mut start = None;
        loop {
            let page = ddb
                .scan()
                .table_name(&table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            dump.push_str(&format!("{:?}", page.items()));
            start = page.last_evaluated_key;
            if start.is_none() {
                return dump;
            }
        }
    }

    async fn connection_record(&self) -> Option<Connection> {
        self.ctx
            .engine
            .store
            .get::<Connection>(WS, "timelog")
            .await
            .expect("store")
            .map(|(c, _)| c)
    }

    async fn schedule_entry(&self) -> Option<ScheduleEntry> {
        self.ctx
            .engine
            .store
            .get::<ScheduleEntry>(GLOBAL_SCOPE, &format!("{WS}.timelog"))
            .await
            .expect("store")
            .map(|(e, _)| e)
    }

    async fn person(&self, name: &str, email: &str) -> String {
        let p = self
            .ok(
                Function::WorkspaceApi,
                "POST",
                "/v1/people",
                Some(json!({"name": name, "email": email, "role": "member"})),
            )
            .await;
        p["id"].as_str().expect("person id").to_owned()
    }

    /// "Synchronize now", the job delivered to the worker; answers the run's view.
    async fn cycle(&self) -> Value {
        let r = self
            .ok(
                Function::Connections,
                "POST",
                "/v1/connections/timelog/sync",
                None,
            )
            .await;
        let run_id = r["run_id"].as_str().expect("run id");
        self.bus
            .deliver_until_finished(&self.ctx, Run::Id(run_id))
            .await;
        self.run(run_id).await
    }

    async fn run(&self, run_id: &str) -> Value {
        let run = self
            .ok(
                Function::Connections,
                "GET",
                &format!("/v1/runs/{run_id}"),
                None,
            )
            .await;
        assert_eq!(run["state"], "succeeded", "{run}");
        run
    }

    async fn logs(&self, project: &str) -> Vec<Value> {
        self.ok(
            Function::WorkspaceApi,
            "GET",
            &format!("/v1/worklogs?project_id={project}&limit=1000"),
            None,
        )
        .await["items"]
            .as_array()
            .expect("items")
            .clone()
    }

    async fn log_from(&self, project: &str, guid: &str) -> Option<Value> {
        self.logs(project)
            .await
            .into_iter()
            .find(|l| l["source"]["remote_id"] == guid)
    }

    async fn host_log(&self, id: &str) -> Value {
        self.ok(
            Function::WorkspaceApi,
            "GET",
            &format!("/v1/worklogs/{id}"),
            None,
        )
        .await
    }

    async fn patch_log(&self, id: &str, body: Value) {
        self.ok(
            Function::WorkspaceApi,
            "PATCH",
            &format!("/v1/worklogs/{id}"),
            Some(body),
        )
        .await;
    }

    fn unit(&self, guid: &str) -> hourbridge_sandbox::TimelogWork {
        self.tl
            .work()
            .into_iter()
            .find(|u| u.guid == guid)
            .unwrap_or_else(|| panic!("no TimeLog registration {guid}"))
    }
}

#[tokio::test]
async fn activate_on_aws_checks_timelog_and_keeps_the_passwords_in_secrets_manager_only() {
    let Some(a) = aws().await else { return };

    // A wrong Transactional password: 422 naming the fields, and nothing stored anywhere.
    let mut wrong = a.fields();
    wrong["password"] = json!("not-it");
    let (st, v) = a.try_activate(wrong).await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["error"]["code"], "invalid_credentials", "{v}");
    assert_eq!(v["error"]["fields"], json!(["username", "password"]), "{v}");
    assert_eq!(a.secret_names().await, Vec::<String>::new(), "no secret");
    assert!(
        a.connection_record().await.is_none(),
        "no connection record"
    );
    assert!(a.schedule_entry().await.is_none(), "not scheduled");
    let (st, v) = a
        .call(
            Function::Connections,
            "GET",
            "/v1/connections/timelog",
            None,
        )
        .await;
    assert_eq!(st, 404, "{v}");
    let dump = a.table_dump().await;
    assert!(!dump.contains("not-it"), "the wrong password is nowhere");

    // The right fields: active, scheduled within the next 15 minutes.
    let c = a.activate().await;
    assert!(c["next_run_at"].is_string(), "scheduled: {c}");
    let entry = a.schedule_entry().await.expect("on the schedule");
    let now = Utc::now();
    assert!(
        entry.next_run_at > now - chrono::Duration::seconds(5) && entry.next_run_at <= now + EVERY,
        "within one 15-minute interval: {entry:?}"
    );

    // The passwords live in the connection's secret in Secrets Manager ...
    let names = a.secret_names().await;
    assert_eq!(names, [format!("{}{WS}/timelog", a.prefix)], "{names:?}");
    let stored = a
        .secrets
        .get_secret_value()
        .secret_id(&names[0])
        .send()
        .await
        .expect("secret value");
    let secret = stored.secret_string().expect("secret string");
    assert!(
        secret.contains(TIMELOG_PASSWORD) && secret.contains(TIMELOG_REPORTING_PASSWORD),
        "both passwords in the secret"
    );
    // ... and not in the connection record, nor anywhere in the table, nor in any answer.
    let record = a.connection_record().await.expect("connection record");
    assert!(record.secret_name.is_some(), "{record:?}");
    let record_text = serde_json::to_string(&record).expect("record json");
    assert!(
        record_text.contains(TIMELOG_SITE_CODE) && record_text.contains(TIMELOG_USERNAME),
        "the non-secret fields are settings: {record_text}"
    );
    let dump = a.table_dump().await;
    assert!(
        !dump.contains(TIMELOG_PASSWORD) && !dump.contains(TIMELOG_REPORTING_PASSWORD),
        "no password in DynamoDB"
    );
    let c = a.connection().await;
    let text = c.to_string();
    assert!(
        text.contains(TIMELOG_SITE_CODE) && text.contains(TIMELOG_USERNAME),
        "{c}"
    );
    assert!(
        !text.contains(TIMELOG_PASSWORD) && !text.contains(TIMELOG_REPORTING_PASSWORD),
        "passwords are never returned: {c}"
    );
    a.sb.stop().await;
}

#[tokio::test]
async fn functions_run_the_timelog_flow_on_dynamodb_secrets_manager_and_eventbridge() {
    let Some(a) = aws().await else { return };
    let jonas_tl =
        a.tl.add_employee("Jonas", "Berg", "JBE", "Jonas.Berg@Nordlys.example")
            .to_string();
    a.activate().await;

    // People (connections function): suggested by e-mail, linked, one person per TimeLog user.
    let jonas = a.person("Jonas Berg", "jonas.berg@nordlys.example").await;
    let other = a.person("Jonas B. (duplicate)", "jb@nordlys.example").await;
    let users = a
        .ok(
            Function::Connections,
            "GET",
            "/v1/connections/timelog/remote-users",
            None,
        )
        .await;
    let row = users["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|u| u["id"] == jonas_tl.as_str())
        .unwrap_or_else(|| panic!("{users}"))
        .clone();
    assert_eq!(
        (
            row["initials"].as_str(),
            row["suggested_person_id"].as_str()
        ),
        (Some("JBE"), Some(jonas.as_str())),
        "{row}"
    );
    a.ok(
        Function::Connections,
        "PUT",
        &format!("/v1/people/{jonas}/integrations/timelog"),
        Some(json!({"remote_user_id": jonas_tl})),
    )
    .await;
    let (st, v) = a
        .call(
            Function::Connections,
            "PUT",
            &format!("/v1/people/{other}/integrations/timelog"),
            Some(json!({"remote_user_id": jonas_tl})),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("remote_user_linked")),
        "{v}"
    );
    let link = a
        .ok(
            Function::Connections,
            "GET",
            &format!("/v1/people/{jonas}/integrations/timelog"),
            None,
        )
        .await;
    assert!(link.to_string().contains(&jonas_tl), "{link}");

    // The project (project-sync function): linked to TimeLog's "Intranet relaunch".
    let p = a
        .ok(
            Function::WorkspaceApi,
            "POST",
            "/v1/projects",
            Some(json!({"name": "Intranet"})),
        )
        .await;
    let web = p["id"].as_str().expect("project id").to_owned();
    a.ok(
        Function::ProjectSync,
        "PUT",
        &format!("/v1/projects/{web}/integrations/timelog"),
        Some(json!({"remote_project_ids": [INTRANET]})),
    )
    .await;

    // Tasks out: one TimeLog task for the host task, its assignee allocated once.
    let task = a
        .ok(
            Function::WorkspaceApi,
            "POST",
            &format!("/v1/projects/{web}/tasks"),
            Some(json!({"name": "Design", "assignee_ids": [jonas]})),
        )
        .await;
    let task_id = task["id"].as_str().expect("task id").to_owned();
    let run = a.cycle().await;
    assert_eq!(run["tasks_pushed"]["created"], 1, "{run}");
    let ours = || {
        a.tl.tasks()
            .into_iter()
            .filter(|t| t.external_keys.iter().any(|(_, k)| *k == task_id))
            .collect::<Vec<_>>()
    };
    let pushed = ours();
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    let remote_task = pushed[0].clone();
    assert_eq!(
        (
            remote_task.name.as_str(),
            remote_task.active,
            remote_task.project_id
        ),
        ("Design", true, 612),
        "{remote_task:?}"
    );
    let jonas_num: i32 = jonas_tl.parse().expect("employee id");
    assert_eq!(a.tl.allocation_count(jonas_num, remote_task.id), 1);

    // The rename (workspace API's task item route) follows; still one task, one allocation.
    a.ok(
        Function::WorkspaceApi,
        "PATCH",
        &format!("/v1/projects/{web}/tasks/{task_id}"),
        Some(json!({"name": "Design v2"})),
    )
    .await;
    a.cycle().await;
    let pushed = ours();
    assert_eq!(pushed.len(), 1, "renamed, not duplicated: {pushed:?}");
    assert_eq!(pushed[0].name, "Design v2");
    assert_eq!(
        a.tl.allocation_count(jonas_num, remote_task.id),
        1,
        "allocated once"
    );

    // Time out: two host logs, two registrations.
    let day = yesterday();
    let mut ids = Vec::new();
    for (minutes, note) in [(90, "wireframes"), (30, "call")] {
        ids.push(a.log(&jonas, &web, &task_id, day, minutes, note).await);
    }
    let run = a.cycle().await;
    assert_eq!(run["counts"]["created"], 2, "{run}");
    let units = a.tl.work();
    assert_eq!(units.len(), 2, "{units:?}");
    assert!(
        units
            .iter()
            .all(|u| u.initials == "JBE" && u.task_id == remote_task.id && u.date == day),
        "{units:?}"
    );

    // The echo: the next cycle reads our two registrations back and changes nothing.
    let changes = a.tl.change_count();
    let run = a.cycle().await;
    assert_eq!(
        (
            run["counts"]["created"].as_u64(),
            run["counts"]["updated"].as_u64(),
            run["counts"]["deleted"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{run}"
    );
    assert_eq!(a.tl.change_count(), changes, "no write back to TimeLog");
    assert_eq!(a.logs(&web).await.len(), 2, "no echo copies in the host");

    // A host edit and a host delete follow.
    a.patch_log(&ids[0], json!({"minutes": 120})).await;
    a.ok(
        Function::WorkspaceApi,
        "DELETE",
        &format!("/v1/worklogs/{}", ids[1]),
        None,
    )
    .await;
    a.cycle().await;
    let units = a.tl.work();
    assert_eq!(units.len(), 1, "{units:?}");
    assert_eq!(units[0].minutes, 120, "{units:?}");
    let pushed_unit = units[0].guid.clone();

    // Time in: registered, edited and deleted in TimeLog.
    let g =
        a.tl.register_work("JBE", &remote_task.guid, day, 45, "from TimeLog")
            .expect("registered");
    a.cycle().await;
    let imported = a
        .log_from(&web, &g)
        .await
        .unwrap_or_else(|| panic!("imported {g}"));
    assert_eq!(imported["source"]["provider"], "timelog", "{imported}");
    assert_eq!(
        (
            imported["minutes"].as_u64(),
            imported["note"].as_str(),
            imported["task_id"].as_str(),
            imported["person_id"].as_str()
        ),
        (
            Some(45),
            Some("from TimeLog"),
            Some(task_id.as_str()),
            Some(jonas.as_str())
        ),
        "{imported}"
    );
    assert!(a.tl.edit_work(&g, 50, "edited in TimeLog"));
    a.cycle().await;
    let l = a.log_from(&web, &g).await.expect("still there");
    assert_eq!(
        (l["minutes"].as_u64(), l["note"].as_str()),
        (Some(50), Some("edited in TimeLog")),
        "{l}"
    );
    // A log from TimeLog is editable in the host, and the edit goes back.
    a.patch_log(l["id"].as_str().expect("id"), json!({"minutes": 55}))
        .await;
    a.cycle().await;
    assert_eq!(a.unit(&g).minutes, 55);
    assert!(a.tl.delete_work(&g));
    let run = a.cycle().await;
    assert_eq!(run["counts"]["deleted"], 1, "{run}");
    assert!(a.log_from(&web, &g).await.is_none(), "deleted in the host");

    // Both sides change: the later change wins, the run names the overwritten value.
    assert!(a.tl.edit_work(&pushed_unit, 100, "TimeLog side"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.patch_log(&ids[0], json!({"minutes": 150, "note": "host side"}))
        .await;
    let run = a.cycle().await;
    let c = problem(&run, "conflict_host_won").unwrap_or_else(|| panic!("{run}"));
    assert!(
        c["message"].as_str().unwrap_or("").contains("TimeLog side"),
        "{c}"
    );
    let unit = a.unit(&pushed_unit);
    assert_eq!((unit.minutes, unit.note.as_str()), (150, "host side"));

    a.patch_log(&ids[0], json!({"minutes": 160, "note": "host again"}))
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(a.tl.edit_work(&pushed_unit, 170, "TimeLog later"));
    let run = a.cycle().await;
    let c = problem(&run, "conflict_remote_won").unwrap_or_else(|| panic!("{run}"));
    assert!(
        c["message"].as_str().unwrap_or("").contains("host again"),
        "{c}"
    );
    let host = a.host_log(&ids[0]).await;
    assert_eq!(
        (host["minutes"].as_u64(), host["note"].as_str()),
        (Some(170), Some("TimeLog later")),
        "{host}"
    );

    // The Transactional token the worker holds cached expires between runs: the next run
    // renews it and fails nothing.
    let tokens = a.tl.token_count();
    a.tl.expire_tokens();
    a.patch_log(&ids[0], json!({"minutes": 180})).await;
    let run = a.cycle().await;
    assert!(
        run["problems"].as_array().expect("problems").is_empty(),
        "{run}"
    );
    assert_eq!(a.unit(&pushed_unit).minutes, 180);
    assert!(a.tl.token_count() > tokens, "a new token was issued");

    // ... and in the middle of a run: 51 new logs go out as two InsertWork batches (50 and 1);
    // the token expires right after the first, TimeLog refuses the second, which is resent once
    // with a renewed token, and the run fails nothing.
    const MID_RUN: usize = 51;
    for i in 0..MID_RUN as u32 {
        a.log(
            &jonas,
            &web,
            &task_id,
            day,
            10 + i % 5,
            &format!("mid-run {i}"),
        )
        .await;
    }
    let tokens = a.tl.token_count();
    let inserts = a.tl.request_count("InsertWork");
    let tl = a.tl.clone();
    let expiry = tokio::spawn(async move {
        while tl.request_count("InsertWork") == inserts {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tl.expire_tokens();
    });
    let run = a.cycle().await;
    tokio::time::timeout(Duration::from_secs(5), expiry)
        .await
        .expect("the run sent InsertWork")
        .expect("expiry task");
    assert_eq!(
        a.tl.request_count("InsertWork") - inserts,
        3,
        "two batches, the one refused for the expired token resent once"
    );
    assert_eq!(run["counts"]["created"], MID_RUN, "{run}");
    assert!(
        run["problems"].as_array().expect("problems").is_empty(),
        "{run}"
    );
    let mid: Vec<_> =
        a.tl.work()
            .into_iter()
            .filter(|u| u.note.starts_with("mid-run "))
            .collect();
    assert_eq!(mid.len(), MID_RUN, "each registered once: {mid:?}");
    assert!(
        a.tl.token_count() > tokens,
        "renewed after TimeLog refused the expired one"
    );

    // A closed week refuses the item: a problem on the run, the host value kept and retried.
    assert!(a.tl.close_week("JBE", day));
    a.patch_log(&ids[0], json!({"minutes": 190})).await;
    let run = a.cycle().await;
    assert!(problem(&run, "registration_locked").is_some(), "{run}");
    let host = a.host_log(&ids[0]).await;
    assert_eq!(host["minutes"], 190, "the host value is kept: {host}");
    assert!(a.tl.reopen_week("JBE", day));
    a.cycle().await;
    assert_eq!(
        a.unit(&pushed_unit).minutes,
        190,
        "retried without a new edit"
    );

    // The 15-minute schedule: once due, the scheduler's tick enqueues the TimeLog connection;
    // its job, delivered to the worker, brings in work registered in TimeLog meanwhile.
    let g =
        a.tl.register_work("JBE", &remote_task.guid, day, 25, "between ticks")
            .expect("registered");
    let mut entry = a.schedule_entry().await.expect("on the schedule");
    assert!(
        entry.next_run_at <= Utc::now() + EVERY,
        "due within 15 minutes: {entry:?}"
    );
    // Not due yet (a minute to go): the tick leaves it.
    entry.next_run_at = Utc::now() + chrono::Duration::minutes(1);
    let tick = a.tick_with(&entry).await;
    assert_eq!(tick.enqueued, 0, "not due yet");
    assert_eq!(a.schedule_entry().await.as_ref(), Some(&entry), "unchanged");
    // Due (its slot a minute ago): enqueued, and moved one interval on.
    entry.next_run_at = Utc::now() - chrono::Duration::minutes(1);
    let tick = a.tick_with(&entry).await;
    assert_eq!(tick.enqueued, 1, "{tick:?}");
    let job: EventBridgeEvent<JobEnvelope> =
        serde_json::from_value(a.bus.next_event("SyncJob").await).expect("job event");
    let run_id = job.detail.job.run_id.clone();
    let report = crate::aws_common::deliver(&a.ctx, job).await;
    if report
        != (sync_worker::WorkerReport::Finished {
            state: "succeeded".into(),
        })
    {
        // Requeued (a continuation): the rest of the run is on the bus.
        a.bus.deliver_until_finished(&a.ctx, Run::Id(&run_id)).await;
    }
    let run = a.run(&run_id).await;
    let c = a.connection().await;
    assert_eq!(
        (c["status"]["run_id"].as_str(), c["status"]["kind"].as_str()),
        (Some(run_id.as_str()), Some("succeeded")),
        "{c}"
    );
    let l = a
        .log_from(&web, &g)
        .await
        .unwrap_or_else(|| panic!("the scheduled run imported {g}: {run}"));
    assert_eq!(l["minutes"], 25, "{l}");
    let next = a.schedule_entry().await.expect("still scheduled");
    assert_eq!(
        next.next_run_at,
        entry.next_run_at + EVERY,
        "the next slot is one interval on"
    );
    let shown = c["next_run_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    assert_eq!(
        shown.map(|t| t.with_timezone(&Utc)),
        Some(next.next_run_at),
        "the connection shows the next slot: {c}"
    );
    let tick = a.tick().await;
    assert_eq!(tick.enqueued, 0, "enqueued once per slot");
    a.sb.stop().await;
}

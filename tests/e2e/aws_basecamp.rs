//! The Basecamp owner flow on the deployed shape: every function's handler built by the
//! constructor its `main.rs` uses, over DynamoDB, Secrets Manager and EventBridge on
//! moto_server, against the Basecamp sandbox. The platform OAuth client's id comes from
//! `HOURBRIDGE_BASECAMP_CLIENT_ID` and its secret from Secrets Manager under the full name in
//! `HOURBRIDGE_BASECAMP_CLIENT_SECRET_NAME`, as in Lambda. Jobs the functions put on the bus
//! are read back from an SQS target and delivered to `sync-worker` until the run finishes.
//!
//! Mirrors `shared/cli/tests/basecamp_serve.rs` (the same flow through the local binary):
//! connect with a daily time (owner only), authorize through Launchpad's consent, choose the
//! `bc3` account, the first import, a push, an unchanged re-run, disconnect.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use axum::Router;
use chrono::Utc;
use hourbridge_runtime::queue::JobEnvelope;
use hourbridge_runtime::{AppContext, Config, Mode, env};
use hourbridge_sandbox::{
    BASECAMP_DEMO_ACCOUNT_ID, BASECAMP_DEMO_CLIENT_ID, BASECAMP_DEMO_CLIENT_SECRET, Sandbox, Seed,
};
use hourbridge_store_dynamodb::DynamoBackend;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const PUBLIC: &str = "https://api.hourbridge.test";
const WS: &str = "nordlys";

struct Aws {
    ctx: AppContext,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    sb: Sandbox,
}

async fn aws() -> Option<Aws> {
    let config = hourbridge_testkit::moto_config("the Basecamp flow on the AWS emulator").await?;
    println!("aws_basecamp: using moto_server through the AWS SDK");
    let name = hourbridge_testkit::unique_name("hbbc");
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    DynamoBackend::create_table(&ddb, &name)
        .await
        .expect("table");
    let events = aws_sdk_eventbridge::Client::new(&config);
    events
        .create_event_bus()
        .name(&name)
        .send()
        .await
        .expect("bus");
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue_url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attrs")
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("arn");
    events
        .put_rule()
        .event_bus_name(&name)
        .name("all-hourbridge")
        .event_pattern(json!({"source": ["hourbridge.sync", "hourbridge"]}).to_string())
        .send()
        .await
        .expect("rule");
    events
        .put_targets()
        .event_bus_name(&name)
        .rule("all-hourbridge")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(queue_arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("targets");

    // The operator's Basecamp OAuth client secret: outside the connections' prefix, by full name.
    let secret_name = format!("hourbridge-platform/{name}/basecamp/oauth-client-secret");
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name(&secret_name)
        .secret_string(BASECAMP_DEMO_CLIENT_SECRET)
        .send()
        .await
        .expect("platform secret");

    let sb = Sandbox::start(Seed::Demo).await.expect("sandbox");
    let vars: BTreeMap<&str, String> = [
        (env::STORE, "dynamodb".to_owned()),
        (env::TABLE_NAME, name.clone()),
        (env::SECRETS_BACKEND, "secretsmanager".to_owned()),
        (env::SECRETS_PREFIX, format!("hourbridge/{name}/")),
        (env::AUTH, "gateway".to_owned()),
        (env::JOBS_BUS, name.clone()),
        (env::PUBLIC_URL, PUBLIC.to_owned()),
        (env::BASECAMP_CLIENT_ID, BASECAMP_DEMO_CLIENT_ID.to_owned()),
        (env::BASECAMP_CLIENT_SECRET_NAME, secret_name),
        (
            "HOURBRIDGE_BASECAMP_LAUNCHPAD_URL",
            sb.basecamp_launchpad_url(),
        ),
        ("HOURBRIDGE_BASECAMP_API_URL", sb.basecamp_api_url()),
    ]
    .into_iter()
    .collect();
    let cfg = Config::from_lookup(Mode::Lambda, |k| vars.get(k).cloned()).expect("lambda config");
    let ctx = AppContext::build(cfg, Some(config.clone()))
        .await
        .expect("context");
    Some(Aws {
        ctx,
        sqs,
        queue_url,
        sb,
    })
}

/// An API Gateway HTTP API (v2) request event; `claims` come from the JWT authorizer.
fn http_event(
    method: &str,
    path: &str,
    query: &str,
    body: Option<Value>,
    claims: Option<(&str, &str)>,
) -> lambda_http::Request {
    let authorizer = claims.map(|(sub, role)| json!({"jwt": {"claims": {"sub": sub, "ws": WS, "role": role}, "scopes": null}}));
    let e = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": {"content-type": "application/json", "host": "api.hourbridge.test"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "authorizer": authorizer,
            "domainName": "api.hourbridge.test", "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": "r", "routeKey": "$default", "stage": "$default",
            "time": "21/Nov/2026:09:00:00 +0000", "timeEpoch": 1_795_000_000_000_i64
        },
        "body": body.map(|b| b.to_string()), "isBase64Encoded": false
    });
    lambda_http::request::from_str(&e.to_string()).expect("v2 event")
}

async fn invoke(app: Router, req: lambda_http::Request) -> (u16, Value) {
    let res = app.oneshot(req).await.expect("handler");
    let status = res.status().as_u16();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 22)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn context(seconds: i64) -> Context {
    let mut c = Context::default();
    c.request_id = "lambda-req".into();
    c.deadline = (Utc::now() + chrono::Duration::seconds(seconds)).timestamp_millis() as u64;
    c
}

const OWNER: Option<(&str, &str)> = Some(("ingrid", "owner"));

impl Aws {
    /// Invokes `app` as the owner and expects a 2xx answer.
    async fn ok(
        &self,
        app: Router,
        method: &str,
        path: &str,
        query: &str,
        body: Option<Value>,
    ) -> Value {
        let (st, v) = invoke(app, http_event(method, path, query, body, OWNER)).await;
        assert!(
            (200..300).contains(&st),
            "{method} {path}?{query}: {st} {v}"
        );
        v
    }

    /// Reads events from the bus's SQS target until one of `detail_type` shows up.
    async fn next_event(&self, detail_type: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive");
            for m in out.messages.unwrap_or_default() {
                if let Some(h) = m.receipt_handle() {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(h)
                        .send()
                        .await
                        .expect("delete");
                }
                let body: Value =
                    serde_json::from_str(m.body().unwrap_or("{}")).expect("event json");
                if body["detail-type"] == detail_type {
                    return body;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {detail_type} event on the bus"
            );
        }
    }

    /// Takes the next job off the bus and delivers it (and its requeues) to `sync-worker`
    /// until the run finishes; answers the job's run id.
    async fn deliver_until_finished(&self) -> String {
        let mut event: EventBridgeEvent<JobEnvelope> =
            serde_json::from_value(self.next_event("SyncJob").await).expect("job event shape");
        let run_id = event.detail.job.run_id.clone();
        for _ in 0..50 {
            let report = sync_worker::handler(&self.ctx, LambdaEvent::new(event, context(120)))
                .await
                .expect("worker");
            match report {
                sync_worker::WorkerReport::Finished { state } => {
                    assert_eq!(state, "succeeded", "run {run_id}");
                    return run_id;
                }
                sync_worker::WorkerReport::Requeued { .. } => {
                    event = serde_json::from_value(self.next_event("SyncJob").await)
                        .expect("requeued job event shape");
                    assert_eq!(event.detail.job.run_id, run_id, "the same run comes back");
                }
            }
        }
        panic!("run {run_id} did not finish after 50 deliveries");
    }

    async fn connection(&self) -> Value {
        self.ok(
            connections::app(&self.ctx),
            "GET",
            "/v1/connections/basecamp",
            "",
            None,
        )
        .await
    }

    /// "Synchronize now", delivered to the worker; answers the connection view after the run.
    async fn sync_now(&self) -> Value {
        let r = self
            .ok(
                connections::app(&self.ctx),
                "POST",
                "/v1/connections/basecamp/sync",
                "",
                None,
            )
            .await;
        let run_id = self.deliver_until_finished().await;
        assert_eq!(r["run_id"].as_str(), Some(run_id.as_str()), "{r}");
        let c = self.connection().await;
        assert_eq!(c["status"]["kind"], "succeeded", "{c}");
        c
    }

    async fn person(&self, name: &str, email: &str, role: &str) -> String {
        let p = self
            .ok(
                workspace_api::app(&self.ctx),
                "POST",
                "/v1/people",
                "",
                Some(json!({"name": name, "email": email, "role": role})),
            )
            .await;
        p["id"].as_str().expect("person id").to_owned()
    }

    async fn project_named(&self, name: &str) -> Value {
        let projects = self
            .ok(
                workspace_api::app(&self.ctx),
                "GET",
                "/v1/projects",
                "limit=1000",
                None,
            )
            .await;
        projects["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no project {name:?}: {projects}"))
    }

    async fn tasks(&self, project: &str) -> Vec<Value> {
        let t = self
            .ok(
                workspace_api::app(&self.ctx),
                "GET",
                &format!("/v1/projects/{project}/tasks"),
                "limit=1000",
                None,
            )
            .await;
        t["items"].as_array().unwrap().clone()
    }
}

#[tokio::test]
async fn functions_run_the_basecamp_flow_on_dynamodb_secrets_manager_and_eventbridge() {
    let Some(a) = aws().await else { return };
    let bc = a.sb.basecamp();

    // workspace-api: bootstrap and people.
    let (st, v) = invoke(
        workspace_api::app(&a.ctx),
        http_event(
            "POST",
            "/v1/workspaces",
            "",
            Some(json!({"name": "Nordlys", "time_zone": "Europe/Oslo",
                "owner": {"name": "Ingrid Solberg", "email": "ingrid@nordlys.example"}})),
            OWNER,
        ),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let jonas = a
        .person("Jonas Berg", "jonas.berg@nordlys.example", "member")
        .await;
    let admin = a
        .person("Ada Admin", "ada.admin@nordlys.example", "admin")
        .await;

    // connections: only the owner may connect Basecamp.
    let (st, e) = invoke(
        connections::app(&a.ctx),
        http_event(
            "PUT",
            "/v1/connections/basecamp",
            "",
            Some(json!({"sync_at": "18:30"})),
            Some((&admin, "admin")),
        ),
    )
    .await;
    assert_eq!(st, 403, "{e}");
    let c = a
        .ok(
            connections::app(&a.ctx),
            "PUT",
            "/v1/connections/basecamp",
            "",
            Some(json!({"sync_at": "18:30"})),
        )
        .await;
    assert_eq!(c["state"], "pending_authorization", "{c}");
    let auth = a
        .ok(
            connections::app(&a.ctx),
            "POST",
            "/v1/connections/basecamp/authorize",
            "",
            None,
        )
        .await;
    let consent = hourbridge_sandbox::consent(auth["authorize_url"].as_str().expect("url"))
        .await
        .expect("sandbox consent");
    let back = reqwest::Url::parse(&consent.callback_url).expect("callback url");
    assert_eq!(back.path(), "/oauth/basecamp/callback");

    // oauth-callback: no authorizer context; the token exchange uses the secret read from
    // Secrets Manager.
    let (st, cb) = invoke(
        oauth_callback::app(&a.ctx),
        http_event(
            "GET",
            "/oauth/basecamp/callback",
            back.query().unwrap_or(""),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(st, 200, "{cb}");
    assert_eq!(cb["state"], "pending_account_choice", "{cb}");
    let offered: Vec<String> = std::iter::once(cb["account_id"].as_str().map(str::to_owned))
        .flatten()
        .chain(
            cb["accounts"]
                .as_array()
                .expect("accounts")
                .iter()
                .filter_map(|a| a["id"].as_str().map(str::to_owned)),
        )
        .collect();
    assert!(
        offered.contains(&BASECAMP_DEMO_ACCOUNT_ID.to_string()),
        "{cb}"
    );

    // Choosing the account puts the first import on the bus.
    let c = a
        .ok(
            connections::app(&a.ctx),
            "POST",
            "/v1/connections/basecamp/account",
            "",
            Some(json!({"account_id": BASECAMP_DEMO_ACCOUNT_ID.to_string()})),
        )
        .await;
    assert_eq!(c["state"], "active", "{c}");
    assert!(c["next_run_at"].is_string(), "scheduled: {c}");
    a.deliver_until_finished().await;
    let c = a.connection().await;
    assert_eq!(c["status"]["kind"], "succeeded", "{c}");

    // The import: read-only projects with their to-dos, completed included, trashed left out.
    let web = a.project_named("Nordlys website relaunch").await;
    assert_eq!(web["managed_by"], "basecamp", "{web}");
    let web_id = web["id"].as_str().unwrap().to_owned();
    let tasks = a.tasks(&web_id).await;
    let titles: Vec<&str> = tasks.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(titles.contains(&"Set up staging"), "{titles:?}");
    assert!(!titles.contains(&"Old idea"), "{titles:?}");
    let draft = tasks
        .iter()
        .find(|t| t["name"] == "Draft onboarding email sequence")
        .expect("draft task")["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Push: Jonas's 20 minutes on the to-do reach Basecamp as his entry.
    let bc_web = bc.find_project("Nordlys website relaunch").unwrap();
    let before = bc.timesheet_entries(bc_web).len();
    a.ok(
        workspace_api::app(&a.ctx),
        "POST",
        "/v1/worklogs",
        "",
        Some(
            json!({"person_id": jonas, "project_id": web_id, "task_id": draft,
            "date": (Utc::now().date_naive() - chrono::Days::new(2)).to_string(),
            "minutes": 20, "note": "work 20"}),
        ),
    )
    .await;
    let c = a.sync_now().await;
    assert_eq!(c["status"]["counts"]["created"], 1, "{c}");
    let entries = bc.timesheet_entries(bc_web);
    assert_eq!(entries.len(), before + 1, "{entries:?}");
    let jonas_bc = bc.find_person(BASECAMP_DEMO_ACCOUNT_ID, "jonas.berg@nordlys.example");
    let e20 = entries
        .iter()
        .find(|e| e.seconds == 1200)
        .expect("the 20-minute entry");
    assert_eq!(
        (Some(e20.person_id), e20.recording_id),
        (
            jonas_bc,
            bc.find_todo("Draft onboarding email sequence").unwrap()
        ),
        "{e20:?}"
    );

    // Unchanged re-run: no Basecamp write at all.
    let writes = bc.timesheet_write_count();
    let c = a.sync_now().await;
    assert_eq!(bc.timesheet_write_count(), writes, "{c}");
    assert_eq!(c["status"]["counts"]["created"], 0, "{c}");

    // Disconnect: our webhooks go, the imported project stays and becomes local.
    assert_eq!(
        bc.webhooks(bc_web).len(),
        1,
        "one webhook per imported project"
    );
    a.ok(
        connections::app(&a.ctx),
        "DELETE",
        "/v1/connections/basecamp",
        "",
        None,
    )
    .await;
    assert!(bc.webhooks(bc_web).is_empty(), "webhooks removed");
    let web = a.project_named("Nordlys website relaunch").await;
    assert_eq!(web["managed_by"], "local", "{web}");
    a.sb.stop().await;
}

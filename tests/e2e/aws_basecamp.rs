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

use axum::Router;
use chrono::Utc;
use hourbridge_runtime::{AppContext, env};
use hourbridge_sandbox::{
    BASECAMP_DEMO_ACCOUNT_ID, BASECAMP_DEMO_CLIENT_ID, BASECAMP_DEMO_CLIENT_SECRET, Sandbox, Seed,
};
use serde_json::{Value, json};

use crate::aws_common::{Bus, Claims, Moto, PUBLIC, Run, http_event, invoke};

const WS: &str = "nordlys";

struct Aws {
    ctx: AppContext,
    bus: Bus,
    sb: Sandbox,
}

async fn aws() -> Option<Aws> {
    let moto = Moto::start("the Basecamp flow on the AWS emulator", "hbbc").await?;
    println!("aws_basecamp: using moto_server through the AWS SDK");

    // The operator's Basecamp OAuth client secret: outside the connections' prefix, by full name.
    let secret_name = moto
        .platform_secret("basecamp/oauth-client-secret", BASECAMP_DEMO_CLIENT_SECRET)
        .await;

    let sb = Sandbox::start(Seed::Demo).await.expect("sandbox");
    let ctx = moto
        .context(
            PUBLIC,
            [
                (env::BASECAMP_CLIENT_ID, BASECAMP_DEMO_CLIENT_ID.to_owned()),
                (env::BASECAMP_CLIENT_SECRET_NAME, secret_name),
                (
                    "HOURBRIDGE_BASECAMP_LAUNCHPAD_URL",
                    sb.basecamp_launchpad_url(),
                ),
                ("HOURBRIDGE_BASECAMP_API_URL", sb.basecamp_api_url()),
            ],
        )
        .await;
    Some(Aws {
        ctx,
        bus: moto.bus,
        sb,
    })
}

const OWNER: Option<Claims<'static>> = Some(("ingrid", WS, "owner"));

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

    /// Takes the next job off the bus and delivers it (and its requeues) to `sync-worker`
    /// until the run finishes; answers the job's run id.
    async fn deliver_until_finished(&self) -> String {
        self.bus.deliver_until_finished(&self.ctx, Run::Next).await
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
            Some((&admin, WS, "admin")),
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

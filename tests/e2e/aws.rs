//! The deployed shape on the AWS emulator: every function's handler, built by the constructor its
//! `main.rs` uses, invoked with the events AWS sends (API Gateway HTTP API v2 with JWT authorizer
//! claims, EventBridge schedule and job events), against DynamoDB, Secrets Manager and
//! EventBridge on moto_server. The jobs bus gets a rule with an SQS target, so the jobs and
//! outbound events the functions put on it can be read back and delivered to `sync-worker`.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::Utc;
use hourbridge_runtime::AppContext;
use hourbridge_runtime::queue::JobEnvelope;
use hourbridge_sandbox::{NewHarvestEntry, Sandbox, Seed};
use hourbridge_store::GLOBAL_SCOPE;
use hourbridge_sync::schedule::ScheduleEntry;
use lambda_runtime::LambdaEvent;
use serde_json::json;

use crate::aws_common::{Bus, Moto, PUBLIC, context, deliver, http_event, invoke};

const WS: &str = "acme";

struct Aws {
    ctx: AppContext,
    bus: Bus,
    secrets: aws_sdk_secretsmanager::Client,
    prefix: String,
    sb: Sandbox,
}

async fn aws() -> Option<Aws> {
    let moto = Moto::start("functions on the AWS emulator", "hb").await?;
    let sb = Sandbox::start(Seed::Empty).await.expect("sandbox");
    sb.harvest()
        .register_client("hv-client", "hv-secret-value-123");
    let ctx = moto
        .context(
            PUBLIC,
            [
                ("HOURBRIDGE_HARVEST_API_URL", sb.harvest_api_url()),
                ("HOURBRIDGE_HARVEST_ID_URL", sb.harvest_id_url()),
            ],
        )
        .await;
    Some(Aws {
        ctx,
        bus: moto.bus,
        secrets: moto.secrets,
        prefix: moto.prefix,
        sb,
    })
}

#[tokio::test]
async fn functions_run_the_harvest_flow_on_dynamodb_secrets_manager_and_eventbridge() {
    let Some(a) = aws().await else { return };
    let owner = Some(("olga", WS, "owner"));
    let hv = a.sb.harvest();
    let ada_r = hv.add_user("Ada", "A", "ada@acme.test");
    let fleet = hv.add_project("Fleet", "C", true);
    let today = Utc::now().date_naive();
    for d in 1..=3 {
        hv.add_time_entry(NewHarvestEntry {
            project_id: fleet,
            user_id: ada_r,
            spent_date: today - chrono::Duration::days(d),
            hours: 1.0,
            notes: None,
            is_running: false,
        });
    }

    // workspace-api: bootstrap, a person, a project.
    let (st, _) = invoke(
        workspace_api::app(&a.ctx),
        http_event(
            "POST",
            "/v1/workspaces",
            "",
            Some(json!({"name": "Acme", "owner": {"name": "Olga", "email": "olga@acme.test"}})),
            owner,
        ),
    )
    .await;
    assert_eq!(st, 201);
    let (st, _) = invoke(
        workspace_api::app(&a.ctx),
        http_event(
            "POST",
            "/v1/people",
            "",
            Some(json!({"name": "Ada", "email": "ada@acme.test", "role": "member"})),
            owner,
        ),
    )
    .await;
    assert_eq!(st, 201);
    let (_, p) = invoke(
        workspace_api::app(&a.ctx),
        http_event(
            "POST",
            "/v1/projects",
            "",
            Some(json!({"name": "P"})),
            owner,
        ),
    )
    .await;
    let pid = p["id"].as_str().expect("project id").to_owned();

    // connections: install and authorize; the secret lands in Secrets Manager under the prefix.
    let (st, c) = invoke(
        connections::app(&a.ctx),
        http_event(
            "PUT",
            "/v1/connections/harvest",
            "",
            Some(json!({"client_id": "hv-client", "client_secret": "hv-secret-value-123"})),
            owner,
        ),
    )
    .await;
    assert_eq!(
        (st, c["redirect_url"].as_str()),
        (
            200,
            Some("https://api.hourbridge.test/oauth/harvest/callback")
        )
    );
    let (_, auth) = invoke(
        connections::app(&a.ctx),
        http_event("POST", "/v1/connections/harvest/authorize", "", None, owner),
    )
    .await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let consent = browser
        .get(auth["authorize_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let back = reqwest::Url::parse(consent.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(back.path(), "/oauth/harvest/callback");

    // oauth-callback: no authorizer context at all.
    let (st, done) = invoke(
        oauth_callback::app(&a.ctx),
        http_event(
            "GET",
            "/oauth/harvest/callback",
            back.query().unwrap_or(""),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(st, 200, "{done}");
    let secrets = a.secrets.list_secrets().send().await.unwrap();
    let names: Vec<&str> = secrets
        .secret_list()
        .iter()
        .filter_map(|s| s.name())
        .filter(|n| n.starts_with(&a.prefix))
        .collect();
    assert_eq!(names, [format!("{}acme/harvest", a.prefix)]);
    let stored = a
        .secrets
        .get_secret_value()
        .secret_id(names[0])
        .send()
        .await
        .unwrap();
    assert!(stored.secret_string().unwrap().contains("access_token"));
    // ... and nowhere in the table.
    let table = a.ctx.config.table_name.clone().unwrap();
    let scan =
        aws_sdk_dynamodb::Client::new(&hourbridge_testkit::moto_config("scan").await.unwrap())
            .scan()
            .table_name(&table)
            .send()
            .await
            .unwrap();
    let dump = format!("{:?}", scan.items());
    assert!(
        !dump.contains("hv-secret-value-123") && !dump.contains("refresh_token"),
        "no credentials in DynamoDB"
    );

    // project-sync: link and reset-and-sync; the job travels on EventBridge.
    let (st, _) = invoke(project_sync::app(&a.ctx), http_event("PUT", &format!("/v1/projects/{pid}/integrations/harvest"), "", Some(json!({"remote_project_ids": [fleet.to_string()], "sync_from": (today - chrono::Duration::days(30)).to_string()})), owner)).await;
    assert_eq!(st, 200);
    let (st, started) = invoke(
        project_sync::app(&a.ctx),
        http_event(
            "POST",
            &format!("/v1/projects/{pid}/integrations/harvest/reset-and-sync"),
            "",
            Some(json!({"mode": "refetch"})),
            owner,
        ),
    )
    .await;
    assert_eq!(st, 202, "{started}");
    let job_event = a.bus.next_event("SyncJob").await;
    assert_eq!(job_event["source"], "hourbridge.sync");
    let event: EventBridgeEvent<JobEnvelope> =
        serde_json::from_value(job_event).expect("job event shape");
    assert_eq!(event.detail.job.run_id, started["run_id"].as_str().unwrap());

    // sync-worker: the EventBridge event as delivered.
    let report = deliver(&a.ctx, event).await;
    assert_eq!(
        report,
        sync_worker::WorkerReport::Finished {
            state: "succeeded".into()
        }
    );
    let outbound = a.bus.next_event("SyncSucceeded").await;
    assert_eq!(
        (
            outbound["source"].as_str(),
            outbound["detail"]["counts"]["created"].as_u64()
        ),
        (Some("hourbridge"), Some(3))
    );
    let (_, logs) = invoke(
        workspace_api::app(&a.ctx),
        http_event(
            "GET",
            "/v1/worklogs",
            &format!("project_id={pid}"),
            None,
            owner,
        ),
    )
    .await;
    assert_eq!(logs["items"].as_array().unwrap().len(), 3);
    let (_, run) = invoke(
        connections::app(&a.ctx),
        http_event(
            "GET",
            &format!("/v1/runs/{}", started["run_id"].as_str().unwrap()),
            "",
            None,
            owner,
        ),
    )
    .await;
    assert_eq!(run["state"], "succeeded");

    // scheduled-sync: a due connection becomes a job on the bus.
    a.ctx
        .engine
        .store
        .put(
            GLOBAL_SCOPE,
            &ScheduleEntry {
                workspace_id: "acme".into(),
                provider: "harvest".into(),
                next_run_at: Utc::now() - chrono::Duration::minutes(1),
            },
        )
        .await
        .unwrap();
    let tick: EventBridgeEvent = serde_json::from_value(json!({"version": "0", "id": "t", "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012", "time": "2026-11-21T09:00:00Z", "region": "eu-west-1", "resources": [], "detail": {}})).unwrap();
    let r = scheduled_sync::handler(&a.ctx, LambdaEvent::new(tick, context(60)))
        .await
        .expect("tick");
    assert_eq!(r.enqueued, 1);
    let job: EventBridgeEvent<JobEnvelope> =
        serde_json::from_value(a.bus.next_event("SyncJob").await).unwrap();
    assert_eq!(
        deliver(&a.ctx, job).await,
        sync_worker::WorkerReport::Finished {
            state: "succeeded".into()
        }
    );

    // webhooks: an unknown token is a 404, without any authorizer.
    let (st, _) = invoke(
        webhooks::app(&a.ctx),
        http_event("POST", "/webhooks/harvest/abc", "", Some(json!({})), None),
    )
    .await;
    assert_eq!(st, 404);
    // A forged bearer header means nothing behind the gateway.
    let mut forged = http_event("GET", "/v1/people", "", None, None);
    forged
        .headers_mut()
        .insert("authorization", "Bearer x.y.z".parse().unwrap());
    assert_eq!(invoke(workspace_api::app(&a.ctx), forged).await.0, 401);
    a.sb.stop().await;
}

//! The event-driven Lambda handlers with real EventBridge event shapes, over the context `main`
//! builds (SQLite and the in-process queue here; DynamoDB and EventBridge in AWS).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{Duration, Utc};
use hourbridge_runtime::queue::JobEnvelope;
use hourbridge_store::GLOBAL_SCOPE;
use hourbridge_sync::SyncJob;
use hourbridge_sync::runs::RunMode;
use hourbridge_sync::schedule::ScheduleEntry;
use lambda_runtime::{Context, LambdaEvent};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::worklog_sync::{
    World, connect, days_ago, hv_entry, link, logs, person, project, wait_run, world,
};

async fn linked_harvest(bulk: usize) -> (World, String) {
    let w = world().await;
    let hv = w.sb.harvest();
    let ada = hv.add_user("Ada", "A", "ada@acme.test");
    let fleet = hv.add_project("Fleet", "C", true);
    for d in [3, 9] {
        hv.add_time_entry(hv_entry(fleet, ada, d, 1.0));
    }
    if bulk > 0 {
        hv.bulk_time_entries(fleet, &[ada], bulk, days_ago(40), 30);
    }
    connect(&w, "harvest", "hv-client", "hv-secret").await;
    person(&w, "Ada", "ada@acme.test").await;
    let pid = project(&w, "P").await;
    link(&w, &pid, "harvest", &[fleet.to_string()], false, false).await;
    (w, pid)
}

fn context(deadline_in: Duration) -> Context {
    let mut c = Context::default();
    c.request_id = "req-1".into();
    c.deadline = (Utc::now() + deadline_in).timestamp_millis() as u64;
    c
}

#[tokio::test]
async fn scheduled_sync_tick_enqueues_due_connections_and_moves_them_a_day_on() {
    let (w, pid) = linked_harvest(0).await;
    let engine = &w.s.ctx.engine;
    let due_at = Utc::now() - Duration::minutes(1);
    engine
        .store
        .put(
            GLOBAL_SCOPE,
            &ScheduleEntry {
                workspace_id: "acme".into(),
                provider: "harvest".into(),
                next_run_at: due_at,
            },
        )
        .await
        .unwrap();
    // The payload EventBridge sends for a schedule rule.
    let event: EventBridgeEvent = serde_json::from_value(json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-21T09:00:00Z", "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/hourbridge-every-15-minutes"], "detail": {}
    }))
    .unwrap();
    let report = scheduled_sync::handler(
        &w.s.ctx,
        LambdaEvent::new(event.clone(), context(Duration::seconds(60))),
    )
    .await
    .unwrap();
    assert_eq!(report.enqueued, 1);
    // Moved to the next slot: a second tick in the same window enqueues nothing.
    let again = scheduled_sync::handler(
        &w.s.ctx,
        LambdaEvent::new(event, context(Duration::seconds(60))),
    )
    .await
    .unwrap();
    assert_eq!(again.enqueued, 0);
    let (entry, _) = engine
        .store
        .get::<ScheduleEntry>(GLOBAL_SCOPE, "acme.harvest")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.next_run_at, due_at + Duration::days(1));
    // The queued connection-level run syncs every linked project.
    let (_, c) =
        w.s.call(Some(&w.owner), Method::GET, "/v1/connections/harvest", None)
            .await;
    let run = wait_run(&w, c["status"]["run_id"].as_str().unwrap()).await;
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(logs(&w, &pid).await.len(), 2);
}

#[tokio::test]
async fn sync_worker_runs_a_job_event_and_requeues_when_the_deadline_is_near() {
    // Three pages of 2,000, so the run cannot finish within one page.
    let (w, pid) = linked_harvest(4100).await;
    let engine = &w.s.ctx.engine;
    let project = hourbridge_domain::RecordId::parse(pid.clone()).unwrap();
    let run = engine
        .start_run(
            "acme",
            "harvest",
            hourbridge_sync::RunScope::Project(project),
            RunMode::Refetch,
        )
        .await
        .unwrap();
    let job = SyncJob {
        workspace_id: "acme".into(),
        provider: "harvest".into(),
        run_id: run.id.to_string(),
    };
    // The event the jobs bus delivers to the worker.
    let event: EventBridgeEvent<JobEnvelope> = serde_json::from_value(json!({
        "version": "0", "id": "e1", "detail-type": "SyncJob", "source": "hourbridge.sync", "account": "123456789012",
        "time": "2026-11-21T09:00:00Z", "region": "eu-west-1", "resources": [],
        "detail": {"workspace_id": "acme", "provider": "harvest", "run_id": job.run_id, "not_before": null}
    }))
    .unwrap();
    // A deadline already inside the safety margin: the worker checkpoints and re-queues.
    let early = sync_worker::handler(
        &w.s.ctx,
        LambdaEvent::new(event.clone(), context(Duration::seconds(5))),
    )
    .await
    .unwrap();
    assert_eq!(
        early,
        sync_worker::WorkerReport::Requeued { after_seconds: 0 }
    );
    let (_, paused) =
        w.s.call(
            Some(&w.owner),
            Method::GET,
            &format!("/v1/runs/{}", job.run_id),
            None,
        )
        .await;
    assert_eq!(
        paused["state"], "running",
        "checkpointed, not finished: {paused}"
    );
    assert!(
        paused["counts"]["created"].as_u64().unwrap() >= 2000,
        "{paused}"
    );
    // The re-queued job reached the in-process worker too: whichever delivery holds the
    // connection's lease finishes the run, the other is told to come back later.
    let done = sync_worker::handler(
        &w.s.ctx,
        LambdaEvent::new(event, context(Duration::seconds(120))),
    )
    .await
    .unwrap();
    assert!(
        matches!(&done, sync_worker::WorkerReport::Finished { state } if state == "succeeded")
            || matches!(done, sync_worker::WorkerReport::Requeued { after_seconds } if after_seconds > 0),
        "{done:?}"
    );
    let finished = wait_run(&w, &job.run_id).await;
    assert_eq!(
        (
            finished["state"].as_str(),
            finished["counts"]["created"].as_u64()
        ),
        (Some("succeeded"), Some(4102)),
        "{finished}"
    );
    // A job for later waits: not_before beyond this invocation's deadline goes back on the queue.
    let later = JobEnvelope {
        job,
        not_before: Some(Utc::now() + Duration::minutes(10)),
    };
    let r = sync_worker::execute(&w.s.ctx, later, Utc::now() + Duration::seconds(30))
        .await
        .unwrap();
    assert!(
        matches!(r, sync_worker::WorkerReport::Requeued { after_seconds } if after_seconds >= 590),
        "{r:?}"
    );
    let (st, _) =
        w.s.call(Some(&w.owner), Method::GET, "/v1/connections/harvest", None)
            .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(logs_count(&w, &pid).await, 4102);
}

async fn logs_count(w: &World, pid: &str) -> usize {
    let (_, page) =
        w.s.call(
            Some(&w.owner),
            Method::GET,
            &format!("/v1/worklogs?project_id={pid}&limit=1000"),
            None,
        )
        .await;
    let mut n = page["items"].as_array().unwrap().len();
    let mut cursor = page["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let (_, p) =
            w.s.call(
                Some(&w.owner),
                Method::GET,
                &format!("/v1/worklogs?project_id={pid}&limit=1000&cursor={c}"),
                None,
            )
            .await;
        n += p["items"].as_array().unwrap().len();
        cursor = p["next_cursor"].as_str().map(str::to_owned);
    }
    n
}

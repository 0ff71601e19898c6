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
    World, connect, days_ago, hv_entry, link, logs, person, project, wait_run, world_with_workers,
};

/// A linked Harvest project; `workers` says whether the server's own in-process worker runs
/// queued jobs too (tests that must be the only one holding a run's lease turn it off).
async fn linked_harvest(bulk: usize, workers: bool) -> (World, String) {
    let w = world_with_workers(workers).await;
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
    let (w, pid) = linked_harvest(0, true).await;
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
    // Three pages of 2,000, so the run cannot finish within one page. No in-process worker:
    // it would race this handler for the run's lease and make the first answer a lease wait.
    let (w, pid) = linked_harvest(4100, false).await;
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
    // The re-queued delivery, with time to spare, resumes from the checkpoint and finishes.
    let done = sync_worker::handler(
        &w.s.ctx,
        LambdaEvent::new(event, context(Duration::seconds(120))),
    )
    .await
    .unwrap();
    assert_eq!(
        done,
        sync_worker::WorkerReport::Finished {
            state: "succeeded".into()
        }
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

/// How a Lambda crate builds its router (its `app`).
type Constructor = fn(&hourbridge_runtime::AppContext) -> axum::Router;

/// Every HTTP Lambda's handler, built by the constructor its `main.rs` runs.
fn http_handlers() -> Vec<(hourbridge_api::HttpFunction, Constructor)> {
    vec![
        (workspace_api::FUNCTION, workspace_api::app),
        (connections::FUNCTION, connections::app),
        (oauth_callback::FUNCTION, oauth_callback::app),
        (project_sync::FUNCTION, project_sync::app),
        (webhooks::FUNCTION, webhooks::app),
    ]
}

/// `(method, concrete path)` of every route of `f`'s part of the route table.
fn concrete_routes(f: hourbridge_api::HttpFunction) -> Vec<(String, String)> {
    let doc = serde_json::to_value(hourbridge_api::function_openapi(f)).unwrap();
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete: Vec<String> = path
            .split('/')
            .map(|s| {
                if s.starts_with('{') {
                    "x".to_owned()
                } else {
                    s.to_owned()
                }
            })
            .collect();
        for m in ops.as_object().unwrap().keys() {
            out.push((m.to_uppercase(), concrete.join("/")));
        }
    }
    out
}

/// An API Gateway HTTP API (v2) event without authorizer claims.
fn gateway_event(method: &str, path: &str) -> lambda_http::Request {
    gateway_event_with(method, path, "", &[])
}

/// [`gateway_event`] with a query string and extra headers.
fn gateway_event_with(
    method: &str,
    path: &str,
    query: &str,
    extra_headers: &[(&str, String)],
) -> lambda_http::Request {
    let mut e = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "api.hourbridge.test"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.hourbridge.test",
            "domainPrefix": "api", "requestId": "r", "routeKey": "$default", "stage": "$default",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
            "time": "21/Nov/2026:09:00:00 +0000", "timeEpoch": 1_795_000_000_000_i64
        },
        "body": if method == "GET" || method == "DELETE" { None } else { Some("{}") },
        "isBase64Encoded": false
    });
    e["rawQueryString"] = json!(query);
    for (name, value) in extra_headers {
        e["headers"][*name] = json!(value);
    }
    lambda_http::request::from_str(&e.to_string()).expect("v2 event")
}

async fn answer(app: axum::Router, req: lambda_http::Request) -> (u16, serde_json::Value) {
    use tower::ServiceExt as _;
    let res = app.oneshot(req).await.expect("handler");
    let status = res.status().as_u16();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 22)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn each_lambda_answers_an_oversize_uri_or_header_block_in_the_error_shape() {
    let (_dir, path) = crate::harness::data_dir();
    let ctx = hourbridge_runtime::AppContext::build(crate::harness::config(&path, &[]), None)
        .await
        .expect("context");
    let long_query = format!("q={}", "a".repeat(hourbridge_api::MAX_URI_BYTES));
    let big_header = [("x-big", "h".repeat(hourbridge_api::MAX_HEADER_BYTES))];
    let many_headers: Vec<(&str, String)> = ["x-a", "x-b", "x-c", "x-d", "x-e"]
        .into_iter()
        .map(|n| (n, "h".repeat(hourbridge_api::MAX_HEADERS_BYTES / 5)))
        .collect();
    for (f, app) in &http_handlers() {
        let name = f.crate_name();
        // A route of its own and a path it does not serve: both refused before routing.
        let own = concrete_routes(*f).into_iter().next().expect("a route");
        for (method, path) in [own, ("GET".to_owned(), "/nowhere".to_owned())] {
            let cases = [
                (
                    gateway_event_with(&method, &path, &long_query, &[]),
                    414,
                    "uri_too_long",
                ),
                (
                    gateway_event_with(&method, &path, "", &big_header),
                    431,
                    "headers_too_large",
                ),
                (
                    gateway_event_with(&method, &path, "", &many_headers),
                    431,
                    "headers_too_large",
                ),
            ];
            for (req, want, code) in cases {
                let (status, body) = answer(app(&ctx), req).await;
                assert_eq!(
                    (status, body["error"]["code"].as_str()),
                    (want, Some(code)),
                    "{name} {method} {path}: {body}"
                );
            }
        }
    }
}

#[tokio::test]
async fn each_lambda_answers_404_for_the_routes_of_the_other_functions() {
    let (_dir, path) = crate::harness::data_dir();
    let ctx = hourbridge_runtime::AppContext::build(crate::harness::config(&path, &[]), None)
        .await
        .expect("context");
    let handlers = http_handlers();
    assert_eq!(
        handlers.len(),
        hourbridge_api::HttpFunction::ALL.len(),
        "every HTTP function has a handler here"
    );
    for (f, app) in &handlers {
        let name = f.crate_name();
        for (g, _) in &handlers {
            for (method, path) in concrete_routes(*g) {
                let (status, body) = answer(app(&ctx), gateway_event(&method, &path)).await;
                if g == f {
                    // Its own routes reach a handler (401 without claims, 400 for a bad
                    // callback, ...), never the router's fallback.
                    assert_ne!(
                        body["error"]["message"], "route not found",
                        "{name} does not serve its own {method} {path}: {status} {body}"
                    );
                } else {
                    assert_eq!(
                        (status, body["error"]["code"].as_str()),
                        (404, Some("not_found")),
                        "{name} answered {method} {path} of {}: {body}",
                        g.crate_name()
                    );
                }
            }
        }
        // `/openapi.json` lives with the host-data API only, like in the template.
        let (status, _) = answer(app(&ctx), gateway_event("GET", "/openapi.json")).await;
        assert_eq!(
            status == 200,
            f.serves_openapi_json(),
            "{name} /openapi.json"
        );
    }
}

//! How often a scheduled Lambda run reads a connection's secret from Secrets Manager. The
//! engine caches a connection's session per process ([`hourbridge_sync::connections`]), so a
//! `sync-worker` invocation reads the secret once however many provider pages it fetches. The
//! functions under test get an SDK config pointing at a loopback proxy in front of moto_server
//! that counts the `secretsmanager.GetSecretValue` requests really sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use chrono::Utc;
use hourbridge_runtime::AppContext;
use hourbridge_runtime::queue::JobEnvelope;
use hourbridge_sandbox::{Sandbox, Seed};
use hourbridge_store::GLOBAL_SCOPE;
use hourbridge_sync::schedule::ScheduleEntry;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};

use crate::aws_common::{Claims, Moto, PUBLIC, context, http_event, invoke};

const WS: &str = "acme";
/// Harvest entries in the linked project: with Harvest's 2,000 per page, four pages.
const ENTRIES: usize = 6_500;
const OWNER: Claims<'static> = ("olga", WS, "owner");

/// A reverse proxy on 127.0.0.1 that forwards every request unchanged to `upstream` and notes
/// the Secrets Manager `GetSecretValue` calls among them (by the secret they ask for).
struct CountingProxy {
    url: String,
    reads: Reads,
    task: tokio::task::JoinHandle<()>,
}

/// The `SecretId` of every `GetSecretValue` request, in order.
type Reads = Arc<Mutex<Vec<String>>>;

#[derive(Clone)]
struct Forward {
    upstream: String,
    client: reqwest::Client,
    reads: Reads,
}

impl CountingProxy {
    async fn start(upstream: &str) -> Self {
        let reads = Reads::default();
        let state = Forward {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("proxy client"),
            reads: reads.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("proxy bind");
        let url = format!("http://{}", listener.local_addr().expect("proxy addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("proxy serve");
        });
        Self { url, reads, task }
    }

    /// The secrets of the `GetSecretValue` requests forwarded so far.
    fn secret_reads(&self) -> Vec<String> {
        self.reads.lock().expect("reads").clone()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Hop-by-hop and framing headers the two HTTP clients set themselves.
const NOT_FORWARDED: [&str; 4] = ["host", "connection", "content-length", "transfer-encoding"];

async fn forward(State(f): State<Forward>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("request body");
    if parts
        .headers
        .get("x-amz-target")
        .is_some_and(|t| t == "secretsmanager.GetSecretValue")
    {
        let asked: Value = serde_json::from_slice(&body).expect("GetSecretValue body");
        let id = asked["SecretId"].as_str().expect("SecretId").to_owned();
        f.reads.lock().expect("reads").push(id);
    }
    let target = format!(
        "{}{}",
        f.upstream,
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
    );
    let mut headers = parts.headers;
    for h in NOT_FORWARDED {
        headers.remove(h);
    }
    let upstream = f
        .client
        .request(parts.method, target)
        .headers(headers)
        .body(body)
        .send()
        .await
        .expect("moto answers the proxy");
    let mut res = Response::builder().status(upstream.status());
    for (k, v) in upstream.headers() {
        if !NOT_FORWARDED.contains(&k.as_str()) {
            res = res.header(k, v);
        }
    }
    let bytes = upstream.bytes().await.expect("moto's body");
    res.body(Body::from(bytes)).expect("proxy response")
}

/// Every work log of `pid`, through workspace-api's paged list.
async fn work_logs(ctx: &AppContext, pid: &str) -> usize {
    let mut total = 0;
    let mut query = format!("project_id={pid}&limit=1000");
    loop {
        let (st, page) = invoke(
            workspace_api::app(ctx),
            http_event("GET", "/v1/worklogs", &query, None, Some(OWNER)),
        )
        .await;
        assert_eq!(st, 200, "{page}");
        total += page["items"].as_array().expect("items").len();
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("project_id={pid}&limit=1000&cursor={c}"),
            None => return total,
        }
    }
}

/// Workspace, person, project, an authorized Harvest connection and the project's link, set up
/// through the HTTP functions over `setup` (their own execution environments, not counted).
async fn connected_harvest(setup: &AppContext, remote: u64) -> String {
    let call = |app: axum::Router, method: &'static str, path: String, body: Option<Value>| async move {
        invoke(app, http_event(method, &path, "", body, Some(OWNER))).await
    };
    let (st, _) = call(
        workspace_api::app(setup),
        "POST",
        "/v1/workspaces".into(),
        Some(json!({"name": "Acme", "owner": {"name": "Olga", "email": "olga@acme.test"}})),
    )
    .await;
    assert_eq!(st, 201);
    let (st, _) = call(
        workspace_api::app(setup),
        "POST",
        "/v1/people".into(),
        Some(json!({"name": "Ada", "email": "ada@acme.test", "role": "member"})),
    )
    .await;
    assert_eq!(st, 201);
    let (st, p) = call(
        workspace_api::app(setup),
        "POST",
        "/v1/projects".into(),
        Some(json!({"name": "Fleet"})),
    )
    .await;
    assert_eq!(st, 201, "{p}");
    let pid = p["id"].as_str().expect("project id").to_owned();
    let (st, c) = call(
        connections::app(setup),
        "PUT",
        "/v1/connections/harvest".into(),
        Some(json!({"client_id": "hv-client", "client_secret": "hv-secret-value-123"})),
    )
    .await;
    assert_eq!(st, 200, "{c}");
    let (st, auth) = call(
        connections::app(setup),
        "POST",
        "/v1/connections/harvest/authorize".into(),
        None,
    )
    .await;
    assert_eq!(st, 200, "{auth}");
    let consent = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("browser")
        .get(auth["authorize_url"].as_str().expect("authorize url"))
        .send()
        .await
        .expect("consent");
    let back = reqwest::Url::parse(
        consent.headers()["location"]
            .to_str()
            .expect("location header"),
    )
    .expect("callback url");
    let (st, done) = invoke(
        oauth_callback::app(setup),
        http_event("GET", back.path(), back.query().unwrap_or(""), None, None),
    )
    .await;
    assert_eq!(st, 200, "{done}");
    let sync_from = (Utc::now().date_naive() - chrono::Duration::days(60)).to_string();
    let (st, l) = call(
        project_sync::app(setup),
        "PUT",
        format!("/v1/projects/{pid}/integrations/harvest"),
        Some(json!({"remote_project_ids": [remote.to_string()], "sync_from": sync_from})),
    )
    .await;
    assert_eq!(st, 200, "{l}");
    pid
}

#[tokio::test]
async fn a_scheduled_lambda_run_reads_the_connection_secret_once() {
    let Some(moto) = Moto::start("secret reads of a scheduled run", "hbsr").await else {
        return;
    };
    let endpoint =
        hourbridge_testkit::moto_endpoint("secret reads of a scheduled run").expect("endpoint");
    let proxy = CountingProxy::start(&endpoint).await;
    let sb = Sandbox::start(Seed::Empty).await.expect("sandbox");
    let hv = sb.harvest();
    hv.register_client("hv-client", "hv-secret-value-123");
    let ada = hv.add_user("Ada", "A", "ada@acme.test");
    let fleet = hv.add_project("Fleet", "C", true);
    hv.bulk_time_entries(
        fleet,
        &[ada],
        ENTRIES,
        Utc::now().date_naive() - chrono::Duration::days(40),
        30,
    );
    let harvest = || {
        [
            ("HOURBRIDGE_HARVEST_API_URL", sb.harvest_api_url()),
            ("HOURBRIDGE_HARVEST_ID_URL", sb.harvest_id_url()),
        ]
    };
    let setup = moto.context(PUBLIC, harvest()).await;
    let pid = connected_harvest(&setup, fleet).await;
    // Nothing is queued yet: Harvest imports no master data, and linking starts no run.
    let queued: Vec<Value> = moto.bus.poll_events(1).await;
    assert!(
        queued.iter().all(|e| e["detail-type"] != "SyncJob"),
        "{queued:?}"
    );

    // One execution environment per function, as deployed; only theirs go through the proxy.
    // Neither reads a secret while starting: no `<VAR>_SECRET_NAME` is configured here.
    let scheduler = moto.context_via(&proxy.url, PUBLIC, harvest()).await;
    let worker = moto.context_via(&proxy.url, PUBLIC, harvest()).await;
    let started = proxy.secret_reads();
    assert!(started.is_empty(), "reads while starting: {started:?}");

    // scheduled-sync: the connection is due, the tick queues one run.
    setup
        .engine
        .store
        .put(
            GLOBAL_SCOPE,
            &ScheduleEntry {
                workspace_id: WS.into(),
                provider: "harvest".into(),
                next_run_at: Utc::now() - chrono::Duration::minutes(1),
            },
        )
        .await
        .expect("due");
    let tick: EventBridgeEvent = serde_json::from_value(json!({
        "version": "0", "id": "t", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-21T09:00:00Z", "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/hourbridge-every-15-minutes"],
        "detail": {}
    }))
    .expect("schedule event");
    let r = scheduled_sync::handler(&scheduler, LambdaEvent::new(tick, context(60)))
        .await
        .expect("tick");
    assert_eq!(r.enqueued, 1);
    // The tick only reads the schedule index and writes the run and its job: it never calls
    // the provider, so it needs no credentials and reads no secret at all.
    let tick_reads = proxy.secret_reads().len();
    assert_eq!(tick_reads, 0, "secret reads during the scheduler tick");

    // sync-worker: the job off the bus (and any re-queue) until the run finishes, each
    // invocation with Lambda's longest deadline, so one invocation is expected to do it all.
    let api_calls = hv.request_count();
    let mut invocations = 0;
    let mut run = None::<String>;
    let mut waiting_since = Instant::now();
    'run: loop {
        for body in moto.bus.poll_events(1).await {
            if body["detail-type"] != "SyncJob" {
                continue;
            }
            let event: EventBridgeEvent<JobEnvelope> =
                serde_json::from_value(body).expect("job event shape");
            let this = event.detail.job.run_id.clone();
            assert_eq!(run.get_or_insert_with(|| this.clone()), &this, "one run");
            let report = sync_worker::handler(&worker, LambdaEvent::new(event, context(900)))
                .await
                .expect("worker");
            invocations += 1;
            assert!(invocations < 20, "the run did not finish in 20 invocations");
            waiting_since = Instant::now();
            if let sync_worker::WorkerReport::Finished { state } = report {
                assert_eq!(state, "succeeded", "run {this}");
                break 'run;
            }
        }
        assert!(
            waiting_since.elapsed() < Duration::from_secs(60),
            "run {run:?} did not finish: no more jobs on the bus"
        );
    }
    let worker_reads = proxy.secret_reads().split_off(tick_reads);
    let pages = ENTRIES.div_ceil(2000) as u64;
    assert!(
        hv.request_count() - api_calls >= pages,
        "the run fetched at least {pages} pages from Harvest"
    );
    assert_eq!(invocations, 1, "a generous deadline finishes in one go");
    // Each invocation reads the connection's secret when the run first needs the provider and
    // keeps the session for every later page; nothing else is read from Secrets Manager.
    let secret = format!("{}{WS}/harvest", moto.prefix);
    assert_eq!(
        worker_reads,
        vec![secret; invocations],
        "one GetSecretValue of the connection secret per sync-worker invocation"
    );
    assert_eq!(work_logs(&setup, &pid).await, ENTRIES);
    eprintln!(
        "secret reads: tick {tick_reads}, worker {} in {invocations} invocation(s), {} Harvest requests",
        worker_reads.len(),
        hv.request_count() - api_calls
    );
    sb.stop().await;
}

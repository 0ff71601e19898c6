//! The AWS emulator harness the deployed-shape tests (`aws`, `aws_basecamp`, `aws_tripletex`)
//! share: a DynamoDB table, an EventBridge bus whose rule targets an SQS queue (so the jobs
//! and outbound events the functions put on it can be read back), Secrets Manager, the
//! Lambda-mode `AppContext` the functions' `main.rs` build, API Gateway HTTP API (v2) events,
//! and delivering jobs to `sync-worker`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use axum::Router;
use chrono::Utc;
use futures::future::LocalBoxFuture;
use hourbridge_runtime::queue::JobEnvelope;
use hourbridge_runtime::{AppContext, Config, Mode, env};
use hourbridge_store_dynamodb::DynamoBackend;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// The deployment's public URL where a test does not need to receive requests at it.
pub(crate) const PUBLIC: &str = "https://api.hourbridge.test";

/// JWT authorizer claims: `(sub, ws, role)`.
pub(crate) type Claims<'a> = (&'a str, &'a str, &'a str);

/// One test's resources on moto_server, all named after `name`.
pub(crate) struct Moto {
    pub(crate) name: String,
    pub(crate) bus: Bus,
    pub(crate) secrets: aws_sdk_secretsmanager::Client,
    /// Where the connections' secrets live in Secrets Manager.
    pub(crate) prefix: String,
    /// Builds an `AppContext` over the emulator's SDK config (its type is aws-config's, which
    /// this crate does not depend on, so it stays inside this closure).
    build: Box<dyn Fn(Config) -> LocalBoxFuture<'static, AppContext>>,
}

impl Moto {
    /// Creates the table, the bus with its SQS target, and the secrets client; `None` (after
    /// saying why) when the emulator is not configured and the test is skipped.
    pub(crate) async fn start(what: &str, name_prefix: &str) -> Option<Self> {
        let config = hourbridge_testkit::moto_config(what).await?;
        let name = hourbridge_testkit::unique_name(name_prefix);
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
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
        let prefix = format!("hourbridge/{name}/");
        Some(Self {
            name,
            bus: Bus { sqs, queue_url },
            secrets,
            prefix,
            build: Box::new(move |cfg| {
                let config = config.clone();
                Box::pin(
                    async move { AppContext::build(cfg, Some(config)).await.expect("context") },
                )
            }),
        })
    }

    /// Stores an operator secret outside the connections' prefix; answers its full name.
    pub(crate) async fn platform_secret(&self, path: &str, value: &str) -> String {
        let secret_name = format!("hourbridge-platform/{}/{path}", self.name);
        self.secrets
            .create_secret()
            .name(&secret_name)
            .secret_string(value)
            .send()
            .await
            .unwrap_or_else(|e| panic!("platform secret {secret_name}: {e}"));
        secret_name
    }

    /// The Lambda-mode context over these resources, with the gateway's authorizer, public
    /// URL `public` and the `extra` variables.
    pub(crate) async fn context<'a>(
        &self,
        public: &str,
        extra: impl IntoIterator<Item = (&'a str, String)>,
    ) -> AppContext {
        (self.build)(self.lambda_config(public, extra)).await
    }

    /// Like [`Moto::context`], but the context's AWS SDK sends every request to `endpoint`
    /// instead of the emulator (a loopback proxy in front of it, say, that counts what the
    /// functions ask for); the resources are the same.
    pub(crate) async fn context_via<'a>(
        &self,
        endpoint: &str,
        public: &str,
        extra: impl IntoIterator<Item = (&'a str, String)>,
    ) -> AppContext {
        let cfg = self.lambda_config(public, extra);
        AppContext::build(cfg, Some(hourbridge_testkit::config_for(endpoint).await))
            .await
            .expect("context")
    }

    /// The Lambda-mode configuration of [`Moto::context`].
    fn lambda_config<'a>(
        &self,
        public: &str,
        extra: impl IntoIterator<Item = (&'a str, String)>,
    ) -> Config {
        let vars: BTreeMap<&str, String> = [
            (env::STORE, "dynamodb".to_owned()),
            (env::TABLE_NAME, self.name.clone()),
            (env::SECRETS_BACKEND, "secretsmanager".to_owned()),
            (env::SECRETS_PREFIX, self.prefix.clone()),
            (env::AUTH, "gateway".to_owned()),
            (env::JOBS_BUS, self.name.clone()),
            (env::PUBLIC_URL, public.to_owned()),
        ]
        .into_iter()
        .chain(extra)
        .collect();
        Config::from_lookup(Mode::Lambda, |k| vars.get(k).cloned()).expect("lambda config")
    }
}

/// The bus's SQS target.
pub(crate) struct Bus {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

/// Which run [`Bus::deliver_until_finished`] waits for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Run<'a> {
    /// The next job's run; every job until it finishes must be of that run.
    Next,
    /// Whichever run finishes first.
    Any,
    /// This run; jobs of other runs on the way are delivered too.
    Id(&'a str),
}

impl Bus {
    /// Events read from the queue within `wait` seconds (all of them, deleted).
    pub(crate) async fn poll_events(&self, wait: i32) -> Vec<Value> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait)
            .send()
            .await
            .expect("receive");
        let mut events = Vec::new();
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
            events.push(serde_json::from_str(m.body().unwrap_or("{}")).expect("event json"));
        }
        events
    }

    /// Reads events until one of `detail_type` shows up (the others read before it are gone).
    pub(crate) async fn next_event(&self, detail_type: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut pending = Vec::<Value>::new().into_iter();
        loop {
            for body in pending.by_ref() {
                if body["detail-type"] == detail_type {
                    return body;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {detail_type} event on the bus"
            );
            pending = self.poll_events(1).await.into_iter();
        }
    }

    /// Takes jobs off the bus and delivers each (and its requeues) to `sync-worker` until
    /// `run` finishes successfully; answers that run's id.
    pub(crate) async fn deliver_until_finished(&self, ctx: &AppContext, run: Run<'_>) -> String {
        let mut wanted = match run {
            Run::Id(id) => Some(id.to_owned()),
            Run::Next | Run::Any => None,
        };
        let mut deliveries = 0;
        let mut deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for body in self.poll_events(1).await {
                if body["detail-type"] != "SyncJob" {
                    continue;
                }
                let event: EventBridgeEvent<JobEnvelope> =
                    serde_json::from_value(body).expect("job event shape");
                let this = event.detail.job.run_id.clone();
                if let Run::Next = run {
                    let first = wanted.get_or_insert_with(|| this.clone());
                    assert_eq!(&this, first, "the same run comes back");
                }
                let report = deliver(ctx, event).await;
                deliveries += 1;
                assert!(deliveries < 50, "no run finished after 50 deliveries");
                deadline = Instant::now() + Duration::from_secs(60);
                if let sync_worker::WorkerReport::Finished { state } = report {
                    assert_eq!(state, "succeeded", "run {this}");
                    if wanted.as_ref().is_none_or(|r| *r == this) {
                        return this;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "run {wanted:?} did not finish: no more jobs on the bus"
            );
        }
    }
}

/// Delivers a job event to `sync-worker` as EventBridge invokes it.
pub(crate) async fn deliver(
    ctx: &AppContext,
    event: EventBridgeEvent<JobEnvelope>,
) -> sync_worker::WorkerReport {
    sync_worker::handler(ctx, LambdaEvent::new(event, context(120)))
        .await
        .expect("worker")
}

/// An API Gateway HTTP API (v2) JSON request event; `claims` come from the JWT authorizer.
pub(crate) fn http_event(
    method: &str,
    path: &str,
    query: &str,
    body: Option<Value>,
    claims: Option<Claims<'_>>,
) -> lambda_http::Request {
    let headers = json!({"content-type": "application/json", "host": "api.hourbridge.test"});
    raw_event(
        method,
        path,
        query,
        headers,
        body.map(|b| b.to_string()),
        claims,
    )
}

/// An API Gateway HTTP API (v2) request event with these headers and raw body.
pub(crate) fn raw_event(
    method: &str,
    path: &str,
    query: &str,
    headers: Value,
    body: Option<String>,
    claims: Option<Claims<'_>>,
) -> lambda_http::Request {
    let authorizer = claims.map(|(sub, ws, role)| json!({"jwt": {"claims": {"sub": sub, "ws": ws, "role": role}, "scopes": null}}));
    let e = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "authorizer": authorizer,
            "domainName": "api.hourbridge.test", "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": "r", "routeKey": "$default", "stage": "$default",
            "time": "21/Nov/2026:09:00:00 +0000", "timeEpoch": 1_795_000_000_000_i64
        },
        "body": body, "isBase64Encoded": false
    });
    lambda_http::request::from_str(&e.to_string()).expect("v2 event")
}

/// Runs a function's handler on `req`; answers the status and the JSON body (`Null` if none).
pub(crate) async fn invoke(app: Router, req: lambda_http::Request) -> (u16, Value) {
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

/// A Lambda invocation context with `seconds` left.
pub(crate) fn context(seconds: i64) -> Context {
    let mut c = Context::default();
    c.request_id = "lambda-req".into();
    c.deadline = (Utc::now() + chrono::Duration::seconds(seconds)).timestamp_millis() as u64;
    c
}

//! The Tripletex admin flow on the deployed shape: every function's handler built by the
//! constructor its `main.rs` uses, over DynamoDB, Secrets Manager and EventBridge on
//! moto_server, against the Tripletex sandbox. Our consumer token is read at start-up from
//! Secrets Manager under the full name in `HOURBRIDGE_TRIPLETEX_CONSUMER_TOKEN_SECRET_NAME`, as
//! in Lambda. Jobs the functions put on the bus are read back from an SQS target and delivered
//! to `sync-worker` until the run finishes.
//!
//! Mirrors `shared/cli/tests/tripletex_serve.rs` (the same flow through the local binary): the
//! billing backend's service token enables the add-on, the employee token is saved untested,
//! Test API shows the company, confirm subscribes the webhooks, the first sync links by
//! organisation number and lists the unclear ones for review, a webhook renames a project (a
//! forged one changes nothing), disconnect removes the subscriptions.
//!
//! The sandbox POSTs its signed callbacks to the subscription's `targetUrl`, built from
//! `HOURBRIDGE_PUBLIC_URL`; here that URL is a loopback listener that only records what it
//! receives, and the recorded delivery is replayed to the `webhooks` function's handler as the
//! API Gateway event it would be (no authorizer).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use hourbridge_runtime::AppContext;
use hourbridge_sandbox::{
    Sandbox, Seed, TRIPLETEX_DEMO_CONSUMER_TOKEN, TRIPLETEX_DEMO_EMPLOYEE_TOKEN, TripletexControl,
};
use serde_json::{Value, json};

use crate::aws_common::{Bus, Claims, Moto, Run, http_event, invoke, raw_event};

const WS: &str = "fjordtech";
/// Where the consumer token's secret is named (the runtime's `<VAR>_SECRET_NAME`).
const CONSUMER_TOKEN_SECRET_NAME: &str = "HOURBRIDGE_TRIPLETEX_CONSUMER_TOKEN_SECRET_NAME";

/// A webhook callback as the sandbox sent it to the public URL.
#[derive(Debug, Clone)]
struct Captured {
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
}

struct Aws {
    ctx: AppContext,
    bus: Bus,
    sb: Sandbox,
    tx: TripletexControl,
    public: String,
    captured: Arc<Mutex<Vec<Captured>>>,
}

/// A loopback listener standing in for the deployment's public URL: records every request and
/// answers 200. Answers its base URL.
async fn capture_server(captured: Arc<Mutex<Vec<Captured>>>) -> String {
    let app = Router::new().fallback(move |req: axum::extract::Request| {
        let captured = captured.clone();
        async move {
            let path = req.uri().path().to_owned();
            let headers = req
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect();
            let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            captured.lock().unwrap().push(Captured {
                path,
                headers,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
            axum::http::StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("capture server") });
    format!("http://{addr}")
}

async fn aws() -> Option<Aws> {
    let moto = Moto::start("the Tripletex flow on the AWS emulator", "hbtx").await?;
    println!("aws_tripletex: using moto_server through the AWS SDK");

    // Our Tripletex consumer token: outside the connections' prefix, by full name.
    let secret_name = moto
        .platform_secret("tripletex/consumer-token", TRIPLETEX_DEMO_CONSUMER_TOKEN)
        .await;

    let captured = Arc::new(Mutex::new(Vec::new()));
    let public = capture_server(captured.clone()).await;
    let sb = Sandbox::start(Seed::Demo).await.expect("sandbox");
    let tx = sb.tripletex();
    let ctx = moto
        .context(
            &public,
            [
                (CONSUMER_TOKEN_SECRET_NAME, secret_name),
                ("HOURBRIDGE_TRIPLETEX_API_URL", sb.tripletex_api_url()),
            ],
        )
        .await;
    Some(Aws {
        ctx,
        bus: moto.bus,
        sb,
        tx,
        public,
        captured,
    })
}

/// The captured callback as the API Gateway event the `webhooks` function receives: the raw
/// body and the provider's headers (lowercased, as API Gateway passes them), no authorizer.
fn webhook_event(d: &Captured, signature: &str) -> lambda_http::Request {
    let mut headers: serde_json::Map<String, Value> = d
        .headers
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "connection" | "content-length"))
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone())))
        .collect();
    headers.insert("host".into(), json!("api.hourbridge.test"));
    headers.insert("x-request-signature".into(), json!(signature));
    raw_event(
        "POST",
        &d.path,
        "",
        Value::Object(headers),
        Some(d.body.clone()),
        None,
    )
}

const OWNER: Option<Claims<'static>> = Some(("ada", WS, "owner"));
const SERVICE: Option<Claims<'static>> = Some(("billing", WS, "service"));

impl Aws {
    /// Invokes `app` as the owner and expects a 2xx answer.
    async fn ok(&self, app: Router, method: &str, path: &str, body: Option<Value>) -> Value {
        let (st, v) = invoke(app, http_event(method, path, "", body, OWNER)).await;
        assert!((200..300).contains(&st), "{method} {path}: {st} {v}");
        v
    }

    /// Asserts that no job reaches the bus for a little while.
    async fn no_job(&self, what: &str) {
        for _ in 0..2 {
            let jobs: Vec<Value> = self
                .bus
                .poll_events(1)
                .await
                .into_iter()
                .filter(|e| e["detail-type"] == "SyncJob")
                .collect();
            assert!(jobs.is_empty(), "{what}: {jobs:?}");
        }
    }

    async fn connection(&self) -> Value {
        self.ok(
            connections::app(&self.ctx),
            "GET",
            "/v1/connections/tripletex",
            None,
        )
        .await
    }

    /// "Start synchronization", delivered to the worker; answers the connection view after.
    async fn sync(&self) -> Value {
        let r = self
            .ok(
                connections::app(&self.ctx),
                "POST",
                "/v1/connections/tripletex/sync",
                None,
            )
            .await;
        let run_id = r["run_id"].as_str().expect("run id");
        self.bus
            .deliver_until_finished(&self.ctx, Run::Id(run_id))
            .await;
        let c = self.connection().await;
        assert_eq!(c["status"]["kind"], "succeeded", "{c}");
        c
    }

    async fn create(&self, what: &str, body: Value) -> String {
        let v = self
            .ok(
                workspace_api::app(&self.ctx),
                "POST",
                &format!("/v1/{what}"),
                Some(body),
            )
            .await;
        v["id"].as_str().expect("id").to_owned()
    }

    async fn named(&self, what: &str, name: &str) -> Vec<Value> {
        let (st, v) = invoke(
            workspace_api::app(&self.ctx),
            http_event("GET", &format!("/v1/{what}"), "limit=1000", None, OWNER),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|r| r["name"] == name)
            .cloned()
            .collect()
    }

    async fn review(&self) -> Vec<Value> {
        let v = self
            .ok(
                connections::app(&self.ctx),
                "GET",
                "/v1/connections/tripletex/review",
                None,
            )
            .await;
        v["items"].as_array().expect("items").clone()
    }
}

#[tokio::test]
async fn functions_run_the_tripletex_flow_on_dynamodb_secrets_manager_and_eventbridge() {
    let Some(a) = aws().await else { return };

    // workspace-api: bootstrap and the host's data before the first sync.
    let (st, v) = invoke(
        workspace_api::app(&a.ctx),
        http_event(
            "POST",
            "/v1/workspaces",
            "",
            Some(json!({"name": "Fjordtech", "time_zone": "Europe/Oslo",
                "owner": {"name": "Ada Admin", "email": "ada@fjordtech.example"}})),
            OWNER,
        ),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let fjordkraft = a
        .create(
            "customers",
            json!({"name": "Fjordkraft Digital AS", "organization_number": "998877665"}),
        )
        .await;
    let hansen = a
        .create("customers", json!({"name": "Hansen Rorlegger ENK"}))
        .await;
    let intranet = a
        .create(
            "projects",
            json!({"name": "Fjordkraft intranett", "customer_id": fjordkraft}),
        )
        .await;

    // No add-on: refused. The owner cannot enable it; the billing backend's service token can.
    let employee_token = json!({"employee_token": TRIPLETEX_DEMO_EMPLOYEE_TOKEN});
    let (st, e) = invoke(
        connections::app(&a.ctx),
        http_event(
            "PUT",
            "/v1/connections/tripletex",
            "",
            Some(employee_token.clone()),
            OWNER,
        ),
    )
    .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (403, Some("addon_not_enabled")),
        "{e}"
    );
    let addon = "/v1/workspace/addons/tripletex";
    let (st, e) = invoke(
        workspace_api::app(&a.ctx),
        http_event("PUT", addon, "", None, OWNER),
    )
    .await;
    assert_eq!(st, 403, "{e}");
    let (st, e) = invoke(
        workspace_api::app(&a.ctx),
        http_event("PUT", addon, "", None, SERVICE),
    )
    .await;
    assert!((200..300).contains(&st), "{st} {e}");

    // connections: saved untested, Test API with the consumer token read from Secrets Manager,
    // confirm subscribes the webhooks at the public URL.
    let c = a
        .ok(
            connections::app(&a.ctx),
            "PUT",
            "/v1/connections/tripletex",
            Some(employee_token),
        )
        .await;
    assert_eq!(c["state"], "pending_test", "{c}");
    assert!(
        !c.to_string().contains(TRIPLETEX_DEMO_EMPLOYEE_TOKEN),
        "never returned: {c}"
    );
    let t = a
        .ok(
            connections::app(&a.ctx),
            "POST",
            "/v1/connections/tripletex/test",
            None,
        )
        .await;
    assert_eq!(
        (t["ok"].as_bool(), t["company"]["name"].as_str()),
        (Some(true), Some("Fjordtech AS")),
        "{t}"
    );
    let c = a
        .ok(
            connections::app(&a.ctx),
            "POST",
            "/v1/connections/tripletex/confirm",
            None,
        )
        .await;
    assert_eq!(c["state"], "active", "{c}");
    let subs = a.tx.subscriptions();
    assert_eq!(
        subs.len(),
        6,
        "customer and project create/update/delete: {subs:?}"
    );
    let hook_base = format!("{}/webhooks/tripletex/", a.public);
    assert!(
        subs.iter()
            .all(|s| s.signed && s.target_url.starts_with(&hook_base)),
        "{subs:?}"
    );
    let webhook_url = a.connection().await["webhook_url"]
        .as_str()
        .expect("the admin sees the webhook URL")
        .to_owned();
    assert!(webhook_url.starts_with(&hook_base), "{webhook_url}");

    // Start synchronization: links by organisation number, lists the similar name for review.
    a.sync().await;
    let linked = a.named("customers", "Fjordkraft Digital AS").await;
    assert_eq!(linked.len(), 1, "{linked:?}");
    assert_eq!(
        (linked[0]["id"].as_str(), linked[0]["managed_by"].as_str()),
        (Some(fjordkraft.as_str()), Some("tripletex")),
        "{linked:?}"
    );
    let p = a.named("projects", "Fjordkraft intranett").await;
    assert_eq!(
        (p[0]["id"].as_str(), p[0]["managed_by"].as_str()),
        (Some(intranet.as_str()), Some("tripletex")),
        "{p:?}"
    );
    let review = a.review().await;
    let hansen_item = review
        .iter()
        .find(|i| i["remote"]["name"] == "Hansen Rørlegger ENK")
        .unwrap_or_else(|| panic!("Hansen is listed for review: {review:?}"));
    assert_eq!(
        hansen_item["candidates"][0]["id"],
        hansen.as_str(),
        "{hansen_item}"
    );
    assert!(a.captured.lock().unwrap().is_empty(), "no callback yet");

    // A rename in Tripletex: the sandbox POSTs the signed callback to the public URL.
    let remote_intranet = a.tx.find_project("Fjordkraft intranett").expect("remote");
    assert!(a.tx.rename_project(remote_intranet, "Fjordkraft intranett 2.0"));
    a.tx.flush_deliveries().await;
    let sent = a.tx.deliveries();
    let delivered = sent.last().expect("a delivery").clone();
    assert_eq!(
        (
            delivered.event.as_str(),
            delivered.object_id,
            delivered.status
        ),
        ("project.update", remote_intranet, Some(200)),
        "{sent:?}"
    );
    let captured = a.captured.lock().unwrap().clone();
    assert_eq!(captured.len(), 1, "{captured:?}");
    let d = captured[0].clone();
    assert_eq!(d.path, &webhook_url[a.public.len()..], "{d:?}");
    assert_eq!(d.body, delivered.body);
    assert_eq!(
        d.headers.get("idempotency-key"),
        Some(&delivered.idempotency_key),
        "{d:?}"
    );
    let signature = d
        .headers
        .get("x-request-signature")
        .expect("signed callback")
        .clone();

    // The same delivery with a tampered signature: 401, no job, nothing changes.
    let mut tampered = signature.clone().into_bytes();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("base64");
    let (st, e) = invoke(webhooks::app(&a.ctx), webhook_event(&d, &tampered)).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (401, Some("invalid_signature")),
        "{e}"
    );
    a.no_job("a forged delivery queues nothing").await;
    assert_eq!(a.named("projects", "Fjordkraft intranett").await.len(), 1);
    assert!(
        a.named("projects", "Fjordkraft intranett 2.0")
            .await
            .is_empty()
    );

    // The delivery as sent: 202, its refetch run on the bus renames the host project.
    let (st, e) = invoke(webhooks::app(&a.ctx), webhook_event(&d, &signature)).await;
    assert_eq!(st, 202, "{e}");
    a.bus.deliver_until_finished(&a.ctx, Run::Any).await;
    let renamed = a.named("projects", "Fjordkraft intranett 2.0").await;
    assert_eq!(renamed.len(), 1, "{renamed:?}");
    assert_eq!(renamed[0]["id"], intranet.as_str(), "{renamed:?}");
    // Delivered again (Tripletex retries): accepted, and no second run.
    let (st, e) = invoke(webhooks::app(&a.ctx), webhook_event(&d, &signature)).await;
    assert_eq!(st, 202, "{e}");
    a.no_job("a repeated delivery queues nothing").await;

    // Disconnect: our subscriptions go; synced records stay and become the host's.
    a.ok(
        connections::app(&a.ctx),
        "DELETE",
        "/v1/connections/tripletex",
        None,
    )
    .await;
    assert!(
        a.tx.subscriptions().is_empty(),
        "{:?}",
        a.tx.subscriptions()
    );
    let p = a.named("projects", "Fjordkraft intranett 2.0").await;
    assert_eq!(p[0]["managed_by"], "local", "{p:?}");
    a.sb.stop().await;
}

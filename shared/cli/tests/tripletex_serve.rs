//! Tripletex end to end through the built binary: `hourbridge serve` as a process against the
//! Tripletex sandbox, driven over HTTP the way the README tells an admin to — the add-on gate,
//! the employee token, Test API, confirm, Start synchronization, the first sync's links, new
//! records and review list, the review actions, read-only synced records, a webhook, a forged
//! one, a lost one fixed by the reconciliation, an expired session, disconnect.
//!
//! What Tripletex holds is read from the sandbox's own state, not from the server.

mod common;

use std::time::Duration;

use common::*;
use hourbridge_sandbox::{
    Sandbox, Seed, TRIPLETEX_DEMO_CONSUMER_TOKEN, TRIPLETEX_DEMO_EMPLOYEE_TOKEN, TripletexControl,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct World {
    _sb: Sandbox,
    tx: TripletexControl,
    _dir: tempfile::TempDir,
    server: ServerProc,
    api: Api,
    service: Api,
}

async fn world() -> World {
    let sb = Sandbox::start(Seed::Demo).await.expect("sandbox");
    let tx = sb.tripletex();
    let env = vec![
        (
            "HOURBRIDGE_TRIPLETEX_API_URL".to_owned(),
            sb.tripletex_api_url(),
        ),
        (
            "HOURBRIDGE_TRIPLETEX_CONSUMER_TOKEN".to_owned(),
            TRIPLETEX_DEMO_CONSUMER_TOKEN.to_owned(),
        ),
    ];
    let s = serve_workspace(
        &env,
        &[],
        json!({"name": "Fjordtech", "time_zone": "Europe/Oslo",
            "owner": {"name": "Ada Admin", "email": "ada@fjordtech.example"}}),
    )
    .await;
    let service = Api::new(&s.server, &token_as(&s.path, &s.ws, "billing", "service"));
    World {
        _sb: sb,
        tx,
        _dir: s.dir,
        server: s.server,
        api: s.api,
        service,
    }
}

impl World {
    async fn customer(&self, name: &str, org: Option<&str>) -> String {
        let c = self
            .api
            .ok(
                Method::POST,
                "/v1/customers",
                Some(json!({"name": name, "organization_number": org})),
            )
            .await;
        c["id"].as_str().unwrap().to_owned()
    }

    async fn project(&self, name: &str, customer: Option<&str>) -> String {
        let p = self
            .api
            .ok(
                Method::POST,
                "/v1/projects",
                Some(json!({"name": name, "customer_id": customer})),
            )
            .await;
        p["id"].as_str().unwrap().to_owned()
    }

    async fn all(&self, what: &str) -> Vec<Value> {
        let v = self
            .api
            .ok(Method::GET, &format!("/v1/{what}?limit=1000"), None)
            .await;
        v["items"].as_array().unwrap().clone()
    }

    async fn named(&self, what: &str, name: &str) -> Vec<Value> {
        self.all(what)
            .await
            .into_iter()
            .filter(|r| r["name"] == name)
            .collect()
    }

    async fn sync(&self) -> Value {
        self.api.sync_succeeded("tripletex", &self.server).await
    }

    async fn review(&self) -> Vec<Value> {
        let v = self
            .api
            .ok(Method::GET, "/v1/connections/tripletex/review", None)
            .await;
        v["items"].as_array().unwrap().clone()
    }
}

#[tokio::test]
async fn admin_connects_tripletex_reviews_the_first_sync_and_webhooks_keep_it_current() {
    let w = world().await;
    // Host data before the first sync.
    let fjordkraft = w.customer("Fjordkraft Digital AS", Some("998877665")).await;
    let hansen = w.customer("Hansen Rorlegger ENK", None).await;
    // Tripletex has two customers of this name: one links to ours, the other is created.
    let nordlys_host = w.customer("Nordlys Consulting AS", None).await;
    let intranet = w.project("Fjordkraft intranett", Some(&fjordkraft)).await;
    w.project("Intern utviklng", None).await;
    w.project("Secret host project", None).await;

    // No add-on: every Tripletex call is refused, saying where to enable it.
    let (st, e) = w
        .api
        .call(
            Method::PUT,
            "/v1/connections/tripletex",
            Some(json!({"employee_token": TRIPLETEX_DEMO_EMPLOYEE_TOKEN})),
        )
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("addon_not_enabled")),
        "{e}"
    );
    // People cannot enable add-ons; the billing backend's service token can.
    let (st, _) = w
        .api
        .call(Method::PUT, "/v1/workspace/addons/tripletex", None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, e) = w
        .service
        .call(Method::PUT, "/v1/workspace/addons/tripletex", None)
        .await;
    assert!(st.is_success(), "{st} {e}");

    // A bad token: saved, Test API refuses it, confirming needs a passing test.
    let c = w
        .api
        .ok(
            Method::PUT,
            "/v1/connections/tripletex",
            Some(json!({"employee_token": "not-a-token"})),
        )
        .await;
    assert_eq!(c["state"], "pending_test", "{c}");
    assert!(!c.to_string().contains("not-a-token"), "never returned");
    let (st, e) = w
        .api
        .call(Method::POST, "/v1/connections/tripletex/test", None)
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_token")),
        "{e}"
    );
    let (st, e) = w
        .api
        .call(Method::POST, "/v1/connections/tripletex/confirm", None)
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("test_required")),
        "{e}"
    );

    // The real token: Test API shows the company, confirm activates and subscribes webhooks.
    w.api
        .ok(
            Method::PUT,
            "/v1/connections/tripletex",
            Some(json!({"employee_token": TRIPLETEX_DEMO_EMPLOYEE_TOKEN})),
        )
        .await;
    let t = w
        .api
        .ok(Method::POST, "/v1/connections/tripletex/test", None)
        .await;
    assert_eq!(
        (t["ok"].as_bool(), t["company"]["name"].as_str()),
        (Some(true), Some("Fjordtech AS")),
        "{t}"
    );
    assert!(
        t["employee"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty()),
        "{t}"
    );
    let c = w
        .api
        .ok(Method::POST, "/v1/connections/tripletex/confirm", None)
        .await;
    assert_eq!(c["state"], "active", "{c}");
    let subs = w.tx.subscriptions();
    assert_eq!(
        subs.len(),
        6,
        "customer and project create/update/delete: {subs:?}"
    );
    assert!(
        subs.iter()
            .all(|s| s.signed && s.target_url.contains("/webhooks/tripletex/"))
    );

    // Start synchronization: links by organisation number and name, creates the rest, and
    // lists the unclear ones.
    let run = w.sync().await;
    assert!(
        run["imported"]["created"].as_u64().unwrap() > 0
            && run["imported"]["updated"].as_u64().unwrap() > 0,
        "the run reports what it imported: {run}"
    );
    let linked = w.named("customers", "Fjordkraft Digital AS").await;
    assert_eq!(linked.len(), 1);
    assert_eq!(
        (linked[0]["id"].as_str(), linked[0]["managed_by"].as_str()),
        (Some(fjordkraft.as_str()), Some("tripletex"))
    );
    let p = w.named("projects", "Fjordkraft intranett").await;
    assert_eq!(
        (p[0]["id"].as_str(), p[0]["managed_by"].as_str()),
        (Some(intranet.as_str()), Some("tripletex"))
    );
    let review = w.review().await;
    let hansen_item = review
        .iter()
        .find(|i| i["remote"]["name"] == "Hansen Rørlegger ENK")
        .unwrap_or_else(|| panic!("Hansen is listed for review: {review:?}"));
    assert_eq!(hansen_item["candidates"][0]["id"], hansen.as_str());
    let intern_item = review
        .iter()
        .find(|i| i["remote"]["name"] == "Intern utvikling")
        .unwrap_or_else(|| panic!("the misspelt project is listed: {review:?}"))
        .clone();
    // Same-name customers are told apart by organisation number.
    let nordlys = w.named("customers", "Nordlys Consulting AS").await;
    assert_eq!(nordlys.len(), 2, "{nordlys:?}");
    assert!(
        nordlys.iter().any(|c| c["id"] == nordlys_host.as_str()),
        "{nordlys:?}"
    );
    assert_ne!(
        nordlys[0]["organization_number"],
        nordlys[1]["organization_number"]
    );
    // Inactive in Tripletex: inactive in the host, not deleted.
    let bakeri = w.named("customers", "Bergen Bakeri AS").await;
    assert_eq!(bakeri[0]["active"], false, "{bakeri:?}");
    // Third level: reported, not synced.
    assert!(w.named("projects", "Søk - indeksering").await.is_empty());
    let c = w
        .api
        .ok(Method::GET, "/v1/connections/tripletex", None)
        .await;
    assert!(
        c["status"]["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["code"] == "too_deep"),
        "{c}\n{run}"
    );
    // Synced records are Tripletex's: host edits answer 409.
    let (st, e) = w
        .api
        .call(
            Method::PATCH,
            &format!("/v1/projects/{intranet}"),
            Some(json!({"name": "ours"})),
        )
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("managed_by_provider"))
    );
    // Host-only records are never sent to Tripletex.
    assert!(w.tx.find_project("Secret host project").is_none());

    let (st, e) = w
        .api
        .call(
            Method::POST,
            "/v1/connections/tripletex/review/tripletex.customer.424242",
            Some(json!({"action": "ignore"})),
        )
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{e}"
    );

    // Review actions apply at once.
    let id = hansen_item["id"].as_str().unwrap();
    let (st, e) = w
        .api
        .call(
            Method::POST,
            &format!("/v1/connections/tripletex/review/{id}"),
            Some(json!({"action": "link", "target_id": hansen})),
        )
        .await;
    assert!(st.is_success(), "{st} {e}");
    let h = w.named("customers", "Hansen Rørlegger ENK").await;
    assert_eq!(
        (h[0]["id"].as_str(), h[0]["managed_by"].as_str()),
        (Some(hansen.as_str()), Some("tripletex")),
        "linked and overwritten by Tripletex's values"
    );
    let id = intern_item["id"].as_str().unwrap();
    let ignored = w
        .api
        .ok(
            Method::POST,
            &format!("/v1/connections/tripletex/review/{id}"),
            Some(json!({"action": "ignore"})),
        )
        .await;
    assert_eq!(ignored["ignored"], true);
    w.sync().await;
    assert!(
        w.named("projects", "Intern utvikling").await.is_empty(),
        "ignored records stay out of syncs"
    );
    w.api
        .ok(
            Method::POST,
            &format!("/v1/connections/tripletex/review/{id}"),
            Some(json!({"action": "reset"})),
        )
        .await;
    w.sync().await;
    let item = w
        .review()
        .await
        .into_iter()
        .find(|i| i["remote"]["name"] == "Intern utvikling")
        .expect("back on the list after reset");
    let (st, _) = w
        .api
        .call(
            Method::POST,
            &format!(
                "/v1/connections/tripletex/review/{}",
                item["id"].as_str().unwrap()
            ),
            Some(json!({"action": "create"})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let created = w.named("projects", "Intern utvikling").await;
    assert_eq!(
        created[0]["active"], false,
        "closed in Tripletex: {created:?}"
    );

    // A change in Tripletex reaches the host within seconds by webhook.
    let remote_intranet = w.tx.find_project("Fjordkraft intranett").unwrap();
    assert!(w.tx.rename_project(remote_intranet, "Fjordkraft intranett 2.0"));
    eventually("the webhook to rename the project", &w.server, || async {
        w.all("projects")
            .await
            .iter()
            .any(|p| p["id"] == intranet.as_str() && p["name"] == "Fjordkraft intranett 2.0")
            .then_some(())
    })
    .await;

    // A duplicate delivery is answered 2xx and applied once.
    w.tx.deliver_duplicates(1);
    assert!(w.tx.rename_project(remote_intranet, "Fjordkraft intranett 2.1"));
    w.tx.flush_deliveries().await;
    eventually("the duplicated webhook to apply", &w.server, || async {
        w.all("projects")
            .await
            .iter()
            .any(|p| p["id"] == intranet.as_str() && p["name"] == "Fjordkraft intranett 2.1")
            .then_some(())
    })
    .await;
    let sent = w.tx.deliveries();
    let twice: Vec<_> = sent
        .iter()
        .filter(|d| d.idempotency_key == sent.last().unwrap().idempotency_key)
        .collect();
    assert_eq!(twice.len(), 2, "{sent:?}");
    assert!(
        twice
            .iter()
            .all(|d| d.status.is_some_and(|s| (200..300).contains(&s)))
    );
    assert_eq!(
        w.named("projects", "Fjordkraft intranett 2.1").await.len(),
        1
    );

    // A forged delivery changes nothing.
    let hook = w
        .api
        .ok(Method::GET, "/v1/connections/tripletex", None)
        .await["webhook_url"]
        .as_str()
        .expect("the admin sees the webhook URL")
        .to_owned();
    let path = &hook[hook.find("/webhooks/").unwrap()..];
    let forged = reqwest::Client::new()
        .post(format!("{}{path}", w.server.base))
        .header("idempotency-key", "forged-1")
        .header("x-request-signature", "bm90IGEgc2lnbmF0dXJl")
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"subscriptionId":1,"event":"project.delete","id":{remote_intranet},"value":null}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        w.named("projects", "Fjordkraft intranett 2.1").await.len(),
        1,
        "the forged delete changed nothing"
    );

    // A change whose webhook was lost is fixed by the reconciliation.
    w.tx.lose_next_deliveries(1);
    assert!(w.tx.rename_project(remote_intranet, "Fjordkraft intranett 3.0"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        w.named("projects", "Fjordkraft intranett 3.0").await.len(),
        0
    );
    // An expired session is renewed without failing the run.
    w.tx.expire_sessions();
    w.sync().await;
    assert_eq!(
        w.named("projects", "Fjordkraft intranett 3.0").await.len(),
        1
    );

    // A subscription Tripletex disabled is re-created by the reconciliation.
    let first = w.tx.subscriptions()[0].id;
    assert!(w.tx.disable_subscription(first));
    w.sync().await;
    let subs = w.tx.subscriptions();
    assert_eq!(subs.len(), 6, "{subs:?}");
    assert!(
        subs.iter()
            .all(|s| s.status == hourbridge_sandbox::TripletexSubscriptionStatus::Active),
        "{subs:?}"
    );

    // Disconnect: our subscriptions go; synced records stay and become the host's.
    w.api
        .ok(Method::DELETE, "/v1/connections/tripletex", None)
        .await;
    assert!(
        w.tx.subscriptions().is_empty(),
        "{:?}",
        w.tx.subscriptions()
    );
    let p = w.named("projects", "Fjordkraft intranett 3.0").await;
    assert_eq!(p[0]["managed_by"], "local");
}

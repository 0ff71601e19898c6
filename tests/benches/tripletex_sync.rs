//! Tripletex first sync of N customers and N projects from the sandbox, end to end: the local
//! server as `main` builds it (`AppContext::build` + `hourbridge::serve`, SQLite in a temporary
//! data directory, in-process worker), driven over HTTP the way an admin does it — the billing
//! backend's service token enables the add-on, then `PUT /v1/connections/tripletex` with the
//! employee token, Test API, confirm — then a few hundred host customers and projects (some
//! matching Tripletex's by organisation number or name, so matching is part of the cost; not
//! measured), one "Start synchronization" (measured) and an unchanged reconciliation (measured,
//! must write no customer, project or mapping).
//!
//! ```text
//! cargo bench -p hourbridge-e2e --bench tripletex_sync [-- 20000]
//! ```
//!
//! The sandbox's budget is raised to 100,000 requests per 60 s so it never throttles; the
//! adapter's own budget (`RATE_LIMIT`, 100 requests per 60 s) is left as shipped: at 1,000
//! records per page a sync of 2 × 20,000 records needs about 40 list requests. Store writes are
//! counted by record kind with a wrapper around the backend (`Store::backend`), installed in the
//! context before the server starts. Peak memory is the process's VmHWM (sandbox and server in one
//! process), reset through `/proc/self/clear_refs` before each measured run. The count defaults
//! to 20,000; CI only compiles this (clippy `--all-targets`); pass a small N (e.g. `-- 2000`) for
//! a quick check (N ≥ 500).

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hourbridge_runtime::{AppContext, env};
use hourbridge_sandbox::{
    Sandbox, Seed, TRIPLETEX_DEMO_CONSUMER_TOKEN, TRIPLETEX_DEMO_EMPLOYEE_ID,
    TRIPLETEX_DEMO_EMPLOYEE_TOKEN,
};
use hourbridge_store::Store;
use hourbridge_testkit::bench::{Counting, status_kib};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Api, config};
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(1800);
/// Host customers linked by organisation number (host name differs).
const BY_ORG: usize = 150;
/// Host customers linked by name (host has no organisation number).
const BY_NAME: usize = 100;
/// Host-only customers and projects (names unlike Tripletex's).
const HOST_ONLY: usize = 150;
/// Record kinds of the synced data itself (the rest is run bookkeeping).
const DATA_KINDS: [&str; 5] = [
    "customer",
    "project",
    "task",
    "remote_mapping",
    "review_item",
];

impl Api {
    /// Every item of a list, following `next_cursor` (pages of 1,000).
    async fn all(&self, what: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/{what}?limit=1000&cursor={c}"),
                None => format!("/v1/{what}?limit=1000"),
            };
            let page = self.ok(Method::GET, &path, None).await;
            out.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }

    /// "Start synchronization", waited for: (run view, wall time from the request to the run's
    /// end as seen by polling every 20 ms).
    async fn sync(&self) -> (Value, Duration) {
        let t = Instant::now();
        let r = self
            .ok(Method::POST, "/v1/connections/tripletex/sync", None)
            .await;
        let id = r["run_id"].as_str().expect("run id").to_owned();
        let deadline = Instant::now() + WAIT;
        loop {
            let run = self.ok(Method::GET, &format!("/v1/runs/{id}"), None).await;
            if run["state"] == "succeeded" || run["state"] == "failed" {
                let took = t.elapsed();
                assert_eq!(run["state"], "succeeded", "{run}");
                return (run, took);
            }
            assert!(Instant::now() < deadline, "run {id} did not end: {run}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Resets VmHWM to the current RSS (Linux: `5` to `clear_refs`); answers whether it worked.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    assert!(n >= 500, "N must be at least 500 (host data matches 250)");

    let sb = Sandbox::start(Seed::Empty).await.expect("sandbox");
    let tx = sb.tripletex();
    tx.register_consumer_token(TRIPLETEX_DEMO_CONSUMER_TOKEN);
    tx.register_employee_token(
        TRIPLETEX_DEMO_EMPLOYEE_TOKEN,
        TRIPLETEX_DEMO_EMPLOYEE_ID,
        true,
    );
    tx.set_rate_limit(100_000, Duration::from_secs(60));
    let t = Instant::now();
    let customers = tx.bulk_customers(n);
    let projects = tx.bulk_projects(n, &customers);
    assert_eq!((customers.len(), projects.len()), (n, n));
    println!(
        "tripletex_sync: sandbox holds {n} customers and {n} projects (project i under customer \
         i), added in {:.2?}",
        t.elapsed()
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let vars = [
        ("HOURBRIDGE_TRIPLETEX_API_URL", sb.tripletex_api_url()),
        (
            "HOURBRIDGE_TRIPLETEX_CONSUMER_TOKEN",
            TRIPLETEX_DEMO_CONSUMER_TOKEN.to_owned(),
        ),
        (env::PUBLIC_URL, base.clone()),
    ];
    let mut ctx = AppContext::build(config(dir.path(), &vars), None)
        .await
        .expect("context");
    // Count the writes of the API and the engine (the rate budget and response cache keep the
    // uncounted store they were built with).
    let counting = Arc::new(Counting::new(ctx.store.backend().clone()));
    let store = Store::new(counting.clone(), ctx.clock.clone());
    ctx.store = store.clone();
    ctx.engine.store = store;
    let (stop, stopped) = oneshot::channel::<()>();
    let serve_ctx = ctx.clone();
    let server = tokio::spawn(async move {
        hourbridge::serve(&serve_ctx, listener, async {
            let _ = stopped.await;
        })
        .await
    });
    let _ = ctx.start_local_workers();

    let ws = "fjordtech";
    let issue = |who: &str, role: &str| {
        hourbridge::issue_token(&ctx, ws, who, role, chrono::Duration::hours(4)).expect("token")
    };
    let api = Api {
        http: reqwest::Client::new(),
        base: base.clone(),
        token: issue("ada", "owner"),
    };
    let service = Api {
        http: reqwest::Client::new(),
        base,
        token: issue("billing", "service"),
    };
    let (st, v) = api
        .call(
            Method::POST,
            "/v1/workspaces",
            Some(json!({"name": "Fjordtech", "time_zone": "Europe/Oslo",
                "owner": {"name": "Ada Admin", "email": "ada@fjordtech.example"}})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    // Host data (not measured): customers linked by organisation number under another name,
    // customers linked by name, host-only customers; the remote projects of the first group
    // under their host customers (linked by name), host-only projects.
    let t = Instant::now();
    let picked: Vec<usize> = (0..BY_ORG + BY_NAME)
        .map(|k| k * n / (BY_ORG + BY_NAME))
        .collect();
    let host_customers: Vec<(usize, String)> = futures::stream::iter(picked.iter().enumerate())
        .map(|(k, &i)| {
            let remote = tx.customer(customers[i]).expect("bulk customer");
            let body = if k < BY_ORG {
                json!({"name": format!("Gammelt navn {k} AS"),
                    "organization_number": remote.organization_number})
            } else {
                json!({"name": remote.name})
            };
            let api = &api;
            async move {
                let c = api.ok(Method::POST, "/v1/customers", Some(body)).await;
                (i, c["id"].as_str().unwrap().to_owned())
            }
        })
        .buffered(16)
        .collect()
        .await;
    let host_projects = futures::stream::iter(host_customers.iter().take(BY_ORG))
        .map(|(i, host)| {
            let remote = tx.project(projects[*i]).expect("bulk project");
            let body = json!({"name": remote.name, "customer_id": host});
            let api = &api;
            async move {
                api.ok(Method::POST, "/v1/projects", Some(body)).await;
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>();
    host_projects.await;
    futures::stream::iter(0..HOST_ONLY)
        .map(|k| {
            let api = &api;
            async move {
                api.ok(
                    Method::POST,
                    "/v1/customers",
                    Some(json!({"name": format!("Eget kundeforhold nr {k}")})),
                )
                .await;
                api.ok(
                    Method::POST,
                    "/v1/projects",
                    Some(json!({"name": format!("Internt arbeid nr {k}")})),
                )
                .await;
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    println!(
        "tripletex_sync: host has {} customers ({BY_ORG} to link by organisation number, \
         {BY_NAME} by name, {HOST_ONLY} host-only) and {} projects ({BY_ORG} to link by name \
         under a linked customer, {HOST_ONLY} host-only), created over HTTP in {:.2?}",
        BY_ORG + BY_NAME + HOST_ONLY,
        BY_ORG + HOST_ONLY,
        t.elapsed()
    );

    // Connect as the admin does.
    service
        .ok(Method::PUT, "/v1/workspace/addons/tripletex", None)
        .await;
    let c = api
        .ok(
            Method::PUT,
            "/v1/connections/tripletex",
            Some(json!({"employee_token": TRIPLETEX_DEMO_EMPLOYEE_TOKEN})),
        )
        .await;
    assert_eq!(c["state"], "pending_test", "{c}");
    let t = api
        .ok(Method::POST, "/v1/connections/tripletex/test", None)
        .await;
    assert_eq!(t["ok"], true, "{t}");
    let c = api
        .ok(Method::POST, "/v1/connections/tripletex/confirm", None)
        .await;
    assert_eq!(c["state"], "active", "{c}");

    // First sync (measured).
    counting.take();
    let (requests, writes) = (tx.request_count(), tx.write_count());
    let rss_before = status_kib(None, "VmRSS:");
    let peak_reset = reset_peak();
    let (run, first) = api.sync().await;
    let peak = status_kib(None, "VmHWM:");
    let first_requests = tx.request_count() - requests;
    let first_writes = tx.write_count() - writes;
    let store_writes = counting.take();
    let records = 2 * n;
    println!(
        "tripletex_sync: first sync of {n} customers + {n} projects: {first:.2?}, {:.0} \
         records/s ({:.1} µs per record); {first_requests} sandbox requests, {first_writes} \
         sandbox writes; RSS before {:.1} MiB, peak (VmHWM{}) {:.1} MiB (+{:.1} MiB)",
        records as f64 / first.as_secs_f64(),
        first.as_secs_f64() * 1e6 / records as f64,
        mib(rss_before),
        if peak_reset {
            ", reset before the run"
        } else {
            " since start"
        },
        mib(peak),
        mib(peak.saturating_sub(rss_before)),
    );
    println!("  run imported {}", run["imported"]);
    println!("  store writes by kind {store_writes:?}");

    // What the host holds now.
    let cs = api.all("customers").await;
    let ps = api.all("projects").await;
    let managed = |v: &[Value]| v.iter().filter(|r| r["managed_by"] == "tripletex").count();
    let review = api
        .ok(Method::GET, "/v1/connections/tripletex/review", None)
        .await;
    let review = review["items"].as_array().map_or(0, Vec::len);
    println!(
        "  host: {} customers ({} Tripletex's), {} projects ({} Tripletex's), {review} review \
         items",
        cs.len(),
        managed(&cs),
        ps.len(),
        managed(&ps),
    );
    assert_eq!(
        managed(&cs),
        n,
        "every Tripletex customer linked or created"
    );
    assert_eq!(managed(&ps), n, "every Tripletex project linked or created");
    assert_eq!(cs.len(), n + HOST_ONLY, "linked, not duplicated");
    assert_eq!(ps.len(), n + HOST_ONLY, "linked, not duplicated");
    let versions = |v: &[Value]| -> BTreeMap<String, Value> {
        v.iter()
            .map(|r| (r["id"].as_str().unwrap().to_owned(), r.clone()))
            .collect()
    };
    let (cs, ps) = (versions(&cs), versions(&ps));

    // Unchanged reconciliation (measured).
    counting.take();
    let (requests, writes) = (tx.request_count(), tx.write_count());
    let rss_before = status_kib(None, "VmRSS:");
    reset_peak();
    let (run, again) = api.sync().await;
    let peak = status_kib(None, "VmHWM:");
    let again_requests = tx.request_count() - requests;
    let again_writes = tx.write_count() - writes;
    let store_writes = counting.take();
    let data_writes: u64 = store_writes
        .iter()
        .filter(|(k, _)| DATA_KINDS.contains(&k.as_str()))
        .map(|(_, v)| v)
        .sum();
    println!(
        "tripletex_sync: unchanged reconciliation: {again:.2?}, {:.0} records/s; \
         {again_requests} sandbox requests, {again_writes} sandbox writes; {data_writes} store \
         writes of customers/projects/mappings/review items; peak {:.1} MiB (+{:.1} MiB)",
        records as f64 / again.as_secs_f64(),
        mib(peak),
        mib(peak.saturating_sub(rss_before)),
    );
    println!("  run imported {}", run["imported"]);
    println!("  store writes by kind {store_writes:?}");
    assert_eq!(
        versions(&api.all("customers").await),
        cs,
        "no host customer changed"
    );
    assert_eq!(
        versions(&api.all("projects").await),
        ps,
        "no host project changed"
    );
    assert_eq!(data_writes, 0, "an unchanged reconciliation writes no data");

    let _ = stop.send(());
    let _ = server.await;
    drop(sb);
}

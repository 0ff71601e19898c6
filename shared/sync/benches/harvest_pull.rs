//! Benchmark: pull N Harvest time entries from the sandbox into the embedded SQLite store, end to
//! end (real adapter over HTTP, real engine, real SQLite file), then re-sync with no changes.
//!
//! `cargo bench -p hourbridge-sync --bench harvest_pull [-- 100000] [--latency-ms 40] [--rounds 3]`
//!
//! Prints entries per second, the peak growth of resident memory during each run (the sandbox
//! holding the provider's data is seeded before the baseline is taken), and the writes of the
//! unchanged re-sync, split into work-log writes (target: 0) and run bookkeeping.
//!
//! It also fetches the same pages through the same adapter and session without storing them,
//! right before and right after each sync, and prints the ratio of the sync's time to the mean
//! of those two fetches: the sync's own cost on top of the fetch (issue 12: ≤ 1.05).
//! `--latency-ms` makes the sandbox wait that long before answering each data-API request (a
//! real Harvest page of 2,000 entries takes far longer than loopback); default 0. The whole
//! measurement is repeated `--rounds` times (default 3; each round syncs into a host project of
//! its own) and the median ratio printed, since the machine is shared.

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use hourbridge_domain::{Clock, ProviderId, RecordId, SecretValue, SystemClock};
use hourbridge_provider_api::Unlimited;
use hourbridge_provider_http::{HttpConfig, ProviderEnv};
use hourbridge_sandbox::{Sandbox, Seed};
use hourbridge_store::{Backend, Store};
use hourbridge_store_sqlite::SqliteBackend;
use hourbridge_sync::runs::{Outcome, RunMode};
use hourbridge_sync::{Engine, RunScope, SyncJob};
use hourbridge_testkit::bench::{Counting, local_project, member, project_link, rss_kib};

/// Samples resident memory every few milliseconds until stopped; returns the peak.
fn sample_peak() -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let peak = AtomicU64::new(rss_kib());
    let h = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            peak.fetch_max(rss_kib(), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(5));
        }
        peak.load(Ordering::Relaxed)
    });
    (stop, h)
}

async fn timed_run(
    engine: &Engine,
    ws: &str,
    project: &RecordId,
) -> (Duration, u64, hourbridge_domain::RunCounts) {
    let before = rss_kib();
    let (stop, sampler) = sample_peak();
    let started = Instant::now();
    let run = engine
        .start_run(
            ws,
            "harvest",
            RunScope::Project(project.clone()),
            RunMode::Refetch,
        )
        .await
        .expect("start");
    let job = SyncJob {
        workspace_id: ws.into(),
        provider: "harvest".into(),
        run_id: run.id.to_string(),
    };
    let outcome = engine.execute(&job, None).await.expect("execute");
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap_or(before);
    assert!(
        matches!(
            outcome,
            Outcome::Finished(hourbridge_domain::RunState::Succeeded)
        ),
        "{outcome:?}"
    );
    let counts = engine
        .run(ws, run.id.as_str())
        .await
        .expect("run")
        .expect("exists")
        .counts;
    (took, peak.saturating_sub(before), counts)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1)?.parse::<u64>().ok())
    };
    let latency_ms = flag("--latency-ms").unwrap_or(0);
    let rounds = flag("--rounds").unwrap_or(3).max(1);
    let n: usize = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || !args[i - 1].starts_with("--"))
        .find_map(|(_, a)| a.parse().ok())
        .unwrap_or(100_000);
    let sb = Sandbox::start(Seed::Empty).await.expect("sandbox");
    let hv = sb.harvest();
    hv.register_client("bench", "bench-secret");
    hv.set_rate_limit(1_000_000, Duration::from_secs(15));
    let user = hv.add_user("Ada", "Admin", "ada@acme.test");
    let remote = hv.add_project("Fleet", "Northwind", true);
    let today = Utc::now().date_naive();
    hv.bulk_time_entries(remote, &[user], n, today - chrono::Duration::days(364), 360);

    let dir = tempfile::tempdir().expect("tmp");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sqlite: Arc<dyn Backend> =
        Arc::new(SqliteBackend::open(&dir.path().join("bench.db"), clock.clone()).expect("sqlite"));
    let counting = Arc::new(Counting::new(sqlite));
    let store = Store::new(counting.clone(), clock.clone());
    let vars = [
        ("HOURBRIDGE_HARVEST_API_URL", sb.harvest_api_url()),
        ("HOURBRIDGE_HARVEST_ID_URL", sb.harvest_id_url()),
    ];
    let env = ProviderEnv {
        lookup: Arc::new(move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())),
        http: HttpConfig::default(),
        budget: Arc::new(Unlimited),
        cache: Arc::new(hourbridge_provider_api::NoCache),
    };
    let engine = support::engine(
        store.clone(),
        hourbridge_provider_registry::builtin(&env).expect("registry"),
        clock,
    );
    let ws = "bench";
    let olga = RecordId::parse("olga").unwrap();
    engine
        .install(
            ws,
            &olga,
            "harvest",
            "bench",
            SecretValue::new("bench-secret"),
        )
        .await
        .expect("install");
    let url = engine
        .authorize(ws, &olga, "harvest")
        .await
        .expect("authorize");
    let q = hourbridge_sandbox::consent(&url).await.expect("consent");
    engine
        .complete_authorization("harvest", &q.code, &q.state)
        .await
        .expect("callback");
    store
        .insert(
            ws,
            &member(
                RecordId::parse("ada").unwrap(),
                "Ada".into(),
                "ada@acme.test".into(),
            ),
        )
        .await
        .unwrap();
    counting.take();

    // The floor: the same pages fetched through the same adapter and session, stored nowhere.
    let window = hourbridge_provider_api::DateWindow {
        from: today - chrono::Duration::days(365),
        to: today + chrono::Duration::days(1),
    };
    let fetch_only = || async {
        let session = engine.session(ws, "harvest").await.expect("session");
        let source = engine.providers.get("harvest").expect("harvest").clone();
        let started = Instant::now();
        let (mut page, mut seen) = (None, 0usize);
        loop {
            let got = source
                .work_logs()
                .expect("work logs")
                .list_work_logs(&session, &remote.to_string(), window, page)
                .await
                .expect("page");
            seen += got.items.len();
            match got.next {
                Some(n) => page = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, n);
        started.elapsed()
    };
    hv.set_latency(Duration::from_millis(latency_ms));
    // Warm-up (connections, allocator), not counted.
    fetch_only().await;
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "harvest_pull: {n} entries, {} pages of 2000, sandbox latency {latency_ms} ms per request, {rounds} rounds",
        n.div_ceil(2000)
    );
    // Each round links a host project of its own to the same remote project, so each round's
    // first sync writes all N entries anew (the store grows by N per round).
    let (mut first_ratios, mut unchanged_ratios) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let project = local_project(
            RecordId::parse(format!("fleet-{round}")).unwrap(),
            format!("Fleet {round}"),
        );
        store.insert(ws, &project).await.unwrap();
        store
            .insert(
                ws,
                &project_link(
                    project.id.clone(),
                    ProviderId::parse("harvest").unwrap(),
                    vec![remote.to_string()],
                    Some(today - chrono::Duration::days(365)),
                    true,
                ),
            )
            .await
            .unwrap();
        counting.take();
        let before_first = fetch_only().await;
        let (first, first_peak, c1) = timed_run(&engine, ws, &project.id).await;
        let w1 = counting.take();
        let between = fetch_only().await;
        let (second, second_peak, c2) = timed_run(&engine, ws, &project.id).await;
        let w2 = counting.take();
        let after_second = fetch_only().await;
        let mean = |a: Duration, b: Duration| (a + b) / 2;
        let (fetch_first, fetch_second) =
            (mean(before_first, between), mean(between, after_second));
        assert_eq!(c1.created, n as u64);
        assert_eq!(
            (c2.created, c2.updated, c2.deleted, c2.unchanged),
            (0, 0, 0, n as u64)
        );
        let (r1, r2) = (
            first.as_secs_f64() / fetch_first.as_secs_f64(),
            second.as_secs_f64() / fetch_second.as_secs_f64(),
        );
        first_ratios.push(r1);
        unchanged_ratios.push(r2);
        println!("  round {round}:");
        println!(
            "    first sync:     {:>8.0} entries/s ({:.2} s), peak RSS growth {} KiB, writes {:?}",
            rate(first),
            first.as_secs_f64(),
            first_peak,
            w1
        );
        println!(
            "    unchanged sync: {:>8.0} entries/s ({:.2} s), peak RSS growth {} KiB, writes {:?}",
            rate(second),
            second.as_secs_f64(),
            second_peak,
            w2
        );
        println!(
            "    fetch only (before, between, after the syncs): {:.3} s, {:.3} s, {:.3} s ({:.0} entries/s at best)",
            before_first.as_secs_f64(),
            between.as_secs_f64(),
            after_second.as_secs_f64(),
            rate(before_first.min(between).min(after_second)),
        );
        println!(
            "    sync/fetch time ratio (sync over the mean of the fetches around it): first {r1:.3}, unchanged {r2:.3}"
        );
        println!(
            "    work-log writes of the unchanged re-sync: {}",
            w2.get("work_log").copied().unwrap_or(0)
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "  median sync/fetch time ratio over {rounds} rounds: first {:.3}, unchanged {:.3}",
        median(&mut first_ratios),
        median(&mut unchanged_ratios)
    );
    sb.stop().await;
}

//! Triggers coalesce: a burst of "Synchronize now" while a run waits is that one run, and a
//! burst while it runs queues at most one follow-up.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};

use crate::worklog_sync::{connect, hv_entry, link, logs, person, project, wait_run, world};

#[tokio::test]
async fn fifty_concurrent_sync_now_calls_run_once_plus_at_most_one_follow_up() {
    let w = world().await;
    let hv = w.sb.harvest();
    let ada = hv.add_user("Ada", "Admin", "ada@acme.test");
    let fleet = hv.add_project("Fleet Portal", "Northwind", true);
    for d in 1..=30 {
        hv.add_time_entry(hv_entry(fleet, ada, d, 1.0));
    }
    connect(&w, "harvest", "hv-client", "hv-secret").await;
    person(&w, "Ada Admin", "ada@acme.test").await;
    let pid = project(&w, "Bridge").await;
    link(&w, &pid, "harvest", &[fleet.to_string()], false, false).await;
    // Each provider request takes half a second, so a run outlasts the burst of triggers: the
    // burst lands while the first run is queued or running, as a user's clicks would.
    hv.set_latency(std::time::Duration::from_millis(500));

    let calls = (0..50).map(|_| {
        w.s.call(
            Some(&w.owner),
            Method::POST,
            "/v1/connections/harvest/sync",
            None,
        )
    });
    let answers = futures::future::join_all(calls).await;
    let mut ids = BTreeSet::new();
    for (st, r) in &answers {
        assert_eq!(*st, StatusCode::ACCEPTED, "{r}");
        ids.insert(r["run_id"].as_str().unwrap().to_owned());
    }
    assert!(
        (1..=2).contains(&ids.len()),
        "50 triggers made {} runs: {ids:?}",
        ids.len()
    );
    for id in &ids {
        assert_eq!(wait_run(&w, id).await["state"], "succeeded");
    }
    assert_eq!(
        logs(&w, &pid).await.len(),
        30,
        "exactly the provider's data"
    );

    // Once nothing is queued, a new trigger queues a new run.
    let (_, r) =
        w.s.call(
            Some(&w.owner),
            Method::POST,
            "/v1/connections/harvest/sync",
            None,
        )
        .await;
    assert!(!ids.contains(r["run_id"].as_str().unwrap()));
    wait_run(&w, r["run_id"].as_str().unwrap()).await;
}

//! Preview is the sync with writes turned off: after a first sync, it reports exactly what a
//! refetch or a wipe would change, and writes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::worklog_sync::{World, connect, hv_entry, link, logs, person, project, wait_run, world};

async fn preview(w: &World, pid: &str, mode: &str) -> Value {
    let (st, p) =
        w.s.call(
            Some(&w.owner),
            Method::POST,
            &format!("/v1/projects/{pid}/integrations/harvest/reset-and-sync"),
            Some(json!({"mode": mode, "preview": true})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    p
}

fn counts(p: &Value) -> [u64; 4] {
    ["created", "updated", "deleted", "unchanged"].map(|k| p[k].as_u64().unwrap_or(u64::MAX))
}

#[tokio::test]
async fn preview_after_a_sync_reports_exactly_the_pending_deletion_and_edit() {
    let w = world().await;
    let hv = w.sb.harvest();
    let ada_r = hv.add_user("Ada", "Admin", "ada@acme.test");
    let fleet = hv.add_project("Fleet Portal", "Northwind", true);
    let ids: Vec<u64> = (1..=4)
        .map(|d| hv.add_time_entry(hv_entry(fleet, ada_r, d, 1.0)))
        .collect();
    connect(&w, "harvest", "hv-client", "hv-secret").await;
    person(&w, "Ada Admin", "ada@acme.test").await;
    let pid = project(&w, "Bridge").await;
    link(&w, &pid, "harvest", &[fleet.to_string()], false, false).await;
    let (st, r) =
        w.s.call(
            Some(&w.owner),
            Method::POST,
            &format!("/v1/projects/{pid}/integrations/harvest/reset-and-sync"),
            Some(json!({"mode": "refetch"})),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{r}");
    let run = wait_run(&w, r["run_id"].as_str().unwrap()).await;
    assert_eq!(run["state"], "succeeded", "{run}");
    let before = logs(&w, &pid).await;
    assert_eq!(before.len(), 4);

    // Nothing pending: a refetch preview changes nothing.
    assert_eq!(counts(&preview(&w, &pid, "refetch").await), [0, 0, 0, 4]);

    assert!(hv.delete_time_entry(ids[0]));
    assert!(hv.update_time_entry(ids[1], Some(2.5), None, None, None));
    let p = preview(&w, &pid, "refetch").await;
    assert_eq!(
        counts(&p),
        [0, 1, 1, 2],
        "one deleted, one updated, none created: {p}"
    );
    // A wipe would delete the four synced logs and create the three that remain.
    assert_eq!(counts(&preview(&w, &pid, "wipe").await), [3, 0, 4, 0]);
    assert_eq!(logs(&w, &pid).await, before, "a preview writes nothing");
}

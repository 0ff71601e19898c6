//! The workspace endpoints (`GET`/`PATCH /v1/workspace`) and the user-facing status labels of
//! connections, in the workspace's time zone.

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::worklog_sync::{connect, wait_run, world};

#[tokio::test]
async fn the_workspace_is_read_by_anyone_and_edited_by_the_owner_only() {
    let w = world().await;
    let member = w.s.token("acme", "mia", "member");
    let admin = w.s.token("acme", "ada", "admin");
    let (st, ws) =
        w.s.call(Some(&member), Method::GET, "/v1/workspace", None)
            .await;
    assert_eq!(st, StatusCode::OK, "{ws}");
    assert_eq!(
        ws,
        json!({"id": "acme", "name": "Acme", "time_zone": "UTC", "add_ons": []})
    );
    let patch = json!({"name": "Acme AS", "time_zone": "Europe/Oslo"});
    let (st, _) =
        w.s.call(
            Some(&admin),
            Method::PATCH,
            "/v1/workspace",
            Some(patch.clone()),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, e) =
        w.s.call(
            Some(&w.owner),
            Method::PATCH,
            "/v1/workspace",
            Some(json!({"time_zone": "Mars/Olympus"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["error"]["code"], "invalid_time_zone", "{e}");
    let (st, ws) =
        w.s.call(Some(&w.owner), Method::PATCH, "/v1/workspace", Some(patch))
            .await;
    assert_eq!(st, StatusCode::OK, "{ws}");
    assert_eq!(ws["time_zone"], "Europe/Oslo");
    let (_, ws) =
        w.s.call(Some(&member), Method::GET, "/v1/workspace", None)
            .await;
    assert_eq!(ws["name"], "Acme AS");
}

#[tokio::test]
async fn connection_status_labels_are_in_the_workspace_time_zone() {
    let w = world().await;
    let (st, _) =
        w.s.call(
            Some(&w.owner),
            Method::PATCH,
            "/v1/workspace",
            Some(json!({"time_zone": "Asia/Kolkata"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    connect(&w, "harvest", "hv-client", "hv-secret").await;
    let (_, c) =
        w.s.call(Some(&w.owner), Method::GET, "/v1/connections/harvest", None)
            .await;
    assert_eq!(c["status"]["label"], "Not synchronized yet", "{c}");
    let (st, r) =
        w.s.call(
            Some(&w.owner),
            Method::POST,
            "/v1/connections/harvest/sync",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{r}");
    let run = wait_run(&w, r["run_id"].as_str().unwrap()).await;
    let (_, list) =
        w.s.call(Some(&w.owner), Method::GET, "/v1/connections", None)
            .await;
    let c = &list["items"][0];
    assert_eq!(c["status"]["run_id"], run["id"], "{c}");
    let at: DateTime<Utc> = c["status"]["at"].as_str().unwrap().parse().unwrap();
    // Kolkata is UTC+05:30 all year.
    let local = (at + chrono::Duration::minutes(330)).format("%Y-%m-%d %H:%M");
    let expected = match c["status"]["kind"].as_str().unwrap() {
        "succeeded" => format!("Synchronized successfully at {local}"),
        _ => format!("There was an error at {local}"),
    };
    assert_eq!(c["status"]["label"], expected, "{c}");
}

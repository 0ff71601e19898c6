//! The benchmark's scale: 100,000 Harvest time entries generated quickly and read back with
//! `per_page=2000` in exactly 50 pages.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use common::*;
use hourbridge_sandbox::{HARVEST_DEMO_CLIENT_ID, HARVEST_DEMO_CLIENT_SECRET, Sandbox, Seed};
use reqwest::StatusCode;
use serde::Deserialize;

#[derive(Deserialize)]
struct Page {
    time_entries: Vec<Id>,
    total_entries: u64,
    total_pages: u64,
    links: Links,
}

#[derive(Deserialize)]
struct Id {
    id: u64,
}

#[derive(Deserialize)]
struct Links {
    next: Option<String>,
}

#[tokio::test]
async fn hundred_thousand_entries_page_in_fifty_pages() {
    let sb = Sandbox::start(Seed::Empty).await.unwrap();
    let h = sb.harvest();
    h.register_client(HARVEST_DEMO_CLIENT_ID, HARVEST_DEMO_CLIENT_SECRET);
    let users: Vec<u64> = (0..20)
        .map(|i| h.add_user("Bench", &format!("User{i}"), &format!("bench{i}@acme.test")))
        .collect();
    let project = h.add_project("Benchmark", "Bench Client", true);
    let from = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();

    let started = Instant::now();
    let ids = h.bulk_time_entries(project, &users, 100_000, from, 365);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "bulk generation took {took:?}"
    );
    assert_eq!(ids.end - ids.start, 100_000);
    assert!(ids.start > u64::from(u32::MAX));
    assert_eq!(h.time_entry_count(), 100_000);

    let tokens = harvest_tokens(&sb).await;
    let mut next = Some(format!(
        "{}/time_entries?per_page=2000&project_id={project}",
        sb.harvest_api_url()
    ));
    let mut pages = 0;
    let mut seen = HashSet::with_capacity(100_000);
    while let Some(url) = next {
        let resp = harvest_get_url(&tokens.access, &url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let page: Page = resp.json().await.unwrap();
        assert_eq!((page.total_entries, page.total_pages), (100_000, 50));
        pages += 1;
        assert!(
            page.time_entries.len() == 2000,
            "page {pages} has {}",
            page.time_entries.len()
        );
        seen.extend(page.time_entries.iter().map(|e| e.id));
        next = page.links.next;
    }
    assert_eq!(pages, 50);
    assert_eq!(seen.len(), 100_000);
    assert!(seen.iter().all(|id| ids.contains(id)));
    sb.stop().await;
}

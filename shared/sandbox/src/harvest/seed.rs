//! The Harvest demo account. Deterministic apart from being anchored at today's UTC date, so
//! tests can rely on its shape.

use chrono::{DateTime, Days, NaiveDate, Utc};

use super::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, HarvestState, NewHarvestEntry};

const NOTES: [&str; 6] = [
    "Route optimisation endpoint",
    "Sprint planning",
    "Code review",
    "Login screen polish",
    "Release checklist",
    "Bug triage",
];

fn days_ago(today: NaiveDate, n: u64) -> NaiveDate {
    today - Days::new(n)
}

/// When a demo entry was logged: the evening of its day, but never in the future.
fn logged_at(day: NaiveDate, now: DateTime<Utc>) -> DateTime<Utc> {
    day.and_hms_opt(17, 0, 0)
        .map_or(now, |t| t.and_utc().min(now))
}

pub(super) fn demo(s: &mut HarvestState) {
    s.common.oauth.register(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET);
    let now = Utc::now();
    let today = now.date_naive();
    let joined = |n: u64| logged_at(days_ago(today, n), now);

    let ada = s.insert_user("Ada", "Admin", "ada@acme.test", joined(400));
    let bob = s.insert_user("Bob", "Builder", "Bob.Builder@Acme.test", joined(300));
    let cy = s.insert_user("Cy", "Contractor", "cy@acme.test", joined(200));
    let dee = s.insert_user("Dee", "Designer", "dee@elsewhere.test", joined(150));
    let eve = s.insert_user("Eve", "Engineer", "eve@acme.test", joined(100));
    for (id, zone, roles, access) in [
        (
            bob,
            "Eastern Time (US & Canada)",
            vec!["Delivery"],
            vec!["manager", "time_and_expenses_manager"],
        ),
        (cy, "London", vec![], vec!["member"]),
        (dee, "Stockholm", vec!["Design"], vec!["member"]),
        (eve, "Amsterdam", vec!["Engineering"], vec!["member"]),
    ] {
        if let Some(u) = s.users.get_mut(&id) {
            u.timezone = zone;
            u.roles = roles;
            u.access_roles = access;
        }
    }
    if let Some(cy) = s.users.get_mut(&cy) {
        cy.is_active = false;
        cy.is_contractor = true;
        cy.default_hourly_rate = None;
    }

    let fleet = s.insert_project("Fleet Portal", "Northwind Logistics", true, joined(120));
    let mobile = s.insert_project("Mobile App", "Globex", true, joined(60));
    let intranet = s.insert_project("Old Intranet", "Acme Internal", false, joined(500));
    for (id, starts, ends) in [
        (fleet, Some(days_ago(today, 120)), None),
        (
            mobile,
            Some(days_ago(today, 60)),
            Some(today + Days::new(90)),
        ),
        (
            intranet,
            Some(days_ago(today, 500)),
            Some(days_ago(today, 200)),
        ),
    ] {
        if let Some(p) = s.projects.get_mut(&id) {
            p.starts_on = starts;
            p.ends_on = ends;
        }
    }

    let tasks: Vec<u64> = s.tasks.keys().copied().collect();
    let people = [ada, bob, dee, eve];
    const HOURS: [f64; 10] = [0.5, 1.0, 1.25, 2.0, 2.5, 3.0, 3.75, 4.0, 6.0, 7.5];
    let mut locked = None;
    for i in 0..59u64 {
        // 17 and 45 are coprime, so the days cover the whole 45-day window.
        let day = days_ago(today, (i * 17 + 5) % 45);
        let entry = NewHarvestEntry {
            project_id: if i % 3 == 2 { mobile } else { fleet },
            user_id: people[(i % 4) as usize],
            spent_date: day,
            hours: HOURS[(i % 10) as usize],
            notes: (i % 6 != 5).then(|| NOTES[(i % 6) as usize].to_owned()),
            is_running: false,
        };
        let task = tasks[(i % 3) as usize % tasks.len()];
        let id = s.insert_entry(entry, task, logged_at(day, now));
        if locked.is_none() && day < days_ago(today, 30) {
            locked = Some(id);
        }
    }
    if let Some(e) = locked.and_then(|id| s.entry_mut(id)) {
        e.is_locked = true;
    }
    let started = now - chrono::Duration::minutes(30);
    let running = NewHarvestEntry {
        project_id: mobile,
        user_id: eve,
        spent_date: today,
        hours: 0.5,
        notes: Some("Push notifications".into()),
        is_running: true,
    };
    s.insert_entry(running, tasks[0], started);
}

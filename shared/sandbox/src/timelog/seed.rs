//! The TimeLog site's data (see [`crate::Seed`]). Both seeds have the departments, the
//! customer "Fjordkraft Digital AS", the sync user and the project "Intranet relaunch";
//! the demo adds people, projects, tasks, allocations and a few weeks of registrations.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Utc, Weekday};
use uuid::Uuid;

use super::{
    Action, Customer, Department, Employee, PASSWORD, Project, SYNC_INITIALS, TimelogState,
    USERNAME, WorkInput,
};

/// `EmployeeID` of the sync user.
pub(crate) const SYNC_ID: i32 = 52;
/// `ProjectID` of "Intranet relaunch" (both seeds).
pub(crate) const INTRANET: i32 = 612;

fn g(v: &str) -> Uuid {
    Uuid::parse_str(v).unwrap_or_else(|_| Uuid::new_v4())
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default()
}

fn midnight(date: NaiveDate) -> NaiveDateTime {
    date.and_hms_opt(0, 0, 0).unwrap_or_default()
}

/// Adds an active employee in Delivery without a password; answers its `EmployeeID`.
pub(crate) fn employee(
    s: &mut TimelogState,
    first: &str,
    last: &str,
    initials: &str,
    email: &str,
) -> i32 {
    let id = s.employees.keys().next_back().map_or(40, |k| k + 1).max(60);
    s.employees.insert(
        id,
        Employee {
            id,
            user_id: id + 100,
            guid: Uuid::new_v4(),
            user_guid: Uuid::new_v4(),
            initials: initials.to_owned(),
            username: email.to_lowercase(),
            first_name: first.to_owned(),
            last_name: last.to_owned(),
            email: email.to_owned(),
            title: String::new(),
            department: 20,
            hired: s.now().date_naive(),
            terminated: None,
            employee_no: format!("{}", 1000 + id),
            password: None,
        },
    );
    id
}

#[allow(clippy::too_many_arguments)]
fn person(
    s: &mut TimelogState,
    id: i32,
    guid: &str,
    first: &str,
    last: &str,
    initials: &str,
    username: &str,
    email: &str,
    title: &str,
    department: i32,
    hired: NaiveDate,
    terminated: Option<NaiveDate>,
) {
    s.employees.insert(
        id,
        Employee {
            id,
            user_id: id + 5,
            guid: g(guid),
            user_guid: Uuid::new_v4(),
            initials: initials.into(),
            username: username.into(),
            first_name: first.into(),
            last_name: last.into(),
            email: email.into(),
            title: title.into(),
            department,
            hired,
            terminated,
            employee_no: format!("{}", 1000 + id),
            password: None,
        },
    );
}

/// What both seeds share.
pub(crate) fn base(s: &mut TimelogState) {
    s.departments.insert(
        10,
        Department {
            id: 10,
            guid: g("3f1a2b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b"),
            name: "Management".into(),
            no: "10".into(),
        },
    );
    s.departments.insert(
        20,
        Department {
            id: 20,
            guid: g("0d2c7e1f-8a44-4b39-a1e6-7c5d3f2b9a01"),
            name: "Delivery".into(),
            no: "20".into(),
        },
    );
    s.customers.insert(
        301,
        Customer {
            id: 301,
            guid: g("5b0f2a74-3c61-4a0e-9d8e-2f7c1a9b6e10"),
            name: "Fjordkraft Digital AS".into(),
            no: "10027".into(),
        },
    );
    person(
        s,
        SYNC_ID,
        "4e6a8c0d-2f1b-4d3e-9a5c-7b8d0e1f2a3c",
        "Hourbridge",
        "Sync",
        SYNC_INITIALS,
        USERNAME,
        "integrations@acme.test",
        "System administrator",
        10,
        d(2024, 1, 2),
        None,
    );
    if let Some(e) = s.employees.get_mut(&SYNC_ID) {
        e.password = Some(PASSWORD.into());
    }
    let today = s.now().date_naive();
    s.projects.insert(
        INTRANET,
        Project {
            id: INTRANET,
            guid: g("9e3b6d20-14f5-4c7a-8b1e-3a2f0c9d8e71"),
            name: "Intranet relaunch".into(),
            no: "P26.0042".into(),
            customer: 301,
            active: true,
            start: today - Duration::days(120),
            end: today + Duration::days(240),
            manager: SYNC_ID,
            department: 20,
            type_name: "Time and material".into(),
            category_name: "Customer projects".into(),
            created_at: midnight(today - Duration::days(125)),
        },
    );
}

/// The demo site: Bob Builder and Eve Engineer (e-mails of host people, mixed case), Jonas
/// Berg, and Cy Contractor (terminated); "Intranet relaunch" with Content > Copywriting and
/// Workshop, "Support retainer", and the inactive "Website 2025"; registrations over the
/// last three weeks, one of them deleted again, one week of Bob's closed and one approved.
pub(crate) fn demo(s: &mut TimelogState) {
    let today = s.now().date_naive();
    person(
        s,
        47,
        "c4a1e9b2-6f37-4d08-b5a2-91e0d7c3f6a8",
        "Bob",
        "Builder",
        "BBU",
        "bob.builder",
        "Bob.Builder@Acme.test",
        "Developer",
        20,
        d(2023, 3, 1),
        None,
    );
    person(
        s,
        48,
        "a2b4c6d8-e0f2-4a1b-9c3d-5e7f9a1b3c5d",
        "Eve",
        "Engineer",
        "EEN",
        "eve@acme.test",
        "EVE@acme.test",
        "Engineer",
        20,
        d(2024, 8, 15),
        None,
    );
    person(
        s,
        49,
        "b7c9d1e3-f5a7-4b9c-8d0e-2f4a6b8c0d1e",
        "Jonas",
        "Berg",
        "JBE",
        "jonas.berg@nordlys.example",
        "Jonas.Berg@Nordlys.example",
        "Copywriter",
        20,
        d(2026, 1, 12),
        None,
    );
    person(
        s,
        12,
        "d1e3f5a7-b9c1-4d3e-8f5a-7b9c1d3e5f7a",
        "Cy",
        "Contractor",
        "CCO",
        "CCO",
        "cy@contractors.example",
        "Contractor",
        20,
        d(2019, 8, 1),
        Some(today - Duration::days(60)),
    );
    s.customers.insert(
        302,
        Customer {
            id: 302,
            guid: g("6c1e3a85-4d72-4b1f-8e9f-3a8d2b0c7f21"),
            name: "Acme Consulting".into(),
            no: "10001".into(),
        },
    );
    let project =
        |id: i32, guid: &str, name: &str, no: &str, customer: i32, active: bool| Project {
            id,
            guid: g(guid),
            name: name.into(),
            no: no.into(),
            customer,
            active,
            start: today - Duration::days(300),
            end: today + Duration::days(if active { 200 } else { -30 }),
            manager: SYNC_ID,
            department: 20,
            type_name: "Time and material".into(),
            category_name: "Customer projects".into(),
            created_at: midnight(today - Duration::days(310)),
        };
    s.projects.insert(
        640,
        project(
            640,
            "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
            "Support retainer",
            "P26.0051",
            302,
            true,
        ),
    );
    s.projects.insert(
        590,
        project(
            590,
            "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a",
            "Website 2025",
            "P25.0107",
            301,
            false,
        ),
    );
    let created = midnight(today - Duration::days(100));
    let content = add_task(
        s,
        "7a1c3e5f-9b2d-4f6a-8c0e-1d3f5a7b9c2e",
        INTRANET,
        None,
        "Content",
        "0002",
        1,
        created,
    );
    let copy = add_task(
        s,
        "2f8d4c61-7b09-4e3a-a5c2-6d1e8f0b3a94",
        INTRANET,
        Some(content),
        "Copywriting",
        "0004",
        0,
        created,
    );
    let workshop = add_task(
        s,
        "4b6d8f0a-2c4e-4a6b-8c0d-2e4f6a8b0c1d",
        INTRANET,
        None,
        "Workshop",
        "0007",
        1,
        created,
    );
    let support = add_task(
        s,
        "5c7e9a1b-3d5f-4b7c-9d1e-3f5a7b9c1d2e",
        640,
        None,
        "Monthly support",
        "0001",
        1,
        created,
    );
    let launch = add_task(
        s,
        "6d8f0a2c-4e6a-4c8d-8e2f-4a6b8c0d2e3f",
        590,
        None,
        "Launch",
        "0001",
        3,
        created,
    );
    if let Some(t) = s.tasks.get_mut(&content) {
        t.budget_hours = 120.0;
    }
    if let Some(t) = s.tasks.get_mut(&copy) {
        t.budget_hours = 24.0;
    }
    for (emp, task) in [
        (47, copy),
        (47, workshop),
        (48, workshop),
        (48, support),
        (49, copy),
        (12, launch),
    ] {
        s.add_allocation(emp, task, 0.0);
    }

    // Registrations on the weekdays of the last three weeks, logged when they were "made"
    // (the evening of their day), so the change feed has history.
    let mut made = Vec::new();
    for back in (1..=21).rev() {
        let date = today - Duration::days(back);
        if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            continue;
        }
        let plan: [(&str, i32, i64, &str); 2] = [
            (
                "BBU",
                if back % 2 == 0 { copy } else { workshop },
                150,
                "Landing page copy",
            ),
            (
                "EEN",
                if back % 3 == 0 { workshop } else { support },
                90,
                "Support tickets",
            ),
        ];
        for (initials, task, minutes, note) in plan {
            let input = WorkInput {
                task: Some(task),
                employee: Some(initials.into()),
                seconds: Some(minutes * 60),
                start: date.and_hms_opt(9, 0, 0),
                description: Some(note.into()),
                ..WorkInput::default()
            };
            let by = s.employee_by_login(initials).map_or(SYNC_ID, |e| e.id);
            if let Ok(u) = s.insert_work(&input, by, false) {
                made.push((u.guid, date));
            }
        }
    }
    // Re-date the log: each Created row at 17:00 of its registration's day, one edit and
    // one delete afterwards.
    let stamp = |date: NaiveDate, h: u32| date.and_hms_opt(h, 0, 0).unwrap_or_default().and_utc();
    for (c, (guid, date)) in s.changes.iter_mut().zip(made.iter()) {
        debug_assert_eq!(c.unit.guid, *guid);
        c.at = stamp(*date, 17);
        c.unit.created_at = c.at.naive_utc();
        c.unit.modified_at = c.at.naive_utc();
    }
    for (guid, date) in &made {
        if let Some(u) = s.work.get_mut(guid) {
            u.created_at = stamp(*date, 17).naive_utc();
            u.modified_at = u.created_at;
        }
    }
    let last_stamp = s
        .changes
        .iter()
        .map(|c| c.at)
        .max()
        .unwrap_or_else(Utc::now);
    if let Some((guid, _)) = made.get(made.len().saturating_sub(4)).copied()
        && let Some(u) = s.work.get_mut(&guid)
    {
        u.seconds += 1800;
        u.billable_seconds = u.seconds;
        u.description = "Landing page copy, second round".into();
        u.version += 1;
        u.modified_at = (last_stamp + Duration::minutes(30)).naive_utc();
        let u = u.clone();
        s.log_at(Action::Updated, &u, last_stamp + Duration::minutes(30));
    }
    if let Some((guid, _)) = made.get(made.len().saturating_sub(3)).copied()
        && let Some(u) = s.work.remove(&guid)
    {
        s.deleted.insert(guid);
        s.log_at(Action::Deleted, &u, last_stamp + Duration::minutes(45));
    }
    // The week of Bob's first registration is closed, and his earliest open one approved.
    if let Some((_, date)) = made.first().copied() {
        let w = date.iso_week();
        s.closed_weeks.insert((47, w.year(), w.week()));
        for u in s.work.values_mut() {
            if u.employee == 47 && u.date().iso_week() == w {
                u.approved = u.approved.max(10);
            }
        }
    }
    if let Some(u) = s
        .work
        .values_mut()
        .filter(|u| u.employee == 47 && u.approved == 0)
        .min_by_key(|u| u.start)
    {
        u.approved = 20;
    }
}

#[allow(clippy::too_many_arguments)]
fn add_task(
    s: &mut TimelogState,
    guid: &str,
    project: i32,
    parent: Option<i32>,
    name: &str,
    no: &str,
    status: i32,
    at: NaiveDateTime,
) -> i32 {
    let id = s.add_task(Some(g(guid)), project, parent, name, Some(no), SYNC_ID, at);
    if let Some(t) = s.tasks.get_mut(&id) {
        t.status = status;
    }
    id
}

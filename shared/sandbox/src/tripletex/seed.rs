//! The Tripletex demo data (see [`crate::Seed::Demo`]): company Fjordtech AS.

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::{
    Change, DEMO_CONSUMER_TOKEN, DEMO_EMPLOYEE_ID, DEMO_EMPLOYEE_TOKEN,
    DEMO_LIMITED_EMPLOYEE_TOKEN, Employee, EmployeeToken, TripletexState, from_oslo,
};

fn at(date: &str, time: &str) -> DateTime<Utc> {
    let t = chrono::NaiveDateTime::parse_from_str(&format!("{date}T{time}"), "%Y-%m-%dT%H:%M:%S")
        .unwrap_or_default();
    from_oslo(t)
}

fn day(v: &str) -> NaiveDate {
    NaiveDate::parse_from_str(v, "%Y-%m-%d").unwrap_or_default()
}

/// Pretends `n` updates happened at `when` (version bumps and `changes` rows).
fn updated(changes: &mut Vec<Change>, version: &mut u32, n: u32, when: DateTime<Utc>) {
    for i in 0..n {
        *version += 1;
        changes.push(Change {
            employee: 1_170_460,
            at: when + Duration::minutes(i64::from(i)),
            kind: "UPDATE",
        });
    }
}

pub(crate) fn demo(s: &mut TripletexState) {
    s.consumers.insert(DEMO_CONSUMER_TOKEN.to_owned(), 3301);
    s.employees.insert(
        1_170_460,
        Employee {
            id: 1_170_460,
            first_name: "Ole".into(),
            last_name: "Hansen".into(),
            email: "Ole.Hansen@Fjordtech.example".into(),
            number: "2".into(),
        },
    );
    s.employees.insert(
        1_170_471,
        Employee {
            id: 1_170_471,
            first_name: "Sigrid".into(),
            last_name: "Berg".into(),
            email: "sigrid@fjordtech.example".into(),
            number: "3".into(),
        },
    );
    s.employee_tokens.insert(
        DEMO_EMPLOYEE_TOKEN.to_owned(),
        EmployeeToken {
            id: DEMO_EMPLOYEE_ID,
            employee: DEMO_EMPLOYEE_ID,
            entitled: true,
        },
    );
    s.employee_tokens.insert(
        DEMO_LIMITED_EMPLOYEE_TOKEN.to_owned(),
        EmployeeToken {
            id: 1_170_471,
            employee: 1_170_471,
            entitled: false,
        },
    );

    // Customers: two "Nordlys Consulting AS" with different organisation numbers, an inactive
    // one, one without an organisation number.
    let fjordkraft = s.insert_customer(
        "Fjordkraft Digital AS",
        "998877665",
        at("2023-09-14", "10:02:33"),
    );
    let hansen = s.insert_customer(
        "Hansen Rørlegger ENK",
        "912345678",
        at("2024-03-01", "09:00:00"),
    );
    let nordlys_a = s.insert_customer(
        "Nordlys Consulting AS",
        "911111118",
        at("2024-05-02", "12:00:00"),
    );
    let nordlys_b = s.insert_customer(
        "Nordlys Consulting AS",
        "922222226",
        at("2025-02-11", "08:05:19"),
    );
    let bakeri = s.insert_customer(
        "Bergen Bakeri AS",
        "933333334",
        at("2022-11-20", "15:30:00"),
    );
    let privat = s.insert_customer("Ola Privat", "", at("2025-06-01", "10:00:00"));
    for (id, n, when) in [
        (fjordkraft, 12, at("2026-05-19", "08:41:17")),
        (nordlys_a, 2, at("2025-01-10", "10:00:00")),
        (bakeri, 3, at("2024-12-31", "14:00:00")),
    ] {
        let c = s.customers.get_mut(&id).expect("seeded");
        updated(&mut c.changes, &mut c.version, n, when);
    }
    if let Some(c) = s.customers.get_mut(&fjordkraft) {
        c.email = "post@fjordkraft-digital.example".into();
    }
    if let Some(c) = s.customers.get_mut(&bakeri) {
        c.is_inactive = true;
    }
    if let Some(c) = s.customers.get_mut(&privat) {
        c.is_private = true;
        c.account_manager = None;
    }
    let _ = hansen;

    // Projects three levels deep, a sub-project with another customer than its main project,
    // a closed internal project and one closed recently.
    let mut add = |name: &str, number: &str, customer, main, when: DateTime<Utc>, start: &str| {
        let id = s
            .insert_project(name, Some(number), customer, main, when)
            .expect("seeded parents exist");
        if let Some(p) = s.projects.get_mut(&id) {
            p.start_date = day(start);
        }
        id
    };
    let intranet = add(
        "Fjordkraft intranett",
        "1042",
        Some(fjordkraft),
        None,
        at("2026-01-05", "09:14:22"),
        "2026-01-05",
    );
    let search = add(
        "Fjordkraft intranett - tillegg søk",
        "1043",
        Some(fjordkraft),
        Some(intranet),
        at("2026-03-02", "08:30:00"),
        "2026-03-02",
    );
    let indexing = add(
        "Søk - indeksering",
        "1043-1",
        Some(fjordkraft),
        Some(search),
        at("2026-03-09", "08:30:00"),
        "2026-03-09",
    );
    let ops = add(
        "Fjordkraft intranett - drift",
        "1044",
        Some(nordlys_a),
        Some(intranet),
        at("2026-02-01", "08:00:00"),
        "2026-02-01",
    );
    let shop = add(
        "Nordlys nettbutikk",
        "2001",
        Some(nordlys_b),
        None,
        at("2025-03-01", "08:00:00"),
        "2025-03-01",
    );
    let internal = add(
        "Intern utvikling",
        "900",
        None,
        None,
        at("2024-01-02", "07:55:10"),
        "2024-01-01",
    );
    let website = add(
        "Hansen nettside",
        "950",
        Some(hansen),
        None,
        at("2025-04-01", "08:00:00"),
        "2025-04-01",
    );
    let now = Utc::now();
    for (id, n, when) in [
        (intranet, 7, at("2026-05-11", "14:02:51")),
        (search, 2, at("2026-03-20", "11:47:09")),
        (internal, 15, at("2026-01-08", "16:20:44")),
        (website, 1, now - Duration::days(20)),
    ] {
        let p = s.projects.get_mut(&id).expect("seeded");
        updated(&mut p.changes, &mut p.version, n, when);
    }
    if let Some(p) = s.projects.get_mut(&search) {
        p.end_date = Some(day("2026-06-30"));
    }
    if let Some(p) = s.projects.get_mut(&internal) {
        p.is_closed = true;
        p.closed_at = Some(at("2026-01-08", "16:20:44"));
        p.end_date = Some(day("2025-12-31"));
        p.manager = DEMO_EMPLOYEE_ID;
    }
    if let Some(p) = s.projects.get_mut(&website) {
        p.is_closed = true;
        p.closed_at = Some(now - Duration::days(20));
    }
    if let Some(p) = s.projects.get_mut(&ops) {
        p.manager = 1_170_460;
        p.description = "Drift og forvaltning".into();
    }
    let _ = (indexing, shop);
}

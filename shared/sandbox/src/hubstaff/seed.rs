//! The Hubstaff demo organization. Deterministic apart from being anchored at today's UTC date.

use chrono::{DateTime, Days, NaiveDate, Utc};

use super::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, HubstaffState};

/// Task ids on the demo projects (Hubstaff ids, not modelled as objects here).
const SUPPORT_TASKS: [u64; 2] = [90_300_001, 90_300_002];
const RESEARCH_TASK: u64 = 90_300_003;

/// When a day's activity was uploaded: that evening, but never in the future.
fn uploaded_at(day: NaiveDate, now: DateTime<Utc>) -> DateTime<Utc> {
    day.and_hms_opt(18, 0, 0)
        .map_or(now, |t| t.and_utc().min(now))
}

pub(super) fn demo(s: &mut HubstaffState) {
    s.common.oauth.register(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET);
    let now = Utc::now();
    let today = now.date_naive();
    let ago = |n: u64| uploaded_at(today - Days::new(n), now);

    let ada = s.insert_user("Ada Admin", Some("ada@acme.test"), ago(500));
    let bob = s.insert_user("Bob Builder", Some(" BOB.builder@acme.test "), ago(400));
    let finn = s.insert_user("Finn Fieldworker", None, ago(300));
    let gus = s.insert_user("Gus Gone", Some("gus@acme.test"), ago(250));
    for (id, zone) in [
        (bob, "America/New_York"),
        (finn, "Europe/Helsinki"),
        (gus, "Europe/London"),
    ] {
        if let Some(u) = s.users.get_mut(&id) {
            u.time_zone = zone;
        }
    }
    s.remove_member(gus, ago(60));

    let support = s.insert_project("Support Desk", "active", ago(450));
    let research = s.insert_project("Research", "active", ago(200));
    s.insert_project("Legacy", "archived", ago(900));

    // Oldest day first, so row ids grow with the date like uploads do.
    for back in (0..40u64).rev() {
        let day = today - Days::new(back);
        for (ui, user) in [ada, bob, finn].into_iter().enumerate() {
            for (pi, project) in [support, research].into_iter().enumerate() {
                let k = back * 7 + ui as u64 * 3 + pi as u64 * 5;
                if k.is_multiple_of(4) {
                    continue;
                }
                let task = (back + ui as u64).is_multiple_of(2).then(|| {
                    if project == support {
                        SUPPORT_TASKS[(back % 2) as usize]
                    } else {
                        RESEARCH_TASK
                    }
                });
                let tracked = 1800 + ((k * 13) % 20) as u32 * 900;
                s.set_daily((user, project, task, day), tracked, uploaded_at(day, now));
            }
        }
    }
}

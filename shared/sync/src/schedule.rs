//! When connections are due, and the tick that fans due ones out as jobs.
//!
//! Each scheduled connection has one entry in the global scope, indexed by its next run time
//! (index 1, partition `due`). A tick reads the index only up to "now", so its cost is
//! proportional to the connections that are due, not to all connections. Each connection's
//! time of day is derived from a hash of its id, which spreads 24-hour runs over the day.
//! Providers whose schedule is [`Schedule::DailyAtLocalTime`] run instead at the connection's
//! `sync_at` setting (`HH:MM`, quarter hours) in the workspace's IANA time zone, DST-correct.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, LocalResult, NaiveTime, TimeZone, Utc};
use hourbridge_domain::{Connection, Workspace, parse_time_zone};
use hourbridge_provider_api::Schedule;
use hourbridge_store::{Entity, EntityKind, GLOBAL_SCOPE, IndexKey, IndexSel, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Engine, RunScope, SyncError};

const DUE: &str = "due";

/// One connection's place in the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleEntry {
    /// Workspace.
    pub workspace_id: String,
    /// Provider.
    pub provider: String,
    /// When it is due.
    pub next_run_at: DateTime<Utc>,
}

fn sort_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Entity for ScheduleEntry {
    const KIND: EntityKind = EntityKind("schedule");
    fn id(&self) -> String {
        format!("{}.{}", self.workspace_id, self.provider)
    }
    fn index1(&self) -> Option<IndexKey> {
        Some(IndexKey {
            partition: DUE.into(),
            sort: sort_time(self.next_run_at),
        })
    }
}

/// The interval of a provider's schedule (`None`: not scheduled).
pub fn interval(schedule: Schedule) -> Option<Duration> {
    match schedule {
        Schedule::Every(d) => Duration::from_std(d).ok(),
        Schedule::DailyAtLocalTime => Some(Duration::days(1)),
        Schedule::OnDemand => None,
    }
}

/// The first run after `now`: the connection's fixed offset within the interval.
pub fn first_run(ws: &str, provider: &str, every: Duration, now: DateTime<Utc>) -> DateTime<Utc> {
    let secs = every.num_seconds().max(1);
    let digest = Sha256::digest(format!("{ws}/{provider}").as_bytes());
    let offset = u64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8])) % secs as u64;
    let start = now.timestamp() - now.timestamp().rem_euclid(secs) + offset as i64;
    let mut t = Utc.timestamp_opt(start, 0).single().unwrap_or(now);
    while t <= now {
        t += every;
    }
    t
}

/// The connection setting holding the local time of day of a daily schedule.
pub const SYNC_AT: &str = "sync_at";

/// Parses a `sync_at` value: `HH:MM`, 24-hour clock, minutes 00, 15, 30 or 45 only.
pub fn parse_sync_at(s: &str) -> Option<NaiveTime> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if m % 15 != 0 {
        return None;
    }
    NaiveTime::from_hms_opt(h, m, 0)
}

/// The next instant strictly after `now` at which the local clock of `tz` shows `at`.
///
/// DST-correct: a local time that occurs twice (clocks set back) runs once, at its first
/// occurrence; one that does not occur (clocks set forward) runs once that day, at the first
/// valid instant after the gap.
pub fn next_daily<Z: TimeZone>(at: NaiveTime, tz: &Z, now: DateTime<Utc>) -> DateTime<Utc> {
    let mut day = now.with_timezone(tz).date_naive() - Duration::days(1);
    for _ in 0..4 {
        let local = day.and_time(at);
        let t = match tz.from_local_datetime(&local) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t),
            LocalResult::None => (1..=240).find_map(|m| {
                tz.from_local_datetime(&(local + Duration::minutes(m)))
                    .earliest()
            }),
        };
        if let Some(t) = t.map(|t| t.with_timezone(&Utc))
            && t > now
        {
            return t;
        }
        day += Duration::days(1);
    }
    now + Duration::days(1)
}

/// The next run of a daily-at-local-time connection after `now`, from its `sync_at` setting
/// and its workspace's time zone (`None` when either is missing or invalid).
async fn next_local_run(
    engine: &Engine,
    ws: &str,
    provider: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, SyncError> {
    let Some((conn, _)) = engine.store.get::<Connection>(ws, provider).await? else {
        return Ok(None);
    };
    let Some(at) = conn
        .settings
        .get(SYNC_AT)
        .and_then(|v| v.as_str())
        .and_then(parse_sync_at)
    else {
        return Ok(None);
    };
    let Some((workspace, _)) = engine.store.get::<Workspace>(ws, ws).await? else {
        return Ok(None);
    };
    let Ok(tz) = parse_time_zone(&workspace.time_zone) else {
        return Ok(None);
    };
    Ok(Some(next_daily(at, &tz, now)))
}

/// The next run of a connection after `now` (`None`: its provider is not scheduled).
async fn next_run(
    engine: &Engine,
    ws: &str,
    provider: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, SyncError> {
    let p = engine.provider(provider)?;
    let schedule = p.descriptor().schedule;
    let Some(every) = interval(schedule) else {
        return Ok(None);
    };
    if schedule == Schedule::DailyAtLocalTime
        && let Some(t) = next_local_run(engine, ws, provider, now).await?
    {
        return Ok(Some(t));
    }
    Ok(Some(first_run(ws, provider, every, now)))
}

/// Moves every scheduled daily-at-local-time connection of a workspace to its next run (after
/// a change of the workspace's time zone, or of a connection's `sync_at`); returns how many
/// moved.
pub async fn reschedule_local(engine: &Engine, ws: &str) -> Result<usize, SyncError> {
    let mut moved = 0;
    let daily: Vec<&'static str> = engine
        .providers
        .descriptors()
        .filter(|d| d.schedule == Schedule::DailyAtLocalTime)
        .map(|d| d.id)
        .collect();
    for id in daily {
        let key = format!("{ws}.{id}");
        if engine
            .store
            .get::<ScheduleEntry>(GLOBAL_SCOPE, &key)
            .await?
            .is_none()
        {
            continue;
        }
        let next = schedule(engine, ws, id).await?;
        if let Some((mut conn, v)) = engine.store.get::<Connection>(ws, id).await? {
            conn.next_run_at = Some(next);
            let _ = engine.store.update(ws, &conn, v).await;
        }
        moved += 1;
    }
    Ok(moved)
}

/// Puts a connection on its provider's schedule; returns the first run time.
pub async fn schedule(
    engine: &Engine,
    ws: &str,
    provider: &str,
) -> Result<DateTime<Utc>, SyncError> {
    let now = engine.clock.now();
    let Some(next) = next_run(engine, ws, provider, now).await? else {
        return Ok(now);
    };
    let entry = ScheduleEntry {
        workspace_id: ws.into(),
        provider: provider.into(),
        next_run_at: next,
    };
    engine.store.put(GLOBAL_SCOPE, &entry).await?;
    Ok(next)
}

/// Takes a connection off the schedule.
pub async fn unschedule(engine: &Engine, ws: &str, provider: &str) -> Result<(), SyncError> {
    engine
        .store
        .delete::<ScheduleEntry>(GLOBAL_SCOPE, &format!("{ws}.{provider}"))
        .await?;
    Ok(())
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// Jobs enqueued.
    pub enqueued: usize,
    /// Due entries another tick claimed first.
    pub claimed_elsewhere: usize,
}

/// Enqueues one job for every connection due at `now`, at most `max` of them (the rest wait for
/// the next tick). Each entry is moved to its next slot with a conditional write first, so two
/// concurrent ticks never enqueue the same connection twice.
pub async fn tick(engine: &Engine, max: usize) -> Result<TickReport, SyncError> {
    let now = engine.clock.now();
    let mut report = TickReport::default();
    let mut q = engine.store.query::<ScheduleEntry>(
        GLOBAL_SCOPE,
        IndexSel::Index1(DUE.into()),
        max.clamp(1, 1000),
    );
    q.to = Some(sort_time(now));
    let page = engine.store.list::<ScheduleEntry>(q, None).await?;
    for (entry, version) in page.items {
        if engine.provider(&entry.provider).is_err() {
            continue;
        }
        let Ok(p) = engine.provider(&entry.provider) else {
            continue;
        };
        let schedule = p.descriptor().schedule;
        let Some(every) = interval(schedule) else {
            continue;
        };
        let mut next = entry.clone();
        if schedule == Schedule::DailyAtLocalTime {
            // A local time follows the workspace's zone and DST, so it is computed afresh.
            let Some(next_at) = next_run(engine, &entry.workspace_id, &entry.provider, now).await?
            else {
                continue;
            };
            next.next_run_at = next_at;
        } else {
            // Interval schedules keep their phase: the next slot is one interval on.
            while next.next_run_at <= now {
                next.next_run_at += every;
            }
        }
        match engine.store.update(GLOBAL_SCOPE, &next, version).await {
            Ok(_) => {}
            Err(StoreError::Conflict) => {
                report.claimed_elsewhere += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        // A workspace without the provider's add-on is not run: its entry leaves the schedule
        // (enabling the add-on puts it back).
        match engine
            .require_addon(&entry.workspace_id, &entry.provider)
            .await
        {
            Ok(()) => {}
            Err(SyncError::AddonNotEnabled { .. }) => {
                unschedule(engine, &entry.workspace_id, &entry.provider).await?;
                continue;
            }
            Err(e) => return Err(e),
        }
        if let Some((mut conn, v)) = engine
            .store
            .get::<Connection>(&entry.workspace_id, &entry.provider)
            .await?
        {
            conn.next_run_at = Some(next.next_run_at);
            // Status display only; a lost race here is harmless.
            let _ = engine.store.update(&entry.workspace_id, &conn, v).await;
        }
        engine
            .start_run(
                &entry.workspace_id,
                &entry.provider,
                RunScope::Connection,
                crate::runs::RunMode::Refetch,
            )
            .await?;
        report.enqueued += 1;
    }
    Ok(report)
}

/// How long until the next entry is due (for the local scheduler loop); at most `cap`.
pub async fn until_next_due(engine: &Engine, cap: StdDuration) -> Result<StdDuration, SyncError> {
    let q = engine
        .store
        .query::<ScheduleEntry>(GLOBAL_SCOPE, IndexSel::Index1(DUE.into()), 1);
    let page = engine.store.list::<ScheduleEntry>(q, None).await?;
    let now = engine.clock.now();
    Ok(page
        .items
        .first()
        .map(|(e, _)| (e.next_run_at - now).to_std().unwrap_or_default())
        .unwrap_or(cap)
        .min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn sync_at_is_quarter_hours_only() {
        assert_eq!(parse_sync_at("18:30"), NaiveTime::from_hms_opt(18, 30, 0));
        assert_eq!(parse_sync_at("00:00"), NaiveTime::from_hms_opt(0, 0, 0));
        assert_eq!(parse_sync_at("23:45"), NaiveTime::from_hms_opt(23, 45, 0));
        for bad in [
            "18:20", "24:00", "8:30", "18:3", "18.30", "", "ab:cd", "18:30:00",
        ] {
            assert_eq!(parse_sync_at(bad), None, "{bad}");
        }
    }

    #[test]
    fn daily_runs_follow_oslo_local_time_across_dst() {
        let oslo = parse_time_zone("Europe/Oslo").unwrap();
        let at = NaiveTime::from_hms_opt(18, 30, 0).unwrap();
        // Winter (CET, +1): 18:30 local is 17:30 UTC.
        assert_eq!(
            next_daily(at, &oslo, utc(2026, 12, 1, 12, 0)),
            utc(2026, 12, 1, 17, 30)
        );
        assert_eq!(
            next_daily(at, &oslo, utc(2026, 12, 1, 17, 30)),
            utc(2026, 12, 2, 17, 30)
        );
        // Summer (CEST, +2): 16:30 UTC.
        assert_eq!(
            next_daily(at, &oslo, utc(2026, 7, 1, 12, 0)),
            utc(2026, 7, 1, 16, 30)
        );
        // Spring forward on 2026-03-29: the day before at 17:30 UTC, the day itself at 16:30.
        let before = next_daily(at, &oslo, utc(2026, 3, 28, 12, 0));
        assert_eq!(before, utc(2026, 3, 28, 17, 30));
        assert_eq!(next_daily(at, &oslo, before), utc(2026, 3, 29, 16, 30));
        // Fall back on 2026-10-25: 16:30 UTC the day before, 17:30 UTC that day.
        let before = next_daily(at, &oslo, utc(2026, 10, 24, 12, 0));
        assert_eq!(before, utc(2026, 10, 24, 16, 30));
        assert_eq!(next_daily(at, &oslo, before), utc(2026, 10, 25, 17, 30));
    }

    #[test]
    fn missing_and_repeated_local_times_run_once() {
        let oslo = parse_time_zone("Europe/Oslo").unwrap();
        // 02:30 does not exist on 2026-03-29 (02:00 CET -> 03:00 CEST): runs at 03:00 CEST.
        let gap = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        let t = next_daily(gap, &oslo, utc(2026, 3, 28, 12, 0));
        assert_eq!(t, utc(2026, 3, 29, 1, 0));
        assert_eq!(next_daily(gap, &oslo, t), utc(2026, 3, 30, 0, 30));
        // 02:30 occurs twice on 2026-10-25: runs at the first (00:30 UTC), not again at 01:30.
        let t = next_daily(gap, &oslo, utc(2026, 10, 24, 12, 0));
        assert_eq!(t, utc(2026, 10, 25, 0, 30));
        assert_eq!(next_daily(gap, &oslo, t), utc(2026, 10, 26, 1, 30));
    }

    #[test]
    fn first_runs_are_spread_over_the_day_and_stable() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap();
        let day = Duration::days(1);
        let a = first_run("ws-1", "harvest", day, now);
        assert_eq!(
            a,
            first_run("ws-1", "harvest", day, now),
            "stable per connection"
        );
        assert!(a > now && a <= now + day);
        let hours: std::collections::HashSet<u32> = (0..200)
            .map(|i| chrono::Timelike::hour(&first_run(&format!("ws-{i}"), "harvest", day, now)))
            .collect();
        assert!(
            hours.len() >= 20,
            "200 connections land in {} distinct hours",
            hours.len()
        );
    }
}

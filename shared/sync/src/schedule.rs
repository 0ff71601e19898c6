//! When connections are due, and the tick that fans due ones out as jobs.
//!
//! Each scheduled connection has one entry in the global scope, indexed by its next run time
//! (index 1, partition `due`). A tick reads the index only up to "now", so its cost is
//! proportional to the connections that are due, not to all connections. Each connection's
//! time of day is derived from a hash of its id, which spreads 24-hour runs over the day.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use hourbridge_domain::Connection;
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

/// Puts a connection on its provider's schedule; returns the first run time.
pub async fn schedule(
    engine: &Engine,
    ws: &str,
    provider: &str,
) -> Result<DateTime<Utc>, SyncError> {
    let p = engine.provider(provider)?;
    let now = engine.clock.now();
    let Some(every) = interval(p.descriptor().schedule) else {
        return Ok(now);
    };
    let next = first_run(ws, provider, every, now);
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
        let Ok(p) = engine.provider(&entry.provider) else {
            continue;
        };
        let Some(every) = interval(p.descriptor().schedule) else {
            continue;
        };
        let mut next = entry.clone();
        while next.next_run_at <= now {
            next.next_run_at += every;
        }
        match engine.store.update(GLOBAL_SCOPE, &next, version).await {
            Ok(_) => {}
            Err(StoreError::Conflict) => {
                report.claimed_elsewhere += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
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

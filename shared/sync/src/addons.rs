//! The add-on gate. A provider whose descriptor says `requires_add_on` works for a workspace
//! only while the workspace has that add-on (the add-on id is the provider id), which the host
//! product's billing backend sets ([`Engine::enable_addon`], [`Engine::remove_addon`]).
//!
//! Every engine entry point of such a provider checks [`Engine::require_addon`] first —
//! connect, authorize and its callback, account choice, starting and executing runs, preview,
//! clear, provider calls for the API, webhook receipt — and the scheduler tick takes a due
//! connection of a workspace without the add-on off the schedule instead of running it, so
//! Lambda and the local server share one gate.
//!
//! Removing the add-on deletes nothing: the connection, its credentials, links and synced
//! records stay. It is taken off the schedule and its status becomes a failed run with reason
//! `addon_not_enabled`; enabling the add-on again puts an active connection back on the
//! schedule (its next run refetches, so webhook deliveries refused meanwhile are covered).

use hourbridge_domain::{
    Connection, ConnectionState, FailureReason, ProviderId, RunCounts, RunState, SyncRun,
    Workspace, new_id,
};
use hourbridge_store::{GLOBAL_SCOPE, StoreError};

use crate::schedule::ScheduleEntry;
use crate::{Engine, SyncError};

/// How often a lost optimistic-concurrency race on the workspace is retried.
const MAX_ATTEMPTS: usize = 10;

impl Engine {
    /// `Ok` unless `provider` requires an add-on that workspace `ws` does not have
    /// ([`SyncError::AddonNotEnabled`]). Providers without `requires_add_on` cost no read.
    pub async fn require_addon(&self, ws: &str, provider: &str) -> Result<(), SyncError> {
        let d = self.provider(provider)?.descriptor();
        if !d.requires_add_on {
            return Ok(());
        }
        let enabled = self
            .store
            .get::<Workspace>(ws, ws)
            .await?
            .is_some_and(|(w, _)| w.addons.contains(provider));
        if enabled {
            Ok(())
        } else {
            Err(SyncError::AddonNotEnabled {
                provider: provider.to_owned(),
                name: d.display_name.to_owned(),
            })
        }
    }

    /// Whether `addon` names an add-on: a provider that requires one.
    pub fn is_addon(&self, addon: &str) -> bool {
        self.provider(addon)
            .is_ok_and(|p| p.descriptor().requires_add_on)
    }

    fn check_addon(&self, addon: &str) -> Result<(), SyncError> {
        if self.is_addon(addon) {
            Ok(())
        } else {
            Err(SyncError::UnknownAddon(addon.to_owned()))
        }
    }

    /// Adds or removes `addon` from the workspace's set; answers the workspace and whether the
    /// set changed.
    async fn set_addon(
        &self,
        ws: &str,
        addon: &str,
        enabled: bool,
    ) -> Result<(Workspace, bool), SyncError> {
        for _ in 0..MAX_ATTEMPTS {
            let (mut w, version) = self
                .store
                .get::<Workspace>(ws, ws)
                .await?
                .ok_or_else(|| SyncError::Invalid(format!("workspace {ws} does not exist")))?;
            let changed = if enabled {
                w.addons.insert(addon.to_owned())
            } else {
                w.addons.remove(addon)
            };
            if !changed {
                return Ok((w, false));
            }
            match self.store.update(ws, &w, version).await {
                Ok(_) => return Ok((w, true)),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(SyncError::Busy)
    }

    /// Enables `addon` for the workspace (idempotent). An active connection of that provider
    /// that is off the schedule is put back on it.
    pub async fn enable_addon(&self, ws: &str, addon: &str) -> Result<Workspace, SyncError> {
        self.check_addon(addon)?;
        let (w, _) = self.set_addon(ws, addon, true).await?;
        let Some((conn, _)) = self.connection(ws, addon).await? else {
            return Ok(w);
        };
        let scheduled = self
            .store
            .get::<ScheduleEntry>(GLOBAL_SCOPE, &format!("{ws}.{addon}"))
            .await?
            .is_some();
        if conn.state == ConnectionState::Active && !scheduled {
            let next = crate::schedule::schedule(self, ws, addon).await?;
            if let Some((mut c, v)) = self.connection(ws, addon).await? {
                c.next_run_at = Some(next);
                // Status display only; a lost race here is harmless.
                let _ = self.store.update(ws, &c, v).await;
            }
        }
        Ok(w)
    }

    /// Removes `addon` from the workspace (idempotent): its connection is taken off the
    /// schedule and shows a failed run with reason `addon_not_enabled`. Nothing is deleted.
    pub async fn remove_addon(&self, ws: &str, addon: &str) -> Result<Workspace, SyncError> {
        self.check_addon(addon)?;
        let (w, _) = self.set_addon(ws, addon, false).await?;
        crate::schedule::unschedule(self, ws, addon).await?;
        if let Some((conn, _)) = self.connection(ws, addon).await? {
            self.record_addon_failure(ws, addon, &conn).await?;
        }
        self.sessions.invalidate(ws, addon);
        Ok(w)
    }

    /// Makes the connection's status a failed run with reason `addon_not_enabled`, unless it
    /// already is one.
    async fn record_addon_failure(
        &self,
        ws: &str,
        provider: &str,
        conn: &Connection,
    ) -> Result<(), SyncError> {
        if let Some(id) = &conn.last_run_id
            && let Some((last, _)) = self.store.get::<SyncRun>(ws, id.as_str()).await?
            && last.failure == Some(FailureReason::AddonNotEnabled)
        {
            return Ok(());
        }
        let err = SyncError::AddonNotEnabled {
            provider: provider.to_owned(),
            name: self
                .provider(provider)?
                .descriptor()
                .display_name
                .to_owned(),
        };
        let now = self.clock.now();
        let run = SyncRun {
            id: new_id(),
            provider: ProviderId::parse(provider).map_err(|e| SyncError::Invalid(e.to_string()))?,
            project_id: None,
            state: RunState::Failed,
            counts: RunCounts::default(),
            imported: RunCounts::default(),
            tasks_pushed: RunCounts::default(),
            problems: Vec::new(),
            failure: Some(err.reason()),
            failure_message: Some(err.to_string()),
            created_at: now,
            started_at: Some(now),
            finished_at: Some(now),
            checkpoint: None,
        };
        self.store.insert(ws, &run).await?;
        for _ in 0..MAX_ATTEMPTS {
            let Some((mut c, v)) = self.connection(ws, provider).await? else {
                return Ok(());
            };
            c.last_run_id = Some(run.id.clone());
            c.next_run_at = None;
            match self.store.update(ws, &c, v).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(SyncError::Busy)
    }
}

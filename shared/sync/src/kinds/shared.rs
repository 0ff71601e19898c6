//! Pieces the push and two-way kinds share: their per-connection state record, the host change
//! feed read from a watermark, and how a provider failure is classified for one record.

use hourbridge_domain::{HostKind, RunCounts};
use hourbridge_provider_api::{ProviderError, ProviderErrorKind};
use hourbridge_store::Entity;

use crate::{Engine, SyncError};

/// A kind's state record, one per connection, keyed by the provider id.
pub(crate) trait KindState: Entity + Default {
    /// A fresh state for `provider`.
    fn fresh(provider: &str) -> Self;
}

/// Makes `$ty` (a `Default` struct with a `provider: String` field) a [`KindState`] stored as
/// record kind `$kind`, keyed by the provider.
macro_rules! kind_state {
    ($ty:ty, $kind:literal) => {
        impl $crate::kinds::shared::KindState for $ty {
            fn fresh(provider: &str) -> Self {
                Self {
                    provider: provider.to_owned(),
                    ..Self::default()
                }
            }
        }

        impl hourbridge_store::Entity for $ty {
            const KIND: hourbridge_store::EntityKind = hourbridge_store::EntityKind($kind);
            fn id(&self) -> String {
                self.provider.clone()
            }
        }
    };
}
pub(crate) use kind_state;

/// The kind's state of `provider` and its version (`None`: never saved).
pub(crate) async fn load_state<S: KindState>(
    engine: &Engine,
    ws: &str,
    provider: &str,
) -> Result<(S, Option<u64>), SyncError> {
    Ok(match engine.store.get::<S>(ws, provider).await? {
        Some((s, v)) => (s, Some(v)),
        None => (S::fresh(provider), None),
    })
}

/// Saves a state read with [`load_state`] at `version`.
pub(crate) async fn save_state<S: KindState>(
    engine: &Engine,
    ws: &str,
    state: &S,
    version: Option<u64>,
) -> Result<(), SyncError> {
    match version {
        Some(v) => engine.store.update(ws, state, v).await?,
        None => engine.store.insert(ws, state).await?,
    };
    Ok(())
}

/// Host change-feed entries of one kind after a watermark.
pub(crate) struct FeedRead {
    /// Ids of the changed records, in feed order (repeats possible).
    pub ids: Vec<String>,
    /// Where the read ended: the next watermark.
    pub target: u64,
    /// Entries after the watermark expired: the reader must reconcile in full.
    pub lost: bool,
}

/// Reads every entry of `kind` after `watermark`, page by page.
pub(crate) async fn read_feed(
    engine: &Engine,
    ws: &str,
    mut watermark: u64,
    kind: HostKind,
) -> Result<FeedRead, SyncError> {
    const PAGE: usize = 500;
    let mut ids = Vec::new();
    loop {
        let page = engine
            .store
            .changes_after(ws, watermark, PAGE, None)
            .await?;
        if page.lost {
            return Ok(FeedRead {
                ids,
                target: watermark,
                lost: true,
            });
        }
        ids.extend(
            page.changes
                .iter()
                .filter(|c| c.kind == kind)
                .map(|c| c.id.to_string()),
        );
        if page.next_watermark == watermark || page.changes.is_empty() {
            return Ok(FeedRead {
                ids,
                target: page.next_watermark,
                lost: false,
            });
        }
        watermark = page.next_watermark;
    }
}

/// The error for a provider that lacks the trait object a kind needs (a bug in its descriptor;
/// the registry's coherence check normally prevents it).
pub(crate) fn unsupported(provider: &'static str, what: &str) -> ProviderError {
    ProviderError::new(
        provider,
        ProviderErrorKind::Unsupported,
        format!("this provider does not take {what}"),
    )
}

/// What a push or two-way kind did with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Created,
    Updated,
    Deleted,
    Unchanged,
    Skipped,
    /// Not a record of a synced project, and never synced: not counted.
    Ignored,
}

impl Outcome {
    /// Adds the outcome to `counts`; whether the target was written.
    pub(crate) fn count(self, counts: &mut RunCounts) -> bool {
        match self {
            Self::Created => counts.created += 1,
            Self::Updated => counts.updated += 1,
            Self::Deleted => counts.deleted += 1,
            Self::Unchanged => counts.unchanged += 1,
            Self::Skipped => counts.skipped += 1,
            Self::Ignored => {}
        }
        matches!(self, Self::Created | Self::Updated | Self::Deleted)
    }
}

//! Outbound mappings: crash-safe bookkeeping for writes from the host to a provider.
//!
//! A push kind (time out, tasks out, time both ways) keeps one [`OutboundMapping`] per host
//! record and provider, stored in the workspace. The protocol for one push is:
//!
//! 1. [`mapping`]: skip the record when its fingerprint equals the one last pushed;
//! 2. [`begin_push`]: saves a [`PendingPush`] mark with a fresh idempotency key *before* the
//!    remote call (or hands back the key of an interrupted attempt, with
//!    [`PushTicket::resumed`] set);
//! 3. the remote call: update when [`PushTicket::remote_id`] is known, otherwise create with
//!    the ticket's idempotency key — after a resumed ticket, first look the remote record up by
//!    that key (or rely on the provider's idempotency) so a create that reached the provider
//!    before a crash is not made twice;
//! 4. [`complete_push`] (or [`complete_delete`] after a remote delete): records the remote id
//!    and fingerprint and clears the mark.
//!
//! A crash anywhere between 2 and 4 leaves the mark; [`pending_pushes`] lists marks oldest
//! first so the next run recovers them before pushing anything new. Pushes of one connection
//! run under its lease, so one writer at a time; a write that loses anyway is
//! [`StoreError::Conflict`].

use chrono::Duration;
use hourbridge_domain::{HostKind, OutboundMapping, PendingPush, ProviderId, RecordId, new_id};
use hourbridge_store::{IndexSel, Store, StoreError, outbound_mapping_id};

/// Which mapping: a host record (`kind`, `host_id`) pushed to `provider`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MappingKey {
    /// The provider pushed to.
    pub provider: ProviderId,
    /// Kind of host record.
    pub kind: HostKind,
    /// The host record's id.
    pub host_id: RecordId,
}

impl MappingKey {
    /// The key of `host_id` of `kind` pushed to `provider`.
    pub fn new(provider: &ProviderId, kind: HostKind, host_id: &RecordId) -> Self {
        Self {
            provider: provider.clone(),
            kind,
            host_id: host_id.clone(),
        }
    }

    fn id(&self) -> String {
        outbound_mapping_id(&self.provider, self.kind, self.host_id.as_str())
    }
}

/// A started push, from [`begin_push`]: what the remote call needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTicket {
    /// Which mapping.
    pub key: MappingKey,
    /// Send it with the remote create; the same on every retry until the push completes.
    pub idempotency_key: String,
    /// The remote record from an earlier completed push: update it instead of creating.
    pub remote_id: Option<String>,
    /// Fingerprint of the content last pushed successfully.
    pub fingerprint: Option<String>,
    /// The key comes from an attempt that never completed (a crash or an error): the remote
    /// record may exist already, so look it up by the key before creating.
    pub resumed: bool,
}

/// The mapping of `key`, if any push of it ever began.
pub async fn mapping(
    store: &Store,
    ws: &str,
    key: &MappingKey,
) -> Result<Option<OutboundMapping>, StoreError> {
    Ok(store
        .get::<OutboundMapping>(ws, &key.id())
        .await?
        .map(|(m, _)| m))
}

/// Starts a push of `key`: saves a pending mark with a fresh idempotency key before the
/// caller talks to the provider, or, when an earlier attempt left a mark, reuses its key
/// (nothing is written then). Call it right before the remote call, never speculatively.
pub async fn begin_push(
    store: &Store,
    ws: &str,
    key: &MappingKey,
) -> Result<PushTicket, StoreError> {
    let now = store.clock().now();
    let fresh = Some(PendingPush {
        idempotency_key: new_id().to_string(),
        started_at: now,
    });
    let (m, resumed) = match store.get::<OutboundMapping>(ws, &key.id()).await? {
        Some((m, _)) if m.pending.is_some() => (m, true),
        Some((mut m, version)) => {
            m.pending = fresh;
            m.updated_at = now;
            store.update(ws, &m, version).await?;
            (m, false)
        }
        None => {
            let m = OutboundMapping {
                provider: key.provider.clone(),
                host_kind: key.kind,
                host_id: key.host_id.clone(),
                remote_id: None,
                fingerprint: None,
                pending: fresh,
                updated_at: now,
            };
            store.insert(ws, &m).await?;
            (m, false)
        }
    };
    Ok(PushTicket {
        key: key.clone(),
        idempotency_key: m.pending.map(|p| p.idempotency_key).unwrap_or_default(),
        remote_id: m.remote_id,
        fingerprint: m.fingerprint,
        resumed,
    })
}

/// Finishes the push of `ticket`: the provider holds `remote_id` with content `fingerprint`.
/// Clears the pending mark. [`StoreError::Conflict`] when the mark is not the ticket's any more
/// (another push of the same record took over).
pub async fn complete_push(
    store: &Store,
    ws: &str,
    ticket: &PushTicket,
    remote_id: &str,
    fingerprint: &str,
) -> Result<OutboundMapping, StoreError> {
    let (mut m, version) = own_mark(store, ws, ticket).await?;
    m.remote_id = Some(remote_id.to_owned());
    m.fingerprint = Some(fingerprint.to_owned());
    m.pending = None;
    m.updated_at = store.clock().now();
    store.update(ws, &m, version).await?;
    Ok(m)
}

/// Records, without a remote call, that host record `key` and remote record `remote_id` hold the
/// same content `fingerprint`: a change read from the provider was applied to the host. One
/// write and no pending mark, since nothing was sent. Only call it when no push of `key` is
/// pending (pushes and reads of one connection run under its lease, one at a time).
pub async fn record_synced(
    store: &Store,
    ws: &str,
    key: &MappingKey,
    remote_id: &str,
    fingerprint: &str,
) -> Result<OutboundMapping, StoreError> {
    let m = OutboundMapping {
        provider: key.provider.clone(),
        host_kind: key.kind,
        host_id: key.host_id.clone(),
        remote_id: Some(remote_id.to_owned()),
        fingerprint: Some(fingerprint.to_owned()),
        pending: None,
        updated_at: store.clock().now(),
    };
    store.put(ws, &m).await?;
    Ok(m)
}

/// Finishes a push that deleted the remote record (after the host record was deleted): the
/// mapping is removed. [`StoreError::Conflict`] as for [`complete_push`].
pub async fn complete_delete(
    store: &Store,
    ws: &str,
    ticket: &PushTicket,
) -> Result<(), StoreError> {
    let (_, version) = own_mark(store, ws, ticket).await?;
    store
        .delete_at::<OutboundMapping>(ws, &ticket.key.id(), version)
        .await?;
    Ok(())
}

async fn own_mark(
    store: &Store,
    ws: &str,
    ticket: &PushTicket,
) -> Result<(OutboundMapping, u64), StoreError> {
    match store.get::<OutboundMapping>(ws, &ticket.key.id()).await? {
        Some((m, v))
            if m.pending
                .as_ref()
                .is_some_and(|p| p.idempotency_key == ticket.idempotency_key) =>
        {
            Ok((m, v))
        }
        _ => Err(StoreError::Conflict),
    }
}

/// Every mapping of `provider` with a pending mark (all pages), oldest first: pushes a crash
/// (or an error) interrupted. A push kind recovers each with [`begin_push`] (which reuses its
/// key) before pushing anything new, and time in uses them to tell our own unsettled creates
/// from remote work; both must see the whole set, or marks past a page would wait forever.
pub async fn pending_pushes(
    store: &Store,
    ws: &str,
    provider: &ProviderId,
) -> Result<Vec<OutboundMapping>, StoreError> {
    let q =
        store.query::<OutboundMapping>(ws, IndexSel::Index1(format!("{provider}.pending")), 1000);
    store.list_all::<OutboundMapping>(q).await
}

/// Pending marks older than `age`, e.g. to report pushes that keep failing.
pub fn is_stale(m: &OutboundMapping, now: chrono::DateTime<chrono::Utc>, age: Duration) -> bool {
    m.pending.as_ref().is_some_and(|p| now - p.started_at > age)
}

/// The mapping whose remote record is `remote_id` (of a host record of `kind`), so a change
/// read from the provider finds its host record.
pub async fn find_by_remote(
    store: &Store,
    ws: &str,
    provider: &ProviderId,
    kind: HostKind,
    remote_id: &str,
) -> Result<Option<OutboundMapping>, StoreError> {
    let q = store.query::<OutboundMapping>(
        ws,
        IndexSel::Index2(format!("{provider}.{}.{remote_id}", kind.as_str())),
        1,
    );
    let page = store.list::<OutboundMapping>(q, None).await?;
    Ok(page.items.into_iter().next().map(|(m, _)| m))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{TimeZone, Utc};
    use hourbridge_domain::{Clock, ManualClock};
    use hourbridge_store_sqlite::SqliteBackend;

    use super::*;

    const WS: &str = "acme";

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).single().unwrap(),
        ))
    }

    fn open(path: &std::path::Path, clock: Arc<ManualClock>) -> Store {
        let c: Arc<dyn Clock> = clock;
        Store::new(Arc::new(SqliteBackend::open(path, c.clone()).unwrap()), c)
    }

    fn key(host: &str) -> MappingKey {
        MappingKey::new(
            &ProviderId::parse("timelog").unwrap(),
            HostKind::WorkLog,
            &RecordId::parse(host).unwrap(),
        )
    }

    #[tokio::test]
    async fn a_push_saves_its_mark_first_and_completing_clears_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("s.db"), clock());
        let k = key("log-1");
        assert!(mapping(&store, WS, &k).await.unwrap().is_none());

        let t = begin_push(&store, WS, &k).await.unwrap();
        assert!(!t.resumed && t.remote_id.is_none() && t.fingerprint.is_none());
        let saved = mapping(&store, WS, &k).await.unwrap().unwrap();
        assert_eq!(
            saved.pending.as_ref().map(|p| p.idempotency_key.as_str()),
            Some(t.idempotency_key.as_str()),
            "the mark is stored before the remote call"
        );
        assert_eq!(
            pending_pushes(&store, WS, &k.provider).await.unwrap(),
            vec![saved]
        );

        let done = complete_push(&store, WS, &t, "tl-77", "fp-1")
            .await
            .unwrap();
        assert_eq!(
            (done.remote_id.as_deref(), done.fingerprint.as_deref()),
            (Some("tl-77"), Some("fp-1"))
        );
        assert!(done.pending.is_none());
        assert!(
            pending_pushes(&store, WS, &k.provider)
                .await
                .unwrap()
                .is_empty()
        );
        let found = find_by_remote(&store, WS, &k.provider, HostKind::WorkLog, "tl-77")
            .await
            .unwrap();
        assert_eq!(found.map(|m| m.host_id), Some(k.host_id.clone()));

        // The next push of the same record updates the known remote record, with a new key.
        let next = begin_push(&store, WS, &k).await.unwrap();
        assert_eq!(next.remote_id.as_deref(), Some("tl-77"));
        assert_eq!(next.fingerprint.as_deref(), Some("fp-1"));
        assert!(!next.resumed);
        assert_ne!(next.idempotency_key, t.idempotency_key);
    }

    #[tokio::test]
    async fn crash_after_begin_push_the_retry_reuses_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let clock = clock();
        let k = key("log-2");
        let first = {
            let store = open(&path, clock.clone());
            begin_push(&store, WS, &k).await.unwrap()
            // The process dies here: the remote create may or may not have happened.
        };
        clock.advance(Duration::minutes(5));
        let store = open(&path, clock.clone());
        let pending = pending_pushes(&store, WS, &k.provider).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].host_id, k.host_id);
        assert!(is_stale(&pending[0], clock.now(), Duration::minutes(1)));

        let retry = begin_push(&store, WS, &k).await.unwrap();
        assert!(
            retry.resumed,
            "the caller must look the remote record up first"
        );
        assert_eq!(retry.idempotency_key, first.idempotency_key);
        let again = begin_push(&store, WS, &k).await.unwrap();
        assert_eq!(again.idempotency_key, first.idempotency_key);

        complete_push(&store, WS, &retry, "tl-9", "fp")
            .await
            .unwrap();
        assert!(
            pending_pushes(&store, WS, &k.provider)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn completing_with_a_ticket_whose_mark_is_gone_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("s.db"), clock());
        let k = key("log-3");
        let t = begin_push(&store, WS, &k).await.unwrap();
        complete_push(&store, WS, &t, "r-1", "fp").await.unwrap();
        assert!(matches!(
            complete_push(&store, WS, &t, "r-2", "fp2").await,
            Err(StoreError::Conflict)
        ));
        let m = mapping(&store, WS, &k).await.unwrap().unwrap();
        assert_eq!(m.remote_id.as_deref(), Some("r-1"));
    }

    #[tokio::test]
    async fn completing_a_delete_removes_the_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("s.db"), clock());
        let k = key("log-4");
        let t = begin_push(&store, WS, &k).await.unwrap();
        complete_push(&store, WS, &t, "r-4", "fp").await.unwrap();
        let d = begin_push(&store, WS, &k).await.unwrap();
        complete_delete(&store, WS, &d).await.unwrap();
        assert!(mapping(&store, WS, &k).await.unwrap().is_none());
        assert!(
            find_by_remote(&store, WS, &k.provider, HostKind::WorkLog, "r-4")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn pending_pushes_are_per_provider_and_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let store = open(&dir.path().join("s.db"), clock.clone());
        for host in ["b-late", "a-later"] {
            begin_push(&store, WS, &key(host)).await.unwrap();
            clock.advance(Duration::seconds(1));
        }
        let other = MappingKey::new(
            &ProviderId::parse("basecamp").unwrap(),
            HostKind::WorkLog,
            &RecordId::parse("b-late").unwrap(),
        );
        begin_push(&store, WS, &other).await.unwrap();
        let p = pending_pushes(&store, WS, &key("x").provider)
            .await
            .unwrap();
        let hosts: Vec<&str> = p.iter().map(|m| m.host_id.as_str()).collect();
        assert_eq!(hosts, vec!["b-late", "a-later"]);
        assert_eq!(
            pending_pushes(&store, WS, &other.provider)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            pending_pushes(&store, "other-ws", &other.provider)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

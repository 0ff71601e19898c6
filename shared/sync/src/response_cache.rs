//! The store-backed [`ResponseCache`]: ETags and bodies of provider GET answers, so adapters can
//! send `If-None-Match` and replay an unchanged page from a `304 Not Modified`.
//!
//! - **Scope.** Entries live in the workspace's scope, by a SHA-256 of the adapter's key (which
//!   names the remote account and the URL), so workspaces never share bodies.
//! - **Writes.** [`StoreResponseCache::put`] writes only when the ETag differs from the stored
//!   one: revalidating an unchanged page costs one read and no write.
//! - **Limits.** Entries expire [`EXPIRY_DAYS`] days after their last change. Bodies that are
//!   not UTF-8, or whose entry would exceed [`MAX_ENTRY_BYTES`] (DynamoDB items hold at most
//!   400 KB), are not kept: that URL is simply fetched in full every time.
//! - **Failures.** Store errors are logged and swallowed; a cache failure never fails a sync.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hourbridge_provider_api::{CachedResponse, ResponseCache};
use hourbridge_store::{Entity, EntityKind, Store};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Days an entry lives after its last change.
pub const EXPIRY_DAYS: i64 = 30;

/// Largest serialized entry kept (bytes of its JSON, body included).
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;

/// One remembered answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CachedPage {
    /// Hex SHA-256 of the adapter's key.
    id: String,
    etag: String,
    body: String,
    #[serde(default)]
    link_next: Option<String>,
    expires_at: DateTime<Utc>,
}

impl Entity for CachedPage {
    const KIND: EntityKind = EntityKind("response_cache");
    fn id(&self) -> String {
        self.id.clone()
    }
    fn expires_at(&self) -> Option<DateTime<Utc>> {
        Some(self.expires_at)
    }
}

fn entry_id(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A [`ResponseCache`] kept in the store (either backend, through the same [`Store`] API).
#[derive(Debug, Clone)]
pub struct StoreResponseCache {
    store: Store,
}

impl StoreResponseCache {
    /// A cache over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[async_trait]
impl ResponseCache for StoreResponseCache {
    async fn get(&self, workspace: &str, key: &str) -> Option<CachedResponse> {
        match self
            .store
            .get::<CachedPage>(workspace, &entry_id(key))
            .await
        {
            Ok(Some((page, _))) => Some(CachedResponse {
                etag: page.etag,
                body: page.body.into_bytes(),
                link_next: page.link_next,
            }),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(workspace, error = %e, "response cache read failed");
                None
            }
        }
    }

    async fn put(&self, workspace: &str, key: &str, response: CachedResponse) {
        let id = entry_id(key);
        match self.store.get::<CachedPage>(workspace, &id).await {
            Ok(Some((current, _))) if current.etag == response.etag => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(workspace, error = %e, "response cache read failed");
                return;
            }
        }
        let Ok(body) = String::from_utf8(response.body) else {
            tracing::debug!(workspace, "response cache: body is not UTF-8; not kept");
            return;
        };
        let page = CachedPage {
            id,
            etag: response.etag,
            body,
            link_next: response.link_next,
            expires_at: self.store.clock().now() + Duration::days(EXPIRY_DAYS),
        };
        let size = serde_json::to_vec(&page).map_or(usize::MAX, |v| v.len());
        if size > MAX_ENTRY_BYTES {
            tracing::debug!(workspace, size, "response cache: entry too large; not kept");
            return;
        }
        // Unconditional: two syncs racing on one page both store a valid validator and body.
        if let Err(e) = self.store.put(workspace, &page).await {
            tracing::warn!(workspace, error = %e, "response cache write failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hourbridge_domain::{Clock, SystemClock};
    use hourbridge_store_sqlite::SqliteBackend;

    use super::*;

    fn store() -> Store {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Store::new(
            Arc::new(SqliteBackend::in_memory(clock.clone()).unwrap()),
            clock,
        )
    }

    fn answer(etag: &str, body: &str) -> CachedResponse {
        CachedResponse {
            etag: etag.into(),
            body: body.as_bytes().to_vec(),
            link_next: Some("https://x.test/p2".into()),
        }
    }

    async fn version(store: &Store, ws: &str, key: &str) -> Option<u64> {
        store
            .get::<CachedPage>(ws, &entry_id(key))
            .await
            .unwrap()
            .map(|(_, v)| v)
    }

    #[tokio::test]
    async fn an_unchanged_etag_writes_nothing_a_new_one_replaces_the_entry() {
        let store = store();
        let cache = StoreResponseCache::new(store.clone());
        let key = "basecamp:4410022:https://x.test/projects.json";
        assert_eq!(cache.get("ws", key).await, None);

        cache.put("ws", key, answer("W/\"1\"", "[1]")).await;
        assert_eq!(version(&store, "ws", key).await, Some(1));
        assert_eq!(cache.get("ws", key).await, Some(answer("W/\"1\"", "[1]")));

        cache.put("ws", key, answer("W/\"1\"", "[1]")).await;
        assert_eq!(
            version(&store, "ws", key).await,
            Some(1),
            "same ETag: no store write"
        );

        cache.put("ws", key, answer("W/\"2\"", "[1,2]")).await;
        assert_eq!(version(&store, "ws", key).await, Some(2));
        assert_eq!(cache.get("ws", key).await, Some(answer("W/\"2\"", "[1,2]")));
    }

    #[tokio::test]
    async fn workspaces_do_not_share_entries_and_oversized_bodies_are_not_kept() {
        let store = store();
        let cache = StoreResponseCache::new(store.clone());
        cache.put("ws-a", "k", answer("W/\"1\"", "[]")).await;
        assert_eq!(cache.get("ws-b", "k").await, None);

        let big = "x".repeat(MAX_ENTRY_BYTES + 1);
        cache.put("ws-a", "big", answer("W/\"1\"", &big)).await;
        assert_eq!(cache.get("ws-a", "big").await, None);

        let not_utf8 = CachedResponse {
            etag: "W/\"1\"".into(),
            body: vec![0xff, 0xfe],
            link_next: None,
        };
        cache.put("ws-a", "bin", not_utf8).await;
        assert_eq!(cache.get("ws-a", "bin").await, None);
    }
}

//! Validator caching for conditional GETs.
//!
//! Providers such as Basecamp send an `ETag` on every GET and answer `304 Not Modified`, with no
//! body, to a request carrying a matching `If-None-Match`. An adapter that remembers the ETag,
//! the body and whatever headers it needs to reproduce the page (the `Link` to the next page)
//! can replay an unchanged page without the provider sending it again.
//!
//! [`ResponseCache`] is where adapters remember those answers. It is a best-effort store:
//! implementations log their own failures and never fail a sync; a miss only costs a full
//! answer. Entries are per workspace (the `workspace` argument), and adapters put the connection's
//! remote account in the key so that two workspaces, or two accounts, never share a body.

use async_trait::async_trait;

/// One remembered answer: its validator and what is needed to reproduce the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedResponse {
    /// The `ETag` the provider sent, exactly as sent (weak validators `W/"…"` included).
    pub etag: String,
    /// The body of the answer.
    pub body: Vec<u8>,
    /// The `Link: rel="next"` target of the answer, when the page had one.
    pub link_next: Option<String>,
}

/// Where conditional-GET validators and bodies are remembered.
///
/// Implementations may refuse to keep an entry (a body over their size limit, a store
/// failure); callers then simply get no cache hit for that key. Neither method reports
/// failures: they are logged by the implementation.
#[async_trait]
pub trait ResponseCache: Send + Sync {
    /// The answer remembered under `key` in `workspace`, if any (and not expired).
    async fn get(&self, workspace: &str, key: &str) -> Option<CachedResponse>;

    /// Remembers `response` under `key` in `workspace`. Implementations should skip the write
    /// when the entry already holds the same ETag, so an unchanged page costs no write.
    async fn put(&self, workspace: &str, key: &str, response: CachedResponse);
}

/// A cache that remembers nothing: every GET is unconditional.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCache;

#[async_trait]
impl ResponseCache for NoCache {
    async fn get(&self, _workspace: &str, _key: &str) -> Option<CachedResponse> {
        None
    }

    async fn put(&self, _workspace: &str, _key: &str, _response: CachedResponse) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_cache_forgets_everything() {
        let c = NoCache;
        c.put(
            "ws",
            "k",
            CachedResponse {
                etag: "W/\"1\"".into(),
                body: b"[]".to_vec(),
                link_next: None,
            },
        )
        .await;
        assert_eq!(c.get("ws", "k").await, None);
    }
}

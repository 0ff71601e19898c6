//! Request budgets shared by every process through the store: a fixed window per key
//! (`harvest:account:…`, `hubstaff:app:…`), counted with conditional writes so two Lambdas can
//! never both take the last slot.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hourbridge_provider_api::{ProviderError, ProviderErrorKind, RateBudget, RateLimit};
use hourbridge_store::{Entity, EntityKind, GLOBAL_SCOPE, Store, StoreError};
use serde::{Deserialize, Serialize};

/// One window of one budget key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BudgetWindow {
    key: String,
    started_at: DateTime<Utc>,
    used: u32,
    /// Clean-up only (TTL has one-second granularity); the window is `started_at + per`.
    expires_at: DateTime<Utc>,
}

impl Entity for BudgetWindow {
    const KIND: EntityKind = EntityKind("rate_window");
    fn id(&self) -> String {
        self.key.clone()
    }
    fn expires_at(&self) -> Option<DateTime<Utc>> {
        Some(self.expires_at)
    }
}

/// A [`RateBudget`] kept in the store.
#[derive(Debug, Clone)]
pub struct StoreRateBudget {
    store: Store,
    /// Longest we wait for a slot inside one call; longer waits are reported as rate limited so
    /// the worker can re-queue rather than idle inside a Lambda.
    max_wait: Duration,
}

impl StoreRateBudget {
    /// A budget over `store`.
    pub fn new(store: Store, max_wait: Duration) -> Self {
        Self { store, max_wait }
    }
}

#[async_trait]
impl RateBudget for StoreRateBudget {
    async fn acquire(&self, key: &str, limit: &RateLimit) -> Result<(), ProviderError> {
        let per = chrono::Duration::from_std(limit.per).unwrap_or(chrono::Duration::seconds(1));
        let store_err = |e: StoreError| {
            ProviderError::new(
                "budget",
                ProviderErrorKind::Transient,
                format!("rate budget store: {e}"),
            )
        };
        let mut waited = Duration::ZERO;
        loop {
            let now = self.store.clock().now();
            let current = self
                .store
                .get::<BudgetWindow>(GLOBAL_SCOPE, key)
                .await
                .map_err(store_err)?;
            let attempt = match current {
                Some((w, v)) if now < w.started_at + per => {
                    if w.used < limit.requests {
                        let next = BudgetWindow {
                            used: w.used + 1,
                            ..w
                        };
                        self.store.update(GLOBAL_SCOPE, &next, v).await.map(|_| ())
                    } else {
                        let wait = (w.started_at + per - now).to_std().unwrap_or_default()
                            + Duration::from_millis(5);
                        if waited + wait > self.max_wait {
                            let mut e = ProviderError::new(
                                "budget",
                                ProviderErrorKind::RateLimited,
                                format!(
                                    "request budget {key} is spent until {}",
                                    w.started_at + per
                                ),
                            );
                            e.retry_after = Some(wait);
                            return Err(e);
                        }
                        tokio::time::sleep(wait).await;
                        waited += wait;
                        continue;
                    }
                }
                Some((_, v)) => {
                    let fresh = BudgetWindow {
                        key: key.to_owned(),
                        started_at: now,
                        used: 1,
                        expires_at: now + per + chrono::Duration::hours(1),
                    };
                    self.store.update(GLOBAL_SCOPE, &fresh, v).await.map(|_| ())
                }
                None => {
                    let fresh = BudgetWindow {
                        key: key.to_owned(),
                        started_at: now,
                        used: 1,
                        expires_at: now + per + chrono::Duration::hours(1),
                    };
                    self.store.insert(GLOBAL_SCOPE, &fresh).await.map(|_| ())
                }
            };
            match attempt {
                Ok(()) => return Ok(()),
                // Someone took a slot between our read and write: count again.
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(store_err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hourbridge_domain::{Clock, SystemClock};
    use hourbridge_provider_api::RateLimitScope;
    use hourbridge_store_sqlite::SqliteBackend;

    use super::*;

    fn store() -> Store {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Store::new(
            Arc::new(SqliteBackend::in_memory(clock.clone()).unwrap()),
            clock,
        )
    }

    #[tokio::test]
    async fn concurrent_callers_never_exceed_the_shared_limit() {
        let s = store();
        let limit = RateLimit {
            scope: RateLimitScope::Account,
            requests: 10,
            per: Duration::from_secs(3600),
        };
        let budgets: Vec<StoreRateBudget> = (0..4)
            .map(|_| StoreRateBudget::new(s.clone(), Duration::ZERO))
            .collect();
        let mut tasks = Vec::new();
        for b in budgets {
            tasks.push(tokio::spawn(async move {
                let mut granted = 0;
                for _ in 0..5 {
                    if b.acquire("harvest:account:1", &limit).await.is_ok() {
                        granted += 1;
                    }
                }
                granted
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        assert_eq!(total, 10, "exactly the limit is granted across all callers");
        let e = StoreRateBudget::new(s.clone(), Duration::ZERO)
            .acquire("harvest:account:1", &limit)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::RateLimited);
        assert!(e.retry_after.is_some());
        // Other keys have their own budget.
        StoreRateBudget::new(s, Duration::ZERO)
            .acquire("harvest:account:2", &limit)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_spent_budget_waits_for_the_next_window() {
        let s = store();
        let limit = RateLimit {
            scope: RateLimitScope::Application,
            requests: 2,
            per: Duration::from_millis(300),
        };
        let b = StoreRateBudget::new(s, Duration::from_secs(5));
        let started = std::time::Instant::now();
        for _ in 0..5 {
            b.acquire("hubstaff:app:x", &limit).await.unwrap();
        }
        assert!(
            started.elapsed() >= Duration::from_millis(600),
            "5 requests at 2 per 300 ms span 3 windows"
        );
    }
}

//! The store conformance suite against DynamoDB on moto_server (a fresh table per case).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hourbridge_domain::ManualClock;
use hourbridge_store::{
    Backend, Condition, IdPage, Lease, Query, RawPage, Record, StoreError, TransactItem,
};
use hourbridge_store_dynamodb::DynamoBackend;

async fn dynamodb(clock: Arc<ManualClock>) -> Option<Arc<dyn Backend>> {
    let config = hourbridge_testkit::moto_config("store conformance on DynamoDB").await?;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = hourbridge_testkit::unique_name("conformance");
    DynamoBackend::create_table(&client, &table)
        .await
        .expect("create table on moto");
    Some(Arc::new(IsolatedTransactions {
        inner: DynamoBackend::new(client, table, clock),
        gate: tokio::sync::Mutex::new(()),
    }))
}

/// moto's `TransactWriteItems` is not isolated: it deep-copies the table, applies the items one
/// by one and, when one fails, puts the copy back, erasing whatever another request wrote in
/// the meantime (and two transactions can both pass one condition). DynamoDB serialises
/// conflicting transactions. This wrapper gives moto that guarantee by sending one transaction
/// at a time from this process; everything else, reads of the head and the retries of racing
/// appenders included, still runs concurrently, so the cases test our code, not the emulator.
#[derive(Debug)]
struct IsolatedTransactions {
    inner: DynamoBackend,
    gate: tokio::sync::Mutex<()>,
}

#[async_trait]
impl Backend for IsolatedTransactions {
    async fn get(&self, scope: &str, kind: &str, id: &str) -> Result<Option<Record>, StoreError> {
        self.inner.get(scope, kind, id).await
    }
    async fn put(&self, record: Record, condition: Condition) -> Result<Record, StoreError> {
        self.inner.put(record, condition).await
    }
    async fn put_batch(&self, records: Vec<Record>) -> Result<(), StoreError> {
        self.inner.put_batch(records).await
    }
    async fn transact(&self, items: Vec<TransactItem>) -> Result<Vec<Record>, StoreError> {
        let _one_at_a_time = self.gate.lock().await;
        self.inner.transact(items).await
    }
    async fn get_many(
        &self,
        scope: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<Vec<Record>, StoreError> {
        self.inner.get_many(scope, kind, ids).await
    }
    async fn delete_batch(
        &self,
        scope: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        self.inner.delete_batch(scope, kind, ids).await
    }
    async fn delete(
        &self,
        scope: &str,
        kind: &str,
        id: &str,
        condition: Condition,
    ) -> Result<bool, StoreError> {
        self.inner.delete(scope, kind, id, condition).await
    }
    async fn query(&self, query: &Query) -> Result<RawPage, StoreError> {
        self.inner.query(query).await
    }
    async fn query_ids(&self, query: &Query) -> Result<IdPage, StoreError> {
        self.inner.query_ids(query).await
    }
    async fn acquire_lease(
        &self,
        scope: &str,
        name: &str,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<Option<Lease>, StoreError> {
        self.inner.acquire_lease(scope, name, owner, until).await
    }
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.release_lease(lease).await
    }
}

hourbridge_store::conformance_suite!(dynamodb);

//! The store conformance suite against DynamoDB on moto_server (a fresh table per case).

use std::sync::Arc;

use hourbridge_domain::ManualClock;
use hourbridge_store::Backend;
use hourbridge_store_dynamodb::DynamoBackend;

async fn dynamodb(clock: Arc<ManualClock>) -> Option<Arc<dyn Backend>> {
    let config = hourbridge_testkit::moto_config("store conformance on DynamoDB").await?;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = hourbridge_testkit::unique_name("conformance");
    DynamoBackend::create_table(&client, &table)
        .await
        .expect("create table on moto");
    Some(Arc::new(DynamoBackend::new(client, table, clock)))
}

hourbridge_store::conformance_suite!(dynamodb);

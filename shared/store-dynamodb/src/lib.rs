#![doc = include_str!("../KEY_DESIGN.md")]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, DeleteRequest, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put, PutRequest,
    ReturnValue, ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, WriteRequest,
};
use chrono::{DateTime, Utc};
use hourbridge_domain::Clock;
use hourbridge_store::{
    Backend, Condition, Cursor, IndexKey, IndexSel, Lease, MAX_BATCH_WRITE, Query, RawPage, Record,
    StoreError, TransactItem, check_transaction,
};
use serde::{Deserialize, Serialize};

type Item = HashMap<String, AttributeValue>;

/// Upper bound for open ranges: the largest Unicode scalar sorts after every other UTF-8 text.
const MAX_CHAR: char = '\u{10FFFF}';
const BATCH_ATTEMPTS: u32 = 8;

/// The DynamoDB backend.
#[derive(Clone)]
pub struct DynamoBackend {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DynamoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoBackend")
            .field("table", &self.table)
            .finish()
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn classify<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> StoreError {
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            return StoreError::Unavailable(format!("{e:?}"));
        }
        _ => {}
    }
    match e.code() {
        Some("ConditionalCheckFailedException") => StoreError::Conflict,
        Some(
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "TransactionConflictException",
        ) => StoreError::Unavailable(format!("{e:?}")),
        _ => StoreError::Backend(format!("{e:?}")),
    }
}

/// A condition as `(expression, names, values)` for a transaction item; `None` for no condition.
type ConditionParts = (
    String,
    HashMap<String, String>,
    HashMap<String, AttributeValue>,
);

fn condition_parts(condition: Condition, now: i64) -> Option<ConditionParts> {
    match condition {
        Condition::None => None,
        Condition::Absent => Some((
            "attribute_not_exists(pk) OR #exp <= :now".into(),
            HashMap::from([("#exp".into(), "exp".into())]),
            HashMap::from([(":now".into(), n(now))]),
        )),
        Condition::Version(v) => Some((
            "#v = :v AND (attribute_not_exists(#exp) OR #exp > :now)".into(),
            HashMap::from([("#v".into(), "v".into()), ("#exp".into(), "exp".into())]),
            HashMap::from([(":v".into(), n(v)), (":now".into(), n(now))]),
        )),
    }
}

/// What a failed `TransactWriteItems` means: `Ok(indices)` of the items whose condition failed
/// (empty when the emulator does not say which), or another error.
fn transaction_failure<R: std::fmt::Debug>(
    e: SdkError<TransactWriteItemsError, R>,
) -> Result<Vec<usize>, StoreError> {
    if let SdkError::ServiceError(se) = &e
        && let TransactWriteItemsError::TransactionCanceledException(tc) = se.err()
    {
        let reasons = tc.cancellation_reasons();
        let failed: Vec<usize> = reasons
            .iter()
            .enumerate()
            .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
            .map(|(i, _)| i)
            .collect();
        if !failed.is_empty() {
            return Ok(failed);
        }
        if reasons.is_empty()
            && tc
                .message()
                .is_some_and(|m| m.contains("ConditionalCheckFailed"))
        {
            return Ok(Vec::new());
        }
        // TransactionConflict (another transaction on one of the items), throttling: retry
        // later. Anything else (validation, item collection size) is not retryable.
        let transient = reasons.iter().any(|r| {
            matches!(
                r.code(),
                Some("TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded")
            )
        });
        let message = format!("transaction cancelled: {tc:?}");
        return Err(if transient {
            StoreError::Unavailable(message)
        } else {
            StoreError::Backend(message)
        });
    }
    Err(classify(e))
}

fn sort_key(kind: &str, id: &str) -> String {
    format!("{kind}#{id}")
}

fn index_pk(scope: &str, kind: &str, partition: &str) -> String {
    format!("{scope}#{kind}#{partition}")
}

fn index_sk(sort: &str) -> String {
    format!("s{sort}")
}

fn get_s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn get_n(item: &Item, k: &str) -> Option<i64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn to_item(r: &Record) -> Item {
    let mut item = Item::new();
    item.insert("pk".into(), s(&r.scope));
    item.insert("sk".into(), s(sort_key(&r.kind, &r.id)));
    item.insert("v".into(), n(r.version));
    item.insert("d".into(), s(&r.data));
    if let Some(exp) = r.expires_at {
        item.insert("exp".into(), n(exp));
    }
    for (key, pk, sk) in [(&r.index1, "g1pk", "g1sk"), (&r.index2, "g2pk", "g2sk")] {
        if let Some(k) = key {
            item.insert(pk.into(), s(index_pk(&r.scope, &r.kind, &k.partition)));
            item.insert(sk.into(), s(index_sk(&k.sort)));
        }
    }
    item
}

fn from_item(item: &Item) -> Result<Record, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        kind: "?".into(),
        id: get_s(item, "sk").unwrap_or("?").to_owned(),
        reason: reason.to_owned(),
    };
    let scope = get_s(item, "pk")
        .ok_or_else(|| corrupt("no pk"))?
        .to_owned();
    let sk = get_s(item, "sk").ok_or_else(|| corrupt("no sk"))?;
    let (kind, id) = sk.split_once('#').ok_or_else(|| corrupt("bad sk"))?;
    let index = |pk: &str, sk: &str| -> Result<Option<IndexKey>, StoreError> {
        match (get_s(item, pk), get_s(item, sk)) {
            (Some(p), Some(srt)) => {
                let prefix = format!("{scope}#{kind}#");
                Ok(Some(IndexKey {
                    partition: p
                        .strip_prefix(&prefix)
                        .ok_or_else(|| corrupt("bad index pk"))?
                        .to_owned(),
                    sort: srt
                        .strip_prefix('s')
                        .ok_or_else(|| corrupt("bad index sk"))?
                        .to_owned(),
                }))
            }
            _ => Ok(None),
        }
    };
    Ok(Record {
        index1: index("g1pk", "g1sk")?,
        index2: index("g2pk", "g2sk")?,
        kind: kind.to_owned(),
        id: id.to_owned(),
        version: get_n(item, "v").ok_or_else(|| corrupt("no version"))? as u64,
        data: get_s(item, "d")
            .ok_or_else(|| corrupt("no data"))?
            .to_owned(),
        expires_at: get_n(item, "exp"),
        scope,
    })
}

/// A paging position: the key of the last item returned.
#[derive(Serialize, Deserialize)]
struct Position {
    pk: String,
    sk: String,
    gpk: Option<String>,
    gsk: Option<String>,
}

impl DynamoBackend {
    /// A backend over an existing table.
    pub fn new(client: Client, table: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            table: table.into(),
            clock,
        }
    }

    /// Creates the table with the key design above (what `infra/template.yaml` declares), for
    /// tests and local runs against an emulator.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| StoreError::Backend(e.to_string()))
        };
        let key = |name: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
                .map_err(|e| StoreError::Backend(e.to_string()))
        };
        let gsi = |name: &str, pk: &str, sk: &str| -> Result<GlobalSecondaryIndex, StoreError> {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(pk, KeyType::Hash)?)
                .key_schema(key(sk, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(|e| StoreError::Backend(e.to_string()))
        };
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .attribute_definitions(attr("g1pk")?)
            .attribute_definitions(attr("g1sk")?)
            .attribute_definitions(attr("g2pk")?)
            .attribute_definitions(attr("g2sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .global_secondary_indexes(gsi("gsi1", "g1pk", "g1sk")?)
            .global_secondary_indexes(gsi("gsi2", "g2pk", "g2sk")?)
            .send()
            .await
            .map_err(classify)?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name("exp")
                    .enabled(true)
                    .build()
                    .map_err(|e| StoreError::Backend(e.to_string()))?,
            )
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Sends one `BatchWriteItem` (at most 25 requests), retrying unprocessed items with
    /// exponential backoff.
    async fn write_batch(&self, mut pending: Vec<WriteRequest>) -> Result<(), StoreError> {
        let mut attempt = 0;
        while !pending.is_empty() {
            if attempt == BATCH_ATTEMPTS {
                return Err(StoreError::Unavailable(format!(
                    "{} items still unprocessed after {BATCH_ATTEMPTS} attempts",
                    pending.len()
                )));
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(25 * 2u64.pow(attempt.min(6)))).await;
            }
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, std::mem::take(&mut pending))
                .send()
                .await
                .map_err(classify)?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            attempt += 1;
        }
        Ok(())
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn conditional_put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        let now = self.now().timestamp();
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let req = match condition {
            Condition::None => req,
            Condition::Absent => req
                .condition_expression("attribute_not_exists(pk) OR #exp <= :now")
                .expression_attribute_names("#exp", "exp")
                .expression_attribute_values(":now", n(now)),
            Condition::Version(v) => req
                .condition_expression("#v = :v AND (attribute_not_exists(#exp) OR #exp > :now)")
                .expression_attribute_names("#v", "v")
                .expression_attribute_names("#exp", "exp")
                .expression_attribute_values(":v", n(v))
                .expression_attribute_values(":now", n(now)),
        };
        req.send().await.map_err(classify)?;
        Ok(())
    }
}

#[async_trait]
impl Backend for DynamoBackend {
    async fn get(&self, scope: &str, kind: &str, id: &str) -> Result<Option<Record>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(scope))
            .key("sk", s(sort_key(kind, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        match out.item {
            Some(item) => {
                let r = from_item(&item)?;
                Ok((!r.is_expired(self.now())).then_some(r))
            }
            None => Ok(None),
        }
    }

    async fn put(&self, mut record: Record, condition: Condition) -> Result<Record, StoreError> {
        match condition {
            Condition::Absent => record.version = 1,
            Condition::Version(v) => record.version = v + 1,
            Condition::None => {
                // Unconditional writes still need the next version: read it, then write
                // conditionally, and go round again if someone slipped in between.
                for _ in 0..8 {
                    let current = self.get(&record.scope, &record.kind, &record.id).await?;
                    let cond = match current {
                        Some(c) => Condition::Version(c.version),
                        None => Condition::Absent,
                    };
                    match self.put(record.clone(), cond).await {
                        Err(StoreError::Conflict) => continue,
                        other => return other,
                    }
                }
                return Err(StoreError::Unavailable(
                    "too much contention on one record".into(),
                ));
            }
        }
        self.conditional_put(to_item(&record), condition).await?;
        Ok(record)
    }

    async fn put_batch(&self, records: Vec<Record>) -> Result<(), StoreError> {
        // BatchWriteItem refuses two writes to one key in a request: keep the last of each.
        let mut last: HashMap<(String, String, String), usize> = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            last.insert((r.scope.clone(), r.kind.clone(), r.id.clone()), i);
        }
        let unique: Vec<&Record> = records
            .iter()
            .enumerate()
            .filter(|(i, r)| last.get(&(r.scope.clone(), r.kind.clone(), r.id.clone())) == Some(i))
            .map(|(_, r)| r)
            .collect();
        for chunk in unique.chunks(MAX_BATCH_WRITE) {
            let pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|r| {
                    PutRequest::builder()
                        .set_item(Some(to_item(r)))
                        .build()
                        .map(|p| WriteRequest::builder().put_request(p).build())
                        .map_err(|e| StoreError::Backend(e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            self.write_batch(pending).await?;
        }
        Ok(())
    }

    async fn transact(&self, items: Vec<TransactItem>) -> Result<Vec<Record>, StoreError> {
        check_transaction(&items)?;
        let err = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Backend(e.to_string());
        // Unconditional puts need the next version: read it and write conditionally on it,
        // going round again when only those read-then-write items lost a race.
        for _ in 0..8 {
            let now = self.now().timestamp();
            let mut resolved = vec![false; items.len()];
            let mut written = Vec::new();
            let mut requests = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let request = match item {
                    TransactItem::Put { record, condition } => {
                        let mut record = record.clone();
                        let condition = match condition {
                            Condition::None => {
                                resolved[i] = true;
                                match self.get(&record.scope, &record.kind, &record.id).await? {
                                    Some(c) => Condition::Version(c.version),
                                    None => Condition::Absent,
                                }
                            }
                            c => *c,
                        };
                        record.version = match condition {
                            Condition::Version(v) => v + 1,
                            _ => 1,
                        };
                        let mut put = Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(to_item(&record)));
                        if let Some((expr, names, values)) = condition_parts(condition, now) {
                            put = put
                                .condition_expression(expr)
                                .set_expression_attribute_names(Some(names))
                                .set_expression_attribute_values(Some(values));
                        }
                        written.push(record);
                        TransactWriteItem::builder().put(put.build().map_err(err)?)
                    }
                    TransactItem::Delete {
                        scope,
                        kind,
                        id,
                        condition,
                    } => {
                        let mut delete = Delete::builder()
                            .table_name(&self.table)
                            .key("pk", s(scope))
                            .key("sk", s(sort_key(kind, id)));
                        if let Some((expr, names, values)) = condition_parts(*condition, now) {
                            delete = delete
                                .condition_expression(expr)
                                .set_expression_attribute_names(Some(names))
                                .set_expression_attribute_values(Some(values));
                        }
                        TransactWriteItem::builder().delete(delete.build().map_err(err)?)
                    }
                };
                requests.push(request.build());
            }
            let res = self
                .client
                .transact_write_items()
                .set_transact_items(Some(requests))
                .send()
                .await;
            match res {
                Ok(_) => return Ok(written),
                Err(e) => match transaction_failure(e)? {
                    failed if !failed.is_empty() && failed.iter().all(|&i| resolved[i]) => {
                        continue;
                    }
                    _ => return Err(StoreError::Conflict),
                },
            }
        }
        Err(StoreError::Unavailable(
            "too much contention on one record".into(),
        ))
    }

    async fn get_many(
        &self,
        scope: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<Vec<Record>, StoreError> {
        let now = self.now();
        let mut unique: Vec<&String> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        let mut out = Vec::with_capacity(unique.len());
        // BatchGetItem takes at most 100 keys per request.
        for chunk in unique.chunks(100) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|id| {
                    Item::from([
                        ("pk".into(), s(scope)),
                        ("sk".into(), s(sort_key(kind, id))),
                    ])
                })
                .collect();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Backend(e.to_string()))?,
            );
            let mut attempt = 0;
            while let Some(request) = pending.take() {
                if attempt == BATCH_ATTEMPTS {
                    return Err(StoreError::Unavailable(
                        "unprocessed keys after retries".into(),
                    ));
                }
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(25 * 2u64.pow(attempt.min(6)))).await;
                }
                let res = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(classify)?;
                for item in res
                    .responses
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default()
                {
                    let r = from_item(&item)?;
                    if !r.is_expired(now) {
                        out.push(r);
                    }
                }
                pending = res
                    .unprocessed_keys
                    .and_then(|mut m| m.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
                attempt += 1;
            }
        }
        Ok(out)
    }

    async fn delete_batch(
        &self,
        scope: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        let mut unique: Vec<&String> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(MAX_BATCH_WRITE) {
            let requests = chunk
                .iter()
                .map(|id| {
                    DeleteRequest::builder()
                        .key("pk", s(scope))
                        .key("sk", s(sort_key(kind, id)))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| StoreError::Backend(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.write_batch(requests).await?;
        }
        Ok(())
    }

    async fn delete(
        &self,
        scope: &str,
        kind: &str,
        id: &str,
        condition: Condition,
    ) -> Result<bool, StoreError> {
        let now = self.now().timestamp();
        let req = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(scope))
            .key("sk", s(sort_key(kind, id)))
            .return_values(ReturnValue::AllOld);
        let req = match condition {
            Condition::None => req,
            Condition::Version(v) => req
                .condition_expression("#v = :v AND (attribute_not_exists(#exp) OR #exp > :now)")
                .expression_attribute_names("#v", "v")
                .expression_attribute_names("#exp", "exp")
                .expression_attribute_values(":v", n(v))
                .expression_attribute_values(":now", n(now)),
            Condition::Absent => {
                return Err(StoreError::Backend(
                    "delete on absence is meaningless".into(),
                ));
            }
        };
        let out = req.send().await.map_err(classify)?;
        Ok(match out.attributes {
            Some(old) => !from_item(&old)?.is_expired(self.now()),
            None => false,
        })
    }

    async fn query(&self, q: &Query) -> Result<RawPage, StoreError> {
        let limit = q.limit.max(1);
        let (index_name, pk_attr, sk_attr, pk_value, lo, hi) = match &q.index {
            IndexSel::Primary => (
                None,
                "pk",
                "sk",
                q.scope.clone(),
                sort_key(&q.kind, q.from.as_deref().unwrap_or("")),
                q.to.as_deref()
                    .map(|t| sort_key(&q.kind, t))
                    .unwrap_or_else(|| format!("{}#{MAX_CHAR}", q.kind)),
            ),
            IndexSel::Index1(p) | IndexSel::Index2(p) => {
                let one = matches!(q.index, IndexSel::Index1(_));
                (
                    Some(if one { "gsi1" } else { "gsi2" }),
                    if one { "g1pk" } else { "g2pk" },
                    if one { "g1sk" } else { "g2sk" },
                    index_pk(&q.scope, &q.kind, p),
                    index_sk(q.from.as_deref().unwrap_or("")),
                    q.to.as_deref()
                        .map(index_sk)
                        .unwrap_or_else(|| format!("s{MAX_CHAR}")),
                )
            }
        };
        let mut start: Option<Item> = match &q.cursor {
            None => None,
            Some(c) => {
                let p: Position = c.decode()?;
                let prefix = format!("{}#", q.kind);
                if p.pk != q.scope || !p.sk.starts_with(&prefix) {
                    return Err(StoreError::InvalidCursor);
                }
                let mut key = Item::from([("pk".into(), s(p.pk)), ("sk".into(), s(p.sk))]);
                if index_name.is_some() {
                    match (p.gpk, p.gsk) {
                        (Some(gpk), Some(gsk)) if gpk == pk_value => {
                            key.insert(pk_attr.into(), s(gpk));
                            key.insert(sk_attr.into(), s(gsk));
                        }
                        _ => return Err(StoreError::InvalidCursor),
                    }
                }
                Some(key)
            }
        };
        let now = self.now();
        // One more match than asked for tells whether a next page exists.
        let mut records: Vec<Record> = Vec::with_capacity(limit + 1);
        loop {
            let want = limit + 1 - records.len();
            let page_limit = if q.filter.is_some() {
                want.max(200)
            } else {
                want
            };
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index_name.map(str::to_owned))
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                .expression_attribute_names("#pk", pk_attr)
                .expression_attribute_names("#sk", sk_attr)
                .expression_attribute_values(":pk", s(&pk_value))
                .expression_attribute_values(":lo", s(&lo))
                .expression_attribute_values(":hi", s(&hi))
                .limit(page_limit.min(1000) as i32)
                // Base-table reads are strongly consistent, like `GetItem` (and like SQLite): a
                // change-feed reader never sees a later entry without the earlier ones. Index
                // reads cannot be (DynamoDB GSIs are eventually consistent).
                .consistent_read(index_name.is_none())
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(classify)?;
            for item in out.items.unwrap_or_default() {
                let r = from_item(&item)?;
                if r.is_expired(now) || q.filter.as_ref().is_some_and(|f| !f(&r)) {
                    continue;
                }
                records.push(r);
                if records.len() > limit {
                    break;
                }
            }
            if records.len() > limit {
                break;
            }
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => break,
            }
        }
        let next = if records.len() > limit {
            records.truncate(limit);
            records.last().map(|r| {
                let idx = match &q.index {
                    IndexSel::Primary => None,
                    IndexSel::Index1(_) => r.index1.as_ref(),
                    IndexSel::Index2(_) => r.index2.as_ref(),
                };
                Cursor::encode(&Position {
                    pk: r.scope.clone(),
                    sk: sort_key(&r.kind, &r.id),
                    gpk: idx.map(|k| index_pk(&r.scope, &r.kind, &k.partition)),
                    gsk: idx.map(|k| index_sk(&k.sort)),
                })
            })
        } else {
            None
        };
        Ok(RawPage { records, next })
    }

    async fn acquire_lease(
        &self,
        scope: &str,
        name: &str,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<Option<Lease>, StoreError> {
        let now_ms = self.now().timestamp_millis();
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(scope))
            .item("sk", s(format!("#lease#{name}")))
            .item("owner", s(owner))
            .item("until_ms", n(until.timestamp_millis()))
            // Physical clean-up only; correctness comes from `until_ms`.
            .item("exp", n(until.timestamp() + 86_400))
            .condition_expression("attribute_not_exists(pk) OR until_ms <= :now OR #owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await
            .map_err(classify);
        match res {
            Ok(_) => Ok(Some(Lease {
                scope: scope.to_owned(),
                name: name.to_owned(),
                owner: owner.to_owned(),
                expires_at: until,
            })),
            Err(StoreError::Conflict) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(&lease.scope))
            .key("sk", s(format!("#lease#{}", lease.name)))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(&lease.owner))
            .send()
            .await
            .map_err(classify);
        match res {
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

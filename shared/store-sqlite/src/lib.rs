//! The SQLite backend of the Hourbridge store: one file in the data directory, WAL mode, the
//! same single-table model as DynamoDB (see `hourbridge-store`). Conditional writes run inside
//! `BEGIN IMMEDIATE` transactions, so they are atomic across threads and processes.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hourbridge_domain::Clock;
use hourbridge_store::{
    Backend, Condition, Cursor, IdPage, IndexKey, IndexSel, Lease, Query, RawPage, Record,
    StoreError, TransactItem, check_transaction,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

const SCHEMA: &str = "
-- A rowid table, not WITHOUT ROWID: records can be large (notes, run checkpoints, chunks of
-- seen ids), and in a clustered key B-tree large rows make every key search and insert read
-- and move their payloads. Here the key lives in the small primary-key index instead.
CREATE TABLE IF NOT EXISTS records (
    scope TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    i1p TEXT, i1s TEXT,
    i2p TEXT, i2s TEXT,
    expires_at INTEGER,
    PRIMARY KEY (scope, kind, id)
);
-- expires_at is part of the index so id-only queries are answered from the index alone.
DROP INDEX IF EXISTS records_index1;
DROP INDEX IF EXISTS records_index2;
CREATE INDEX IF NOT EXISTS records_by_index1 ON records (scope, kind, i1p, i1s, id, expires_at) WHERE i1p IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_by_index2 ON records (scope, kind, i2p, i2s, id, expires_at) WHERE i2p IS NOT NULL;
CREATE TABLE IF NOT EXISTS leases (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    until_ms INTEGER NOT NULL,
    PRIMARY KEY (scope, name)
) WITHOUT ROWID;
";

/// The SQLite backend.
#[derive(Clone)]
pub struct SqliteBackend {
    conn: Arc<Mutex<Connection>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend").finish_non_exhaustive()
    }
}

fn backend_err(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        other => StoreError::Backend(other.to_string()),
    }
}

#[derive(Serialize, Deserialize)]
struct Position {
    s: Option<String>,
    i: String,
}

impl SqliteBackend {
    /// Opens (creating if needed) the database file at `path`.
    /// The file is created (or narrowed) to mode 0600 first: it holds people's names, e-mails
    /// and work logs, and SQLite gives its `-wal` and `-shm` files the database file's mode.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        private_file(path).map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        let conn = Connection::open(path).map_err(backend_err)?;
        Self::init(conn, clock)
    }

    /// A private in-memory database, for tests.
    pub fn in_memory(clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(backend_err)?;
        Self::init(conn, clock)
    }

    /// Deletes every lease, whoever holds it, and answers how many there were.
    ///
    /// Only for a process that knows it is the database's one user (the local server holds an
    /// exclusive lock on its data directory): then every lease in the file belongs to a process
    /// that has died (killed mid-run, it could not give its leases back), and waiting for them
    /// to expire would only stall the runs it left.
    pub async fn clear_leases(&self) -> Result<usize, StoreError> {
        self.with(|c, _| c.execute("DELETE FROM leases", []).map_err(backend_err))
            .await
    }

    fn init(conn: Connection, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(backend_err)?;
        conn.execute_batch(SCHEMA).map_err(backend_err)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            clock,
        })
    }

    /// Runs `f` on the connection off the async executor.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, i64) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        let now = self.clock.now().timestamp_millis();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Backend("poisoned".into()))?;
            f(&mut guard, now)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }
}

/// Live-ness in SQL: expiry is in seconds, `now_ms` in milliseconds.
const LIVE: &str = "(expires_at IS NULL OR expires_at * 1000 > ?)";

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    let idx = |p: Option<String>, s: Option<String>| {
        p.map(|partition| IndexKey {
            partition,
            sort: s.unwrap_or_default(),
        })
    };
    Ok(Record {
        scope: row.get(0)?,
        kind: row.get(1)?,
        id: row.get(2)?,
        version: row.get::<_, i64>(3)? as u64,
        data: row.get(4)?,
        index1: idx(row.get(5)?, row.get(6)?),
        index2: idx(row.get(7)?, row.get(8)?),
        expires_at: row.get(9)?,
    })
}

const COLUMNS: &str = "scope, kind, id, version, data, i1p, i1s, i2p, i2s, expires_at";

/// The SQL and arguments of a page query selecting `columns`.
fn select(
    q: &Query,
    position: Option<&Position>,
    now_ms: i64,
    columns: &str,
) -> Result<(String, Vec<rusqlite::types::Value>), StoreError> {
    let (part_col, sort_col, part) = match &q.index {
        IndexSel::Primary => (None, "id", None),
        IndexSel::Index1(p) => (Some("i1p"), "i1s", Some(p.clone())),
        IndexSel::Index2(p) => (Some("i2p"), "i2s", Some(p.clone())),
    };
    let mut sql = format!(
        "SELECT {columns} FROM records WHERE scope = ?1 AND kind = ?2 \
         AND (expires_at IS NULL OR expires_at * 1000 > ?3)"
    );
    let mut args: Vec<rusqlite::types::Value> =
        vec![q.scope.clone().into(), q.kind.clone().into(), now_ms.into()];
    let push = |clause: String, v: rusqlite::types::Value, args: &mut Vec<_>| {
        args.push(v);
        format!(" AND {clause}?{}", args.len())
    };
    if let (Some(col), Some(p)) = (part_col, part) {
        sql += &push(format!("{col} = "), p.into(), &mut args);
    }
    if let Some(from) = q.from.clone() {
        sql += &push(format!("{sort_col} >= "), from.into(), &mut args);
    }
    if let Some(to) = q.to.clone() {
        sql += &push(format!("{sort_col} <= "), to.into(), &mut args);
    }
    if let Some(pos) = position {
        match (&q.index, &pos.s) {
            (IndexSel::Primary, _) => {
                sql += &push("id > ".into(), pos.i.clone().into(), &mut args);
            }
            (_, Some(s)) => {
                args.push(s.clone().into());
                args.push(pos.i.clone().into());
                sql += &format!(
                    " AND ({sort_col}, id) > (?{}, ?{})",
                    args.len() - 1,
                    args.len()
                );
            }
            (_, None) => return Err(StoreError::InvalidCursor),
        }
    }
    sql += &if part_col.is_some() {
        format!(" ORDER BY {sort_col}, id")
    } else {
        " ORDER BY id".to_owned()
    };
    Ok((sql, args))
}

fn write(tx: &rusqlite::Transaction<'_>, r: &Record) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO records (scope, kind, id, version, data, i1p, i1s, i2p, i2s, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .and_then(|mut st| {
        st.execute(params![
            r.scope,
            r.kind,
            r.id,
            r.version as i64,
            r.data,
            r.index1.as_ref().map(|k| &k.partition),
            r.index1.as_ref().map(|k| &k.sort),
            r.index2.as_ref().map(|k| &k.partition),
            r.index2.as_ref().map(|k| &k.sort),
            r.expires_at,
        ])
    })
    .map(|_| ())
    .map_err(backend_err)
}

fn live_version(
    tx: &rusqlite::Transaction<'_>,
    scope: &str,
    kind: &str,
    id: &str,
    now_ms: i64,
) -> Result<Option<u64>, StoreError> {
    tx.query_row(
        &format!("SELECT version FROM records WHERE scope = ? AND kind = ? AND id = ? AND {LIVE}"),
        params![scope, kind, id, now_ms],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .map(|v| v.map(|v| v as u64))
    .map_err(backend_err)
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn get(&self, scope: &str, kind: &str, id: &str) -> Result<Option<Record>, StoreError> {
        let (scope, kind, id) = (scope.to_owned(), kind.to_owned(), id.to_owned());
        self.with(move |c, now| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM records WHERE scope = ? AND kind = ? AND id = ? AND {LIVE}"
            ))
            .and_then(|mut st| {
                st.query_row(params![scope, kind, id, now], row_to_record)
                    .optional()
            })
            .map_err(backend_err)
        })
        .await
    }

    async fn put(&self, mut record: Record, condition: Condition) -> Result<Record, StoreError> {
        self.with(move |c, now| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend_err)?;
            let current = live_version(&tx, &record.scope, &record.kind, &record.id, now)?;
            record.version = match (condition, current) {
                (Condition::None, Some(v)) => v + 1,
                (Condition::None, None) | (Condition::Absent, None) => 1,
                (Condition::Version(want), Some(v)) if want == v => v + 1,
                _ => return Err(StoreError::Conflict),
            };
            write(&tx, &record)?;
            tx.commit().map_err(backend_err)?;
            Ok(record)
        })
        .await
    }

    async fn put_batch(&self, records: Vec<Record>) -> Result<(), StoreError> {
        self.with(move |c, _| {
            // One transaction for the whole batch: all or nothing, and one commit instead of
            // one per 25 records (the DynamoDB request size does not bind SQLite).
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend_err)?;
            for r in &records {
                write(&tx, r)?;
            }
            tx.commit().map_err(backend_err)
        })
        .await
    }

    async fn transact(&self, items: Vec<TransactItem>) -> Result<Vec<Record>, StoreError> {
        check_transaction(&items)?;
        self.with(move |c, now| {
            // One IMMEDIATE transaction: conditions are checked under the write lock, and any
            // failure drops the transaction, which rolls every earlier item back.
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend_err)?;
            let mut written = Vec::new();
            for item in items {
                let (scope, kind, id) = item.key();
                let current = live_version(&tx, scope, kind, id, now)?;
                match item {
                    TransactItem::Put {
                        mut record,
                        condition,
                    } => {
                        record.version = match (condition, current) {
                            (Condition::None, Some(v)) => v + 1,
                            (Condition::None | Condition::Absent, None) => 1,
                            (Condition::Version(want), Some(v)) if want == v => v + 1,
                            _ => return Err(StoreError::Conflict),
                        };
                        write(&tx, &record)?;
                        written.push(record);
                    }
                    TransactItem::Delete {
                        scope,
                        kind,
                        id,
                        condition,
                    } => {
                        if let Condition::Version(want) = condition
                            && current != Some(want)
                        {
                            return Err(StoreError::Conflict);
                        }
                        tx.execute(
                            "DELETE FROM records WHERE scope = ? AND kind = ? AND id = ?",
                            params![scope, kind, id],
                        )
                        .map_err(backend_err)?;
                    }
                }
            }
            tx.commit().map_err(backend_err)?;
            Ok(written)
        })
        .await
    }

    async fn get_many(
        &self,
        scope: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<Vec<Record>, StoreError> {
        let (scope, kind, ids) = (scope.to_owned(), kind.to_owned(), ids.to_vec());
        self.with(move |c, now| {
            let mut out = Vec::with_capacity(ids.len());
            // Chunks keep each statement under SQLite's bound-parameter limit.
            for chunk in ids.chunks(500) {
                let marks = vec!["?"; chunk.len()].join(",");
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM records WHERE scope = ? AND kind = ? AND {LIVE} AND id IN ({marks})"
                    ))
                    .map_err(backend_err)?;
                let mut args: Vec<&dyn rusqlite::ToSql> = vec![&scope, &kind, &now];
                args.extend(chunk.iter().map(|i| i as &dyn rusqlite::ToSql));
                let rows = st.query_map(args.as_slice(), row_to_record).map_err(backend_err)?;
                for r in rows {
                    out.push(r.map_err(backend_err)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn delete_batch(
        &self,
        scope: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        let (scope, kind, ids) = (scope.to_owned(), kind.to_owned(), ids.to_vec());
        self.with(move |c, _| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend_err)?;
            {
                let mut st = tx
                    .prepare_cached("DELETE FROM records WHERE scope = ? AND kind = ? AND id = ?")
                    .map_err(backend_err)?;
                for id in &ids {
                    st.execute(params![scope, kind, id]).map_err(backend_err)?;
                }
            }
            tx.commit().map_err(backend_err)
        })
        .await
    }

    async fn delete(
        &self,
        scope: &str,
        kind: &str,
        id: &str,
        condition: Condition,
    ) -> Result<bool, StoreError> {
        let (scope, kind, id) = (scope.to_owned(), kind.to_owned(), id.to_owned());
        self.with(move |c, now| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend_err)?;
            let current = live_version(&tx, &scope, &kind, &id, now)?;
            match (condition, current) {
                (Condition::Version(want), Some(v)) if want != v => {
                    return Err(StoreError::Conflict);
                }
                (Condition::Version(_), None) => return Err(StoreError::Conflict),
                (Condition::Absent, _) => {
                    return Err(StoreError::Backend(
                        "delete on absence is meaningless".into(),
                    ));
                }
                _ => {}
            }
            tx.execute(
                "DELETE FROM records WHERE scope = ? AND kind = ? AND id = ?",
                params![scope, kind, id],
            )
            .map_err(backend_err)?;
            tx.commit().map_err(backend_err)?;
            Ok(current.is_some())
        })
        .await
    }

    async fn query(&self, query: &Query) -> Result<RawPage, StoreError> {
        let q = query.clone();
        let position: Option<Position> = q.cursor.as_ref().map(Cursor::decode).transpose()?;
        self.with(move |c, now| {
            let (sql, args) = select(&q, position.as_ref(), now, COLUMNS)?;
            let limit = q.limit.max(1);
            let mut st = c.prepare_cached(&sql).map_err(backend_err)?;
            let mut rows = st
                .query(rusqlite::params_from_iter(args.iter()))
                .map_err(backend_err)?;
            // Collect one more match than asked for: that is how we know a next page exists.
            let mut records = Vec::with_capacity(limit + 1);
            while let Some(row) = rows.next().map_err(backend_err)? {
                let r = row_to_record(row).map_err(backend_err)?;
                if q.filter.as_ref().is_none_or(|f| f(&r)) {
                    records.push(r);
                    if records.len() > limit {
                        break;
                    }
                }
            }
            let next = if records.len() > limit {
                records.truncate(limit);
                records.last().map(|r| {
                    Cursor::encode(&Position {
                        s: match &q.index {
                            IndexSel::Primary => None,
                            IndexSel::Index1(_) => r.index1.as_ref().map(|k| k.sort.clone()),
                            IndexSel::Index2(_) => r.index2.as_ref().map(|k| k.sort.clone()),
                        },
                        i: r.id.clone(),
                    })
                })
            } else {
                None
            };
            Ok(RawPage { records, next })
        })
        .await
    }

    async fn query_ids(&self, query: &Query) -> Result<IdPage, StoreError> {
        if query.filter.is_some() {
            return Err(StoreError::Backend("query_ids takes no filter".into()));
        }
        let q = query.clone();
        let position: Option<Position> = q.cursor.as_ref().map(Cursor::decode).transpose()?;
        self.with(move |c, now| {
            let sort = match &q.index {
                IndexSel::Primary => "id",
                IndexSel::Index1(_) => "i1s",
                IndexSel::Index2(_) => "i2s",
            };
            let (sql, args) = select(&q, position.as_ref(), now, &format!("id, {sort}"))?;
            let limit = q.limit.max(1);
            let mut st = c.prepare_cached(&sql).map_err(backend_err)?;
            let rows = st
                .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
                })
                .map_err(backend_err)?;
            let mut keys = Vec::with_capacity(limit + 1);
            for row in rows {
                keys.push(row.map_err(backend_err)?);
                if keys.len() > limit {
                    break;
                }
            }
            let next = if keys.len() > limit {
                keys.truncate(limit);
                keys.last().map(|(id, s)| {
                    Cursor::encode(&Position {
                        s: if matches!(q.index, IndexSel::Primary) {
                            None
                        } else {
                            s.clone()
                        },
                        i: id.clone(),
                    })
                })
            } else {
                None
            };
            Ok(IdPage {
                ids: keys.into_iter().map(|(id, _)| id).collect(),
                next,
            })
        })
        .await
    }

    async fn acquire_lease(
        &self,
        scope: &str,
        name: &str,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<Option<Lease>, StoreError> {
        let lease = Lease {
            scope: scope.to_owned(),
            name: name.to_owned(),
            owner: owner.to_owned(),
            expires_at: until,
        };
        self.with(move |c, now| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend_err)?;
            let held: Option<(String, i64)> = tx
                .query_row(
                    "SELECT owner, until_ms FROM leases WHERE scope = ? AND name = ?",
                    params![lease.scope, lease.name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend_err)?;
            if let Some((holder, until_ms)) = held
                && holder != lease.owner
                && until_ms > now
            {
                return Ok(None);
            }
            tx.execute(
                "INSERT OR REPLACE INTO leases (scope, name, owner, until_ms) VALUES (?, ?, ?, ?)",
                params![
                    lease.scope,
                    lease.name,
                    lease.owner,
                    lease.expires_at.timestamp_millis()
                ],
            )
            .map_err(backend_err)?;
            tx.commit().map_err(backend_err)?;
            Ok(Some(lease))
        })
        .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let l = lease.clone();
        self.with(move |c, _| {
            c.execute(
                "DELETE FROM leases WHERE scope = ? AND name = ? AND owner = ?",
                params![l.scope, l.name, l.owner],
            )
            .map(|_| ())
            .map_err(backend_err)
        })
        .await
    }
}

/// Creates `path` with mode 0600 if it is missing, and narrows an existing file to 0600.
fn private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode != 0o600 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

//! The store conformance suite against SQLite (a fresh file per case).

use std::sync::Arc;

use hourbridge_domain::ManualClock;
use hourbridge_store::Backend;
use hourbridge_store_sqlite::SqliteBackend;

async fn sqlite(clock: Arc<ManualClock>) -> Option<Arc<dyn Backend>> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.db");
    // The directory must outlive the test; leak it (tests are short-lived processes).
    std::mem::forget(dir);
    Some(Arc::new(
        SqliteBackend::open(&path, clock).expect("open sqlite"),
    ))
}

hourbridge_store::conformance_suite!(sqlite);

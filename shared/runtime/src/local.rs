//! The local server's background work: the job worker and the scheduler tick, in-process.

use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hourbridge_domain::SystemClock;
use hourbridge_store_sqlite::SqliteBackend;

use hourbridge_sync::runs::Outcome;
use hourbridge_sync::{Engine, SyncJob};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::{DB_FILE, StartupError};

/// How many runs the local worker executes at once (different connections only: leases keep
/// one run per connection).
const CONCURRENT_RUNS: usize = 4;

/// Executes jobs from `rx` until the channel closes; on start it also resumes every run that
/// was not finished (e.g. the process was killed mid-run).
pub fn spawn_worker(engine: Engine, mut rx: mpsc::UnboundedReceiver<SyncJob>) -> JoinHandle<()> {
    tokio::spawn(async move {
        match engine.open_jobs().await {
            Ok(jobs) => {
                for job in jobs {
                    tracing::info!(run = %job.run_id, "resuming unfinished run");
                    let _ = engine.queue.enqueue(&job, Duration::ZERO).await;
                }
            }
            Err(e) => tracing::error!(error = %e, "could not list unfinished runs"),
        }
        let slots = Arc::new(Semaphore::new(CONCURRENT_RUNS));
        while let Some(job) = rx.recv().await {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let engine = engine.clone();
            tokio::spawn(async move {
                let _permit = permit;
                run_once(&engine, &job).await;
            });
        }
    })
}

/// Executes one job and re-queues it when it paused or must wait.
pub async fn run_once(engine: &Engine, job: &SyncJob) {
    match engine.execute(job, None).await {
        Ok(Outcome::Finished(state)) => tracing::info!(run = %job.run_id, ?state, "run finished"),
        Ok(Outcome::Paused) => {
            let _ = engine.queue.enqueue(job, Duration::ZERO).await;
        }
        Ok(Outcome::RetryAfter(wait)) => {
            let _ = engine.queue.enqueue(job, wait).await;
        }
        Err(e) => {
            tracing::error!(run = %job.run_id, error = %e, "run could not be executed; retrying later");
            let _ = engine.queue.enqueue(job, Duration::from_secs(10)).await;
        }
    }
}

/// Ticks the scheduler: whenever a connection is due (checked at least every `max_sleep`).
pub fn spawn_scheduler(engine: Engine, max_sleep: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match hourbridge_sync::schedule::tick(&engine, 1000).await {
                Ok(r) if r.enqueued > 0 => {
                    tracing::info!(enqueued = r.enqueued, "scheduled runs queued")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "scheduler tick failed"),
            }
            let wait = hourbridge_sync::schedule::until_next_due(&engine, max_sleep)
                .await
                .unwrap_or(max_sleep);
            tokio::time::sleep(wait.max(Duration::from_millis(200))).await;
        }
    })
}

/// The lock file in a data directory; it holds the process id of the server using it.
pub const LOCK_FILE: &str = "serve.lock";

/// An exclusive hold on a data directory by the one local process serving from it. An OS file
/// lock: it ends when this is dropped or the process dies, SIGKILL included.
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}

/// Claims `dir` for this process, before its store is used: fails with
/// [`StartupError::DataDirInUse`] while another `hourbridge serve` (or demo) holds it, so two
/// schedulers and workers never share one database. Having it, this process is the database's
/// only user, so every lease in it was left by a process that died (killed mid-run): they are
/// cleared, and the runs that process left resume at once instead of after the lease time.
pub async fn claim_data_dir(dir: &Path) -> Result<DataDirLock, StartupError> {
    let fail = |e: std::io::Error| StartupError::DataDir(format!("{}: {e}", dir.display()));
    crate::private_dir(dir).map_err(fail)?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE))
        .map_err(fail)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut held = String::new();
            let _ = file.read_to_string(&mut held);
            return Err(StartupError::DataDirInUse {
                dir: dir.display().to_string(),
                pid: held.trim().parse().ok(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(fail(e)),
    }
    file.set_len(0).map_err(fail)?;
    file.rewind().map_err(fail)?;
    write!(file, "{}", std::process::id()).map_err(fail)?;
    let leftover = SqliteBackend::open(&dir.join(DB_FILE), Arc::new(SystemClock))?
        .clear_leases()
        .await?;
    if leftover > 0 {
        tracing::info!(
            leases = leftover,
            "took over what a stopped server held (its unfinished runs resume now)"
        );
    }
    Ok(DataDirLock { _file: file })
}

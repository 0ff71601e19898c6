//! The `sync-worker` Lambda: runs one sync job from the jobs bus. It works until shortly before
//! the Lambda deadline, checkpoints, and puts its job back on the bus; a job for a connection
//! that another run holds, or that the provider asked us to delay, goes back with a
//! `not_before`. Failures that retrying cannot fix are recorded on the run, not thrown.

use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, TimeZone, Utc};
use hourbridge_runtime::AppContext;
use hourbridge_runtime::queue::JobEnvelope;
use hourbridge_sync::runs::Outcome;
use lambda_runtime::LambdaEvent;
use serde::Serialize;

/// What one invocation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum WorkerReport {
    /// The run finished (now or earlier).
    Finished {
        /// Final state.
        state: String,
    },
    /// The run checkpointed and was put back on the bus.
    Requeued {
        /// Seconds before it may run again.
        after_seconds: u64,
    },
}

/// A failure the Lambda should retry (the run stays resumable).
#[derive(Debug, thiserror::Error)]
#[error("sync worker: {0}")]
pub struct WorkerError(#[from] hourbridge_sync::SyncError);

/// Runs the job until done or until the deadline approaches.
pub async fn handler(
    ctx: &AppContext,
    event: LambdaEvent<EventBridgeEvent<JobEnvelope>>,
) -> Result<WorkerReport, WorkerError> {
    let deadline: DateTime<Utc> = Utc
        .timestamp_millis_opt(event.context.deadline as i64)
        .single()
        .unwrap_or_else(Utc::now);
    execute(ctx, event.payload.detail, deadline).await
}

/// The handler without the Lambda envelope (what tests drive).
pub async fn execute(
    ctx: &AppContext,
    envelope: JobEnvelope,
    deadline: DateTime<Utc>,
) -> Result<WorkerReport, WorkerError> {
    let engine = &ctx.engine;
    let job = envelope.job;
    if let Some(not_before) = envelope.not_before {
        let now = engine.clock.now();
        if not_before > now {
            let wait = (not_before - now).to_std().unwrap_or_default();
            let budget = (deadline - now - engine.settings.deadline_margin)
                .to_std()
                .unwrap_or_default();
            if wait > budget {
                engine.queue.enqueue(&job, wait).await?;
                return Ok(WorkerReport::Requeued {
                    after_seconds: wait.as_secs(),
                });
            }
            tokio::time::sleep(wait).await;
        }
    }
    match engine.execute(&job, Some(deadline)).await? {
        Outcome::Finished(state) => Ok(WorkerReport::Finished {
            state: format!("{state:?}").to_lowercase(),
        }),
        Outcome::Paused => {
            engine.queue.enqueue(&job, Duration::ZERO).await?;
            Ok(WorkerReport::Requeued { after_seconds: 0 })
        }
        Outcome::RetryAfter(wait) => {
            tracing::info!(run = %job.run_id, ?wait, "run re-queued");
            engine.queue.enqueue(&job, wait).await?;
            Ok(WorkerReport::Requeued {
                after_seconds: wait.as_secs(),
            })
        }
    }
}

impl From<WorkerError> for lambda_runtime::Diagnostic {
    fn from(e: WorkerError) -> Self {
        Self {
            error_type: if e.0.is_retryable() {
                "Retryable"
            } else {
                "Permanent"
            }
            .to_owned(),
            error_message: e.to_string(),
        }
    }
}

//! The `scheduled-sync` Lambda: on every EventBridge schedule tick (`rate(15 minutes)` and a
//! daily rule) it enqueues one job per connection that is due. The schedule index is read only
//! up to "now", so the work is proportional to the due connections, not to all of them.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use hourbridge_runtime::AppContext;
use hourbridge_sync::schedule::{TickReport, tick};
use lambda_runtime::LambdaEvent;

/// Due connections handled per store page.
const BATCH: usize = 1000;
/// Stop taking new batches this close to the deadline.
const MARGIN_MS: u64 = 5_000;

/// Why a tick failed (Lambda retries the invocation; the schedule index is unchanged for what
/// was not enqueued).
#[derive(Debug, thiserror::Error)]
#[error("scheduled sync: {0}")]
pub struct TickError(#[from] hourbridge_sync::SyncError);

/// Enqueues every due connection, batch by batch, while time remains.
pub async fn handler(
    ctx: &AppContext,
    event: LambdaEvent<EventBridgeEvent>,
) -> Result<TickReport, TickError> {
    let deadline = event.context.deadline;
    let mut total = TickReport::default();
    loop {
        let r = tick(&ctx.engine, BATCH).await?;
        total.enqueued += r.enqueued;
        total.claimed_elsewhere += r.claimed_elsewhere;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        if r.enqueued + r.claimed_elsewhere < BATCH || now_ms + MARGIN_MS >= deadline {
            return Ok(total);
        }
    }
}

impl From<TickError> for lambda_runtime::Diagnostic {
    fn from(e: TickError) -> Self {
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

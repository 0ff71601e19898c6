//! Job queues: EventBridge in AWS (a custom bus with a rule to `sync-worker`), an in-process
//! channel locally. Both carry the same [`SyncJob`] JSON.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hourbridge_sync::{JobQueue, SyncError, SyncJob};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The EventBridge `source` of job events.
pub const JOB_SOURCE: &str = "hourbridge.sync";
/// The EventBridge `detail-type` of job events.
pub const JOB_DETAIL_TYPE: &str = "SyncJob";

/// A job as it travels: the job plus the earliest time to run it (EventBridge cannot delay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEnvelope {
    /// The job.
    #[serde(flatten)]
    pub job: SyncJob,
    /// Do not start before this.
    pub not_before: Option<DateTime<Utc>>,
}

/// Jobs on an EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgeQueue {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeQueue {
    /// A queue on `bus`.
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl JobQueue for EventBridgeQueue {
    async fn enqueue(&self, job: &SyncJob, delay: Duration) -> Result<(), SyncError> {
        let not_before = (!delay.is_zero())
            .then(|| Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default());
        let detail = serde_json::to_string(&JobEnvelope {
            job: job.clone(),
            not_before,
        })
        .map_err(|e| SyncError::Queue(e.to_string()))?;
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(JOB_SOURCE)
            .detail_type(JOB_DETAIL_TYPE)
            .detail(detail)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| SyncError::Queue(format!("{e:?}")))?;
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .first()
                .and_then(|e| e.error_message())
                .unwrap_or("unknown")
                .to_owned();
            return Err(SyncError::Queue(format!("event rejected: {why}")));
        }
        Ok(())
    }
}

/// The EventBridge `source` of outbound events.
pub const EVENT_SOURCE: &str = "hourbridge";

#[async_trait]
impl hourbridge_sync::runs::EventSink for EventBridgeQueue {
    async fn publish(&self, event: &hourbridge_sync::runs::OutboundEvent) -> Result<(), SyncError> {
        let detail = serde_json::to_string(event).map_err(|e| SyncError::Queue(e.to_string()))?;
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(event.kind)
            .detail(detail)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| SyncError::Queue(format!("{e:?}")))?;
        if out.failed_entry_count() > 0 {
            return Err(SyncError::Queue("outbound event rejected".into()));
        }
        Ok(())
    }
}

/// Jobs on an in-process channel, for `hourbridge serve`. Runs are also recorded in the store,
/// so jobs lost with the process are found again by [`hourbridge_sync::Engine::open_jobs`].
#[derive(Debug, Clone)]
pub struct LocalQueue {
    tx: mpsc::UnboundedSender<SyncJob>,
}

impl LocalQueue {
    /// A queue and the receiving end the local worker reads.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<SyncJob>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }
}

#[async_trait]
impl JobQueue for LocalQueue {
    async fn enqueue(&self, job: &SyncJob, delay: Duration) -> Result<(), SyncError> {
        if delay.is_zero() {
            return self
                .tx
                .send(job.clone())
                .map_err(|_| SyncError::Queue("local worker stopped".into()));
        }
        let (tx, job) = (self.tx.clone(), job.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(job);
        });
        Ok(())
    }
}

/// What a store operation can fail with, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: the record changed (or appeared) since it was read. Re-read and
    /// retry, or report a conflict.
    #[error("the record was changed concurrently")]
    Conflict,
    /// The paging cursor is not one this store issued.
    #[error("invalid paging cursor")]
    InvalidCursor,
    /// The stored data could not be decoded; a bug or manual tampering, not retryable.
    #[error("stored record {kind}/{id} is corrupt: {reason}")]
    Corrupt {
        /// Record kind.
        kind: String,
        /// Record id.
        id: String,
        /// Decoder's message.
        reason: String,
    },
    /// The backend is unavailable or throttling; retry later.
    #[error("store temporarily unavailable: {0}")]
    Unavailable(String),
    /// Any other backend failure (not retryable).
    #[error("store backend error: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Conflict)
    }
}

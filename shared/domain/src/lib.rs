//! Host domain model of Hourbridge.
//!
//! Everything here is pure data plus validation: no AWS, HTTP or SQL crate is imported, so the
//! sync engine and the API can share it and tests can exercise it without any I/O. Records do not
//! carry their workspace id: the store keys every record by workspace, which is what enforces
//! tenant isolation.

mod clock;
mod error;
mod host;
mod ids;
mod integration;
mod outbound;
mod secret;
pub mod validate;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::DomainError;
pub use host::*;
pub use ids::{ProviderId, RecordId, WorkspaceId, new_id};
pub use integration::*;
pub use outbound::*;
pub use secret::{
    SecretError, SecretStore, SecretValue, check_secret_name, connection_secret_name,
};

//! The store contract of Hourbridge.
//!
//! One small [`Backend`] trait is implemented twice (SQLite for the embedded default, DynamoDB
//! for AWS) and proven equal by the [`conformance`] suite (feature `testkit`). Everything above
//! it talks to [`Store`], a typed layer that turns domain records ([`Entity`]) into [`Record`]s.
//!
//! The model is deliberately that of a single DynamoDB table, because SQLite can emulate it
//! exactly while the reverse is not true:
//! - every record lives in a *scope* (a workspace id, or [`GLOBAL_SCOPE`] for cross-tenant
//!   lookups such as OAuth state), has a *kind* and an *id*; scope is the partition, which is
//!   what isolates tenants;
//! - a record may carry up to two secondary index keys `(partition value, sort value)`;
//! - a record may expire: once `expires_at` is past, every read treats it as absent, even if the
//!   backend has not physically removed it yet (DynamoDB's TTL deletes lazily);
//! - writes may be conditional on absence or on a version, which gives optimistic concurrency;
//! - leases give one holder at a time per name, until they expire or are released;
//! - up to [`MAX_TRANSACT_ITEMS`] writes may be applied atomically ([`Backend::transact`]),
//!   which is what the change feed of host work logs and tasks is built on
//!   ([`Store::commit_with_changes`], [`Store::changes_after`]).

mod backend;
mod changes;
mod entities;
mod error;
mod typed;

#[cfg(feature = "testkit")]
pub mod conformance;

pub use backend::{
    Backend, Condition, Cursor, GLOBAL_SCOPE, IdPage, IndexKey, IndexSel, Lease, MAX_BATCH_WRITE,
    MAX_TRANSACT_ITEMS, Query, RawPage, Record, RecordFilter, TransactItem, check_transaction,
};
pub use changes::{ChangesPage, Committed, change_id};
pub use entities::{Entity, EntityKind, OAuthState, WebhookDedup, outbound_mapping_id};
pub use error::StoreError;
pub use typed::{EntityFilter, Page, Store, Upserted};

//! The provider port of Hourbridge.
//!
//! A provider adapter is a value implementing [`Provider`]. Its [`ProviderDescriptor`] declares,
//! as data, how it authenticates ([`AuthKind`]), who may install it, its rate limits and what it
//! can do ([`Capabilities`]). Sync planning reads the capabilities, never the provider's id; the
//! adapter then offers one trait object per capability it declares:
//!
//! | capability | trait | used for |
//! |---|---|---|
//! | `work_logs_in` | [`WorkLogSource`] | Harvest, Hubstaff: remote work logs pulled into the host |
//! | `time_out` | [`TimeSink`] | Basecamp: host time pushed out as remote entries |
//! | `time_two_way` | [`TimeSink`] + [`TimeChangeFeed`] | TimeLog: both directions |
//! | `master_data_in` | [`MasterDataSource`] | Basecamp, Tripletex: projects, tasks, customers in |
//! | `tasks_out` | [`TaskSink`] | TimeLog: host tasks pushed out |
//! | `webhooks` | [`WebhookReceiver`] | Tripletex: verified, deduplicated change events |
//!
//! [`check_provider`] enforces that the declared capabilities and the offered traits agree; the
//! registry runs it on every provider in its tests.
//!
//! # Adding a provider
//! 1. Create `shared/providers/<name>/` (a crate `hourbridge-provider-<name>`; the workspace
//!    picks it up through the `shared/providers/*` members glob). It depends on this crate and
//!    `hourbridge-domain` only: no AWS crate, no store.
//! 2. Implement [`Provider`] with a descriptor and the capability traits it declares. Classify
//!    every failure into a [`ProviderErrorKind`] so the sync engine knows whether to retry, ask
//!    for re-authorization or give up.
//! 3. Add one line to `hourbridge-provider-registry`'s `builtin` function.

mod cache;
mod capabilities;
mod error;
mod model;
mod oauth;
mod registry;
mod traits;

pub use cache::{CachedResponse, NoCache, ResponseCache};
pub use capabilities::*;
pub use error::{ProviderError, ProviderErrorKind};
pub use model::*;
pub use oauth::*;
pub use registry::{Registry, RegistryError};
pub use traits::*;

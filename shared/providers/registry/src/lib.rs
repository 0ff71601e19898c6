//! The provider registry: the only crate that depends on every provider adapter.
//!
//! Adding a provider is one folder under `shared/providers/` plus one line in [`builtin`]
//! (and its dependency line in this crate's `Cargo.toml`). Nothing else in Hourbridge names a
//! provider: the API, scheduler and sync engine look providers up here by id and act on their
//! declared capabilities.

use std::sync::Arc;

pub use hourbridge_provider_api::{Registry, RegistryError};
pub use hourbridge_provider_http::ProviderEnv;

/// Every configuration variable the providers read.
pub fn env_vars() -> Vec<&'static str> {
    [
        hourbridge_provider_harvest::ENV_VARS,
        hourbridge_provider_hubstaff::ENV_VARS,
        hourbridge_provider_basecamp::ENV_VARS,
        hourbridge_provider_tripletex::ENV_VARS,
        hourbridge_provider_timelog::ENV_VARS,
    ]
    .concat()
}

/// The variables of [`env_vars`] that hold secrets (each adapter's `SECRET_ENV_VARS`): kept
/// redacted, given by value only to the local binary, read from Secrets Manager in Lambda.
pub fn secret_env_vars() -> Vec<&'static str> {
    [
        hourbridge_provider_harvest::SECRET_ENV_VARS,
        hourbridge_provider_hubstaff::SECRET_ENV_VARS,
        hourbridge_provider_basecamp::SECRET_ENV_VARS,
        hourbridge_provider_tripletex::SECRET_ENV_VARS,
        hourbridge_provider_timelog::SECRET_ENV_VARS,
    ]
    .concat()
}

/// The providers Hourbridge ships: one line per provider.
pub fn builtin(env: &ProviderEnv) -> Result<Registry, RegistryError> {
    let mut r = Registry::new();
    let adapter_error = |e: hourbridge_provider_api::ProviderError| RegistryError(e.to_string());
    r.register(Arc::new(
        hourbridge_provider_harvest::Harvest::from_env(env).map_err(adapter_error)?,
    ))?;
    r.register(Arc::new(
        hourbridge_provider_hubstaff::Hubstaff::from_env(env).map_err(adapter_error)?,
    ))?;
    r.register(Arc::new(
        hourbridge_provider_basecamp::Basecamp::from_env(env).map_err(adapter_error)?,
    ))?;
    r.register(Arc::new(
        hourbridge_provider_tripletex::Tripletex::from_env(env).map_err(adapter_error)?,
    ))?;
    r.register(Arc::new(
        hourbridge_provider_timelog::TimeLog::from_env(env).map_err(adapter_error)?,
    ))?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;
    use hourbridge_domain::Role;
    use hourbridge_provider_api::*;

    use super::*;

    struct Fake {
        d: ProviderDescriptor,
        offers_work_logs: bool,
    }

    #[async_trait]
    impl WorkLogSource for Fake {
        async fn list_projects(
            &self,
            _: &ProviderSession,
            _: Option<&str>,
            _: Option<String>,
        ) -> Result<RemotePage<RemoteProject>, ProviderError> {
            Ok(RemotePage {
                items: vec![],
                next: None,
            })
        }
        async fn list_people(
            &self,
            _: &ProviderSession,
            _: Option<String>,
        ) -> Result<RemotePage<RemotePerson>, ProviderError> {
            Ok(RemotePage {
                items: vec![],
                next: None,
            })
        }
        async fn list_work_logs(
            &self,
            _: &ProviderSession,
            _: &str,
            _: DateWindow,
            _: Option<String>,
        ) -> Result<RemotePage<RemoteWorkLog>, ProviderError> {
            Ok(RemotePage {
                items: vec![],
                next: None,
            })
        }
    }

    #[async_trait]
    impl Provider for Fake {
        fn descriptor(&self) -> &ProviderDescriptor {
            &self.d
        }
        async fn check_credentials(
            &self,
            _: &ProviderSession,
        ) -> Result<AccountInfo, ProviderError> {
            Err(ProviderError::new(
                self.d.id,
                ProviderErrorKind::Unsupported,
                "fake",
            ))
        }
        fn work_logs(&self) -> Option<&dyn WorkLogSource> {
            self.offers_work_logs.then_some(self as &dyn WorkLogSource)
        }
    }

    fn fake(id: &'static str, declares: bool, offers: bool) -> Arc<dyn Provider> {
        Arc::new(Fake {
            d: ProviderDescriptor {
                id,
                display_name: "Fake",
                auth: AuthKind::CredentialSet { fields: &[] },
                install_role: Role::Admin,
                requires_add_on: false,
                rate_limit: Some(RateLimit {
                    scope: RateLimitScope::Application,
                    requests: 1000,
                    per: Duration::from_secs(3600),
                }),
                schedule: Schedule::Every(Duration::from_secs(86_400)),
                capabilities: Capabilities {
                    work_logs_in: declares.then_some(WorkLogsIn {
                        deletion_feed: false,
                        max_window_days: Some(31),
                    }),
                    ..Capabilities::default()
                },
            },
            offers_work_logs: offers,
        })
    }

    #[test]
    fn builtin_providers_declare_exactly_what_they_implement() {
        let r = builtin(&ProviderEnv::for_tests(&[])).expect("builtin providers are coherent");
        assert_eq!(
            r.descriptors().map(|d| d.id).collect::<Vec<_>>(),
            ["basecamp", "harvest", "hubstaff", "timelog", "tripletex"]
        );
        for d in r.descriptors() {
            assert!(check_provider(r.get(d.id).unwrap().as_ref()).is_ok());
        }
    }

    #[test]
    fn a_provider_declaring_a_capability_it_does_not_offer_is_refused() {
        let mut r = Registry::new();
        let err = r.register(fake("liar", true, false)).unwrap_err();
        assert!(err.0.contains("work_logs_in"), "{err}");
        let err = r.register(fake("shy", false, true)).unwrap_err();
        assert!(err.0.contains("work_logs_in"), "{err}");
        assert!(r.is_empty());
    }

    #[test]
    fn ids_are_unique_and_valid() {
        let mut r = Registry::new();
        r.register(fake("fake", true, true)).unwrap();
        assert!(r.register(fake("fake", true, true)).is_err());
        assert!(r.register(fake("Not Valid", true, true)).is_err());
        assert_eq!(r.len(), 1);
        assert!(r.get("fake").unwrap().work_logs().is_some());
    }
}

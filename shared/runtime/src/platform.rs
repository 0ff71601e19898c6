//! Where the client secrets of Hourbridge's own OAuth clients (platform clients) are read from.
//!
//! The engine asks its secret store for [`default_platform_secret_name`] of the provider. The
//! context's store answers that name from where the deployment keeps the secret:
//!
//! - `HOURBRIDGE_<PROVIDER>_CLIENT_SECRET` (local secrets backend only): the value itself, held
//!   in memory as a [`SecretValue`], never written anywhere;
//! - `HOURBRIDGE_<PROVIDER>_CLIENT_SECRET_NAME`: the secret of that full name, in Secrets Manager
//!   outside the connections' prefix (IAM lets the functions only read it), or locally an entry
//!   of the local secret store;
//! - neither: the default name under the secret store's prefix, like any other secret.
//!
//! The secrets it routes are read-only through this store: nothing Hourbridge does may replace
//! or delete the operator's OAuth client secret.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use hourbridge_domain::{SecretError, SecretStore, SecretValue};

use crate::config::default_platform_secret_name;
use crate::{Config, SecretsBackend};

/// Where one platform client secret is.
#[derive(Debug)]
enum Source {
    /// Given by value (local only).
    Value(SecretValue),
    /// A secret of `name` in `store`.
    Named {
        store: Arc<dyn SecretStore>,
        name: String,
    },
}

/// The context's secret store: `inner`, except for the platform client secrets it routes.
#[derive(Debug)]
pub(crate) struct PlatformSecrets {
    inner: Arc<dyn SecretStore>,
    routes: BTreeMap<String, Source>,
}

/// `inner`, with the platform client secrets of `providers` routed as `config` says;
/// `full_names` is the Secrets Manager store without prefix (with that backend).
pub(crate) fn wrap(
    inner: Arc<dyn SecretStore>,
    config: &Config,
    providers: &hourbridge_provider_registry::Registry,
    full_names: Option<Arc<dyn SecretStore>>,
) -> Arc<dyn SecretStore> {
    let mut routes = BTreeMap::new();
    for provider in config.platform_clients(providers).into_keys() {
        let source = if let Some(v) = config.platform_secret(&provider) {
            Source::Value(v.clone())
        } else if let Some(name) = config.platform_secret_name(&provider) {
            let store = match (config.secrets, &full_names) {
                (SecretsBackend::SecretsManager, Some(s)) => s.clone(),
                _ => inner.clone(),
            };
            Source::Named {
                store,
                name: name.to_owned(),
            }
        } else {
            continue;
        };
        routes.insert(default_platform_secret_name(&provider), source);
    }
    if routes.is_empty() {
        inner
    } else {
        Arc::new(PlatformSecrets { inner, routes })
    }
}

impl PlatformSecrets {
    fn read_only(&self, name: &str) -> Result<(), SecretError> {
        if self.routes.contains_key(name) {
            return Err(SecretError::Backend(format!(
                "{name} is a platform OAuth client secret, managed outside Hourbridge"
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl SecretStore for PlatformSecrets {
    async fn put(&self, name: &str, value: &SecretValue) -> Result<(), SecretError> {
        self.read_only(name)?;
        self.inner.put(name, value).await
    }

    async fn get(&self, name: &str) -> Result<Option<SecretValue>, SecretError> {
        match self.routes.get(name) {
            Some(Source::Value(v)) => Ok(Some(v.clone())),
            Some(Source::Named { store, name }) => store.get(name).await,
            None => self.inner.get(name).await,
        }
    }

    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        self.read_only(name)?;
        self.inner.delete(name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> hourbridge_provider_registry::Registry {
        hourbridge_provider_registry::builtin(
            &hourbridge_provider_registry::ProviderEnv::for_tests(&[]),
        )
        .unwrap()
    }

    fn config(pairs: &[(&str, &str)]) -> Config {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(crate::Mode::Local, move |k| m.get(k).cloned()).unwrap()
    }

    #[tokio::test]
    async fn a_named_secret_is_read_from_its_full_name_and_is_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn SecretStore> =
            Arc::new(hourbridge_secrets::LocalSecretStore::open(dir.path(), None).unwrap());
        let full: Arc<dyn SecretStore> = Arc::new(
            hourbridge_secrets::LocalSecretStore::open(&dir.path().join("full"), None).unwrap(),
        );
        full.put("ops/basecamp", &SecretValue::new("from-full"))
            .await
            .unwrap();
        let mut c = config(&[
            (crate::env::BASECAMP_CLIENT_ID, "id"),
            (crate::env::BASECAMP_CLIENT_SECRET_NAME, "ops/basecamp"),
        ]);
        c.secrets = SecretsBackend::SecretsManager;
        let store = wrap(inner.clone(), &c, &registry(), Some(full));
        let asked = default_platform_secret_name("basecamp");
        assert_eq!(
            store
                .get(&asked)
                .await
                .unwrap()
                .map(|v| v.expose().to_owned()),
            Some("from-full".to_owned())
        );
        assert!(store.put(&asked, &SecretValue::new("x")).await.is_err());
        assert!(store.delete(&asked).await.is_err());
        // Every other secret is the inner store's.
        store
            .put("acme/harvest", &SecretValue::new("tok"))
            .await
            .unwrap();
        assert!(inner.get("acme/harvest").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn without_a_client_id_nothing_is_routed() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn SecretStore> =
            Arc::new(hourbridge_secrets::LocalSecretStore::open(dir.path(), None).unwrap());
        let c = config(&[(crate::env::BASECAMP_CLIENT_SECRET, "v")]);
        let store = wrap(inner, &c, &registry(), None);
        assert!(
            store
                .get(&default_platform_secret_name("basecamp"))
                .await
                .unwrap()
                .is_none()
        );
    }
}

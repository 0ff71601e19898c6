//! The provider registry type: providers by id. It lives with the port so the sync engine and
//! the API can hold one without linking any adapter; `hourbridge-provider-registry` fills it
//! with the built-in providers and only the composition root depends on that crate.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{Provider, ProviderDescriptor, check_provider};

/// Providers by id.
#[derive(Clone, Default)]
pub struct Registry {
    providers: BTreeMap<&'static str, Arc<dyn Provider>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.providers.keys()).finish()
    }
}

/// Why a provider could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError(pub String);

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RegistryError {}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a provider after checking that its capabilities and traits agree and its id is
    /// unique.
    pub fn register(&mut self, provider: Arc<dyn Provider>) -> Result<(), RegistryError> {
        check_provider(provider.as_ref()).map_err(RegistryError)?;
        let id = provider.descriptor().id;
        if self.providers.contains_key(id) {
            return Err(RegistryError(format!("provider {id} registered twice")));
        }
        self.providers.insert(id, provider);
        Ok(())
    }

    /// The provider with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(id)
    }

    /// Every provider's descriptor, by id.
    pub fn descriptors(&self) -> impl Iterator<Item = &ProviderDescriptor> {
        self.providers.values().map(|p| p.descriptor())
    }

    /// Number of providers.
    pub fn len(&self) -> usize {
        self.providers.len()
    }

    /// Whether no provider is registered.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }
}

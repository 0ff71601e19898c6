//! The composition root of Hourbridge: reads configuration once, builds the store, secret
//! store, provider registry and authenticator, and hands them to handlers as one [`AppContext`].
//! `main.rs` of every function and the local binary call [`AppContext::build`], and so do the
//! tests, so what runs in production is what is tested.

mod config;
pub mod env;
mod lambda;
pub mod local;
mod platform;
pub mod queue;

use std::path::Path;
use std::sync::Arc;

use hourbridge_api::{AppState, Authenticator};
use hourbridge_domain::{Clock, SecretValue, SystemClock};
use hourbridge_provider_registry::Registry;
use hourbridge_secrets::{LocalSecretStore, SecretStore, SecretsManagerStore};
use hourbridge_store::Store;
use hourbridge_store_dynamodb::DynamoBackend;
use hourbridge_store_sqlite::SqliteBackend;
use hourbridge_sync::{Engine, JobQueue, SyncJob, SyncSettings};
use tokio::sync::mpsc;

pub use config::{
    AuthMode, Config, ConfigError, Mode, SecretsBackend, StoreBackend,
    default_platform_secret_name, platform_client_secret_var, platform_client_vars,
};
pub use lambda::gateway_claims;

pub use hourbridge_api::HttpFunction;

/// The HTTP API as one Lambda serves it: `function`'s routes only (any other path answers 404),
/// plus the layer that turns the API Gateway JWT authorizer's claims into the caller's identity.
pub fn http_app(ctx: &AppContext, function: HttpFunction) -> axum::Router {
    hourbridge_api::function_router(function, ctx.api_state())
        .layer(axum::middleware::from_fn(gateway_claims))
}

/// What every Lambda's `main` does first: read configuration (all problems at once), start JSON
/// logs and build the context.
pub async fn lambda_context() -> Result<AppContext, StartupError> {
    let config = Config::from_env(Mode::Lambda)?;
    init_tracing(config.log_json);
    AppContext::build(config, None).await
}

/// File name of the SQLite database in the data directory.
pub const DB_FILE: &str = "hourbridge.db";
/// File name of the generated JWT secret in the data directory.
pub const JWT_SECRET_FILE: &str = "jwt.secret";

/// What failed at start-up.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Configuration is incomplete or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] hourbridge_store::StoreError),
    /// The secret store could not be opened.
    #[error("secrets: {0}")]
    Secrets(#[from] hourbridge_secrets::SecretError),
    /// A provider secret named by `<VAR>_SECRET_NAME` could not be read (the value is never
    /// shown).
    #[error("{var}: reading secret {name:?}: {source}")]
    ProviderSecret {
        /// The provider variable the secret is the value of.
        var: String,
        /// The secret's full name.
        name: String,
        /// Why it could not be read.
        source: hourbridge_secrets::SecretError,
    },
    /// A provider is misdeclared.
    #[error("providers: {0}")]
    Providers(#[from] hourbridge_provider_registry::RegistryError),
    /// The data directory is unusable.
    #[error("data directory: {0}")]
    DataDir(String),
    /// Another local server (or demo) is using the data directory.
    #[error(
        "data directory {dir} is in use by another hourbridge process{}: stop it, or give this one another --data-dir",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    DataDirInUse {
        /// The directory.
        dir: String,
        /// The holder's process id, when it wrote one.
        pid: Option<u32>,
    },
}

/// Everything a handler needs, built once per process (per Lambda execution environment).
#[derive(Debug, Clone)]
pub struct AppContext {
    /// The configuration it was built from.
    pub config: Config,
    /// The store.
    pub store: Store,
    /// The secret store.
    pub secrets: Arc<dyn SecretStore>,
    /// The providers.
    pub providers: Arc<Registry>,
    /// How API callers are authenticated.
    pub auth: Arc<Authenticator>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The sync engine.
    pub engine: Engine,
    /// The in-process job channel, when jobs are not on EventBridge (taken by the local worker).
    pub local_jobs: Arc<std::sync::Mutex<Option<mpsc::UnboundedReceiver<SyncJob>>>>,
}

impl AppContext {
    /// Builds the context from `config`. AWS clients use the SDK's standard configuration chain
    /// (so `AWS_ENDPOINT_URL` points them at an emulator); `aws` overrides it for tests.
    pub async fn build(
        config: Config,
        aws: Option<aws_config::SdkConfig>,
    ) -> Result<Self, StartupError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let needs_aws = config.store == StoreBackend::DynamoDb
            || config.secrets == SecretsBackend::SecretsManager;
        let aws = match (aws, needs_aws) {
            (Some(c), _) => Some(c),
            (None, true) => {
                Some(aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await)
            }
            (None, false) => None,
        };
        if let Some(dir) = &config.data_dir {
            private_dir(dir)
                .map_err(|e| StartupError::DataDir(format!("{}: {e}", dir.display())))?;
        }
        let backend: Arc<dyn hourbridge_store::Backend> = match (&config.store, &aws) {
            (StoreBackend::DynamoDb, Some(aws)) => Arc::new(DynamoBackend::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.table_name.clone().unwrap_or_default(),
                clock.clone(),
            )),
            _ => Arc::new(SqliteBackend::open(
                &config.data_dir()?.join(DB_FILE),
                clock.clone(),
            )?),
        };
        // The second Secrets Manager store reads platform OAuth client secrets by full name.
        let (secrets, full_names): (Arc<dyn SecretStore>, Option<Arc<dyn SecretStore>>) =
            match (&config.secrets, &aws) {
                (SecretsBackend::SecretsManager, Some(aws)) => {
                    let client = aws_sdk_secretsmanager::Client::new(aws);
                    (
                        Arc::new(SecretsManagerStore::new(
                            client.clone(),
                            config.secrets_prefix.clone(),
                        )),
                        Some(Arc::new(SecretsManagerStore::new(client, ""))),
                    )
                }
                _ => (
                    Arc::new(LocalSecretStore::open(
                        config.data_dir()?,
                        config.secrets_key.as_ref(),
                    )?),
                    None,
                ),
            };
        let auth = Arc::new(match config.auth {
            AuthMode::Gateway => Authenticator::Gateway,
            AuthMode::Hs256 => Authenticator::hs256(&jwt_secret(&config)?),
        });
        let store = Store::new(backend, clock.clone());
        let http = hourbridge_provider_http::HttpConfig {
            user_agent: config.user_agent.clone(),
            ..Default::default()
        };
        let provider_secrets =
            provider_secrets(&config, full_names.as_ref().unwrap_or(&secrets)).await?;
        let provider_env = hourbridge_provider_http::ProviderEnv {
            lookup: {
                let vars = config.provider_vars.clone();
                Arc::new(move |k| {
                    vars.get(k)
                        .cloned()
                        .or_else(|| provider_secrets.get(k).map(|v| v.expose().to_owned()))
                })
            },
            http: http.clone(),
            budget: Arc::new(hourbridge_sync::budget::StoreRateBudget::new(
                store.clone(),
                http.max_retry_wait,
            )),
            cache: Arc::new(hourbridge_sync::response_cache::StoreResponseCache::new(
                store.clone(),
            )),
        };
        let providers = Arc::new(hourbridge_provider_registry::builtin(&provider_env)?);
        let secrets = platform::wrap(secrets, &config, &providers, full_names);
        type Wiring = (
            Arc<dyn JobQueue>,
            Arc<dyn hourbridge_sync::runs::EventSink>,
            Option<mpsc::UnboundedReceiver<SyncJob>>,
        );
        // In Lambda jobs and outbound events share the jobs bus; locally jobs stay in-process
        // and outbound events become log lines.
        let (queue, events, local_jobs): Wiring = match &config.jobs_bus {
            Some(bus) => {
                let aws = match &aws {
                    Some(a) => a.clone(),
                    None => aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
                };
                let q = Arc::new(queue::EventBridgeQueue::new(
                    aws_sdk_eventbridge::Client::new(&aws),
                    bus,
                ));
                (q.clone(), q, None)
            }
            None => {
                let (q, rx) = queue::LocalQueue::new();
                (
                    Arc::new(q),
                    Arc::new(hourbridge_sync::runs::LogEvents),
                    Some(rx),
                )
            }
        };
        let oauth = hourbridge_provider_http::oauth::HttpOAuth::new(&config.user_agent)
            .map_err(|e| StartupError::DataDir(format!("http client: {e}")))?;
        let engine = Engine {
            store: store.clone(),
            secrets: secrets.clone(),
            providers: providers.clone(),
            oauth: Arc::new(oauth),
            queue,
            events,
            clock: clock.clone(),
            settings: SyncSettings {
                public_url: config
                    .public_url
                    .clone()
                    .unwrap_or_else(|| "http://127.0.0.1:8080".into()),
                app_url: config.app_url.clone(),
                platform_clients: config.platform_clients(&providers),
                ..SyncSettings::default()
            },
            sessions: Default::default(),
        };
        Ok(Self {
            store,
            secrets,
            providers,
            auth,
            clock,
            engine,
            local_jobs: Arc::new(std::sync::Mutex::new(local_jobs)),
            config,
        })
    }

    /// The API state of this context.
    pub fn api_state(&self) -> AppState {
        AppState {
            store: self.store.clone(),
            auth: self.auth.clone(),
            engine: self.engine.clone(),
        }
    }

    /// Starts the in-process worker and scheduler (local server only). Returns `None` when jobs
    /// travel on EventBridge or the worker was already started.
    pub fn start_local_workers(
        &self,
    ) -> Option<(tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>)> {
        let rx = self.local_jobs.lock().ok()?.take()?;
        Some((
            local::spawn_worker(self.engine.clone(), rx),
            local::spawn_scheduler(self.engine.clone(), std::time::Duration::from_secs(60)),
        ))
    }
}

/// The providers' secret variables ([`env::provider_secret_vars`]): those given by value
/// (local binary), and those named by `<VAR>_SECRET_NAME`, read once from `store` (Secrets
/// Manager by full name, or the local secret store). A named secret that does not exist is left
/// unset with a warning (the adapter then reports itself not configured when used), so a
/// deployment that does not use that provider needs not create it; any other failure stops
/// start-up.
async fn provider_secrets(
    config: &Config,
    store: &Arc<dyn SecretStore>,
) -> Result<std::collections::BTreeMap<String, SecretValue>, StartupError> {
    let mut out = config.provider_secrets.clone();
    for (var, name) in &config.provider_secret_names {
        match store.get(name).await {
            Ok(Some(v)) => {
                out.insert(var.clone(), v);
            }
            Ok(None) => tracing::warn!(
                variable = %var,
                secret = %name,
                "the secret named by {} does not exist; {var} stays unset",
                env::secret_name_var(var)
            ),
            Err(source) => {
                return Err(StartupError::ProviderSecret {
                    var: var.clone(),
                    name: name.clone(),
                    source,
                });
            }
        }
    }
    Ok(out)
}

/// Creates the data directory with mode 0700 (it holds the database, the encrypted secrets and
/// their key). An existing directory is left as it is, with a warning when others may read it.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                data_dir = %dir.display(),
                mode = format!("{mode:o}"),
                "the data directory is readable by other users; `chmod 700` it (it holds names, e-mails, work logs and secrets)"
            );
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// The HS256 secret: `HOURBRIDGE_JWT_SECRET`, else a random one generated once into the data
/// directory (mode 0600), so `hourbridge token` and `hourbridge serve` agree without set-up.
pub fn jwt_secret(config: &Config) -> Result<SecretValue, StartupError> {
    if let Some(s) = &config.jwt_secret {
        return Ok(s.clone());
    }
    let dir = config.data_dir()?;
    let path = dir.join(JWT_SECRET_FILE);
    load_or_create_secret_file(&path)
}

fn load_or_create_secret_file(path: &Path) -> Result<SecretValue, StartupError> {
    use base64::Engine as _;
    use rand::RngCore as _;
    use std::io::Write as _;
    let err = |e: std::io::Error| StartupError::DataDir(format!("{}: {e}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => return Ok(SecretValue::new(s.trim().to_owned())),
        Ok(_) => {
            return Err(StartupError::DataDir(format!(
                "{} is empty",
                path.display()
            )));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
        Err(_) => {}
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(secret.as_bytes()).map_err(err)?;
            Ok(SecretValue::new(secret))
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read_to_string(path)
            .map(|s| SecretValue::new(s.trim().to_owned()))
            .map_err(err),
        Err(e) => Err(err(e)),
    }
}

/// Starts `tracing`: JSON lines when `HOURBRIDGE_LOG_FORMAT=json` (always in Lambda), text
/// otherwise; level from `RUST_LOG` (default `info`). Safe to call more than once.
pub fn init_tracing(json: bool) {
    init_tracing_at(json, "info");
}

/// Like [`init_tracing`] with another default level (used by interactive commands).
pub fn init_tracing_at(json: bool, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

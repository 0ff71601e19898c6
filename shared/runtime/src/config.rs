use std::path::{Path, PathBuf};

use hourbridge_domain::SecretValue;

use crate::env;

/// Where the process runs; decides the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The local binary: SQLite, encrypted local secrets, HS256 tokens.
    Local,
    /// A Lambda function: DynamoDB, Secrets Manager, API Gateway authorizer claims.
    Lambda,
}

/// Store backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreBackend {
    /// Embedded SQLite file.
    Sqlite,
    /// DynamoDB single table.
    DynamoDb,
}

/// Secret backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsBackend {
    /// Encrypted local file.
    Local,
    /// AWS Secrets Manager.
    SecretsManager,
}

/// How API callers are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Verify HS256 bearer tokens.
    Hs256,
    /// Trust API Gateway JWT authorizer claims.
    Gateway,
}

/// Configuration, read once at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Store backend.
    pub store: StoreBackend,
    /// Data directory (SQLite, local secrets, generated keys).
    pub data_dir: Option<PathBuf>,
    /// DynamoDB table.
    pub table_name: Option<String>,
    /// Secret backend.
    pub secrets: SecretsBackend,
    /// Secrets Manager name prefix.
    pub secrets_prefix: String,
    /// Local secret-store key.
    pub secrets_key: Option<SecretValue>,
    /// Auth mode.
    pub auth: AuthMode,
    /// HS256 secret.
    pub jwt_secret: Option<SecretValue>,
    /// JSON logs.
    pub log_json: bool,
    /// Public base URL.
    pub public_url: Option<String>,
    /// Host app URL.
    pub app_url: Option<String>,
    /// EventBridge bus for sync jobs (`None`: in-process queue).
    pub jobs_bus: Option<String>,
    /// `User-Agent` for provider calls.
    pub user_agent: String,
    /// Provider settings (base URLs), by variable name, as the adapters read them; without the
    /// secret ones ([`env::provider_secret_vars`]).
    pub provider_vars: std::collections::BTreeMap<String, String>,
    /// Provider secrets given by value (local binary only), by variable name; handed to the
    /// adapters as that variable.
    pub provider_secrets: std::collections::BTreeMap<String, SecretValue>,
    /// Where provider secrets are ([`env::secret_name_var`]: a secret's full name), by the
    /// variable whose value they hold; read once by [`AppContext::build`](crate::AppContext).
    pub provider_secret_names: std::collections::BTreeMap<String, String>,
    /// Platform OAuth client variables (`HOURBRIDGE_<PROVIDER>_CLIENT_ID`,
    /// `HOURBRIDGE_<PROVIDER>_CLIENT_SECRET_NAME`), by name; see [`Config::platform_clients`].
    pub platform_vars: std::collections::BTreeMap<String, String>,
    /// Platform OAuth client secrets given by value (`HOURBRIDGE_<PROVIDER>_CLIENT_SECRET`, local
    /// secrets backend only), by variable name; see [`Config::platform_secret`].
    pub platform_secrets: std::collections::BTreeMap<String, SecretValue>,
}

/// The variables of a platform OAuth client of `provider`: the client id, and where the client
/// secret is (the secret's full name in the secret backend; see [`Config::platform_secret_name`]).
pub fn platform_client_vars(provider: &str) -> (String, String) {
    let p = provider.to_ascii_uppercase().replace('-', "_");
    (
        format!("HOURBRIDGE_{p}_CLIENT_ID"),
        format!("HOURBRIDGE_{p}_CLIENT_SECRET_NAME"),
    )
}

/// The variable holding the client secret of `provider`'s platform OAuth client by value
/// (`HOURBRIDGE_<PROVIDER>_CLIENT_SECRET`): the local binary's way to configure it.
pub fn platform_client_secret_var(provider: &str) -> String {
    let p = provider.to_ascii_uppercase().replace('-', "_");
    format!("HOURBRIDGE_{p}_CLIENT_SECRET")
}

/// The name under which the engine asks the secret store for `provider`'s client secret
/// ([`PlatformClient::secret_name`](hourbridge_sync::PlatformClient)). It is also where the
/// secret is when nothing else says so: under the secret store's prefix. It has three segments,
/// so it cannot collide with a connection's `{workspace}/{provider}` secret.
pub fn default_platform_secret_name(provider: &str) -> String {
    format!("platform/{provider}/oauth-client-secret")
}

fn is_platform_var(name: &str) -> bool {
    name.starts_with("HOURBRIDGE_")
        && (name.ends_with("_CLIENT_ID") || name.ends_with("_CLIENT_SECRET_NAME"))
}

fn is_platform_secret_var(name: &str) -> bool {
    name.starts_with("HOURBRIDGE_") && name.ends_with("_CLIENT_SECRET")
}

/// Every configuration problem found, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {}", .problems.join("; "))]
pub struct ConfigError {
    /// One line per problem.
    pub problems: Vec<String>,
}

impl Config {
    /// Reads the process environment. Platform OAuth client variables are read for every
    /// provider (`HOURBRIDGE_<PROVIDER>_CLIENT_*`), not only those named in [`env`].
    pub fn from_env(mode: Mode) -> Result<Self, ConfigError> {
        let platform: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| is_platform_var(k) || is_platform_secret_var(k))
            .collect();
        Self::read(
            mode,
            |k| std::env::var(k).ok().filter(|v| !v.is_empty()),
            platform,
        )
    }

    /// The client secret of `provider`'s platform OAuth client given by value
    /// (`HOURBRIDGE_<PROVIDER>_CLIENT_SECRET`, local secrets backend only).
    pub fn platform_secret(&self, provider: &str) -> Option<&SecretValue> {
        self.platform_secrets
            .get(&platform_client_secret_var(provider))
    }

    /// The full name of the secret holding `provider`'s platform client secret, when
    /// `HOURBRIDGE_<PROVIDER>_CLIENT_SECRET_NAME` sets it: in Secrets Manager a secret outside
    /// [`env::SECRETS_PREFIX`] (which the functions may only read), locally an entry of the local
    /// secret store. Unset, the secret is [`default_platform_secret_name`] under the prefix.
    pub fn platform_secret_name(&self, provider: &str) -> Option<&str> {
        self.platform_vars
            .get(&platform_client_vars(provider).1)
            .map(String::as_str)
    }

    /// Hourbridge's own OAuth clients for the registry's providers that declare
    /// [`OAuthClient::Platform`](hourbridge_provider_api::OAuthClient::Platform): the client id
    /// from `HOURBRIDGE_<PROVIDER>_CLIENT_ID` (a provider without one cannot be connected, and
    /// says so), the secret by [`default_platform_secret_name`], which the context's secret
    /// store resolves to `HOURBRIDGE_<PROVIDER>_CLIENT_SECRET` (local) or
    /// `HOURBRIDGE_<PROVIDER>_CLIENT_SECRET_NAME` when set.
    pub fn platform_clients(
        &self,
        registry: &hourbridge_provider_registry::Registry,
    ) -> std::collections::BTreeMap<String, hourbridge_sync::PlatformClient> {
        registry
            .descriptors()
            .filter(|d| {
                d.auth
                    .oauth2()
                    .is_some_and(|s| s.client == hourbridge_provider_api::OAuthClient::Platform)
            })
            .filter_map(|d| {
                let (id_var, _) = platform_client_vars(d.id);
                let client_id = self.platform_vars.get(&id_var)?.clone();
                // The engine always asks for the default name; `AppContext::build` routes it to
                // where the secret is (`platform_secret`, `platform_secret_name`).
                Some((
                    d.id.to_owned(),
                    hourbridge_sync::PlatformClient {
                        client_id,
                        secret_name: default_platform_secret_name(d.id),
                    },
                ))
            })
            .collect()
    }

    /// Reads configuration through `get`, collecting every problem before failing. Platform
    /// OAuth client variables are those named in [`env::PLATFORM_CLIENTS`].
    pub fn from_lookup(
        mode: Mode,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::read(
            mode,
            get,
            env::PLATFORM_CLIENTS.iter().map(|s| (*s).to_owned()),
        )
    }

    fn read(
        mode: Mode,
        get: impl Fn(&str) -> Option<String>,
        platform: impl IntoIterator<Item = String>,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut choice = |var: &str, default: &str, allowed: &[&str]| -> String {
            let v = get(var).unwrap_or_else(|| default.to_owned());
            if !allowed.contains(&v.as_str()) {
                problems.push(format!("{var}={v:?} must be one of {}", allowed.join(", ")));
            }
            v
        };
        let (store_default, secrets_default, auth_default) = match mode {
            Mode::Local => ("sqlite", "local", "hs256"),
            Mode::Lambda => ("dynamodb", "secretsmanager", "gateway"),
        };
        let store = match choice(env::STORE, store_default, &["sqlite", "dynamodb"]).as_str() {
            "dynamodb" => StoreBackend::DynamoDb,
            _ => StoreBackend::Sqlite,
        };
        let secrets = match choice(
            env::SECRETS_BACKEND,
            secrets_default,
            &["local", "secretsmanager"],
        )
        .as_str()
        {
            "secretsmanager" => SecretsBackend::SecretsManager,
            _ => SecretsBackend::Local,
        };
        let auth = match choice(env::AUTH, auth_default, &["hs256", "gateway"]).as_str() {
            "gateway" => AuthMode::Gateway,
            _ => AuthMode::Hs256,
        };
        let log_format = choice(
            env::LOG_FORMAT,
            if mode == Mode::Lambda { "json" } else { "text" },
            &["json", "text"],
        );
        let data_dir = get(env::DATA_DIR)
            .map(PathBuf::from)
            .or_else(|| (mode == Mode::Local).then(|| PathBuf::from(".hourbridge")));
        let table_name = get(env::TABLE_NAME);
        let needs_dir = store == StoreBackend::Sqlite
            || secrets == SecretsBackend::Local
            || (auth == AuthMode::Hs256 && get(env::JWT_SECRET).is_none());
        if needs_dir && data_dir.is_none() {
            problems.push(format!(
                "{} is required for the SQLite store, local secrets or generated keys",
                env::DATA_DIR
            ));
        }
        if mode == Mode::Lambda && get(env::PUBLIC_URL).is_none() {
            problems.push(format!(
                "{} is required in Lambda (OAuth redirect URLs are built from it)",
                env::PUBLIC_URL
            ));
        }
        if mode == Mode::Lambda && get(env::JOBS_BUS).is_none() {
            problems.push(format!(
                "{} is required in Lambda (sync jobs travel on it)",
                env::JOBS_BUS
            ));
        }
        if store == StoreBackend::DynamoDb && table_name.is_none() {
            problems.push(format!(
                "{} is required with {}=dynamodb",
                env::TABLE_NAME,
                env::STORE
            ));
        }
        let secrets_prefix = get(env::SECRETS_PREFIX);
        if secrets == SecretsBackend::SecretsManager && secrets_prefix.is_none() {
            problems.push(format!(
                "{} is required with {}=secretsmanager",
                env::SECRETS_PREFIX,
                env::SECRETS_BACKEND
            ));
        }
        for var in [env::PUBLIC_URL, env::APP_URL].into_iter().chain(
            hourbridge_provider_registry::env_vars()
                .into_iter()
                .filter(|v| v.ends_with("_URL")),
        ) {
            if let Some(u) = get(var)
                && !(u.starts_with("https://") || u.starts_with("http://"))
            {
                problems.push(format!("{var} must be an http(s) URL"));
            }
        }
        // Provider secrets: by value locally, by secret name (read at start-up) anywhere; never
        // as a plain environment variable of a Lambda.
        let secret_vars = env::provider_secret_vars();
        let mut provider_secrets = std::collections::BTreeMap::new();
        let mut provider_secret_names = std::collections::BTreeMap::new();
        for var in &secret_vars {
            let name_var = env::secret_name_var(var);
            let name = get(&name_var);
            if let Some(n) = &name
                && hourbridge_domain::check_secret_name(n).is_err()
            {
                problems.push(format!("{name_var}={n:?} is not a valid secret name"));
            }
            match (get(var), name) {
                (Some(_), _) if mode == Mode::Lambda => problems.push(format!(
                    "{var} must not be set in Lambda (a secret is never a plain environment \
                     variable); {name_var} names its secret in Secrets Manager"
                )),
                (Some(_), Some(_)) => {
                    problems.push(format!("{var} and {name_var} are both set; set one"))
                }
                (Some(value), None) => {
                    provider_secrets.insert((*var).to_owned(), SecretValue::new(value));
                }
                (None, Some(name)) => {
                    provider_secret_names.insert((*var).to_owned(), name);
                }
                (None, None) => {}
            }
        }
        let mut platform_vars = std::collections::BTreeMap::new();
        let mut platform_secrets = std::collections::BTreeMap::new();
        for var in platform {
            let Some(value) = get(&var) else { continue };
            if is_platform_secret_var(&var) {
                if secrets == SecretsBackend::SecretsManager {
                    problems.push(format!(
                        "{var} is for the local secret store only; with {}=secretsmanager the \
                         client secret is read from Secrets Manager ({var}_NAME)",
                        env::SECRETS_BACKEND
                    ));
                }
                platform_secrets.insert(var, SecretValue::new(value));
            } else {
                if var.ends_with("_CLIENT_SECRET_NAME")
                    && hourbridge_domain::check_secret_name(&value).is_err()
                {
                    problems.push(format!("{var}={value:?} is not a valid secret name"));
                }
                platform_vars.insert(var, value);
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(Self {
            store,
            data_dir,
            table_name,
            secrets,
            secrets_prefix: secrets_prefix.unwrap_or_default(),
            secrets_key: get(env::SECRETS_KEY).map(SecretValue::new),
            auth,
            jwt_secret: get(env::JWT_SECRET).map(SecretValue::new),
            log_json: log_format == "json",
            public_url: get(env::PUBLIC_URL),
            app_url: get(env::APP_URL),
            jobs_bus: get(env::JOBS_BUS),
            user_agent: get(env::USER_AGENT)
                .unwrap_or_else(|| "Hourbridge (https://hourbridge.example/contact)".into()),
            provider_vars: hourbridge_provider_registry::env_vars()
                .into_iter()
                .filter(|k| !secret_vars.contains(k))
                .filter_map(|k| get(k).map(|v| (k.to_owned(), v)))
                .collect(),
            provider_secrets,
            provider_secret_names,
            platform_vars,
            platform_secrets,
        })
    }

    /// The data directory, or a configuration error naming the variable.
    pub fn data_dir(&self) -> Result<&Path, ConfigError> {
        self.data_dir.as_deref().ok_or_else(|| ConfigError {
            problems: vec![format!("{} is not set", env::DATA_DIR)],
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn lambda_config_reports_every_missing_variable_at_once() {
        let err = Config::from_lookup(Mode::Lambda, lookup(&[])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(env::TABLE_NAME), "{text}");
        assert!(text.contains(env::SECRETS_PREFIX), "{text}");
        assert!(text.contains(env::JOBS_BUS), "{text}");
        assert!(text.contains(env::PUBLIC_URL), "{text}");
        assert_eq!(err.problems.len(), 4, "{text}");
    }

    #[test]
    fn lambda_config_with_table_and_prefix_uses_aws_backends() {
        let c = Config::from_lookup(
            Mode::Lambda,
            lookup(&[
                (env::TABLE_NAME, "t"),
                (env::SECRETS_PREFIX, "hourbridge/prod/"),
                (env::JOBS_BUS, "jobs"),
                (env::PUBLIC_URL, "https://api.example.com"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (c.store, c.secrets, c.auth),
            (
                StoreBackend::DynamoDb,
                SecretsBackend::SecretsManager,
                AuthMode::Gateway
            )
        );
        assert!(c.log_json);
    }

    #[test]
    fn local_defaults_need_nothing() {
        let c = Config::from_lookup(Mode::Local, lookup(&[])).unwrap();
        assert_eq!(
            (c.store, c.secrets, c.auth),
            (StoreBackend::Sqlite, SecretsBackend::Local, AuthMode::Hs256)
        );
        assert_eq!(c.data_dir.as_deref(), Some(Path::new(".hourbridge")));
    }

    #[test]
    fn bad_choices_are_named() {
        let err = Config::from_lookup(
            Mode::Local,
            lookup(&[(env::STORE, "postgres"), (env::APP_URL, "ftp://x")]),
        )
        .unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(err.to_string().contains("HOURBRIDGE_STORE=\"postgres\""));
    }

    #[test]
    fn platform_client_variables_are_named_after_the_provider() {
        assert_eq!(
            platform_client_vars("base-camp"),
            (
                "HOURBRIDGE_BASE_CAMP_CLIENT_ID".to_owned(),
                "HOURBRIDGE_BASE_CAMP_CLIENT_SECRET_NAME".to_owned()
            )
        );
        assert!(is_platform_var("HOURBRIDGE_BASECAMP_CLIENT_ID"));
        assert!(is_platform_var("HOURBRIDGE_BASECAMP_CLIENT_SECRET_NAME"));
        assert!(!is_platform_var("HOURBRIDGE_JWT_SECRET"));
        // Without its client id, no platform client is configured (Basecamp cannot be connected).
        let c = Config::from_lookup(Mode::Local, lookup(&[])).unwrap();
        let registry = hourbridge_provider_registry::builtin(
            &hourbridge_provider_registry::ProviderEnv::for_tests(&[]),
        )
        .unwrap();
        assert!(c.platform_clients(&registry).is_empty());
    }

    #[test]
    fn secrets_are_redacted_in_config_debug() {
        let c = Config::from_lookup(
            Mode::Local,
            lookup(&[
                (env::JWT_SECRET, "supersecretvalue"),
                (env::BASECAMP_CLIENT_SECRET, "basecampclientsecret"),
            ]),
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("supersecretvalue"), "{shown}");
        assert!(!shown.contains("basecampclientsecret"), "{shown}");
        assert_eq!(
            c.platform_secret("basecamp").map(SecretValue::expose),
            Some("basecampclientsecret")
        );
    }

    #[test]
    fn every_platform_client_provider_has_its_variables_listed() {
        let registry = hourbridge_provider_registry::builtin(
            &hourbridge_provider_registry::ProviderEnv::for_tests(&[]),
        )
        .unwrap();
        let platform: Vec<&str> = registry
            .descriptors()
            .filter(|d| {
                d.auth
                    .oauth2()
                    .is_some_and(|s| s.client == hourbridge_provider_api::OAuthClient::Platform)
            })
            .map(|d| d.id)
            .collect();
        assert!(platform.contains(&"basecamp"), "{platform:?}");
        for p in platform {
            let (id, name) = platform_client_vars(p);
            let secret = platform_client_secret_var(p);
            for v in [&id, &name, &secret] {
                assert!(env::PLATFORM_CLIENTS.contains(&v.as_str()), "{v}");
                assert!(env::ALL.contains(&v.as_str()), "{v}");
                assert!(
                    is_platform_var(v) || is_platform_secret_var(v),
                    "{v} is recognised"
                );
            }
            // Lambda gets the id and where the secret is; the value only the local binary.
            assert!(env::LAMBDA.contains(&id.as_str()), "{id}");
            assert!(env::LAMBDA.contains(&name.as_str()), "{name}");
            assert!(env::LOCAL_ONLY.contains(&secret.as_str()), "{secret}");
        }
        assert!(env::LOCAL_ONLY.iter().all(|v| !env::LAMBDA.contains(v)));
        assert!(
            !is_platform_secret_var(env::JWT_SECRET) && !is_platform_secret_var(env::SECRETS_KEY)
        );
    }

    #[test]
    fn the_client_secret_by_value_is_refused_with_secrets_manager() {
        let err = Config::from_lookup(
            Mode::Lambda,
            lookup(&[
                (env::TABLE_NAME, "t"),
                (env::SECRETS_PREFIX, "hourbridge/prod/"),
                (env::JOBS_BUS, "jobs"),
                (env::PUBLIC_URL, "https://api.example.com"),
                (env::BASECAMP_CLIENT_ID, "id"),
                (env::BASECAMP_CLIENT_SECRET, "leakable"),
                (env::BASECAMP_CLIENT_SECRET_NAME, "not a name"),
            ]),
        )
        .unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        let text = err.to_string();
        assert!(text.contains(env::BASECAMP_CLIENT_SECRET_NAME), "{text}");
        assert!(!text.contains("leakable"), "{text}");
    }

    #[test]
    fn a_platform_client_is_configured_by_its_id_and_asked_for_by_the_default_name() {
        let c = Config::from_lookup(
            Mode::Lambda,
            lookup(&[
                (env::TABLE_NAME, "t"),
                (env::SECRETS_PREFIX, "hourbridge/prod/"),
                (env::JOBS_BUS, "jobs"),
                (env::PUBLIC_URL, "https://api.example.com"),
                (env::BASECAMP_CLIENT_ID, "bc-app"),
                (
                    env::BASECAMP_CLIENT_SECRET_NAME,
                    "hourbridge-platform/prod/basecamp/oauth-client-secret",
                ),
            ]),
        )
        .unwrap();
        let registry = hourbridge_provider_registry::builtin(
            &hourbridge_provider_registry::ProviderEnv::for_tests(&[]),
        )
        .unwrap();
        let clients = c.platform_clients(&registry);
        let pc = &clients["basecamp"];
        assert_eq!(pc.client_id, "bc-app");
        assert_eq!(pc.secret_name, default_platform_secret_name("basecamp"));
        assert_eq!(
            c.platform_secret_name("basecamp"),
            Some("hourbridge-platform/prod/basecamp/oauth-client-secret")
        );
        assert!(c.platform_secret("basecamp").is_none());
    }

    fn lambda_base() -> Vec<(&'static str, &'static str)> {
        vec![
            (env::TABLE_NAME, "t"),
            (env::SECRETS_PREFIX, "hourbridge/prod/"),
            (env::JOBS_BUS, "jobs"),
            (env::PUBLIC_URL, "https://api.example.com"),
        ]
    }

    #[test]
    fn a_provider_secret_as_a_plain_lambda_variable_is_refused_by_name_not_value() {
        let secret_vars = env::provider_secret_vars();
        assert!(!secret_vars.is_empty(), "some adapter declares a secret");
        let mut pairs = lambda_base();
        for v in &secret_vars {
            pairs.push((v, "leakable-provider-secret"));
        }
        // Reported together with every other problem.
        pairs.retain(|(k, _)| *k != env::JOBS_BUS);
        let err = Config::from_lookup(Mode::Lambda, lookup(&pairs)).unwrap_err();
        assert_eq!(err.problems.len(), secret_vars.len() + 1, "{err}");
        let text = err.to_string();
        assert!(!text.contains("leakable-provider-secret"), "{text}");
        assert!(text.contains(env::JOBS_BUS), "{text}");
        for v in &secret_vars {
            assert!(text.contains(*v), "{text}");
            assert!(text.contains(&env::secret_name_var(v)), "{text}");
        }
    }

    #[test]
    fn in_lambda_a_provider_secret_is_named_and_locally_given_by_value_redacted() {
        let var = env::provider_secret_vars()[0];
        let name_var = env::secret_name_var(var);
        let mut pairs: Vec<(&str, &str)> = lambda_base();
        pairs.push((&name_var, "hourbridge-platform/prod/provider/secret"));
        let c = Config::from_lookup(Mode::Lambda, lookup(&pairs)).unwrap();
        assert_eq!(
            c.provider_secret_names.get(var).map(String::as_str),
            Some("hourbridge-platform/prod/provider/secret")
        );
        assert!(c.provider_secrets.is_empty() && !c.provider_vars.contains_key(var));

        let c =
            Config::from_lookup(Mode::Local, lookup(&[(var, "local-provider-secret")])).unwrap();
        assert_eq!(
            c.provider_secrets.get(var).map(SecretValue::expose),
            Some("local-provider-secret")
        );
        assert!(!c.provider_vars.contains_key(var));
        assert!(!format!("{c:?}").contains("local-provider-secret"));

        let err = Config::from_lookup(
            Mode::Local,
            lookup(&[(var, "v"), (&name_var, "not a name")]),
        )
        .unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
    }

    #[test]
    fn provider_secrets_are_listed_for_the_template_contract() {
        for v in env::provider_secret_vars() {
            let name = env::secret_name_var(v);
            assert!(env::lambda_vars().contains(&name), "{name}");
            assert!(env::all_vars().contains(&name), "{name}");
            assert!(env::all_vars().contains(&v.to_owned()), "{v}");
            assert!(env::local_only_vars().contains(&v.to_owned()), "{v}");
            assert!(!env::lambda_vars().contains(&v.to_owned()), "{v}");
            assert!(!is_platform_var(&name) && !is_platform_secret_var(v), "{v}");
        }
    }
}

//! Every environment variable Hourbridge reads, in one place. `infra/template.yaml` sets these
//! names for the Lambdas; a contract test compares the two.

/// `sqlite` or `dynamodb`.
pub const STORE: &str = "HOURBRIDGE_STORE";
/// Directory for the SQLite file, local secrets and generated keys.
pub const DATA_DIR: &str = "HOURBRIDGE_DATA_DIR";
/// DynamoDB table name (required with the `dynamodb` store).
pub const TABLE_NAME: &str = "HOURBRIDGE_TABLE_NAME";
/// `local` or `secretsmanager`.
pub const SECRETS_BACKEND: &str = "HOURBRIDGE_SECRETS_BACKEND";
/// Name prefix of Hourbridge's secrets in Secrets Manager (required with `secretsmanager`).
pub const SECRETS_PREFIX: &str = "HOURBRIDGE_SECRETS_PREFIX";
/// Base64 AES-256 key for the local secret store (optional; generated into the data dir).
pub const SECRETS_KEY: &str = "HOURBRIDGE_SECRETS_KEY";
/// `hs256` (verify tokens ourselves) or `gateway` (trust the API Gateway JWT authorizer).
pub const AUTH: &str = "HOURBRIDGE_AUTH";
/// HS256 secret for local tokens (optional; generated into the data dir).
pub const JWT_SECRET: &str = "HOURBRIDGE_JWT_SECRET";
/// `json` for JSON log lines.
pub const LOG_FORMAT: &str = "HOURBRIDGE_LOG_FORMAT";
/// Public base URL of this deployment (OAuth redirect URLs are built from it).
pub const PUBLIC_URL: &str = "HOURBRIDGE_PUBLIC_URL";
/// URL of the host product's app (where the OAuth callback sends the browser back).
pub const APP_URL: &str = "HOURBRIDGE_APP_URL";

/// Name of the EventBridge bus that carries sync jobs (Lambda).
pub const JOBS_BUS: &str = "HOURBRIDGE_JOBS_BUS";
/// `User-Agent` sent to providers (Harvest requires one with a contact).
pub const USER_AGENT: &str = "HOURBRIDGE_USER_AGENT";

/// Hourbridge's own Basecamp OAuth client id (Basecamp is connected through our app, a
/// platform client); without it Basecamp cannot be connected on the deployment.
pub const BASECAMP_CLIENT_ID: &str = "HOURBRIDGE_BASECAMP_CLIENT_ID";
/// Where the Basecamp client secret is: the full name of the secret in Secrets Manager (outside
/// [`SECRETS_PREFIX`], read-only for the functions), or of the entry in the local secret store.
/// Default: `platform/basecamp/oauth-client-secret` under the secret store's prefix.
pub const BASECAMP_CLIENT_SECRET_NAME: &str = "HOURBRIDGE_BASECAMP_CLIENT_SECRET_NAME";
/// The Basecamp client secret itself, for the local binary only (`local` secrets backend); in
/// Lambda it is read from Secrets Manager ([`BASECAMP_CLIENT_SECRET_NAME`]).
pub const BASECAMP_CLIENT_SECRET: &str = "HOURBRIDGE_BASECAMP_CLIENT_SECRET";

/// The platform OAuth client variables Hourbridge knows by name (`HOURBRIDGE_<PROVIDER>_CLIENT_ID`,
/// `_CLIENT_SECRET_NAME`, `_CLIENT_SECRET`), one line per provider that declares a platform
/// client (a test checks the registry against it).
pub const PLATFORM_CLIENTS: &[&str] = &[
    BASECAMP_CLIENT_ID,
    BASECAMP_CLIENT_SECRET_NAME,
    BASECAMP_CLIENT_SECRET,
];

/// TimeLog's request pace per site (the adapter's `REQUESTS_PER_SECOND_VAR`), set by the
/// template from a parameter.
pub const TIMELOG_REQUESTS_PER_SECOND: &str = "HOURBRIDGE_TIMELOG_REQUESTS_PER_SECOND";
/// Lets a TimeLog `domain` be `127.0.0.1:PORT` over http (the adapter's `ALLOW_HTTP_VAR`): tests
/// and sandboxes only, never in Lambda.
pub const TIMELOG_ALLOW_HTTP: &str = "HOURBRIDGE_TIMELOG_ALLOW_HTTP";

/// What `infra/template.yaml` sets on the Lambdas (a test compares the two).
pub const LAMBDA: &[&str] = &[
    STORE,
    TABLE_NAME,
    SECRETS_BACKEND,
    SECRETS_PREFIX,
    AUTH,
    LOG_FORMAT,
    PUBLIC_URL,
    APP_URL,
    JOBS_BUS,
    USER_AGENT,
    BASECAMP_CLIENT_ID,
    BASECAMP_CLIENT_SECRET_NAME,
    TIMELOG_REQUESTS_PER_SECOND,
];

/// Read by the local binary only (never set in Lambda).
pub const LOCAL_ONLY: &[&str] = &[
    DATA_DIR,
    SECRETS_KEY,
    JWT_SECRET,
    BASECAMP_CLIENT_SECRET,
    TIMELOG_ALLOW_HTTP,
];

/// All of the above.
pub const ALL: &[&str] = &[
    STORE,
    DATA_DIR,
    TABLE_NAME,
    SECRETS_BACKEND,
    SECRETS_PREFIX,
    SECRETS_KEY,
    AUTH,
    JWT_SECRET,
    LOG_FORMAT,
    PUBLIC_URL,
    APP_URL,
    JOBS_BUS,
    USER_AGENT,
    BASECAMP_CLIENT_ID,
    BASECAMP_CLIENT_SECRET_NAME,
    BASECAMP_CLIENT_SECRET,
    TIMELOG_REQUESTS_PER_SECOND,
    TIMELOG_ALLOW_HTTP,
];

/// Suffix of the variable naming where a provider secret is (see [`secret_name_var`]).
pub const SECRET_NAME_SUFFIX: &str = "_SECRET_NAME";

/// The variables of the providers that hold secrets (each adapter's `SECRET_ENV_VARS`, e.g. a
/// consumer token): the value itself, read by the local binary only. In Lambda the value is
/// read once at start-up from the secret named by [`secret_name_var`].
pub fn provider_secret_vars() -> Vec<&'static str> {
    hourbridge_provider_registry::secret_env_vars()
}

/// `<VAR>_SECRET_NAME`: the full name of the secret holding provider secret variable `var` (in
/// Secrets Manager, outside [`SECRETS_PREFIX`] and read-only for the functions; with the local
/// secrets backend an entry of the local secret store).
pub fn secret_name_var(var: &str) -> String {
    format!("{var}{SECRET_NAME_SUFFIX}")
}

/// What `infra/template.yaml` may set on the Lambdas: [`LAMBDA`] plus the
/// [`secret_name_var`] of every [`provider_secret_vars`] entry.
pub fn lambda_vars() -> Vec<String> {
    LAMBDA
        .iter()
        .map(|v| (*v).to_owned())
        .chain(provider_secret_vars().into_iter().map(secret_name_var))
        .collect()
}

/// Read by the local binary only: [`LOCAL_ONLY`] plus the [`provider_secret_vars`].
pub fn local_only_vars() -> Vec<String> {
    LOCAL_ONLY
        .iter()
        .chain(provider_secret_vars().iter())
        .map(|v| (*v).to_owned())
        .collect()
}

/// Every variable Hourbridge reads: [`ALL`], the providers' variables and the
/// [`secret_name_var`] of their secrets.
pub fn all_vars() -> Vec<String> {
    ALL.iter()
        .chain(hourbridge_provider_registry::env_vars().iter())
        .map(|v| (*v).to_owned())
        .chain(provider_secret_vars().into_iter().map(secret_name_var))
        .collect()
}

#[cfg(test)]
mod timelog_vars {
    use super::*;

    #[test]
    fn the_timelog_names_here_are_the_ones_the_adapter_reads() {
        let read = hourbridge_provider_registry::env_vars();
        for v in [TIMELOG_REQUESTS_PER_SECOND, TIMELOG_ALLOW_HTTP] {
            assert!(
                read.contains(&v),
                "{v} is not read by any provider: {read:?}"
            );
        }
    }
}

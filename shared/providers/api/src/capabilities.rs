use std::time::Duration;

use hourbridge_domain::Role;

/// Who registers the OAuth client used for a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthClient {
    /// The customer registers an OAuth app in the provider and pastes its id and secret
    /// (Harvest, Hubstaff): every workspace has its own client.
    CustomerSupplied,
    /// Hourbridge's own registered app (Basecamp); id and secret come from configuration.
    Platform,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with client id and secret.
    BasicHeader,
    /// `client_id` and `client_secret` in the form body.
    RequestBody,
}

/// An OAuth 2.0 authorization-code flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Spec {
    /// Authorization endpoint (overridable by configuration for sandboxes).
    pub authorize_url: &'static str,
    /// Token endpoint.
    pub token_url: &'static str,
    /// Scopes to request.
    pub scopes: &'static [&'static str],
    /// Separator between scopes in the `scope` parameter.
    pub scope_separator: &'static str,
    /// Whether to send a PKCE challenge.
    pub pkce: bool,
    /// Who owns the OAuth client.
    pub client: OAuthClient,
    /// How the client authenticates at the token endpoint.
    pub client_auth: ClientAuth,
    /// Extra authorize parameters (e.g. Basecamp's `type=web_server`).
    pub extra_authorize_params: &'static [(&'static str, &'static str)],
    /// Whether each refresh returns a new refresh token that replaces the old one, which must
    /// be stored before it is used (Hubstaff).
    pub refresh_token_rotates: bool,
    /// Non-secret settings the admin enters on connect, besides the client of a
    /// [`OAuthClient::CustomerSupplied`] flow (e.g. a platform-OAuth provider's account
    /// options). [`check_provider`](crate::check_provider) refuses secret ones: OAuth secrets
    /// come from the token endpoint, not from the admin.
    pub settings: &'static [CredentialField],
}

/// The connect fields of a customer-supplied OAuth client: the id and secret of the app the
/// admin registered in the provider.
pub const CUSTOMER_OAUTH_FIELDS: &[CredentialField] = &[
    CredentialField {
        name: "client_id",
        label: "Client ID",
        secret: false,
        required: true,
    },
    CredentialField {
        name: "client_secret",
        label: "Client secret",
        secret: true,
        required: true,
    },
];

/// Names of connection settings the engine writes itself; no credential field may use them.
pub const RESERVED_SETTINGS: &[&str] = &["account_id", "remote_account_name", "accounts"];

/// A field an admin fills in to connect (credential sets, session-token providers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialField {
    /// JSON name.
    pub name: &'static str,
    /// Label shown to the admin.
    pub label: &'static str,
    /// Whether it is secret (stored in the secret store, never returned).
    pub secret: bool,
    /// Whether connecting without it (or with it empty) is refused.
    pub required: bool,
}

/// How a provider authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthKind {
    /// OAuth 2.0 authorization code (Harvest, Hubstaff, Basecamp).
    OAuth2(OAuth2Spec),
    /// A long-lived token exchanged for short-lived sessions (Tripletex employee token).
    SessionToken {
        /// Fields the admin enters.
        fields: &'static [CredentialField],
        /// How long a session lives before it must be exchanged again.
        session_lifetime: Duration,
    },
    /// A set of credentials used directly (TimeLog's seven fields).
    CredentialSet {
        /// Fields the admin enters.
        fields: &'static [CredentialField],
    },
}

impl AuthKind {
    /// The fields of the connect body, in declaration order: a customer-supplied OAuth client's
    /// id and secret ([`CUSTOMER_OAUTH_FIELDS`]) followed by the OAuth settings, or the
    /// declared fields of a session-token or credential-set provider.
    pub fn connect_fields(&self) -> Vec<CredentialField> {
        match self {
            Self::OAuth2(spec) => {
                let client: &[CredentialField] = match spec.client {
                    OAuthClient::CustomerSupplied => CUSTOMER_OAUTH_FIELDS,
                    OAuthClient::Platform => &[],
                };
                client.iter().chain(spec.settings).copied().collect()
            }
            Self::SessionToken { fields, .. } | Self::CredentialSet { fields } => fields.to_vec(),
        }
    }

    /// The OAuth flow, for OAuth providers.
    pub fn oauth2(&self) -> Option<&OAuth2Spec> {
        match self {
            Self::OAuth2(spec) => Some(spec),
            _ => None,
        }
    }
}

/// What a rate limit is counted against; work sharing the key shares one budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitScope {
    /// Per access token.
    Token,
    /// Per OAuth application, across all its connections (Hubstaff).
    Application,
    /// Per remote account (Harvest; its docs do not say whether per token or per account, so
    /// we budget the stricter shared one).
    Account,
}

/// A provider's documented request budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// What the budget is shared by.
    pub scope: RateLimitScope,
    /// Requests allowed per window.
    pub requests: u32,
    /// The window.
    pub per: Duration,
}

/// How a provider's webhooks are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookVerification {
    /// An HMAC signature header over the body.
    HmacSignature,
    /// Only the unguessable per-connection path token.
    PathToken,
}

/// Work logs pulled into the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkLogsIn {
    /// Whether the provider reports deletions; without it, a date window is reconciled.
    pub deletion_feed: bool,
    /// Largest date window one request may cover, if limited (Hubstaff: 31 days).
    pub max_window_days: Option<u32>,
}

/// Master data pulled into the host, read-only there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MasterDataIn {
    /// Customers.
    pub customers: bool,
    /// Projects.
    pub projects: bool,
    /// Tasks.
    pub tasks: bool,
    /// People (matched by e-mail, never created).
    pub people: bool,
    /// Most project levels the host mirrors; deeper ones are reported, not synced.
    pub max_project_depth: u8,
    /// Records seen for the first time are matched to existing host customers and projects
    /// (organisation number, then exact normalised name) instead of always created; unclear
    /// matches wait on a review list for an admin to link, create or ignore.
    pub match_existing: bool,
}

/// What pushing host time needs (capabilities `time_out` and `time_two_way`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeOutRules {
    /// Only logs of people linked to a remote user ([`PersonLink`](hourbridge_domain::PersonLink))
    /// are pushed; the others are skipped and reported. Without it a log of an unlinked person
    /// is pushed without a person (the provider registers it under the connecting user).
    pub requires_person_link: bool,
    /// Only logs on a host task that exists in the provider (pushed by tasks-out, or imported)
    /// are pushed: the provider registers time on tasks, not on projects.
    pub requires_task: bool,
}

/// Time kept in sync both ways: host logs pushed, remote changes read back from a change feed
/// ([`TimeChangeFeed`](crate::TimeChangeFeed)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeTwoWay {
    /// How far back the provider's change feed reaches (TimeLog: 3 months); the first read and
    /// a read after a long pause start there.
    pub history_days: u32,
    /// How far each read reaches back before the previous one ended, so changes committed
    /// with an earlier timestamp than the moment they became visible are not missed.
    pub overlap: Duration,
}

/// Host projects linked by hand to remote projects (`PUT /v1/projects/{id}/integrations/{p}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectLinks {
    /// Most remote projects one host project may be linked to.
    pub max_remote_projects: usize,
    /// Whether the link needs a `sync_from` day (work logs pulled from that day on).
    pub requires_sync_from: bool,
}

/// What a provider can do. Sync planning branches on these, never on provider ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Pull work logs into the host.
    pub work_logs_in: Option<WorkLogsIn>,
    /// Push host time out (one-way).
    pub time_out: bool,
    /// Keep time in sync both ways (push host time and read remote changes back).
    pub time_two_way: Option<TimeTwoWay>,
    /// What pushing time needs (with `time_out` or `time_two_way`).
    pub time_out_rules: TimeOutRules,
    /// Pull master data in.
    pub master_data_in: Option<MasterDataIn>,
    /// Push host tasks out (with allocation of linked people assigned to them).
    pub tasks_out: bool,
    /// Host projects are linked by hand to remote projects; `None` when the provider's
    /// projects are imported instead (master data in) or not used.
    pub project_links: Option<ProjectLinks>,
    /// Host people are linked by hand to remote users on their profile
    /// (`PUT /v1/people/{id}/integrations/{p}`), offered from [`Directory::list_users`](crate::Directory::list_users).
    pub person_links: bool,
    /// Receive change events.
    pub webhooks: Option<WebhookVerification>,
}

/// How often the scheduler runs a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every interval, spread over the interval per connection.
    Every(Duration),
    /// Once a day at a local time the workspace chooses.
    DailyAtLocalTime,
    /// Only on demand and by webhook (plus nightly reconciliation when webhooks are declared).
    OnDemand,
}

/// Everything Hourbridge needs to know about a provider, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderDescriptor {
    /// Provider id, e.g. `harvest`.
    pub id: &'static str,
    /// Name shown to users.
    pub display_name: &'static str,
    /// How it authenticates.
    pub auth: AuthKind,
    /// The least role that may connect, edit or disconnect it.
    pub install_role: Role,
    /// Whether the workspace must have the add-on enabled (Tripletex).
    pub requires_add_on: bool,
    /// Documented request budget.
    pub rate_limit: Option<RateLimit>,
    /// When the scheduler runs it.
    pub schedule: Schedule,
    /// What it can do.
    pub capabilities: Capabilities,
}

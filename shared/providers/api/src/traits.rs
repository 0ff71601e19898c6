use async_trait::async_trait;

use crate::{
    AccountInfo, AuthKind, ChangeWindow, CredentialCheckError, DateWindow, MasterEntity,
    OAuthClient, OutboundTask, OutboundTime, ProviderDescriptor, ProviderError, ProviderErrorKind,
    ProviderSession, RESERVED_SETTINGS, RemotePage, RemotePerson, RemoteProject, RemoteRecord,
    RemoteUser, RemoteWorkLog, SessionGrant, TimeChange, WebhookDelivery, WebhookEndpoint,
    WebhookRequest,
};
use hourbridge_domain::SecretValue;

/// A provider adapter. Offers one trait object per declared capability.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The provider's descriptor.
    fn descriptor(&self) -> &ProviderDescriptor;

    /// Checks the connection's credentials and says which account they reach.
    async fn check_credentials(
        &self,
        session: &ProviderSession,
    ) -> Result<AccountInfo, ProviderError>;

    /// Checks credentials entered on connect, before anything is stored: the engine calls it
    /// for [`AuthKind::CredentialSet`] providers with the entered fields (secret ones in
    /// `session.secrets`, the others in `session.settings`), and for
    /// [`AuthKind::SessionToken`] providers with a session just made by
    /// [`Provider::create_session`]. On failure the connection is not saved and the admin sees
    /// the typed reason (`invalid_credentials` with the fields at fault, `unreachable`,
    /// `missing_entitlement`).
    ///
    /// The default runs [`Provider::check_credentials`] and classifies its failure with
    /// [`CredentialCheckError::from_provider`], blaming every secret field; override it when
    /// the provider can tell which field is wrong (a bad domain, a bad reporting password).
    async fn validate_credentials(
        &self,
        session: &ProviderSession,
    ) -> Result<AccountInfo, CredentialCheckError> {
        let secret: Vec<&str> = self
            .descriptor()
            .auth
            .connect_fields()
            .into_iter()
            .filter(|f| f.secret)
            .map(|f| f.name)
            .collect();
        self.check_credentials(session)
            .await
            .map_err(|e| CredentialCheckError::from_provider(e, &secret))
    }

    /// Exchanges the long-lived credentials of an [`AuthKind::SessionToken`] provider
    /// (`credentials.secrets` holds the declared secret fields, `credentials.settings` the
    /// others) for a session that should last until `until` (now plus the declared
    /// `session_lifetime`). The engine stores the session in the connection's secret, renews it
    /// shortly before it expires and once after a 401, one process at a time, and hands it to
    /// every other call as the [`SESSION_TOKEN`](crate::SESSION_TOKEN) secret. A
    /// [`ProviderErrorKind::ReauthRequired`] answer means the long-lived credentials are no
    /// longer valid.
    ///
    /// The default refuses: only session-token providers implement it.
    async fn create_session(
        &self,
        credentials: &ProviderSession,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<SessionGrant, ProviderError> {
        let _ = (credentials, until);
        Err(ProviderError::new(
            self.descriptor().id,
            ProviderErrorKind::Unsupported,
            "this provider does not use session tokens",
        ))
    }

    /// Revokes what the provider lets us revoke (a session, a token) when the connection is
    /// disconnected; failures are logged and the credentials are deleted anyway. The default
    /// does nothing.
    async fn revoke(&self, session: &ProviderSession) -> Result<(), ProviderError> {
        let _ = session;
        Ok(())
    }

    /// The OAuth endpoints actually in use (`authorize`, `token`): the descriptor's, or the
    /// configured overrides that point at a sandbox. `None` for providers without OAuth.
    fn oauth_urls(&self) -> Option<(String, String)> {
        None
    }

    /// Work logs in (capability `work_logs_in`).
    fn work_logs(&self) -> Option<&dyn WorkLogSource> {
        None
    }
    /// Time out (capabilities `time_out`, `time_two_way`).
    fn time_sink(&self) -> Option<&dyn TimeSink> {
        None
    }
    /// Remote time changes (capability `time_two_way`).
    fn time_changes(&self) -> Option<&dyn TimeChangeFeed> {
        None
    }
    /// Master data in (capability `master_data_in`).
    fn master_data(&self) -> Option<&dyn MasterDataSource> {
        None
    }
    /// Tasks out (capability `tasks_out`).
    fn task_sink(&self) -> Option<&dyn TaskSink> {
        None
    }
    /// Webhooks (capability `webhooks`).
    fn webhooks(&self) -> Option<&dyn WebhookReceiver> {
        None
    }
    /// Remote projects and users to link by hand (capabilities `project_links` without
    /// `work_logs_in`, and `person_links`). Work-log providers offer their projects through
    /// [`WorkLogSource::list_projects`] instead.
    fn directory(&self) -> Option<&dyn Directory> {
        None
    }
}

/// Remote projects and users an admin links host records to by hand.
#[async_trait]
pub trait Directory: Send + Sync {
    /// Remote projects matching `query` (case-insensitive, in name or number), for the link
    /// picker.
    async fn list_projects(
        &self,
        session: &ProviderSession,
        query: Option<&str>,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteProject>, ProviderError>;

    /// Remote users, for linking host people (suggested by e-mail).
    async fn list_users(
        &self,
        session: &ProviderSession,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteUser>, ProviderError>;
}

/// Pulls work logs page by page; every call is one provider request, so the caller can
/// checkpoint after each.
#[async_trait]
pub trait WorkLogSource: Send + Sync {
    /// Remote projects matching `query`, for the link picker.
    async fn list_projects(
        &self,
        session: &ProviderSession,
        query: Option<&str>,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteProject>, ProviderError>;

    /// Remote people, for matching by e-mail.
    async fn list_people(
        &self,
        session: &ProviderSession,
        page: Option<String>,
    ) -> Result<RemotePage<RemotePerson>, ProviderError>;

    /// Work logs of `project_id` in `window`.
    async fn list_work_logs(
        &self,
        session: &ProviderSession,
        project_id: &str,
        window: DateWindow,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteWorkLog>, ProviderError>;
}

/// Writes host time to the provider. Every create carries an idempotency key derived from the
/// host record, so a retry after a crash finds the earlier write instead of duplicating it.
#[async_trait]
pub trait TimeSink: Send + Sync {
    /// Creates an entry; returns its remote id.
    async fn create(
        &self,
        session: &ProviderSession,
        time: &OutboundTime,
        idempotency_key: &str,
    ) -> Result<String, ProviderError>;
    /// Replaces an entry.
    async fn update(
        &self,
        session: &ProviderSession,
        remote_id: &str,
        time: &OutboundTime,
    ) -> Result<(), ProviderError>;
    /// Deletes an entry; a missing entry is not an error.
    async fn delete(&self, session: &ProviderSession, remote_id: &str)
    -> Result<(), ProviderError>;

    /// The most entries one [`TimeSink::create_many`] call takes: the provider's batch size.
    /// The engine batches plain creates (a record never pushed before) only when this is above
    /// 1, in calls of at most this many; the default, 1, keeps one [`TimeSink::create`] per
    /// record.
    fn create_batch_limit(&self) -> usize {
        1
    }

    /// Creates several entries (at most [`TimeSink::create_batch_limit`]), each `(time,
    /// idempotency key)` as [`TimeSink::create`] takes them, in one request where the provider
    /// takes batches.
    ///
    /// - `Err`: the request failed as a whole and nothing is known of any item (it may or may
    ///   not have been applied). The engine keeps every item's pending mark, so the retry looks
    ///   each one up with [`TimeSink::find`] before creating it again.
    /// - `Ok`: one result per item, in the order of `items`: the remote id, or why the provider
    ///   refused that item (the same typed errors [`TimeSink::create`] returns). Items refused
    ///   for their own sake (kinds `NotFound`, `Unsupported`, `Rejected`, `Fault`) are reported
    ///   and retried on the next run; any other item error makes the engine stop and retry
    ///   those items as after an `Err`.
    ///
    /// The default calls [`TimeSink::create`] for each item in turn. An error that is not
    /// about the item alone (a transient failure, an unknown outcome, a rate limit,
    /// credentials) stops it: on the first item it is the outer `Err`; later, it is that
    /// item's result and the result of every item after it, which are not sent.
    async fn create_many(
        &self,
        session: &ProviderSession,
        items: &[(OutboundTime, String)],
    ) -> Result<Vec<Result<String, ProviderError>>, ProviderError> {
        let mut results: Vec<Result<String, ProviderError>> = Vec::with_capacity(items.len());
        for (time, key) in items {
            match self.create(session, time, key).await {
                Ok(id) => results.push(Ok(id)),
                Err(e) if e.concerns_item_only() => results.push(Err(e)),
                Err(e) if results.is_empty() => return Err(e),
                Err(e) => {
                    while results.len() < items.len() {
                        results.push(Err(e.clone()));
                    }
                    break;
                }
            }
        }
        Ok(results)
    }

    /// The remote id a create with `idempotency_key` makes, when the provider takes ids the
    /// client chooses and the adapter derives them from the key (TimeLog's work-unit GUIDs).
    /// With it, time in recognises a registration whose create is still pending here (its
    /// answer lost, our bookkeeping not done) as ours, instead of importing it as work made in
    /// the provider; time out then adopts it by key. The default, `None`: ids are the
    /// provider's, unknown until it answers.
    fn created_id(&self, idempotency_key: &str) -> Option<String> {
        let _ = idempotency_key;
        None
    }

    /// Looks for an entry an earlier, interrupted [`TimeSink::create`] with `idempotency_key`
    /// may have made (the engine calls it before creating again after a crash between the
    /// provider's answer and its own bookkeeping). The default finds nothing: right for
    /// providers that deduplicate creates by the key themselves.
    async fn find(
        &self,
        session: &ProviderSession,
        time: &OutboundTime,
        idempotency_key: &str,
    ) -> Result<Option<String>, ProviderError> {
        let _ = (session, time, idempotency_key);
        Ok(None)
    }
}

/// Reads the time changes made in the provider (capability `time_two_way`), all projects of the
/// connection at once; the engine keeps those of linked projects and people.
///
/// The engine chooses the window: from where its last read ended, minus the declared
/// [`TimeTwoWay::overlap`](crate::TimeTwoWay), to now; never further back than
/// [`TimeTwoWay::history_days`](crate::TimeTwoWay). Reads overlap, so the same change may be
/// returned twice; the engine's apply is idempotent. Our own writes come back too; the engine
/// recognises them by the values it last wrote.
#[async_trait]
pub trait TimeChangeFeed: Send + Sync {
    /// One page of the changes made in `window`, oldest first; `page` is the previous page's
    /// `next`.
    async fn changes(
        &self,
        session: &ProviderSession,
        window: ChangeWindow,
        page: Option<String>,
    ) -> Result<RemotePage<TimeChange>, ProviderError>;

    /// Fills in what change rows leave out because it costs further requests (TimeLog's rows
    /// carry no note): the engine calls it only for the rows it is about to apply, not for its
    /// own writes coming back or rows it applied before, so a cycle without changes costs no
    /// such request. The default does nothing (rows are complete).
    async fn complete(
        &self,
        session: &ProviderSession,
        logs: &mut [RemoteWorkLog],
    ) -> Result<(), ProviderError> {
        let _ = (session, logs);
        Ok(())
    }
}

/// Pulls master data (capability `master_data_in`).
///
/// People are listed as **memberships**: one [`RemoteRecord`] of entity
/// [`MasterEntity::Person`] per person and project they may log time on, with `parent_id` the
/// remote project and `email` set; a person who belongs to no project has a record with
/// `parent_id: None`. The engine matches them to host people by e-mail and gives each match an
/// assignment on the imported project.
#[async_trait]
pub trait MasterDataSource: Send + Sync {
    /// Records of `entity`, changed since `since` when the provider supports it.
    async fn list(
        &self,
        session: &ProviderSession,
        entity: MasterEntity,
        since: Option<chrono::DateTime<chrono::Utc>>,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteRecord>, ProviderError>;

    /// One record, as a webhook named it (`parent_id` from the delivery); `None` when it no
    /// longer exists. The default refuses, and the engine then refetches the whole entity.
    async fn fetch(
        &self,
        session: &ProviderSession,
        entity: MasterEntity,
        remote_id: &str,
        parent_id: Option<&str>,
    ) -> Result<Option<RemoteRecord>, ProviderError> {
        let _ = (session, remote_id, parent_id);
        Err(ProviderError::new(
            "provider",
            ProviderErrorKind::Unsupported,
            format!("single {entity:?} records cannot be fetched"),
        ))
    }
}

/// Pushes host tasks (capability `tasks_out`). Tasks are never deleted remotely (the
/// provider's history refers to them): a deleted or inactive host task is set inactive.
#[async_trait]
pub trait TaskSink: Send + Sync {
    /// Creates a task with `external_key` (the host task id) stored on it in the provider;
    /// returns its remote id (the id [`RemoteWorkLog::task_id`] carries for time on it).
    async fn create_task(
        &self,
        session: &ProviderSession,
        task: &OutboundTask,
        external_key: &str,
    ) -> Result<String, ProviderError>;
    /// The task an earlier, interrupted [`TaskSink::create_task`] with `external_key` made, if
    /// any (called before creating again after a crash).
    async fn find_task(
        &self,
        session: &ProviderSession,
        remote_project_id: &str,
        external_key: &str,
    ) -> Result<Option<String>, ProviderError>;
    /// Brings the remote task to `task` (name, active state).
    async fn update_task(
        &self,
        session: &ProviderSession,
        remote_task_id: &str,
        task: &OutboundTask,
    ) -> Result<(), ProviderError>;
    /// Lets a remote user register time on a remote task. Allocating a user who already is
    /// allocated is not an error and creates nothing.
    async fn allocate(
        &self,
        session: &ProviderSession,
        remote_task_id: &str,
        remote_person_id: &str,
    ) -> Result<(), ProviderError>;
}

/// Receives a provider's webhook deliveries (capability `webhooks`).
///
/// The engine finds the connection by the unguessable path token of
/// `POST /webhooks/{provider}/{token}`, verifies the delivery as the descriptor declares
/// ([`WebhookVerification`](crate::WebhookVerification)), drops redeliveries (by
/// [`WebhookReceiver::delivery_id`], or a hash of the body) and then calls
/// [`WebhookReceiver::handle`], whose answer it records for the next sync to act on.
#[async_trait]
pub trait WebhookReceiver: Send + Sync {
    /// Checks the delivery's signature with the connection's signing secret. Called only for
    /// providers that declare [`WebhookVerification::HmacSignature`](crate::WebhookVerification::HmacSignature);
    /// with [`PathToken`](crate::WebhookVerification::PathToken) the token is the proof. Compare
    /// in constant time.
    fn verify(&self, request: &WebhookRequest, secret: &SecretValue) -> Result<(), ProviderError>;

    /// The provider's id of this delivery (a header such as `idempotency-key`), so a
    /// redelivery is recognised; `None` makes the engine use a hash of the body.
    fn delivery_id(&self, request: &WebhookRequest) -> Option<String> {
        let _ = request;
        None
    }

    /// Decides what a verified, new delivery means: which records to refetch or remove. It
    /// must not call the provider (it runs inside the webhook request); the engine stores the
    /// answer and a later sync refetches just those records.
    fn handle(&self, request: &WebhookRequest) -> Result<WebhookDelivery, ProviderError>;

    /// Registers `endpoint` with the provider, for providers whose webhooks are subscribed
    /// through their API; called once the connection is active. The default does nothing (the
    /// admin registers the URL, or the provider needs no registration).
    async fn subscribe(
        &self,
        session: &ProviderSession,
        endpoint: &WebhookEndpoint,
    ) -> Result<(), ProviderError> {
        let _ = (session, endpoint);
        Ok(())
    }

    /// Removes what [`WebhookReceiver::subscribe`] registered; called on disconnect, before
    /// the credentials are deleted. The default does nothing.
    async fn unsubscribe(
        &self,
        session: &ProviderSession,
        endpoint: &WebhookEndpoint,
    ) -> Result<(), ProviderError> {
        let _ = (session, endpoint);
        Ok(())
    }
}

/// Checks that a provider offers exactly the traits its descriptor declares, and that the
/// descriptor is coherent. The registry's tests run it on every provider.
pub fn check_provider(p: &dyn Provider) -> Result<(), String> {
    let d = p.descriptor();
    let c = &d.capabilities;
    let mut problems = Vec::new();
    let mut expect = |declared: bool, offered: bool, what: &str| {
        if declared != offered {
            problems.push(format!(
                "{what}: declared {declared} but trait object {}",
                if offered { "offered" } else { "missing" }
            ));
        }
    };
    expect(
        c.work_logs_in.is_some(),
        p.work_logs().is_some(),
        "work_logs_in",
    );
    expect(
        c.time_out || c.time_two_way.is_some(),
        p.time_sink().is_some(),
        "time_out/time_two_way",
    );
    expect(
        c.time_two_way.is_some(),
        p.time_changes().is_some(),
        "time_two_way",
    );
    expect(
        c.person_links || (c.project_links.is_some() && c.work_logs_in.is_none()),
        p.directory().is_some(),
        "person_links/project_links",
    );
    expect(
        c.master_data_in.is_some(),
        p.master_data().is_some(),
        "master_data_in",
    );
    expect(c.tasks_out, p.task_sink().is_some(), "tasks_out");
    expect(c.webhooks.is_some(), p.webhooks().is_some(), "webhooks");
    let fields = d.auth.connect_fields();
    for (i, f) in fields.iter().enumerate() {
        if RESERVED_SETTINGS.contains(&f.name) || fields[..i].iter().any(|g| g.name == f.name) {
            problems.push(format!(
                "connect field {:?} is reserved or repeated",
                f.name
            ));
        }
    }
    if let AuthKind::OAuth2(spec) = &d.auth
        && spec.settings.iter().any(|f| f.secret)
    {
        problems.push("OAuth settings must not be secret".into());
    }
    if let AuthKind::OAuth2(spec) = &d.auth
        && spec.client == OAuthClient::Platform
        && spec.settings.iter().any(|f| f.name == "client_id")
    {
        problems.push("a platform OAuth client's id comes from configuration, not a field".into());
    }
    if hourbridge_domain::ProviderId::parse(d.id).is_err() {
        problems.push(format!("id {:?} is not a valid provider id", d.id));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", d.id, problems.join("; ")))
    }
}

/// A request budget shared by everything that uses the same provider token, account or
/// application, across processes. The sync engine implements it over the store; adapters call
/// [`RateBudget::acquire`] before every request.
#[async_trait]
pub trait RateBudget: Send + Sync {
    /// Waits until one more request under `key` fits `limit`. Fails with
    /// [`ProviderErrorKind::RateLimited`](crate::ProviderErrorKind::RateLimited) and a
    /// `retry_after` when the wait would be longer than the caller should block.
    async fn acquire(&self, key: &str, limit: &crate::RateLimit) -> Result<(), ProviderError>;
}

/// A budget that never waits, for tests and tools that talk to sandboxes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unlimited;

#[async_trait]
impl RateBudget for Unlimited {
    async fn acquire(&self, _: &str, _: &crate::RateLimit) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{Capabilities, ClientAuth, CredentialField, OAuth2Spec, Schedule};

    struct P(ProviderDescriptor);

    #[async_trait]
    impl Provider for P {
        fn descriptor(&self) -> &ProviderDescriptor {
            &self.0
        }
        async fn check_credentials(
            &self,
            _: &ProviderSession,
        ) -> Result<AccountInfo, ProviderError> {
            Err(ProviderError::new(
                self.0.id,
                ProviderErrorKind::ReauthRequired,
                "401",
            ))
        }
    }

    const fn field(name: &'static str, secret: bool) -> CredentialField {
        CredentialField {
            name,
            label: name,
            secret,
            required: true,
        }
    }

    fn descriptor(auth: AuthKind) -> ProviderDescriptor {
        ProviderDescriptor {
            id: "p",
            display_name: "P",
            auth,
            install_role: hourbridge_domain::Role::Admin,
            requires_add_on: false,
            rate_limit: None,
            schedule: Schedule::OnDemand,
            capabilities: Capabilities::default(),
        }
    }

    fn oauth(client: OAuthClient, settings: &'static [CredentialField]) -> AuthKind {
        AuthKind::OAuth2(OAuth2Spec {
            authorize_url: "https://a.test/authorize",
            token_url: "https://a.test/token",
            scopes: &[],
            scope_separator: " ",
            pkce: false,
            client,
            client_auth: ClientAuth::RequestBody,
            extra_authorize_params: &[],
            refresh_token_rotates: false,
            settings,
        })
    }

    const REGION: &[CredentialField] = &[field("region", false)];

    #[test]
    fn connect_fields_follow_the_auth_kind() {
        let names = |a: &AuthKind| {
            a.connect_fields()
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&oauth(OAuthClient::CustomerSupplied, REGION)),
            ["client_id", "client_secret", "region"]
        );
        assert_eq!(names(&oauth(OAuthClient::Platform, REGION)), ["region"]);
        const TOKEN: &[CredentialField] = &[field("token", true)];
        assert_eq!(
            names(&AuthKind::SessionToken {
                fields: TOKEN,
                session_lifetime: Duration::from_secs(60),
            }),
            ["token"]
        );
    }

    #[test]
    fn reserved_repeated_and_secret_oauth_settings_are_refused() {
        const RESERVED: &[CredentialField] = &[field("account_id", false)];
        const TWICE: &[CredentialField] = &[field("a", true), field("a", false)];
        const SECRET: &[CredentialField] = &[field("pin", true)];
        const CLIENT: &[CredentialField] = &[field("client_id", false)];
        for auth in [
            AuthKind::CredentialSet { fields: RESERVED },
            AuthKind::CredentialSet { fields: TWICE },
            oauth(OAuthClient::Platform, SECRET),
            oauth(OAuthClient::Platform, CLIENT),
            oauth(OAuthClient::CustomerSupplied, CLIENT),
        ] {
            assert!(
                check_provider(&P(descriptor(auth.clone()))).is_err(),
                "{auth:?}"
            );
        }
        assert!(check_provider(&P(descriptor(oauth(OAuthClient::Platform, REGION)))).is_ok());
    }

    #[tokio::test]
    async fn validation_blames_every_secret_field_by_default() {
        const FIELDS: &[CredentialField] = &[field("user", false), field("password", true)];
        let p = P(descriptor(AuthKind::CredentialSet { fields: FIELDS }));
        let s = ProviderSession {
            workspace_id: "w".into(),
            secrets: Default::default(),
            settings: serde_json::json!({}),
        };
        match p.validate_credentials(&s).await {
            Err(CredentialCheckError::Invalid { fields, .. }) => assert_eq!(fields, ["password"]),
            other => panic!("{other:?}"),
        }
        assert!(p.create_session(&s, chrono::Utc::now()).await.is_err());
    }
}

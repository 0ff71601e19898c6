//! `GET /v1/providers`: every provider this installation offers, with what a connect screen
//! needs — its auth kind, declared connect fields, the least role that installs it, add-on and
//! schedule — read from the providers' descriptors (read-only; any role).

use axum::Json;
use axum::extract::State;
use hourbridge_domain::Role;
use hourbridge_provider_api::{AuthKind, OAuthClient, ProviderDescriptor, Schedule};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{ApiResult, AppState, List, Member};

/// A field an admin fills in to connect.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FieldView {
    /// JSON name in `PUT /v1/connections/{provider}`.
    name: &'static str,
    /// Label shown to the admin.
    label: &'static str,
    /// Stored in the secret store only, never returned.
    secret: bool,
    /// Connecting without it is refused (422 `required`).
    required: bool,
}

/// Project links (`PUT /v1/projects/{id}/integrations/{provider}`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProjectLinksView {
    /// Most remote projects one host project may be linked to.
    max_remote_projects: usize,
    /// Whether `sync_from` is required.
    requires_sync_from: bool,
}

/// A provider and how it connects.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProviderView {
    /// Provider id, e.g. `harvest`.
    id: &'static str,
    /// Name shown to users.
    display_name: &'static str,
    /// `oauth_customer_app` (the admin registers an OAuth app and pastes its client id and
    /// secret), `oauth_platform` (Hourbridge's own app: only the declared settings),
    /// `session_token` (a token, then Test API and confirm) or `credential_set` (checked on
    /// Activate).
    auth_kind: &'static str,
    /// The connect fields, in order.
    fields: Vec<FieldView>,
    /// OAuth providers: the redirect URL to register in the provider's app
    /// (`{HOURBRIDGE_PUBLIC_URL}/oauth/{provider}/callback`), known before connecting.
    redirect_url: Option<String>,
    /// The least role that may connect, edit, disconnect and run it now.
    install_role: Role,
    /// Whether the caller's role may do that.
    can_install: bool,
    /// Whether the workspace needs the provider's add-on (`GET /v1/workspace` → `add_ons`).
    requires_add_on: bool,
    /// `every` (`every_seconds` apart), `daily_at_local_time` (the `sync_at` setting) or
    /// `on_demand`.
    schedule: &'static str,
    /// The interval of an `every` schedule, in seconds.
    every_seconds: Option<u64>,
    /// Project links, for providers that link host projects by hand.
    project_links: Option<ProjectLinksView>,
    /// Whether host people are linked to provider users (`/v1/people/{id}/integrations/...`).
    person_links: bool,
    /// Whether the first sync matches existing records and lists unclear ones for review
    /// (`GET /v1/connections/{provider}/review`).
    review_list: bool,
    /// Work logs pulled into the host.
    work_logs_in: bool,
    /// Host time pushed out (one-way or both ways).
    time_out: bool,
    /// Time kept in sync both ways.
    time_two_way: bool,
    /// Host tasks pushed out.
    tasks_out: bool,
    /// Projects (and customers, tasks) imported from the provider.
    master_data_in: bool,
    /// Whether it receives webhooks.
    webhooks: bool,
}

fn view(s: &AppState, d: &ProviderDescriptor, role: Role) -> ProviderView {
    let auth_kind = match &d.auth {
        AuthKind::OAuth2(spec) => match spec.client {
            OAuthClient::CustomerSupplied => "oauth_customer_app",
            OAuthClient::Platform => "oauth_platform",
        },
        AuthKind::SessionToken { .. } => "session_token",
        AuthKind::CredentialSet { .. } => "credential_set",
    };
    let (schedule, every_seconds) = match d.schedule {
        Schedule::Every(every) => ("every", Some(every.as_secs())),
        Schedule::DailyAtLocalTime => ("daily_at_local_time", None),
        Schedule::OnDemand => ("on_demand", None),
    };
    let c = &d.capabilities;
    ProviderView {
        id: d.id,
        display_name: d.display_name,
        auth_kind,
        fields: d
            .auth
            .connect_fields()
            .into_iter()
            .map(|f| FieldView {
                name: f.name,
                label: f.label,
                secret: f.secret,
                required: f.required,
            })
            .collect(),
        redirect_url: d.auth.oauth2().map(|_| s.engine.redirect_url(d.id)),
        install_role: d.install_role,
        can_install: role >= d.install_role,
        requires_add_on: d.requires_add_on,
        schedule,
        every_seconds,
        project_links: c.project_links.map(|l| ProjectLinksView {
            max_remote_projects: l.max_remote_projects,
            requires_sync_from: l.requires_sync_from,
        }),
        person_links: c.person_links,
        review_list: c.master_data_in.is_some_and(|m| m.match_existing),
        work_logs_in: c.work_logs_in.is_some(),
        time_out: c.time_out || c.time_two_way.is_some(),
        time_two_way: c.time_two_way.is_some(),
        tasks_out: c.tasks_out,
        master_data_in: c.master_data_in.is_some(),
        webhooks: c.webhooks.is_some(),
    }
}

/// Every provider this installation offers and how it connects (any role). `can_install`
/// says whether the caller may connect it; the connect calls still check the role.
#[utoipa::path(get, path = "/v1/providers", tag = "connections",
    responses((status = 200, body = List<ProviderView>), (status = 401, body = crate::ErrorBody)))]
async fn list_providers(
    State(s): State<AppState>,
    Member(c): Member,
) -> ApiResult<Json<List<ProviderView>>> {
    // A service token acts as a member here (it installs nothing).
    let role = match c.kind {
        crate::CallerKind::Person => c.role,
        crate::CallerKind::Service => Role::Member,
    };
    let mut items: Vec<ProviderView> = s
        .engine
        .providers
        .descriptors()
        .map(|d| view(&s, d, role))
        .collect();
    items.sort_by_key(|p| p.display_name);
    Ok(Json(List {
        items,
        next_cursor: None,
    }))
}

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_providers))
}

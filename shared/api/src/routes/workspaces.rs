use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hourbridge_domain::{Person, Role, Workspace, parse_time_zone, validate};
use hourbridge_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{ApiResult, AppState, Body, Caller, ErrorBody, Service};

/// Bootstrap input: the workspace and its owner (the token's `sub`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewWorkspace {
    /// Workspace name.
    name: String,
    /// IANA time zone (default `UTC`).
    time_zone: Option<String>,
    /// The owner's person record.
    owner: NewOwner,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewOwner {
    name: String,
    email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Bootstrapped {
    workspace: Workspace,
    owner: Person,
}

/// Creates the workspace named by the token's `ws` claim, with the caller (`sub`) as its owner.
/// Idempotent: calling it again returns the existing workspace with 200.
#[utoipa::path(post, path = "/v1/workspaces", tag = "workspaces",
    request_body = NewWorkspace,
    responses(
        (status = 201, description = "created", body = Bootstrapped),
        (status = 200, description = "already existed", body = Bootstrapped),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn bootstrap(
    State(s): State<AppState>,
    caller: Caller,
    Body(input): Body<NewWorkspace>,
) -> ApiResult<(StatusCode, Json<Bootstrapped>)> {
    caller.require(Role::Owner)?;
    let scope = caller.scope();
    if let Some(existing) = existing(&s, &caller).await? {
        return Ok((StatusCode::OK, Json(existing)));
    }
    let time_zone = input.time_zone.unwrap_or_else(|| "UTC".to_owned());
    parse_time_zone(&time_zone)?;
    let owner = Person {
        id: caller.person_id.clone(),
        name: validate::text("owner.name", &input.owner.name, validate::MAX_NAME_CHARS)?,
        email: validate::email(&input.owner.email)?,
        role: Role::Owner,
    };
    let workspace = Workspace {
        id: scope.to_owned(),
        name: validate::text("name", &input.name, validate::MAX_NAME_CHARS)?,
        time_zone,
        owner_id: caller.person_id.clone(),
        created_at: s.store.clock().now(),
        addons: Default::default(),
    };
    // Owner first: a crash in between leaves a retryable state, never a workspace without owner.
    s.store.upsert(scope, &owner).await?;
    match s.store.insert(scope, &workspace).await {
        Ok(_) => Ok((StatusCode::CREATED, Json(Bootstrapped { workspace, owner }))),
        Err(StoreError::Conflict) => match existing(&s, &caller).await? {
            Some(e) => Ok((StatusCode::OK, Json(e))),
            None => Err(StoreError::Conflict.into()),
        },
        Err(e) => Err(e.into()),
    }
}

async fn existing(s: &AppState, caller: &Caller) -> ApiResult<Option<Bootstrapped>> {
    let scope = caller.scope();
    let Some((workspace, _)) = s.store.get::<Workspace>(scope, scope).await? else {
        return Ok(None);
    };
    let owner = s
        .store
        .get::<Person>(scope, workspace.owner_id.as_str())
        .await?
        .map(|(p, _)| p)
        .ok_or_else(|| crate::ApiError::not_found("workspace owner"))?;
    Ok(Some(Bootstrapped { workspace, owner }))
}

/// The caller's workspace.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkspaceView {
    id: String,
    name: String,
    /// IANA time zone: "synchronize at" times and status labels are in it.
    time_zone: String,
    /// Enabled add-ons (ids of providers that require one), set by the host product's billing
    /// backend with `PUT`/`DELETE /v1/workspace/addons/{addon}`.
    add_ons: Vec<String>,
}

impl From<Workspace> for WorkspaceView {
    fn from(w: Workspace) -> Self {
        Self {
            id: w.id,
            name: w.name,
            time_zone: w.time_zone,
            add_ons: w.addons.into_iter().collect(),
        }
    }
}

/// Workspace edit: every field optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkspacePatch {
    /// New name.
    name: Option<String>,
    /// New IANA time zone; moves the next run of every daily-at-local-time connection.
    time_zone: Option<String>,
}

async fn load(s: &AppState, caller: &Caller) -> ApiResult<(Workspace, u64)> {
    let scope = caller.scope();
    s.store
        .get::<Workspace>(scope, scope)
        .await?
        .ok_or_else(|| crate::ApiError::not_found("workspace"))
}

/// The caller's workspace (any role).
#[utoipa::path(get, path = "/v1/workspace", tag = "workspaces",
    responses((status = 200, body = WorkspaceView), (status = 404, body = ErrorBody)))]
async fn get_workspace(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<WorkspaceView>> {
    Ok(Json(load(&s, &caller).await?.0.into()))
}

/// Renames the workspace or changes its time zone (owner only). A time-zone change moves the
/// next run of every connection scheduled daily at a local time.
#[utoipa::path(patch, path = "/v1/workspace", tag = "workspaces",
    request_body = WorkspacePatch,
    responses((status = 200, body = WorkspaceView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn patch_workspace(
    State(s): State<AppState>,
    caller: Caller,
    Body(input): Body<WorkspacePatch>,
) -> ApiResult<Json<WorkspaceView>> {
    caller.require(Role::Owner)?;
    let (mut w, version) = load(&s, &caller).await?;
    if let Some(name) = input.name {
        w.name = validate::text("name", &name, validate::MAX_NAME_CHARS)?;
    }
    let mut zone_changed = false;
    if let Some(tz) = input.time_zone {
        let tz = tz.trim().to_owned();
        parse_time_zone(&tz)?;
        zone_changed = tz != w.time_zone;
        w.time_zone = tz;
    }
    s.store.update(caller.scope(), &w, version).await?;
    if zone_changed {
        hourbridge_sync::schedule::reschedule_local(&s.engine, caller.scope()).await?;
    }
    Ok(Json(w.into()))
}

/// Enables an add-on (service token only: the host product's billing backend; people, owners
/// included, answer 403 `forbidden`). Idempotent. The add-on id is the id of a provider that
/// requires one (else 404 `unknown_addon`); an active connection of it goes back on its
/// schedule.
#[utoipa::path(put, path = "/v1/workspace/addons/{addon}", tag = "workspaces",
    params(("addon" = String, Path, description = "the provider id")),
    responses((status = 200, body = WorkspaceView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn put_addon(
    State(s): State<AppState>,
    Service(caller): Service,
    Path(addon): Path<String>,
) -> ApiResult<Json<WorkspaceView>> {
    let w = s.engine.enable_addon(caller.scope(), &addon).await?;
    Ok(Json(w.into()))
}

/// Removes an add-on (service token only). Idempotent. Nothing is deleted: the provider's
/// connection leaves its schedule, webhooks are refused, and its status becomes failed with
/// reason `addon_not_enabled` until the add-on is enabled again.
#[utoipa::path(delete, path = "/v1/workspace/addons/{addon}", tag = "workspaces",
    params(("addon" = String, Path, description = "the provider id")),
    responses((status = 200, body = WorkspaceView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_addon(
    State(s): State<AppState>,
    Service(caller): Service,
    Path(addon): Path<String>,
) -> ApiResult<Json<WorkspaceView>> {
    let w = s.engine.remove_addon(caller.scope(), &addon).await?;
    Ok(Json(w.into()))
}

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(bootstrap))
        .routes(routes!(get_workspace, patch_workspace))
        .routes(routes!(put_addon, delete_addon))
}

//! Host people linked by hand to users of a provider that declares person links (TimeLog):
//! the remote users with suggestions, and the link on a person's profile.
//!
//! A remote user is linked to at most one host person per workspace. The [`PersonLink`]
//! (`person.provider`) is written in one store transaction with a *claim* record keyed
//! `provider.remote_user_id`, created only when absent (or replacing a stale one at the
//! version read), so of two concurrent links of one remote user exactly one commits.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hourbridge_domain::{Person, PersonLink, ProviderId, RecordId, Role, validate};
use hourbridge_provider_api::{Provider, RemoteUser};
use hourbridge_store::{Condition, Entity, EntityKind, IndexSel, StoreError, TransactItem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{
    ApiError, ApiResult, AppState, Body, Caller, ErrorBody, List, Member, QueryParams, Segments,
};

/// Longest remote user id accepted.
const MAX_REMOTE_USER_ID: usize = 100;
/// Most directory pages read to find one remote user.
const MAX_DIRECTORY_PAGES: usize = 200;

/// Who holds a remote user: the guard of the at-most-one-person rule, keyed
/// `provider.remote_user_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PersonLinkClaim {
    provider: ProviderId,
    remote_user_id: String,
    person_id: RecordId,
}

fn claim_id(provider: &ProviderId, remote: &str) -> String {
    format!("{provider}.{remote}")
}

impl Entity for PersonLinkClaim {
    const KIND: EntityKind = EntityKind("person_link_claim");
    fn id(&self) -> String {
        claim_id(&self.provider, &self.remote_user_id)
    }
}

/// A remote user, with the host person suggested by e-mail and the one linked.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RemoteUserView {
    id: String,
    /// Short handle (TimeLog initials), when the provider has one.
    initials: Option<String>,
    name: String,
    email: Option<String>,
    /// Inactive (terminated) users are listed too.
    active: bool,
    /// The host person whose e-mail equals the remote e-mail (trimmed, case-insensitive).
    #[schema(value_type = Option<String>)]
    suggested_person_id: Option<RecordId>,
    /// The host person linked to this user, if any.
    #[schema(value_type = Option<String>)]
    linked_person_id: Option<RecordId>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RemoteUserQuery {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PersonLinkBody {
    /// The remote user's id (`id` of `GET /v1/connections/{provider}/remote-users`).
    remote_user_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PersonLinkView {
    #[schema(value_type = String)]
    person_id: RecordId,
    #[schema(value_type = String)]
    provider: ProviderId,
    remote_user_id: String,
}

impl From<PersonLink> for PersonLinkView {
    fn from(l: PersonLink) -> Self {
        Self {
            person_id: l.person_id,
            provider: l.provider,
            remote_user_id: l.remote_person_id,
        }
    }
}

/// The provider, if it declares person links (else 422 `unsupported`; unknown: 404).
fn person_links_provider(s: &AppState, provider: &str) -> ApiResult<Arc<dyn Provider>> {
    let p = s.engine.provider(provider)?;
    if !p.descriptor().capabilities.person_links || p.directory().is_none() {
        return Err(ApiError::unprocessable(
            "unsupported",
            format!("{provider} does not link host people to its users"),
        ));
    }
    Ok(p.clone())
}

fn provider_id(provider: &str) -> ApiResult<ProviderId> {
    ProviderId::parse(provider).map_err(ApiError::from)
}

async fn load_person(s: &AppState, scope: &str, id: &str) -> ApiResult<Person> {
    let id = RecordId::parse(id).map_err(|_| ApiError::not_found("person"))?;
    s.store
        .get::<Person>(scope, id.as_str())
        .await?
        .map(|(p, _)| p)
        .ok_or_else(|| ApiError::not_found("person"))
}

/// One page of the provider's users.
async fn users_page(
    s: &AppState,
    scope: &str,
    p: &Arc<dyn Provider>,
    cursor: Option<String>,
) -> ApiResult<hourbridge_provider_api::RemotePage<RemoteUser>> {
    let p = p.clone();
    let provider = p.descriptor().id;
    Ok(s.engine
        .call(scope, provider, move |session| {
            let (p, cursor) = (p.clone(), cursor.clone());
            async move {
                match p.directory() {
                    Some(dir) => dir.list_users(&session, cursor).await,
                    None => Err(hourbridge_provider_api::ProviderError::new(
                        p.descriptor().id,
                        hourbridge_provider_api::ProviderErrorKind::Unsupported,
                        "no directory",
                    )),
                }
            }
        })
        .await?)
}

/// Whether the provider's directory lists a user with this id.
async fn remote_user_exists(
    s: &AppState,
    scope: &str,
    p: &Arc<dyn Provider>,
    remote: &str,
) -> ApiResult<bool> {
    let mut cursor = None;
    for _ in 0..MAX_DIRECTORY_PAGES {
        let page = users_page(s, scope, p, cursor).await?;
        if page.items.iter().any(|u| u.id == remote) {
            return Ok(true);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(false),
        }
    }
    Ok(false)
}

/// The person's link to the provider, with its version.
async fn link_of(
    s: &AppState,
    scope: &str,
    person: &RecordId,
    provider: &ProviderId,
) -> ApiResult<Option<(PersonLink, u64)>> {
    Ok(s.store
        .get::<PersonLink>(scope, &format!("{person}.{provider}"))
        .await?)
}

/// The existing person (other than `me`) linked to the remote user, if any: by its claim, or
/// by a link written without one (links the sync engine made). A claim whose person no longer
/// exists or no longer links this user is stale and holds nothing.
async fn holder(
    s: &AppState,
    scope: &str,
    provider: &ProviderId,
    remote: &str,
    me: &RecordId,
    claim: Option<&PersonLinkClaim>,
) -> ApiResult<Option<Person>> {
    let mut candidates: Vec<RecordId> = claim.map(|c| c.person_id.clone()).into_iter().collect();
    let q =
        s.store
            .query::<PersonLink>(scope, IndexSel::Index1(format!("{provider}.{remote}")), 100);
    candidates.extend(
        s.store
            .list_all::<PersonLink>(q)
            .await?
            .into_iter()
            .map(|l| l.person_id),
    );
    for id in candidates.into_iter().filter(|id| id != me) {
        let links = link_of(s, scope, &id, provider)
            .await?
            .is_some_and(|(l, _)| l.remote_person_id == remote);
        if !links {
            continue;
        }
        if let Some((p, _)) = s.store.get::<Person>(scope, id.as_str()).await? {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

fn remote_user_linked(display: &str, remote: &str, p: &Person) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "remote_user_linked",
        format!(
            "{display} user {remote} is already linked to {} ({}); unlink them first",
            p.name, p.id
        ),
    )
}

/// The claim on a remote user, with its version.
async fn claim_of(
    s: &AppState,
    scope: &str,
    provider: &ProviderId,
    remote: &str,
) -> ApiResult<Option<(PersonLinkClaim, u64)>> {
    Ok(s.store
        .get::<PersonLinkClaim>(scope, &claim_id(provider, remote))
        .await?)
}

/// Deletes of the person's links (and the claims they hold), one per provider, for removing
/// the person: their remote users become free to link again.
pub(crate) async fn unlink_all(
    s: &AppState,
    scope: &str,
    person: &RecordId,
) -> ApiResult<Vec<TransactItem>> {
    let mut items = Vec::new();
    let providers: Vec<&'static str> = s.engine.providers.descriptors().map(|d| d.id).collect();
    for provider in providers {
        let provider = provider_id(provider)?;
        if let Some((link, v)) = link_of(s, scope, person, &provider).await? {
            items.push(TransactItem::delete_entity::<PersonLink>(
                scope,
                &link.id(),
                Condition::Version(v),
            ));
            if let Some((claim, cv)) = claim_of(s, scope, &provider, &link.remote_person_id).await?
                && &claim.person_id == person
            {
                items.push(TransactItem::delete_entity::<PersonLinkClaim>(
                    scope,
                    &claim.id(),
                    Condition::Version(cv),
                ));
            }
        }
    }
    Ok(items)
}

/// The provider's users (admin), a page at a time, each with the host person suggested by
/// e-mail (trimmed, case-insensitive) and the one linked. 422 `unsupported` for providers
/// without person links.
#[utoipa::path(get, path = "/v1/connections/{provider}/remote-users", tag = "connections",
    params(("provider" = String, Path), RemoteUserQuery),
    responses((status = 200, body = List<RemoteUserView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remote_users(
    State(s): State<AppState>,
    Member(c): Member,
    Segments(provider): Segments<String>,
    QueryParams(q): QueryParams<RemoteUserQuery>,
) -> ApiResult<Json<List<RemoteUserView>>> {
    c.require(Role::Admin)?;
    let p = person_links_provider(&s, &provider)?;
    let pid = provider_id(&provider)?;
    s.engine.require_addon(c.scope(), &provider).await?;
    let page = users_page(&s, c.scope(), &p, q.cursor).await?;
    // People by e-mail and links by remote user, each read once for the whole page.
    let people = s
        .store
        .list_all::<Person>(s.store.query::<Person>(c.scope(), IndexSel::Primary, 1000))
        .await?;
    let by_email: HashMap<String, RecordId> = people
        .into_iter()
        .map(|p| (validate::normalize_email(&p.email), p.id))
        .collect();
    let links = s
        .store
        .list_all::<PersonLink>(
            s.store
                .query::<PersonLink>(c.scope(), IndexSel::Primary, 1000),
        )
        .await?;
    let linked: HashMap<String, RecordId> = links
        .into_iter()
        .filter(|l| l.provider == pid)
        .map(|l| (l.remote_person_id, l.person_id))
        .collect();
    let items = page
        .items
        .into_iter()
        .map(|u| RemoteUserView {
            suggested_person_id: u
                .email
                .as_deref()
                .map(validate::normalize_email)
                .filter(|e| !e.is_empty())
                .and_then(|e| by_email.get(&e).cloned()),
            linked_person_id: linked.get(&u.id).cloned(),
            id: u.id,
            initials: u.initials,
            name: u.name,
            email: u.email,
            active: u.active,
        })
        .collect();
    Ok(Json(List {
        items,
        next_cursor: page.next,
    }))
}

/// Links a host person to a remote user (admin): the user must be in the provider's
/// directory (422 `unknown_remote_user`) and not linked to another person (409
/// `remote_user_linked`, naming them); linking the person again replaces their link.
#[utoipa::path(put, path = "/v1/people/{id}/integrations/{provider}", tag = "people",
    params(("id" = String, Path), ("provider" = String, Path)), request_body = PersonLinkBody,
    responses((status = 200, body = PersonLinkView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_person_link(
    State(s): State<AppState>,
    Member(c): Member,
    Segments((id, provider)): Segments<(String, String)>,
    Body(b): Body<PersonLinkBody>,
) -> ApiResult<Json<PersonLinkView>> {
    c.require(Role::Admin)?;
    let p = person_links_provider(&s, &provider)?;
    let pid = provider_id(&provider)?;
    s.engine.require_addon(c.scope(), &provider).await?;
    let scope = c.scope();
    let person = load_person(&s, scope, &id).await?;
    let remote = validate::text("remote_user_id", &b.remote_user_id, MAX_REMOTE_USER_ID)?;
    let display = p.descriptor().display_name;
    if !remote_user_exists(&s, scope, &p, &remote).await? {
        return Err(ApiError::unprocessable(
            "unknown_remote_user",
            format!("{display} has no user {remote}"),
        )
        .with_fields(vec!["remote_user_id".into()]));
    }
    let claim = claim_of(&s, scope, &pid, &remote).await?;
    if let Some(other) = holder(
        &s,
        scope,
        &pid,
        &remote,
        &person.id,
        claim.as_ref().map(|(c, _)| c),
    )
    .await?
    {
        return Err(remote_user_linked(display, &remote, &other));
    }
    let existing = link_of(&s, scope, &person.id, &pid).await?;
    let link = PersonLink {
        person_id: person.id.clone(),
        provider: pid.clone(),
        remote_person_id: remote.clone(),
    };
    let claimed = claim
        .as_ref()
        .is_some_and(|(c, _)| c.person_id == person.id);
    if claimed && existing.as_ref().is_some_and(|(l, _)| l == &link) {
        return Ok(Json(link.into()));
    }
    let mut items = vec![
        TransactItem::put_entity(
            scope,
            &PersonLinkClaim {
                provider: pid.clone(),
                remote_user_id: remote.clone(),
                person_id: person.id.clone(),
            },
            claim
                .as_ref()
                .map_or(Condition::Absent, |(_, v)| Condition::Version(*v)),
        )?,
        TransactItem::put_entity(
            scope,
            &link,
            existing
                .as_ref()
                .map_or(Condition::Absent, |(_, v)| Condition::Version(*v)),
        )?,
    ];
    // Re-linking: the user the person had is free again.
    if let Some((old, _)) = &existing
        && old.remote_person_id != remote
        && let Some((old_claim, v)) = claim_of(&s, scope, &pid, &old.remote_person_id).await?
        && old_claim.person_id == person.id
    {
        items.push(TransactItem::delete_entity::<PersonLinkClaim>(
            scope,
            &old_claim.id(),
            Condition::Version(v),
        ));
    }
    match s.store.transact(items).await {
        Ok(_) => Ok(Json(link.into())),
        Err(StoreError::Conflict) => {
            // Someone else linked the user (or changed this person's link) meanwhile.
            let claim = claim_of(&s, scope, &pid, &remote).await?;
            match holder(
                &s,
                scope,
                &pid,
                &remote,
                &person.id,
                claim.as_ref().map(|(c, _)| c),
            )
            .await?
            {
                Some(other) => Err(remote_user_linked(display, &remote, &other)),
                None => Err(StoreError::Conflict.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Admins, and the person themselves, may read a person's link.
fn may_read(c: &Caller, person: &RecordId) -> ApiResult<()> {
    if &c.person_id == person {
        Ok(())
    } else {
        c.require(Role::Admin)
    }
}

/// A person's link to a remote user (admins, and the person themselves); 404 when none.
#[utoipa::path(get, path = "/v1/people/{id}/integrations/{provider}", tag = "people",
    params(("id" = String, Path), ("provider" = String, Path)),
    responses((status = 200, body = PersonLinkView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_person_link(
    State(s): State<AppState>,
    Member(c): Member,
    Segments((id, provider)): Segments<(String, String)>,
) -> ApiResult<Json<PersonLinkView>> {
    person_links_provider(&s, &provider)?;
    let pid = provider_id(&provider)?;
    let person = load_person(&s, c.scope(), &id).await?;
    may_read(&c, &person.id)?;
    link_of(&s, c.scope(), &person.id, &pid)
        .await?
        .map(|(l, _)| Json(l.into()))
        .ok_or_else(|| ApiError::not_found("person integration"))
}

/// Unlinks a person from their remote user (admin); 404 when there is no link.
#[utoipa::path(delete, path = "/v1/people/{id}/integrations/{provider}", tag = "people",
    params(("id" = String, Path), ("provider" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn delete_person_link(
    State(s): State<AppState>,
    Member(c): Member,
    Segments((id, provider)): Segments<(String, String)>,
) -> ApiResult<StatusCode> {
    c.require(Role::Admin)?;
    person_links_provider(&s, &provider)?;
    let pid = provider_id(&provider)?;
    let scope = c.scope();
    let person = load_person(&s, scope, &id).await?;
    let Some((link, v)) = link_of(&s, scope, &person.id, &pid).await? else {
        return Err(ApiError::not_found("person integration"));
    };
    let mut items = vec![TransactItem::delete_entity::<PersonLink>(
        scope,
        &link.id(),
        Condition::Version(v),
    )];
    if let Some((claim, cv)) = claim_of(&s, scope, &pid, &link.remote_person_id).await?
        && claim.person_id == person.id
    {
        items.push(TransactItem::delete_entity::<PersonLinkClaim>(
            scope,
            &claim.id(),
            Condition::Version(cv),
        ));
    }
    s.store.transact(items).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remote users and person links: served by the `connections` function (they call the
/// provider with the connection's credentials).
pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(remote_users)).routes(routes!(
        put_person_link,
        get_person_link,
        delete_person_link
    ))
}

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hourbridge_domain::{Assignment, Person, Role, WorkLog, Workspace, new_id, validate};
use hourbridge_store::{Condition, IndexSel, TransactItem};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::paging::paging;
use crate::{ApiError, ApiResult, AppState, Body, ErrorBody, IdPath, List, Member, QueryParams};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPerson {
    name: String,
    email: String,
    role: Role,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PersonPatch {
    name: Option<String>,
    email: Option<String>,
    role: Option<Role>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PeopleQuery {
    /// Only the person with this e-mail (compared case-insensitively).
    email: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The person using `email` (normalised), if any.
pub(crate) async fn by_email(s: &AppState, scope: &str, email: &str) -> ApiResult<Option<Person>> {
    let q = s
        .store
        .query::<Person>(scope, IndexSel::Index1(validate::normalize_email(email)), 1);
    Ok(s.store
        .list::<Person>(q, None)
        .await?
        .items
        .into_iter()
        .next()
        .map(|(p, _)| p))
}

fn email_taken() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "email_taken",
        "another person already uses this e-mail",
    )
}

/// People of the workspace, by id.
#[utoipa::path(get, path = "/v1/people", tag = "people", params(PeopleQuery),
    responses((status = 200, body = List<Person>), (status = 400, body = ErrorBody)))]
async fn list_people(
    State(s): State<AppState>,
    Member(c): Member,
    QueryParams(q): QueryParams<PeopleQuery>,
) -> ApiResult<Json<List<Person>>> {
    let (limit, cursor) = paging(q.limit.as_deref(), q.cursor.as_deref())?;
    let index = match &q.email {
        Some(e) => IndexSel::Index1(validate::normalize_email(e)),
        None => IndexSel::Primary,
    };
    let mut query = s.store.query::<Person>(c.scope(), index, limit);
    query.cursor = cursor;
    Ok(Json(List::from_page(
        s.store.list::<Person>(query, None).await?,
    )))
}

/// Adds a person (admin). Nobody may grant a role above their own.
#[utoipa::path(post, path = "/v1/people", tag = "people", request_body = NewPerson,
    responses((status = 201, body = Person), (status = 403, body = ErrorBody),
        (status = 409, description = "e-mail in use", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_person(
    State(s): State<AppState>,
    Member(c): Member,
    Body(input): Body<NewPerson>,
) -> ApiResult<(StatusCode, Json<Person>)> {
    c.require(Role::Admin)?;
    if input.role > c.role {
        return Err(ApiError::forbidden(
            "you cannot grant a role above your own",
        ));
    }
    let person = Person {
        id: new_id(),
        name: validate::text("name", &input.name, validate::MAX_NAME_CHARS)?,
        email: validate::email(&input.email)?,
        role: input.role,
    };
    if by_email(&s, c.scope(), &person.email).await?.is_some() {
        return Err(email_taken());
    }
    s.store.insert(c.scope(), &person).await?;
    Ok((StatusCode::CREATED, Json(person)))
}

/// One person.
#[utoipa::path(get, path = "/v1/people/{id}", tag = "people", params(("id" = String, Path)),
    responses((status = 200, body = Person), (status = 404, body = ErrorBody)))]
async fn get_person(
    State(s): State<AppState>,
    Member(c): Member,
    IdPath(id): IdPath,
) -> ApiResult<Json<Person>> {
    let (p, _) = s
        .store
        .get::<Person>(c.scope(), id.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("person"))?;
    Ok(Json(p))
}

/// Changes a person. Admins may change anyone up to their own role; anyone may change their
/// own name and e-mail. The workspace owner's role cannot be changed.
#[utoipa::path(patch, path = "/v1/people/{id}", tag = "people", params(("id" = String, Path)), request_body = PersonPatch,
    responses((status = 200, body = Person), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn patch_person(
    State(s): State<AppState>,
    Member(c): Member,
    IdPath(id): IdPath,
    Body(patch): Body<PersonPatch>,
) -> ApiResult<Json<Person>> {
    let (mut p, version) = s
        .store
        .get::<Person>(c.scope(), id.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("person"))?;
    let is_self = p.id == c.person_id;
    if !is_self || patch.role.is_some() {
        c.require(Role::Admin)?;
        if p.role > c.role {
            return Err(ApiError::forbidden(
                "you cannot change a person whose role is above yours",
            ));
        }
    }
    if let Some(role) = patch.role {
        if role > c.role {
            return Err(ApiError::forbidden(
                "you cannot grant a role above your own",
            ));
        }
        let owner_id = s
            .store
            .get::<Workspace>(c.scope(), c.scope())
            .await?
            .map(|(w, _)| w.owner_id);
        if owner_id.as_ref() == Some(&p.id) && role != Role::Owner {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "owner_role_fixed",
                "the workspace owner stays owner",
            ));
        }
        p.role = role;
    }
    if let Some(name) = patch.name {
        p.name = validate::text("name", &name, validate::MAX_NAME_CHARS)?;
    }
    if let Some(email) = patch.email {
        let email = validate::email(&email)?;
        if validate::normalize_email(&email) != validate::normalize_email(&p.email)
            && by_email(&s, c.scope(), &email).await?.is_some()
        {
            return Err(email_taken());
        }
        p.email = email;
    }
    s.store.update(c.scope(), &p, version).await?;
    Ok(Json(p))
}

/// Removes a person (admin), with their links to provider users. Refused for the workspace
/// owner and for people with work logs or assignments, which would otherwise point nowhere.
#[utoipa::path(delete, path = "/v1/people/{id}", tag = "people", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_person(
    State(s): State<AppState>,
    Member(c): Member,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    c.require(Role::Admin)?;
    let (p, version) = s
        .store
        .get::<Person>(c.scope(), id.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("person"))?;
    if p.role > c.role {
        return Err(ApiError::forbidden(
            "you cannot remove a person whose role is above yours",
        ));
    }
    let owner_id = s
        .store
        .get::<Workspace>(c.scope(), c.scope())
        .await?
        .map(|(w, _)| w.owner_id);
    if owner_id.as_ref() == Some(&p.id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "owner_cannot_be_deleted",
            "the workspace owner cannot be removed",
        ));
    }
    let in_use = |what: &str| {
        ApiError::new(
            StatusCode::CONFLICT,
            "person_in_use",
            format!("this person still has {what}; remove them first"),
        )
    };
    let idx = IndexSel::Index2(p.id.to_string());
    if !s
        .store
        .list::<WorkLog>(s.store.query::<WorkLog>(c.scope(), idx.clone(), 1), None)
        .await?
        .items
        .is_empty()
    {
        return Err(in_use("work logs"));
    }
    if !s
        .store
        .list::<Assignment>(s.store.query::<Assignment>(c.scope(), idx, 1), None)
        .await?
        .items
        .is_empty()
    {
        return Err(in_use("assignments"));
    }
    // The person's links to provider users go with them, so those users may be linked again.
    let mut items = vec![TransactItem::delete_entity::<Person>(
        c.scope(),
        id.as_str(),
        Condition::Version(version),
    )];
    items.extend(super::person_links::unlink_all(&s, c.scope(), &p.id).await?);
    s.store.transact(items).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_people, create_person))
        .routes(routes!(get_person, patch_person, delete_person))
}

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hourbridge_domain::{Customer, ManagedBy, Project, Role, new_id, validate};
use hourbridge_store::IndexSel;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::PageParams;
use crate::extract::double_option;
use crate::paging::paging;
use crate::{ApiError, ApiResult, AppState, Body, ErrorBody, IdPath, List, Member, QueryParams};

const MAX_ORG_NUMBER_CHARS: usize = 50;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCustomer {
    name: String,
    organization_number: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustomerPatch {
    name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    organization_number: Option<Option<String>>,
}

fn org_number(v: Option<String>) -> ApiResult<Option<String>> {
    v.map(|n| validate::text("organization_number", &n, MAX_ORG_NUMBER_CHARS))
        .transpose()
        .map_err(Into::into)
}

pub(crate) fn check_editable(c: &Customer) -> ApiResult<()> {
    match &c.managed_by {
        ManagedBy::Local => Ok(()),
        ManagedBy::Provider(p) => Err(ApiError::managed_by_provider("customer", p.as_str())),
    }
}

/// Customers, by id.
#[utoipa::path(get, path = "/v1/customers", tag = "customers", params(PageParams),
    responses((status = 200, body = List<Customer>), (status = 400, body = ErrorBody)))]
async fn list_customers(
    State(s): State<AppState>,
    Member(c): Member,
    QueryParams(q): QueryParams<PageParams>,
) -> ApiResult<Json<List<Customer>>> {
    let (limit, cursor) = paging(q.limit.as_deref(), q.cursor.as_deref())?;
    let mut query = s
        .store
        .query::<Customer>(c.scope(), IndexSel::Primary, limit);
    query.cursor = cursor;
    Ok(Json(List::from_page(
        s.store.list::<Customer>(query, None).await?,
    )))
}

/// Adds a customer (manager).
#[utoipa::path(post, path = "/v1/customers", tag = "customers", request_body = NewCustomer,
    responses((status = 201, body = Customer), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_customer(
    State(s): State<AppState>,
    Member(c): Member,
    Body(input): Body<NewCustomer>,
) -> ApiResult<(StatusCode, Json<Customer>)> {
    c.require(Role::Manager)?;
    let customer = Customer {
        id: new_id(),
        name: validate::text("name", &input.name, validate::MAX_NAME_CHARS)?,
        organization_number: org_number(input.organization_number)?,
        managed_by: ManagedBy::Local,
        active: true,
    };
    s.store.insert(c.scope(), &customer).await?;
    Ok((StatusCode::CREATED, Json(customer)))
}

/// One customer.
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers", params(("id" = String, Path)),
    responses((status = 200, body = Customer), (status = 404, body = ErrorBody)))]
async fn get_customer(
    State(s): State<AppState>,
    Member(c): Member,
    IdPath(id): IdPath,
) -> ApiResult<Json<Customer>> {
    let (x, _) = s
        .store
        .get::<Customer>(c.scope(), id.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("customer"))?;
    Ok(Json(x))
}

/// Changes a customer (manager); provider-managed customers answer 409 `managed_by_provider`.
#[utoipa::path(patch, path = "/v1/customers/{id}", tag = "customers", params(("id" = String, Path)), request_body = CustomerPatch,
    responses((status = 200, body = Customer), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn patch_customer(
    State(s): State<AppState>,
    Member(c): Member,
    IdPath(id): IdPath,
    Body(patch): Body<CustomerPatch>,
) -> ApiResult<Json<Customer>> {
    c.require(Role::Manager)?;
    let (mut x, version) = s
        .store
        .get::<Customer>(c.scope(), id.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("customer"))?;
    check_editable(&x)?;
    if let Some(name) = patch.name {
        x.name = validate::text("name", &name, validate::MAX_NAME_CHARS)?;
    }
    if let Some(n) = patch.organization_number {
        x.organization_number = org_number(n)?;
    }
    s.store.update(c.scope(), &x, version).await?;
    Ok(Json(x))
}

/// Removes a customer (manager); refused while projects refer to it.
#[utoipa::path(delete, path = "/v1/customers/{id}", tag = "customers", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_customer(
    State(s): State<AppState>,
    Member(c): Member,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    c.require(Role::Manager)?;
    let (x, version) = s
        .store
        .get::<Customer>(c.scope(), id.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("customer"))?;
    check_editable(&x)?;
    let q = s
        .store
        .query::<Project>(c.scope(), IndexSel::Index2(id.to_string()), 1);
    if !s.store.list::<Project>(q, None).await?.items.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "customer_in_use",
            "projects still refer to this customer",
        ));
    }
    s.store
        .delete_at::<Customer>(c.scope(), id.as_str(), version)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_customers, create_customer))
        .routes(routes!(get_customer, patch_customer, delete_customer))
}

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hourbridge_domain::{
    Assignment, ChangeDraft, ChangeOp, Customer, HostKind, ManagedBy, Person, Project, RecordId,
    Role, Task, WorkLog, check_period, new_id, validate,
};
use hourbridge_store::{Condition, EntityFilter, IndexSel, TransactItem};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::PageParams;
use crate::extract::double_option;
use crate::paging::paging;
use crate::{
    ApiError, ApiResult, AppState, Body, Day, ErrorBody, IdPath, List, Member, QueryParams,
    Segments,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewProject {
    name: String,
    #[schema(value_type = Option<String>)]
    parent_id: Option<RecordId>,
    #[schema(value_type = Option<String>)]
    customer_id: Option<RecordId>,
    /// `YYYY-MM-DD`.
    #[schema(value_type = Option<String>, format = Date)]
    start_date: Option<Day>,
    /// `YYYY-MM-DD`.
    #[schema(value_type = Option<String>, format = Date)]
    end_date: Option<Day>,
}

/// Absent fields stay; `null` clears a nullable field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProjectPatch {
    name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    parent_id: Option<Option<RecordId>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    customer_id: Option<Option<RecordId>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, format = Date)]
    start_date: Option<Option<Day>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, format = Date)]
    end_date: Option<Option<Day>>,
}

/// Most people one task may be assigned to.
pub const MAX_TASK_ASSIGNEES: usize = 200;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTask {
    name: String,
    /// Host person ids (each must exist; duplicates are dropped; at most 200).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    assignee_ids: Vec<RecordId>,
    /// Whether time may be logged on it (default `true`).
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

/// Absent fields stay; `assignee_ids` replaces the whole list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskPatch {
    name: Option<String>,
    #[schema(value_type = Option<Vec<String>>)]
    assignee_ids: Option<Vec<RecordId>>,
    active: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAssignment {
    #[schema(value_type = String)]
    person_id: RecordId,
    #[schema(value_type = Option<String>, format = Date)]
    start_date: Option<Day>,
    #[schema(value_type = Option<String>, format = Date)]
    end_date: Option<Day>,
}

fn check_editable(p: &Project) -> ApiResult<()> {
    match &p.managed_by {
        ManagedBy::Local => Ok(()),
        ManagedBy::Provider(x) => Err(ApiError::managed_by_provider("project", x.as_str())),
    }
}

pub(crate) async fn load(s: &AppState, scope: &str, id: &RecordId) -> ApiResult<(Project, u64)> {
    s.store
        .get::<Project>(scope, id.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("project"))
}

async fn has_children(s: &AppState, scope: &str, id: &RecordId) -> ApiResult<bool> {
    let q = s
        .store
        .query::<Project>(scope, IndexSel::Index1(id.to_string()), 1);
    Ok(!s.store.list::<Project>(q, None).await?.items.is_empty())
}

/// Projects have two levels: a parent must exist and be top-level, and a project with
/// children cannot become a child.
async fn check_links(s: &AppState, scope: &str, p: &Project) -> ApiResult<()> {
    if let Some(parent) = &p.parent_id {
        if parent == &p.id {
            return Err(ApiError::unprocessable(
                "invalid_parent",
                "a project cannot be its own parent",
            ));
        }
        let (pp, _) = s
            .store
            .get::<Project>(scope, parent.as_str())
            .await?
            .ok_or_else(|| {
                ApiError::unprocessable("unknown_parent", "parent_id names no project")
            })?;
        if pp.parent_id.is_some() {
            return Err(ApiError::unprocessable(
                "too_deep",
                "projects have two levels: the parent is itself a child",
            ));
        }
        if has_children(s, scope, &p.id).await? {
            return Err(ApiError::unprocessable(
                "too_deep",
                "a project with children cannot get a parent",
            ));
        }
    }
    if let Some(customer) = &p.customer_id
        && s.store
            .get::<Customer>(scope, customer.as_str())
            .await?
            .is_none()
    {
        return Err(ApiError::unprocessable(
            "unknown_customer",
            "customer_id names no customer",
        ));
    }
    check_period(p.start_date, p.end_date)?;
    Ok(())
}

/// Query of `GET /v1/projects`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProjectQuery {
    /// Only the projects this person is assigned to (for imported projects: the projects the
    /// person is a member of in the provider). Answered in one page.
    person_id: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Projects, by id; `person_id` keeps the projects that person is assigned to.
#[utoipa::path(get, path = "/v1/projects", tag = "projects", params(ProjectQuery),
    responses((status = 200, body = List<Project>), (status = 400, body = ErrorBody)))]
async fn list_projects(
    State(s): State<AppState>,
    Member(c): Member,
    QueryParams(q): QueryParams<ProjectQuery>,
) -> ApiResult<Json<List<Project>>> {
    let (limit, cursor) = paging(q.limit.as_deref(), q.cursor.as_deref())?;
    if let Some(person) = q.person_id {
        let person = RecordId::parse(person)
            .map_err(|_| ApiError::bad_query("person_id is not a valid id"))?;
        let assignments = s
            .store
            .list_all::<Assignment>(s.store.query::<Assignment>(
                c.scope(),
                IndexSel::Index2(person.to_string()),
                1000,
            ))
            .await?;
        let mut ids: Vec<String> = assignments
            .into_iter()
            .map(|a| a.project_id.to_string())
            .collect();
        ids.sort();
        ids.dedup();
        let mut items = Vec::new();
        for id in ids {
            if let Some((p, _)) = s.store.get::<Project>(c.scope(), &id).await? {
                items.push(p);
            }
        }
        return Ok(Json(List {
            items,
            next_cursor: None,
        }));
    }
    let mut query = s
        .store
        .query::<Project>(c.scope(), IndexSel::Primary, limit);
    query.cursor = cursor;
    Ok(Json(List::from_page(
        s.store.list::<Project>(query, None).await?,
    )))
}

/// Adds a project (manager).
#[utoipa::path(post, path = "/v1/projects", tag = "projects", request_body = NewProject,
    responses((status = 201, body = Project), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_project(
    State(s): State<AppState>,
    Member(c): Member,
    Body(input): Body<NewProject>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    c.require(Role::Manager)?;
    let p = Project {
        id: new_id(),
        name: validate::text("name", &input.name, validate::MAX_NAME_CHARS)?,
        parent_id: input.parent_id,
        customer_id: input.customer_id,
        start_date: input.start_date.map(|d| d.0),
        end_date: input.end_date.map(|d| d.0),
        managed_by: ManagedBy::Local,
        active: true,
    };
    check_links(&s, c.scope(), &p).await?;
    s.store.insert(c.scope(), &p).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// One project.
#[utoipa::path(get, path = "/v1/projects/{id}", tag = "projects", params(("id" = String, Path)),
    responses((status = 200, body = Project), (status = 404, body = ErrorBody)))]
async fn get_project(
    State(s): State<AppState>,
    Member(c): Member,
    IdPath(id): IdPath,
) -> ApiResult<Json<Project>> {
    Ok(Json(load(&s, c.scope(), &id).await?.0))
}

/// Changes a project (manager); provider-managed projects answer 409 `managed_by_provider`.
#[utoipa::path(patch, path = "/v1/projects/{id}", tag = "projects", params(("id" = String, Path)), request_body = ProjectPatch,
    responses((status = 200, body = Project), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn patch_project(
    State(s): State<AppState>,
    Member(c): Member,
    IdPath(id): IdPath,
    Body(patch): Body<ProjectPatch>,
) -> ApiResult<Json<Project>> {
    c.require(Role::Manager)?;
    let (mut p, version) = load(&s, c.scope(), &id).await?;
    check_editable(&p)?;
    if let Some(name) = patch.name {
        p.name = validate::text("name", &name, validate::MAX_NAME_CHARS)?;
    }
    if let Some(v) = patch.parent_id {
        p.parent_id = v;
    }
    if let Some(v) = patch.customer_id {
        p.customer_id = v;
    }
    if let Some(v) = patch.start_date {
        p.start_date = v.map(|d| d.0);
    }
    if let Some(v) = patch.end_date {
        p.end_date = v.map(|d| d.0);
    }
    check_links(&s, c.scope(), &p).await?;
    s.store.update(c.scope(), &p, version).await?;
    Ok(Json(p))
}

/// Removes a project (manager); refused while it has sub-projects, tasks, assignments or work
/// logs.
#[utoipa::path(delete, path = "/v1/projects/{id}", tag = "projects", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_project(
    State(s): State<AppState>,
    Member(c): Member,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    c.require(Role::Manager)?;
    let scope = c.scope();
    let (p, version) = load(&s, scope, &id).await?;
    check_editable(&p)?;
    let idx = || IndexSel::Index1(id.to_string());
    let mut uses = Vec::new();
    if has_children(&s, scope, &id).await? {
        uses.push("sub-projects");
    }
    if !s
        .store
        .list::<Task>(s.store.query::<Task>(scope, idx(), 1), None)
        .await?
        .items
        .is_empty()
    {
        uses.push("tasks");
    }
    if !s
        .store
        .list::<Assignment>(s.store.query::<Assignment>(scope, idx(), 1), None)
        .await?
        .items
        .is_empty()
    {
        uses.push("assignments");
    }
    if !s
        .store
        .list::<WorkLog>(s.store.query::<WorkLog>(scope, idx(), 1), None)
        .await?
        .items
        .is_empty()
    {
        uses.push("work logs");
    }
    if !uses.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "project_in_use",
            format!(
                "the project still has {}; remove them first",
                uses.join(", ")
            ),
        ));
    }
    s.store
        .delete_at::<Project>(scope, id.as_str(), version)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Tasks of a project.
#[utoipa::path(get, path = "/v1/projects/{id}/tasks", tag = "projects", params(("id" = String, Path), PageParams),
    responses((status = 200, body = List<Task>), (status = 404, body = ErrorBody)))]
async fn list_tasks(
    State(s): State<AppState>,
    Member(c): Member,
    IdPath(id): IdPath,
    QueryParams(q): QueryParams<PageParams>,
) -> ApiResult<Json<List<Task>>> {
    let (limit, cursor) = paging(q.limit.as_deref(), q.cursor.as_deref())?;
    load(&s, c.scope(), &id).await?;
    let mut query = s
        .store
        .query::<Task>(c.scope(), IndexSel::Index1(id.to_string()), limit);
    query.cursor = cursor;
    Ok(Json(List::from_page(
        s.store.list::<Task>(query, None).await?,
    )))
}

/// Assignees as stored: deduplicated (first occurrence kept), at most
/// [`MAX_TASK_ASSIGNEES`], every one an existing host person (422 `unknown_person` naming the
/// first that is not).
async fn check_assignees(
    s: &AppState,
    scope: &str,
    ids: Vec<RecordId>,
) -> ApiResult<Vec<RecordId>> {
    let mut seen = std::collections::HashSet::new();
    let ids: Vec<RecordId> = ids.into_iter().filter(|i| seen.insert(i.clone())).collect();
    if ids.len() > MAX_TASK_ASSIGNEES {
        return Err(ApiError::unprocessable(
            "too_many_assignees",
            format!("a task has at most {MAX_TASK_ASSIGNEES} assignees"),
        )
        .with_fields(vec!["assignee_ids".into()]));
    }
    if ids.is_empty() {
        return Ok(ids);
    }
    let keys: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let found = s.store.get_many::<Person>(scope, &keys).await?;
    if let Some(missing) = ids.iter().find(|i| !found.contains_key(i.as_str())) {
        return Err(ApiError::unprocessable(
            "unknown_person",
            format!("assignee_ids: {missing} names no person"),
        )
        .with_fields(vec!["assignee_ids".into()]));
    }
    Ok(ids)
}

/// Tasks a provider is master of (imported ones) are read-only, like their projects.
fn check_task_editable(t: &Task) -> ApiResult<()> {
    match &t.managed_by {
        ManagedBy::Local => Ok(()),
        ManagedBy::Provider(x) => Err(ApiError::managed_by_provider("task", x.as_str())),
    }
}

/// The task `task_id` of project `project`; a task of another project is 404 like a missing
/// one.
async fn load_task(
    s: &AppState,
    scope: &str,
    project: &RecordId,
    task_id: &str,
) -> ApiResult<(Task, u64)> {
    let not_found = || ApiError::not_found("task");
    let id = RecordId::parse(task_id).map_err(|_| not_found())?;
    match s.store.get::<Task>(scope, id.as_str()).await? {
        Some((t, v)) if &t.project_id == project => Ok((t, v)),
        _ => Err(not_found()),
    }
}

fn task_change(t: &Task, op: ChangeOp) -> ChangeDraft {
    ChangeDraft::new(HostKind::Task, &t.id, &t.project_id, op)
}

/// Adds a task to a local project (manager), optionally with assignees (host person ids) and
/// inactive. Appends a `created` entry to the change feed.
#[utoipa::path(post, path = "/v1/projects/{id}/tasks", tag = "projects", params(("id" = String, Path)), request_body = NewTask,
    responses((status = 201, body = Task), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_task(
    State(s): State<AppState>,
    Member(c): Member,
    IdPath(id): IdPath,
    Body(input): Body<NewTask>,
) -> ApiResult<(StatusCode, Json<Task>)> {
    c.require(Role::Manager)?;
    let (p, _) = load(&s, c.scope(), &id).await?;
    check_editable(&p)?;
    let name = validate::text("name", &input.name, validate::MAX_NAME_CHARS)?;
    let task = Task {
        id: new_id(),
        project_id: p.id,
        name,
        managed_by: ManagedBy::Local,
        assignee_ids: check_assignees(&s, c.scope(), input.assignee_ids).await?,
        active: input.active,
    };
    // The task and its change-feed entry are one atomic write.
    s.store
        .commit_with_changes(
            c.scope(),
            vec![TransactItem::put_entity(
                c.scope(),
                &task,
                Condition::Absent,
            )?],
            vec![task_change(&task, ChangeOp::Created)],
        )
        .await?;
    Ok((StatusCode::CREATED, Json(task)))
}

/// One task of a project; a task of another project is 404.
#[utoipa::path(get, path = "/v1/projects/{id}/tasks/{task_id}", tag = "projects",
    params(("id" = String, Path), ("task_id" = String, Path)),
    responses((status = 200, body = Task), (status = 404, body = ErrorBody)))]
async fn get_task(
    State(s): State<AppState>,
    Member(c): Member,
    Segments((id, task_id)): Segments<(String, String)>,
) -> ApiResult<Json<Task>> {
    let project = RecordId::parse(id).map_err(|_| ApiError::not_found("project"))?;
    load(&s, c.scope(), &project).await?;
    Ok(Json(load_task(&s, c.scope(), &project, &task_id).await?.0))
}

/// Changes a task's name, assignees (the whole list) or active flag (manager). Tasks of
/// provider-managed projects, and imported tasks, answer 409 `managed_by_provider`. A change
/// appends an `updated` entry to the change feed; a patch that changes nothing writes nothing.
#[utoipa::path(patch, path = "/v1/projects/{id}/tasks/{task_id}", tag = "projects",
    params(("id" = String, Path), ("task_id" = String, Path)), request_body = TaskPatch,
    responses((status = 200, body = Task), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn patch_task(
    State(s): State<AppState>,
    Member(c): Member,
    Segments((id, task_id)): Segments<(String, String)>,
    Body(patch): Body<TaskPatch>,
) -> ApiResult<Json<Task>> {
    c.require(Role::Manager)?;
    let project = RecordId::parse(id).map_err(|_| ApiError::not_found("project"))?;
    let (p, _) = load(&s, c.scope(), &project).await?;
    let (mut t, version) = load_task(&s, c.scope(), &project, &task_id).await?;
    check_editable(&p)?;
    check_task_editable(&t)?;
    let original = t.clone();
    if let Some(name) = patch.name {
        t.name = validate::text("name", &name, validate::MAX_NAME_CHARS)?;
    }
    if let Some(ids) = patch.assignee_ids {
        t.assignee_ids = check_assignees(&s, c.scope(), ids).await?;
    }
    if let Some(active) = patch.active {
        t.active = active;
    }
    if t == original {
        // Nothing to write, and nothing for push kinds to push.
        return Ok(Json(t));
    }
    s.store
        .commit_with_changes(
            c.scope(),
            vec![TransactItem::put_entity(
                c.scope(),
                &t,
                Condition::Version(version),
            )?],
            vec![task_change(&t, ChangeOp::Updated)],
        )
        .await?;
    Ok(Json(t))
}

/// Removes a task (manager). A task that work logs refer to is kept: 409 `task_in_use` (move
/// the logs to another task, or set the task `active: false` so no more time is logged on
/// it). Appends a `deleted` entry to the change feed.
#[utoipa::path(delete, path = "/v1/projects/{id}/tasks/{task_id}", tag = "projects",
    params(("id" = String, Path), ("task_id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_task(
    State(s): State<AppState>,
    Member(c): Member,
    Segments((id, task_id)): Segments<(String, String)>,
) -> ApiResult<StatusCode> {
    c.require(Role::Manager)?;
    let scope = c.scope();
    let project = RecordId::parse(id).map_err(|_| ApiError::not_found("project"))?;
    let (p, _) = load(&s, scope, &project).await?;
    let (t, version) = load_task(&s, scope, &project, &task_id).await?;
    check_editable(&p)?;
    check_task_editable(&t)?;
    if task_has_logs(&s, scope, &t).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "task_in_use",
            "work logs refer to this task; move them to another task, or set the task \
             active: false to stop time being logged on it",
        ));
    }
    s.store
        .commit_with_changes(
            scope,
            vec![TransactItem::delete_entity::<Task>(
                scope,
                t.id.as_str(),
                Condition::Version(version),
            )],
            vec![task_change(&t, ChangeOp::Deleted)],
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether any work log of the task's project refers to the task (logs are indexed by
/// project, so this reads the project's logs, not the whole workspace's).
async fn task_has_logs(s: &AppState, scope: &str, t: &Task) -> ApiResult<bool> {
    let task = t.id.clone();
    let filter: EntityFilter<WorkLog> =
        std::sync::Arc::new(move |l: &WorkLog| l.task_id.as_ref() == Some(&task));
    let mut query =
        s.store
            .query::<WorkLog>(scope, IndexSel::Index1(t.project_id.to_string()), 1000);
    loop {
        let page = s
            .store
            .list::<WorkLog>(query.clone(), Some(filter.clone()))
            .await?;
        if !page.items.is_empty() {
            return Ok(true);
        }
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => return Ok(false),
        }
    }
}

/// Assignments of a project, by start date.
#[utoipa::path(get, path = "/v1/projects/{id}/assignments", tag = "projects", params(("id" = String, Path), PageParams),
    responses((status = 200, body = List<Assignment>), (status = 404, body = ErrorBody)))]
async fn list_assignments(
    State(s): State<AppState>,
    Member(c): Member,
    IdPath(id): IdPath,
    QueryParams(q): QueryParams<PageParams>,
) -> ApiResult<Json<List<Assignment>>> {
    let (limit, cursor) = paging(q.limit.as_deref(), q.cursor.as_deref())?;
    load(&s, c.scope(), &id).await?;
    let mut query = s
        .store
        .query::<Assignment>(c.scope(), IndexSel::Index1(id.to_string()), limit);
    query.cursor = cursor;
    Ok(Json(List::from_page(
        s.store.list::<Assignment>(query, None).await?,
    )))
}

/// Assigns a person to a project for a period (manager).
#[utoipa::path(post, path = "/v1/projects/{id}/assignments", tag = "projects", params(("id" = String, Path)), request_body = NewAssignment,
    responses((status = 201, body = Assignment), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_assignment(
    State(s): State<AppState>,
    Member(c): Member,
    IdPath(id): IdPath,
    Body(input): Body<NewAssignment>,
) -> ApiResult<(StatusCode, Json<Assignment>)> {
    c.require(Role::Manager)?;
    let (p, _) = load(&s, c.scope(), &id).await?;
    if s.store
        .get::<Person>(c.scope(), input.person_id.as_str())
        .await?
        .is_none()
    {
        return Err(ApiError::unprocessable(
            "unknown_person",
            "person_id names no person",
        ));
    }
    let a = Assignment {
        id: new_id(),
        person_id: input.person_id,
        project_id: p.id,
        start_date: input.start_date.map(|d| d.0),
        end_date: input.end_date.map(|d| d.0),
        managed_by: Default::default(),
    };
    check_period(a.start_date, a.end_date)?;
    s.store.insert(c.scope(), &a).await?;
    Ok((StatusCode::CREATED, Json(a)))
}

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, patch_project, delete_project))
        .routes(routes!(list_tasks, create_task))
        .routes(routes!(get_task, patch_task, delete_task))
        .routes(routes!(list_assignments, create_assignment))
}

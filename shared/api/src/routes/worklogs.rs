use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hourbridge_domain::{
    ChangeDraft, ChangeOp, HostKind, Person, ProviderId, RecordId, Role, Task, WorkLog, new_id,
    validate,
};
use hourbridge_store::{Condition, EntityFilter, IndexSel, TransactItem};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::projects::load as load_project;
use crate::extract::double_option;
use crate::paging::paging;
use crate::{
    ApiError, ApiResult, AppState, Body, Caller, Day, ErrorBody, IdPath, List, Member, QueryParams,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewWorkLog {
    /// Defaults to the caller; only managers may log for others.
    #[schema(value_type = Option<String>)]
    person_id: Option<RecordId>,
    #[schema(value_type = String)]
    project_id: RecordId,
    #[schema(value_type = Option<String>)]
    task_id: Option<RecordId>,
    /// `YYYY-MM-DD`.
    #[schema(value_type = String, format = Date)]
    date: Day,
    /// 1 to 1440.
    minutes: i64,
    note: Option<String>,
}

/// Absent fields stay; `task_id: null` clears the task.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkLogPatch {
    #[schema(value_type = Option<String>)]
    project_id: Option<RecordId>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    task_id: Option<Option<RecordId>>,
    #[schema(value_type = Option<String>, format = Date)]
    date: Option<Day>,
    minutes: Option<i64>,
    note: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct WorkLogQuery {
    /// Only this project's logs.
    project_id: Option<String>,
    /// Only this person's logs.
    person_id: Option<String>,
    /// From this day (inclusive, `YYYY-MM-DD`).
    from: Option<String>,
    /// To this day (inclusive, `YYYY-MM-DD`).
    to: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn minutes(m: i64) -> ApiResult<u32> {
    if m < 1 || m > i64::from(validate::MAX_MINUTES_PER_LOG) {
        return Err(ApiError::unprocessable(
            "invalid_minutes",
            format!(
                "minutes must be from 1 to {} (one day)",
                validate::MAX_MINUTES_PER_LOG
            ),
        ));
    }
    Ok(m as u32)
}

/// Whether the provider keeps time in sync both ways (its declared capability), so host edits
/// of the logs it synced are pushed back instead of refused.
fn is_two_way(s: &AppState, provider: &ProviderId) -> bool {
    s.engine
        .providers
        .get(provider.as_str())
        .is_some_and(|p| p.descriptor().capabilities.time_two_way.is_some())
}

/// Members edit their own logs, managers anyone's; logs synced from a one-way source are
/// read-only (409 `managed_by_provider`), those from a two-way source are editable.
fn may_edit(s: &AppState, c: &Caller, log: &WorkLog) -> ApiResult<()> {
    if log.person_id != c.person_id {
        c.require(Role::Manager)?;
    }
    if let Some(src) = &log.source
        && !is_two_way(s, &src.provider)
    {
        return Err(ApiError::managed_by_provider(
            "work log",
            src.provider.as_str(),
        ));
    }
    Ok(())
}

fn change(log: &WorkLog, project: &RecordId, op: ChangeOp) -> ChangeDraft {
    ChangeDraft::new(HostKind::WorkLog, &log.id, project, op)
}

/// The referenced project and task exist and fit together. Time may not be put on an
/// inactive task (422 `task_inactive`), unless the log is already on it (`kept_task`): editing
/// the minutes of an old log keeps working after its task was closed.
async fn check_refs(
    s: &AppState,
    scope: &str,
    log: &WorkLog,
    kept_task: Option<&RecordId>,
) -> ApiResult<()> {
    load_project(s, scope, &log.project_id)
        .await
        .map_err(|_| ApiError::unprocessable("unknown_project", "project_id names no project"))?;
    if let Some(task) = &log.task_id {
        match s.store.get::<Task>(scope, task.as_str()).await? {
            Some((t, _)) if t.project_id == log.project_id => {
                if !t.active && kept_task != Some(task) {
                    return Err(ApiError::unprocessable(
                        "task_inactive",
                        "the task is inactive: no more time is logged on it",
                    )
                    .with_fields(vec!["task_id".into()]));
                }
            }
            Some(_) => {
                return Err(ApiError::unprocessable(
                    "task_not_in_project",
                    "the task belongs to another project",
                ));
            }
            None => {
                return Err(ApiError::unprocessable(
                    "unknown_task",
                    "task_id names no task",
                ));
            }
        }
    }
    Ok(())
}

fn day_param(name: &str, v: Option<&str>) -> ApiResult<Option<Day>> {
    v.map(|s| {
        Day::parse(s)
            .ok_or_else(|| ApiError::bad_query(format!("{name} must be a date in YYYY-MM-DD form")))
    })
    .transpose()
}

fn id_param(v: Option<&str>) -> Option<String> {
    v.map(str::to_owned)
}

/// Work logs, filtered by project, person and date range, in date order when a project or
/// person is given (id order otherwise).
#[utoipa::path(get, path = "/v1/worklogs", tag = "worklogs", params(WorkLogQuery),
    responses((status = 200, body = List<WorkLog>), (status = 400, body = ErrorBody)))]
async fn list_worklogs(
    State(s): State<AppState>,
    Member(c): Member,
    QueryParams(q): QueryParams<WorkLogQuery>,
) -> ApiResult<Json<List<WorkLog>>> {
    let (limit, cursor) = paging(q.limit.as_deref(), q.cursor.as_deref())?;
    let from = day_param("from", q.from.as_deref())?;
    let to = day_param("to", q.to.as_deref())?;
    if let (Some(f), Some(t)) = (from, to)
        && t < f
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_range",
            "to must not be before from",
        ));
    }
    let (project, person) = (
        id_param(q.project_id.as_deref()),
        id_param(q.person_id.as_deref()),
    );
    let (index, residual_person, residual_dates) = match (&project, &person) {
        (Some(p), _) => (IndexSel::Index1(p.clone()), person.clone(), false),
        (None, Some(p)) => (IndexSel::Index2(p.clone()), None, false),
        (None, None) => (IndexSel::Primary, None, true),
    };
    let mut query = s.store.query::<WorkLog>(c.scope(), index, limit);
    query.cursor = cursor;
    if !residual_dates {
        query.from = from.map(|d| d.0.to_string());
        query.to = to.map(|d| d.0.to_string());
    }
    let filter: Option<EntityFilter<WorkLog>> = if residual_person.is_some() || residual_dates {
        Some(Arc::new(move |l: &WorkLog| {
            residual_person
                .as_deref()
                .is_none_or(|p| l.person_id.as_str() == p)
                && (!residual_dates
                    || (from.is_none_or(|f| l.date >= f.0) && to.is_none_or(|t| l.date <= t.0)))
        }))
    } else {
        None
    };
    Ok(Json(List::from_page(
        s.store.list::<WorkLog>(query, filter).await?,
    )))
}

/// Logs time. Members log their own; managers may log for anyone.
#[utoipa::path(post, path = "/v1/worklogs", tag = "worklogs", request_body = NewWorkLog,
    responses((status = 201, body = WorkLog), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_worklog(
    State(s): State<AppState>,
    Member(c): Member,
    Body(input): Body<NewWorkLog>,
) -> ApiResult<(StatusCode, Json<WorkLog>)> {
    let person_id = input.person_id.unwrap_or_else(|| c.person_id.clone());
    if person_id != c.person_id {
        c.require(Role::Manager)?;
    }
    if s.store
        .get::<Person>(c.scope(), person_id.as_str())
        .await?
        .is_none()
    {
        return Err(ApiError::unprocessable(
            "unknown_person",
            "person_id names no person",
        ));
    }
    let log = WorkLog {
        id: new_id(),
        person_id,
        project_id: input.project_id,
        task_id: input.task_id,
        date: input.date.0,
        minutes: minutes(input.minutes)?,
        note: validate::optional_text(
            "note",
            input.note.as_deref().unwrap_or(""),
            validate::MAX_NOTE_CHARS,
        )?,
        source: None,
        updated_at: Some(s.engine.clock.now()),
    };
    check_refs(&s, c.scope(), &log, None).await?;
    // The log and its change-feed entry are one atomic write.
    s.store
        .commit_with_changes(
            c.scope(),
            vec![TransactItem::put_entity(
                c.scope(),
                &log,
                Condition::Absent,
            )?],
            vec![change(&log, &log.project_id, ChangeOp::Created)],
        )
        .await?;
    Ok((StatusCode::CREATED, Json(log)))
}

/// One work log.
#[utoipa::path(get, path = "/v1/worklogs/{id}", tag = "worklogs", params(("id" = String, Path)),
    responses((status = 200, body = WorkLog), (status = 404, body = ErrorBody)))]
async fn get_worklog(
    State(s): State<AppState>,
    Member(c): Member,
    IdPath(id): IdPath,
) -> ApiResult<Json<WorkLog>> {
    let (l, _) = s
        .store
        .get::<WorkLog>(c.scope(), id.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("work log"))?;
    Ok(Json(l))
}

/// Changes a work log and sets its `updated_at`; logs synced from a one-way provider answer 409
/// `managed_by_provider`, those from a two-way provider are editable (and pushed back). A
/// change appends an `updated` entry to the change feed (one per project for a move).
#[utoipa::path(patch, path = "/v1/worklogs/{id}", tag = "worklogs", params(("id" = String, Path)), request_body = WorkLogPatch,
    responses((status = 200, body = WorkLog), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn patch_worklog(
    State(s): State<AppState>,
    Member(c): Member,
    IdPath(id): IdPath,
    Body(patch): Body<WorkLogPatch>,
) -> ApiResult<Json<WorkLog>> {
    let (mut l, version) = s
        .store
        .get::<WorkLog>(c.scope(), id.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("work log"))?;
    may_edit(&s, &c, &l)?;
    let original = l.clone();
    let before = l.project_id.clone();
    if let Some(p) = patch.project_id {
        if p != l.project_id && patch.task_id.is_none() {
            l.task_id = None;
        }
        l.project_id = p;
    }
    if let Some(t) = patch.task_id {
        l.task_id = t;
    }
    if let Some(d) = patch.date {
        l.date = d.0;
    }
    if let Some(m) = patch.minutes {
        l.minutes = minutes(m)?;
    }
    if let Some(n) = patch.note {
        l.note = validate::optional_text("note", &n, validate::MAX_NOTE_CHARS)?;
    }
    check_refs(&s, c.scope(), &l, original.task_id.as_ref()).await?;
    if l == original {
        // Nothing to write, and nothing for push kinds to push.
        return Ok(Json(l));
    }
    // What a two-way provider's conflict rule compares with the remote change time.
    l.updated_at = Some(s.engine.clock.now());
    // A move is announced to readers of both projects.
    let mut changes = vec![change(&l, &l.project_id, ChangeOp::Updated)];
    if before != l.project_id {
        changes.push(change(&l, &before, ChangeOp::Updated));
    }
    s.store
        .commit_with_changes(
            c.scope(),
            vec![TransactItem::put_entity(
                c.scope(),
                &l,
                Condition::Version(version),
            )?],
            changes,
        )
        .await?;
    Ok(Json(l))
}

/// Deletes a work log; logs synced from a one-way provider answer 409 `managed_by_provider`.
#[utoipa::path(delete, path = "/v1/worklogs/{id}", tag = "worklogs", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_worklog(
    State(s): State<AppState>,
    Member(c): Member,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    let (l, version) = s
        .store
        .get::<WorkLog>(c.scope(), id.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("work log"))?;
    may_edit(&s, &c, &l)?;
    s.store
        .commit_with_changes(
            c.scope(),
            vec![TransactItem::delete_entity::<WorkLog>(
                c.scope(),
                id.as_str(),
                Condition::Version(version),
            )],
            vec![change(&l, &l.project_id, ChangeOp::Deleted)],
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_worklogs, create_worklog))
        .routes(routes!(get_worklog, patch_worklog, delete_worklog))
}

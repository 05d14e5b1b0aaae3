//! `POST /groups`, `GET /groups`, `GET /groups/{PROJECT-ID}`, `GET /groups/byName/{GROUP-NAME}`,
//! `DELETE /groups/{PROJECT-ID}`: the organization's projects.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::access::{Anyone, InOrg, InProject, OpsCaller, OrgOwner, ProjectOwner, ProjectReader};
use super::errors;
use super::{Deleted, PageNum, Paging, Results};
use crate::domain::ops_manager::{ObjectId, Project};
use crate::error::Error;
use crate::http::AppState;
use crate::http::dialect::OpsManagerError;
use crate::http::extract::{Json, Path};
use crate::http::idempotency::Answer;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// Unique within the organization, 1 to 64 characters.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 64, example = "production")]
    pub name: Option<String>,
    /// The caller's organization (the only one it may create projects in); optional.
    #[serde(rename = "orgId")]
    #[schema(value_type = Option<String>, pattern = "^[0-9a-fA-F]{24}$", example = "5a0a1e7e0f2912c554080ab1")]
    pub org_id: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProjectView {
    #[schema(value_type = String, example = "5a0a1e7e0f2912c554080adc")]
    pub id: ObjectId,
    pub name: String,
    #[serde(rename = "orgId")]
    #[schema(value_type = String, example = "5a0a1e7e0f2912c554080ab1")]
    pub org_id: ObjectId,
    pub created: DateTime<Utc>,
    #[schema(value_type = Vec<Object>)]
    pub links: [(); 0],
}

impl From<Project> for ProjectView {
    fn from(project: Project) -> ProjectView {
        ProjectView {
            id: project.id,
            name: project.name,
            org_id: ObjectId::of_org(project.org_id),
            created: project.created_at,
            links: [],
        }
    }
}

/// Create One Project in the caller's organization (organization owners).
#[utoipa::path(
    post,
    path = "/groups",
    tag = "Ops Manager",
    request_body = CreateProject,
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 201, body = ProjectView),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
        (status = 409, body = OpsManagerError),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    access: InOrg<OrgOwner>,
    Json(body): Json<CreateProject>,
) -> Result<Response, Error> {
    let caller = access.caller;
    let name = Error::required("name", body.name)?;
    if let Some(org) = body.org_id {
        let org = ObjectId::parse(&org).ok_or_else(errors::invalid_org_id)?;
        if org != caller.org_object_id() {
            return Err(errors::org_not_found());
        }
    }
    let project = Project::new(caller.org_id, name)?;
    let change = caller.change("project.created", "project", project.id);
    let answer = Answer::ready(
        &state,
        StatusCode::CREATED,
        &ProjectView::from(project.clone()),
    )?;
    state
        .store
        .create_project(&project, &change)
        .await
        .map_err(|err| match err {
            Error::AlreadyExists => errors::group_name_taken(),
            err => err,
        })?;
    change.log();
    answer.respond(&())
}

/// Get All Projects the caller may read.
#[utoipa::path(
    get,
    path = "/groups",
    tag = "Ops Manager",
    params(PageNum),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = Results<ProjectView>),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    access: InOrg<Anyone>,
    paging: Paging,
) -> Result<axum::Json<Results<ProjectView>>, Error> {
    Ok(axum::Json(
        paging.of(visible(&state, &access.caller).await?),
    ))
}

/// The organization's projects in which the caller has a role.
async fn visible(state: &AppState, caller: &OpsCaller) -> Result<Vec<ProjectView>, Error> {
    let projects = state.store.list_projects(caller.org_id).await?;
    Ok(projects
        .into_iter()
        .filter(|project| caller.grants.project_role(project.id).is_some())
        .map(ProjectView::from)
        .collect())
}

/// Get All Projects in One Organization the caller may read (with `?name=`, the one of that
/// name): how clients find a project by name.
#[utoipa::path(
    get,
    path = "/orgs/{ORG-ID}/groups",
    tag = "Ops Manager",
    params(("ORG-ID" = String, Path, description = "The caller's organization"), super::orgs::ByName, PageNum),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = Results<ProjectView>),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn list_in_org(
    State(state): State<AppState>,
    access: InOrg<Anyone>,
    Query(filter): Query<super::orgs::ByName>,
    paging: Paging,
) -> Result<axum::Json<Results<ProjectView>>, Error> {
    let mut projects = visible(&state, &access.caller).await?;
    if let Some(name) = filter.name {
        projects.retain(|project| project.name == name);
    }
    Ok(axum::Json(paging.of(projects)))
}

/// Get One Project.
#[utoipa::path(
    get,
    path = "/groups/{PROJECT-ID}",
    tag = "Ops Manager",
    params(("PROJECT-ID" = String, Path, description = "The project's id, 24 hex characters")),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = ProjectView),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn get(access: InProject<ProjectReader>) -> axum::Json<ProjectView> {
    axum::Json(access.project.into())
}

/// Get One Project by Name: the project of that name in the caller's organization, as the
/// `opsmanager` clients' `get_by_name` asks for it.
#[utoipa::path(
    get,
    path = "/groups/byName/{GROUP-NAME}",
    tag = "Ops Manager",
    params(("GROUP-NAME" = String, Path, description = "The project's name")),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = ProjectView),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn get_by_name(
    State(state): State<AppState>,
    access: InOrg<Anyone>,
    Path(name): Path<String>,
) -> Result<axum::Json<ProjectView>, Error> {
    let caller = access.caller;
    let project = state
        .store
        .list_projects(caller.org_id)
        .await?
        .into_iter()
        .find(|project| project.name == name)
        .ok_or_else(errors::group_name_not_found)?;
    // As by id: a project the caller has no role in is not the caller's to read.
    if caller.grants.project_role(project.id).is_none() {
        return Err(errors::not_in_group());
    }
    Ok(axum::Json(project.into()))
}

/// Delete One Project, with all its agent API keys and the roles granted on it (project owners).
#[utoipa::path(
    delete,
    path = "/groups/{PROJECT-ID}",
    tag = "Ops Manager",
    params(("PROJECT-ID" = String, Path, description = "The project's id, 24 hex characters")),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    access: InProject<ProjectOwner>,
) -> Result<Deleted, Error> {
    let InProject {
        caller, project, ..
    } = access;
    let change = caller.change("project.deleted", "project", project.id);
    if !state
        .store
        .delete_project(caller.org_id, project.id, &change)
        .await?
    {
        return Err(errors::group_not_found());
    }
    change.log();
    Ok(Deleted {})
}

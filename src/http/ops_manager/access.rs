//! Who is calling in Ops Manager's terms, and may they: the extractors whose type parameter
//! declares the organization or project role a handler requires. [`InOrg`] also checks the
//! route's `{ORG-ID}`, and [`InProject`] finds the route's `{PROJECT-ID}` and tells an unknown
//! project (`GROUP_NOT_FOUND`) from one the caller is not in (`NOT_IN_GROUP`).

use std::collections::HashMap;
use std::fmt::Display;
use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use uuid::Uuid;

use super::errors;
use crate::domain::audit::{Actor, AuditContext, Change};
use crate::domain::ops_manager::{Grants, ObjectId, OrgRole, Project, ProjectRole};
use crate::error::Error;
use crate::http::AppState;
use crate::http::auth::{Principal, audit_context, authenticate};
use crate::http::extract::Path;

/// The authenticated caller: a key pair with its roles, or a keygate API key acting with the
/// organization role its own role maps to.
#[derive(Clone, Debug)]
pub struct OpsCaller {
    pub org_id: Uuid,
    /// The acting key as clients know it: a key pair's id, an API key's UUID.
    pub actor: String,
    pub grants: Grants,
    /// What the audit trail records of this caller's changes.
    pub context: AuditContext,
}

impl OpsCaller {
    async fn of(parts: &Parts, state: &AppState) -> Result<OpsCaller, Error> {
        Ok(match authenticate(parts, state).await? {
            Principal::ApiKey { key, .. } => OpsCaller {
                org_id: key.org_id,
                actor: key.id.to_string(),
                grants: Grants::of_api_key(key.role),
                context: audit_context(parts, state, key.org_id, Actor::ApiKey(key.id)),
            },
            Principal::ProgrammaticKey(key) => OpsCaller {
                org_id: key.org_id,
                actor: key.object_id.to_string(),
                context: audit_context(parts, state, key.org_id, Actor::KeyPair(key.public_key)),
                grants: key.roles,
            },
        })
    }

    /// The caller's organization as Ops Manager clients know it.
    pub fn org_object_id(&self) -> ObjectId {
        ObjectId::of_org(self.org_id)
    }

    /// The change `action` this caller makes to the resource `kind` `id`, for the store method
    /// that makes it to record and for the handler to log once made.
    pub fn change(&self, action: &'static str, kind: &'static str, id: impl Display) -> Change {
        self.context.change(action, kind, id)
    }
}

/// What a handler requires of the caller in its organization.
pub trait OrgRequirement: Send + Sync + 'static {
    fn allows(grants: &Grants) -> bool;
}

/// Any caller of the organization.
pub struct Anyone;
/// Organization owners.
pub struct OrgOwner;

impl OrgRequirement for Anyone {
    fn allows(_: &Grants) -> bool {
        true
    }
}

impl OrgRequirement for OrgOwner {
    fn allows(grants: &Grants) -> bool {
        grants.has_org_role(OrgRole::Owner)
    }
}

/// What a handler requires of the caller in the route's project.
pub trait ProjectRequirement: Send + Sync + 'static {
    const ROLE: ProjectRole;
}

/// Project owners (and organization owners).
pub struct ProjectOwner;
/// Anyone who may read the project.
pub struct ProjectReader;

impl ProjectRequirement for ProjectOwner {
    const ROLE: ProjectRole = ProjectRole::Owner;
}

impl ProjectRequirement for ProjectReader {
    const ROLE: ProjectRole = ProjectRole::ReadOnly;
}

/// A route parameter, after keygate's path checks (UTF-8, no NUL).
async fn path_param(
    parts: &mut Parts,
    state: &AppState,
    name: &str,
) -> Result<Option<String>, Error> {
    let Path(mut params) =
        Path::<HashMap<String, String>>::from_request_parts(parts, state).await?;
    Ok(params.remove(name))
}

/// A caller of the route's organization (`{ORG-ID}`, when the route has one), allowed what `R`
/// requires.
pub struct InOrg<R: OrgRequirement> {
    pub caller: OpsCaller,
    requirement: PhantomData<fn() -> R>,
}

impl<R: OrgRequirement> FromRequestParts<AppState> for InOrg<R> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let caller = OpsCaller::of(parts, state).await?;
        if let Some(org) = path_param(parts, state, "ORG-ID").await? {
            let org = ObjectId::parse(&org).ok_or_else(errors::invalid_org_id)?;
            if org != caller.org_object_id() {
                return Err(errors::org_not_found());
            }
        }
        if !R::allows(&caller.grants) {
            return Err(Error::Forbidden);
        }
        Ok(InOrg {
            caller,
            requirement: PhantomData,
        })
    }
}

/// A caller with what `R` requires in the route's project (`{PROJECT-ID}`), and the project.
pub struct InProject<R: ProjectRequirement> {
    pub caller: OpsCaller,
    pub project: Project,
    requirement: PhantomData<fn() -> R>,
}

impl<R: ProjectRequirement> FromRequestParts<AppState> for InProject<R> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let caller = OpsCaller::of(parts, state).await?;
        let id = path_param(parts, state, "PROJECT-ID")
            .await?
            .and_then(|id| ObjectId::parse(&id))
            .ok_or_else(errors::invalid_group_id)?;
        let project = state
            .store
            .find_project(id)
            .await?
            .ok_or_else(errors::group_not_found)?;
        let role = Some(&project)
            .filter(|project| project.org_id == caller.org_id)
            .and_then(|project| caller.grants.project_role(project.id))
            .ok_or_else(errors::not_in_group)?;
        if !role.covers(R::ROLE) {
            return Err(Error::Forbidden);
        }
        Ok(InProject {
            caller,
            project,
            requirement: PhantomData,
        })
    }
}

//! Programmatic API key pairs: `/orgs/{ORG-ID}/apiKeys` (create, list, get, update, delete),
//! their access lists (`…/accessList`), and their roles in a project
//! (`/groups/{PROJECT-ID}/apiKeys`). The private key is shown once, at creation; everywhere else
//! it is masked.

use std::borrow::Cow;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};

use super::access::{Anyone, InOrg, InProject, OrgOwner, ProjectOwner, ProjectReader};
use super::{Deleted, PageNum, Paging, Results, UsageResults};
use crate::domain::ops_manager::{
    API_KEY_DESC_MAX, AccessEntry, Grants, NewProgrammaticKey, ObjectId, OrgRole, ProgrammaticKey,
    ProjectRole, masked, parse_network, parse_text, private_key_secret,
};
use crate::domain::secret::{OwnerRef, SecretMeta, now};
use crate::error::{Error, FieldError, Location, Segment, Violation};
use crate::http::AppState;
use crate::http::dialect::OpsManagerError;
use crate::http::extract::{Json, Path, Query};
use crate::http::idempotency::Answer;
use crate::http::rotation::{RotateRequest, Rotating};
use crate::http::usage::UsageParams;
use crate::secrets::{PlainSecret, SecretKind};

/// How often a new key pair is minted again when its random public key is already taken.
const PUBLIC_KEY_ATTEMPTS: usize = 3;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProgrammaticKey {
    /// What the key is for, 1 to 250 characters.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 250, example = "automation")]
    pub desc: Option<String>,
    /// Organization roles: `ORG_OWNER`, `ORG_MEMBER`, `ORG_READ_ONLY`; at least one.
    #[schema(value_type = Vec<OrgRole>, required = true, min_items = 1, example = json!(["ORG_MEMBER"]))]
    pub roles: Option<Vec<String>>,
    /// keygate extension: when the key pair stops authenticating (RFC 3339, in the future).
    /// Absent: never.
    #[serde(rename = "expiresAt")]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProgrammaticKey {
    #[schema(value_type = Option<String>)]
    pub desc: Option<String>,
    /// Replaces the organization roles.
    #[schema(value_type = Option<Vec<String>>, example = json!(["ORG_READ_ONLY"]))]
    pub roles: Option<Vec<String>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignProgrammaticKey {
    /// Project roles: `GROUP_OWNER`, `GROUP_READ_ONLY`; at least one. They replace the key's
    /// roles in the project.
    #[schema(value_type = Vec<String>, required = true, example = json!(["GROUP_OWNER"]))]
    pub roles: Option<Vec<String>>,
}

/// One role of a key: in its organization (`orgId`) or in a project (`groupId`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct RoleView {
    #[serde(rename = "orgId", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub org_id: Option<ObjectId>,
    #[serde(rename = "groupId", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub group_id: Option<ObjectId>,
    #[serde(rename = "roleName")]
    #[schema(example = "ORG_MEMBER")]
    pub role_name: &'static str,
}

/// A programmatic API key pair as Ops Manager shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProgrammaticKeyView {
    #[schema(value_type = String, example = "5d1d12c087d9d63e6d682438")]
    pub id: ObjectId,
    pub desc: String,
    /// The Digest user name.
    #[serde(rename = "publicKey")]
    #[schema(example = "zmmrboas")]
    pub public_key: String,
    /// The Digest password, in the create response only; elsewhere asterisks and its last four
    /// characters.
    #[serde(rename = "privateKey")]
    pub private_key: String,
    /// keygate extension: when the private key stops working; absent when it never does.
    #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub roles: Vec<RoleView>,
    #[schema(value_type = Vec<Object>)]
    pub links: [(); 0],
}

impl ProgrammaticKeyView {
    fn new(
        key: ProgrammaticKey,
        private_key: String,
        expires_at: Option<DateTime<Utc>>,
    ) -> ProgrammaticKeyView {
        let org_id = ObjectId::of_org(key.org_id);
        let org_roles = key.roles.org_roles.iter().map(|role| RoleView {
            org_id: Some(org_id),
            group_id: None,
            role_name: role.as_str(),
        });
        let project_roles = key
            .roles
            .project_roles
            .iter()
            .map(|(project, role)| RoleView {
                org_id: None,
                group_id: Some(*project),
                role_name: role.as_str(),
            });
        let roles = org_roles.chain(project_roles).collect();
        ProgrammaticKeyView {
            id: key.object_id,
            desc: key.desc,
            public_key: key.public_key,
            private_key,
            expires_at,
            roles,
            links: [],
        }
    }
}

impl From<(ProgrammaticKey, SecretMeta)> for ProgrammaticKeyView {
    fn from((key, secret): (ProgrammaticKey, SecretMeta)) -> ProgrammaticKeyView {
        let private_key = masked(SecretKind::ProgrammaticKey, &secret.hint);
        ProgrammaticKeyView::new(key, private_key, secret.expires_at)
    }
}

/// Reads role names: at least one, each one `parse` knows, no repeats.
fn parse_roles<T: PartialEq>(
    roles: Vec<String>,
    parse: impl Fn(&str) -> Option<T>,
    kind: &str,
) -> Result<Vec<T>, Error> {
    if roles.is_empty() {
        return Err(Error::invalid("roles", "at least one role is required"));
    }
    let mut parsed = Vec::with_capacity(roles.len());
    for (index, name) in roles.iter().enumerate() {
        let Some(role) = parse(name) else {
            return Err(Error::Invalid(vec![FieldError {
                location: Location::Body,
                path: vec![Segment::Key(Cow::Borrowed("roles")), Segment::Index(index)],
                violation: Violation::Rule,
                message: format!("it must be one of the {kind} roles"),
                input: None,
            }]));
        };
        if !parsed.contains(&role) {
            parsed.push(role);
        }
    }
    Ok(parsed)
}

fn parse_org_roles(roles: Vec<String>) -> Result<Vec<OrgRole>, Error> {
    parse_roles(
        roles,
        OrgRole::parse,
        "organization (ORG_OWNER, ORG_MEMBER, ORG_READ_ONLY)",
    )
}

fn parse_desc(desc: String) -> Result<String, Error> {
    parse_text("desc", desc, 1, API_KEY_DESC_MAX)
}

fn not_found() -> Error {
    Error::NotFound("API key")
}

#[derive(Deserialize)]
pub struct ApiKeyPath {
    #[serde(rename = "API-KEY-ID")]
    pub key: String,
}

impl ApiKeyPath {
    /// An id that cannot be a key's names no key.
    fn id(&self) -> Result<ObjectId, Error> {
        ObjectId::parse(&self.key).ok_or_else(not_found)
    }
}

/// Create One Organization API Key (organization owners). The private key is shown only here.
#[utoipa::path(
    post,
    path = "/orgs/{ORG-ID}/apiKeys",
    tag = "Ops Manager",
    params(("ORG-ID" = String, Path, description = "The caller's organization, as `GET /api/public/v1.0/orgs` shows it")),
    request_body = CreateProgrammaticKey,
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 201, body = ProgrammaticKeyView),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    access: InOrg<OrgOwner>,
    Json(body): Json<CreateProgrammaticKey>,
) -> Result<Response, Error> {
    let caller = access.caller;
    let desc = parse_desc(Error::required("desc", body.desc)?)?;
    let roles = Grants {
        org_roles: parse_org_roles(Error::required("roles", body.roles)?)?,
        project_roles: Vec::new(),
    };
    let expires_at = state
        .new_expiry(
            caller.org_id,
            SecretKind::ProgrammaticKey,
            "expiresAt",
            body.expires_at,
        )
        .await?;
    let mut attempt = 1;
    // A public key taken meanwhile: mint another pair.
    let (answer, change) = loop {
        let (new, private) = NewProgrammaticKey::mint(
            caller.org_id,
            desc.clone(),
            roles.clone(),
            expires_at,
            |data, aad| state.server_key.seal(data, aad),
        );
        let change = caller.change(
            "programmatic_key.created",
            "programmatic_key",
            new.key.object_id,
        );
        let view = ProgrammaticKeyView::new(
            new.key.clone(),
            private.expose().to_owned(),
            new.secret.expires_at,
        );
        let answer = Answer::ready(&state, StatusCode::CREATED, &view)?;
        match state.store.create_programmatic_key(&new, &change).await {
            Err(Error::AlreadyExists) if attempt < PUBLIC_KEY_ATTEMPTS => attempt += 1,
            created => break (answer.respond(&created?)?, change),
        }
    };
    change.log();
    Ok(answer)
}

/// Get All Organization API Keys; private keys masked.
#[utoipa::path(
    get,
    path = "/orgs/{ORG-ID}/apiKeys",
    tag = "Ops Manager",
    params(("ORG-ID" = String, Path, description = "The caller's organization"), PageNum),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = Results<ProgrammaticKeyView>),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    access: InOrg<Anyone>,
    paging: Paging,
) -> Result<axum::Json<Results<ProgrammaticKeyView>>, Error> {
    let keys = state
        .store
        .list_programmatic_keys(access.caller.org_id)
        .await?;
    let views: Vec<ProgrammaticKeyView> = keys.into_iter().map(ProgrammaticKeyView::from).collect();
    Ok(axum::Json(paging.of(views)))
}

/// Get One Organization API Key; private key masked.
#[utoipa::path(
    get,
    path = "/orgs/{ORG-ID}/apiKeys/{API-KEY-ID}",
    tag = "Ops Manager",
    params(
        ("ORG-ID" = String, Path, description = "The caller's organization"),
        ("API-KEY-ID" = String, Path, description = "The key pair's id"),
    ),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = ProgrammaticKeyView),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    access: InOrg<Anyone>,
    Path(path): Path<ApiKeyPath>,
) -> Result<axum::Json<ProgrammaticKeyView>, Error> {
    let found = state
        .store
        .find_programmatic_key(access.caller.org_id, path.id()?)
        .await?;
    Ok(axum::Json(found.ok_or_else(not_found)?.into()))
}

/// keygate extension, Get One Organization API Key's Usage: how often the key pair
/// authenticated, per hour, over the last `hours` (its rotated secrets' uses included).
#[utoipa::path(
    get,
    path = "/orgs/{ORG-ID}/apiKeys/{API-KEY-ID}/usage",
    tag = "Ops Manager",
    params(
        ("ORG-ID" = String, Path, description = "The caller's organization"),
        ("API-KEY-ID" = String, Path, description = "The key pair's id"),
        UsageParams,
        PageNum,
    ),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = UsageResults),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    access: InOrg<Anyone>,
    Path(path): Path<ApiKeyPath>,
    Query(params): Query<UsageParams>,
    paging: Paging,
) -> Result<axum::Json<UsageResults>, Error> {
    let window = params.window()?;
    let (key, _) = state
        .store
        .find_programmatic_key(access.caller.org_id, path.id()?)
        .await?
        .ok_or_else(not_found)?;
    let owner = OwnerRef {
        org_id: key.org_id,
        id: key.id,
    };
    let usage = state.store.owner_usage(owner, &window).await?;
    Ok(axum::Json(UsageResults::new(usage, &paging)))
}

/// Update One Organization API Key: its description and organization roles, where given
/// (organization owners).
#[utoipa::path(
    patch,
    path = "/orgs/{ORG-ID}/apiKeys/{API-KEY-ID}",
    tag = "Ops Manager",
    params(
        ("ORG-ID" = String, Path, description = "The caller's organization"),
        ("API-KEY-ID" = String, Path, description = "The key pair's id"),
    ),
    request_body = UpdateProgrammaticKey,
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = ProgrammaticKeyView),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    access: InOrg<OrgOwner>,
    Path(path): Path<ApiKeyPath>,
    Json(body): Json<UpdateProgrammaticKey>,
) -> Result<axum::Json<ProgrammaticKeyView>, Error> {
    let caller = access.caller;
    let id = path.id()?;
    let desc = body.desc.map(parse_desc).transpose()?;
    let roles = body.roles.map(parse_org_roles).transpose()?;
    let store = &state.store;
    let change = caller.change("programmatic_key.updated", "programmatic_key", id);
    if !store
        .update_programmatic_key(
            caller.org_id,
            id,
            desc.as_deref(),
            roles.as_deref(),
            &change,
        )
        .await?
    {
        return Err(not_found());
    }
    change.log();
    let found = store.find_programmatic_key(caller.org_id, id).await?;
    Ok(axum::Json(found.ok_or_else(not_found)?.into()))
}

/// keygate extension, Rotate One Organization API Key (organization owners): a new private key
/// for the same public key, shown once. The old private key stops now, or after the grace
/// period (never past its own expiry); the new one keeps the old one's expiry unless
/// `expires_at` is given.
#[utoipa::path(
    post,
    path = "/orgs/{ORG-ID}/apiKeys/{API-KEY-ID}/rotate",
    tag = "Ops Manager",
    params(
        ("ORG-ID" = String, Path, description = "The caller's organization"),
        ("API-KEY-ID" = String, Path, description = "The key pair's id"),
    ),
    request_body(content = Option<RotateRequest>, description = "Optional; an empty body rotates without grace"),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = ProgrammaticKeyView),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
        (status = 409, description = "A concurrent rotation won", body = OpsManagerError),
    )
)]
pub async fn rotate(
    State(state): State<AppState>,
    access: InOrg<OrgOwner>,
    Path(path): Path<ApiKeyPath>,
    Json(body): Json<Option<RotateRequest>>,
) -> Result<Response, Error> {
    let caller = access.caller;
    let id = path.id()?;
    let (key, secret) = state
        .store
        .find_programmatic_key(caller.org_id, id)
        .await?
        .ok_or_else(not_found)?;
    let owner = OwnerRef {
        org_id: key.org_id,
        id: key.id,
    };
    let stored = |plain: &PlainSecret, expires_at| {
        private_key_secret(key.id, &key.public_key, plain, expires_at, |data, aad| {
            state.server_key.seal(data, aad)
        })
    };
    let change = caller.change("programmatic_key.rotated", "programmatic_key", id);
    let rotating = Rotating::only(SecretKind::ProgrammaticKey, owner, secret.id);
    let shown = key.clone();
    let answer = body
        .unwrap_or_default()
        .rotate_to(
            &state,
            rotating,
            &change,
            stored,
            StatusCode::OK,
            move |rotated| {
                let private = rotated.plain.expose().to_owned();
                Ok(ProgrammaticKeyView::new(
                    shown.clone(),
                    private,
                    rotated.expires_at,
                ))
            },
        )
        .await
        .map_err(|err| match err {
            Error::NotFound(_) => not_found(),
            err => err,
        })?;
    change.log();
    Ok(answer)
}

/// Delete One Organization API Key: it stops working at once (organization owners).
#[utoipa::path(
    delete,
    path = "/orgs/{ORG-ID}/apiKeys/{API-KEY-ID}",
    tag = "Ops Manager",
    params(
        ("ORG-ID" = String, Path, description = "The caller's organization"),
        ("API-KEY-ID" = String, Path, description = "The key pair's id"),
    ),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    access: InOrg<OrgOwner>,
    Path(path): Path<ApiKeyPath>,
) -> Result<Deleted, Error> {
    let caller = access.caller;
    let id = path.id()?;
    let change = caller.change("programmatic_key.deleted", "programmatic_key", id);
    if !state
        .store
        .delete_programmatic_key(caller.org_id, id, &change)
        .await?
    {
        return Err(not_found());
    }
    change.log();
    Ok(Deleted {})
}

/// Get All Organization API Keys Assigned to One Project, with their roles.
#[utoipa::path(
    get,
    path = "/groups/{PROJECT-ID}/apiKeys",
    tag = "Ops Manager",
    params(("PROJECT-ID" = String, Path, description = "The project's id, 24 hex characters"), PageNum),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = Results<ProgrammaticKeyView>),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn list_in_project(
    State(state): State<AppState>,
    access: InProject<ProjectReader>,
    paging: Paging,
) -> Result<axum::Json<Results<ProgrammaticKeyView>>, Error> {
    let project = access.project.id;
    let keys = state
        .store
        .list_programmatic_keys(access.caller.org_id)
        .await?;
    let views: Vec<ProgrammaticKeyView> = keys
        .into_iter()
        .filter(|(key, _)| key.roles.project_roles.iter().any(|(id, _)| *id == project))
        .map(ProgrammaticKeyView::from)
        .collect();
    Ok(axum::Json(paging.of(views)))
}

/// Assign One Organization API Key to One Project: its roles there are replaced by `roles`
/// (project owners).
#[utoipa::path(
    patch,
    path = "/groups/{PROJECT-ID}/apiKeys/{API-KEY-ID}",
    tag = "Ops Manager",
    params(
        ("PROJECT-ID" = String, Path, description = "The project's id, 24 hex characters"),
        ("API-KEY-ID" = String, Path, description = "The key pair's id"),
    ),
    request_body = AssignProgrammaticKey,
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = ProgrammaticKeyView),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn assign(
    State(state): State<AppState>,
    access: InProject<ProjectOwner>,
    Path(path): Path<ApiKeyPath>,
    Json(body): Json<AssignProgrammaticKey>,
) -> Result<axum::Json<ProgrammaticKeyView>, Error> {
    let roles = parse_roles(
        Error::required("roles", body.roles)?,
        ProjectRole::parse,
        "project (GROUP_OWNER, GROUP_READ_ONLY)",
    )?;
    set_project_roles(&state, &access, &path, &roles).await?;
    let found = state
        .store
        .find_programmatic_key(access.caller.org_id, path.id()?)
        .await?;
    Ok(axum::Json(found.ok_or_else(not_found)?.into()))
}

/// Unassign One Organization API Key from One Project: it loses its roles there (project
/// owners).
#[utoipa::path(
    delete,
    path = "/groups/{PROJECT-ID}/apiKeys/{API-KEY-ID}",
    tag = "Ops Manager",
    params(
        ("PROJECT-ID" = String, Path, description = "The project's id, 24 hex characters"),
        ("API-KEY-ID" = String, Path, description = "The key pair's id"),
    ),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Unassigned", body = Deleted),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn unassign(
    State(state): State<AppState>,
    access: InProject<ProjectOwner>,
    Path(path): Path<ApiKeyPath>,
) -> Result<Deleted, Error> {
    set_project_roles(&state, &access, &path, &[]).await?;
    Ok(Deleted {})
}

async fn set_project_roles(
    state: &AppState,
    access: &InProject<ProjectOwner>,
    path: &ApiKeyPath,
    roles: &[ProjectRole],
) -> Result<(), Error> {
    let (caller, project, id) = (&access.caller, access.project.id, path.id()?);
    let change = caller.change("programmatic_key.project_roles_set", "programmatic_key", id);
    if !state
        .store
        .set_project_roles(caller.org_id, id, project, roles, &change)
        .await?
    {
        return Err(not_found());
    }
    change.log();
    Ok(())
}

/// One network a key may be used from.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AccessEntryView {
    /// The network in CIDR notation.
    #[serde(rename = "cidrBlock")]
    #[schema(example = "192.0.2.0/24")]
    pub cidr_block: String,
    /// The address, when the entry is a single one.
    #[serde(rename = "ipAddress", skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    pub created: DateTime<Utc>,
    #[schema(value_type = Vec<Object>)]
    pub links: [(); 0],
}

impl From<AccessEntry> for AccessEntryView {
    fn from(entry: AccessEntry) -> AccessEntryView {
        let network = entry.network;
        let single = network.prefix_len() == network.max_prefix_len();
        AccessEntryView {
            cidr_block: network.to_string(),
            ip_address: single.then(|| network.addr().to_string()),
            created: entry.created_at,
            links: [],
        }
    }
}

/// One entry to add: an address or a network, not both.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccessEntry {
    #[serde(rename = "ipAddress")]
    pub ip_address: Option<String>,
    #[serde(rename = "cidrBlock")]
    pub cidr_block: Option<String>,
}

/// The entries to add: at least one, each an address or a network.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct NewAccessEntries(pub Vec<NewAccessEntry>);

impl utoipa::PartialSchema for NewAccessEntries {
    fn schema() -> RefOr<Schema> {
        let entry = |field: &str, example: &str| {
            ObjectBuilder::new()
                .property(
                    field,
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .examples([example]),
                )
                .required(field)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        let entry = OneOfBuilder::new()
            .item(entry("ipAddress", "192.0.2.7"))
            .item(entry("cidrBlock", "192.0.2.0/24"));
        ArrayBuilder::new().items(entry).min_items(Some(1)).into()
    }
}

impl utoipa::ToSchema for NewAccessEntries {}

async fn access_list_view(
    state: &AppState,
    org_id: uuid::Uuid,
    id: ObjectId,
) -> Result<Vec<AccessEntryView>, Error> {
    let entries = state
        .store
        .access_list(org_id, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(entries.into_iter().map(AccessEntryView::from).collect())
}

/// Get All Access List Entries for One Organization API Key. An empty list lets the key be used
/// from anywhere.
#[utoipa::path(
    get,
    path = "/orgs/{ORG-ID}/apiKeys/{API-KEY-ID}/accessList",
    tag = "Ops Manager",
    params(
        ("ORG-ID" = String, Path, description = "The caller's organization"),
        ("API-KEY-ID" = String, Path, description = "The key pair's id"),
        PageNum,
    ),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, body = Results<AccessEntryView>),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn access_list(
    State(state): State<AppState>,
    access: InOrg<Anyone>,
    Path(path): Path<ApiKeyPath>,
    paging: Paging,
) -> Result<axum::Json<Results<AccessEntryView>>, Error> {
    let list = access_list_view(&state, access.caller.org_id, path.id()?).await?;
    Ok(axum::Json(paging.of(list)))
}

/// Create Access List Entries for One Organization API Key: adds those not on the list yet and
/// answers the whole list (organization owners). From then on the key works only from these
/// networks.
#[utoipa::path(
    post,
    path = "/orgs/{ORG-ID}/apiKeys/{API-KEY-ID}/accessList",
    tag = "Ops Manager",
    params(
        ("ORG-ID" = String, Path, description = "The caller's organization"),
        ("API-KEY-ID" = String, Path, description = "The key pair's id"),
    ),
    request_body = NewAccessEntries,
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 201, body = Results<AccessEntryView>),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn add_to_access_list(
    State(state): State<AppState>,
    access: InOrg<OrgOwner>,
    Path(path): Path<ApiKeyPath>,
    Json(NewAccessEntries(entries)): Json<NewAccessEntries>,
) -> Result<Response, Error> {
    let caller = access.caller;
    let id = path.id()?;
    let refused = |path: Vec<Segment>, message: &str| {
        Error::Invalid(vec![FieldError {
            location: Location::Body,
            path,
            violation: Violation::Rule,
            message: message.to_owned(),
            input: None,
        }])
    };
    let field = |index: usize, name: &'static str| {
        vec![Segment::Index(index), Segment::Key(Cow::Borrowed(name))]
    };
    let mut networks = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let network = match (entry.ip_address, entry.cidr_block) {
            (Some(ip), None) => ip
                .parse::<std::net::IpAddr>()
                .map(ipnet::IpNet::from)
                .map_err(|_| refused(field(index, "ipAddress"), "it must be an IP address"))?,
            (None, Some(cidr)) => parse_network(&cidr)
                .filter(|_| cidr.contains('/'))
                .ok_or_else(|| {
                    let message = "it must be a network in CIDR notation";
                    refused(field(index, "cidrBlock"), message)
                })?,
            _ => {
                let message = "give either ipAddress or cidrBlock";
                return Err(refused(vec![Segment::Index(index)], message));
            }
        };
        networks.push(network);
    }
    if networks.is_empty() {
        return Err(refused(Vec::new(), "at least one entry is required"));
    }
    let change = caller.change(
        "programmatic_key.access_list_extended",
        "programmatic_key",
        id,
    );
    let answer = Answer::json(
        &state,
        StatusCode::CREATED,
        |list: &Option<Vec<AccessEntry>>| {
            let list = list.as_ref().ok_or_else(not_found)?;
            let views: Vec<AccessEntryView> =
                list.iter().cloned().map(AccessEntryView::from).collect();
            Ok(Results::from(views))
        },
    );
    let list = state
        .store
        .add_access_entries(caller.org_id, id, &networks, now(), &change)
        .await?;
    let answer = answer.respond(&list)?;
    change.log();
    Ok(answer)
}

#[derive(Deserialize)]
pub struct AccessEntryPath {
    #[serde(rename = "API-KEY-ID")]
    pub key: String,
    #[serde(rename = "ACCESS-LIST-ENTRY")]
    pub entry: String,
}

/// Delete One Access List Entry for One Organization API Key: an address or a CIDR network,
/// with its `/` URL-encoded as `%2F` (organization owners).
#[utoipa::path(
    delete,
    path = "/orgs/{ORG-ID}/apiKeys/{API-KEY-ID}/accessList/{ACCESS-LIST-ENTRY}",
    tag = "Ops Manager",
    params(
        ("ORG-ID" = String, Path, description = "The caller's organization"),
        ("API-KEY-ID" = String, Path, description = "The key pair's id"),
        ("ACCESS-LIST-ENTRY" = String, Path, description = "An address, or a network with `/` as `%2F`"),
    ),
    security(("digest" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Removed", body = Deleted),
        (status = 400, body = OpsManagerError), (status = 401, body = OpsManagerError),
        (status = 403, body = OpsManagerError), (status = 404, body = OpsManagerError),
    )
)]
pub async fn remove_from_access_list(
    State(state): State<AppState>,
    access: InOrg<OrgOwner>,
    Path(path): Path<AccessEntryPath>,
) -> Result<Deleted, Error> {
    let caller = access.caller;
    let id = ObjectId::parse(&path.key).ok_or_else(not_found)?;
    let network = parse_network(&path.entry).ok_or(Error::NotFound("access list entry"))?;
    let change = caller.change(
        "programmatic_key.access_list_entry_removed",
        "programmatic_key",
        id,
    );
    if !state
        .store
        .remove_access_entry(caller.org_id, id, network, &change)
        .await?
    {
        return Err(Error::NotFound("access list entry"));
    }
    change.log();
    Ok(Deleted {})
}

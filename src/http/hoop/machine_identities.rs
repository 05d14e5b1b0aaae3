//! hoop machine identities: `POST /machineidentities` creates an identity with a native
//! credential for each connection it reaches, shown once; list, get, update, delete and a
//! per-connection rotation complete the family. Errors are hoop's `{"message": ...}`.

use std::sync::Arc;

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::connections::gateway_listeners;
use crate::domain::connections::{ConnectionType, GatewayListeners, parse_attributes, parse_name};
use crate::domain::machine_credential::{MachineCredential, build};
use crate::domain::machine_identities::{
    CredentialMeta, CredentialMint, IdentityChanges, Issued, MachineIdentity, NewMachineIdentity,
    credential_slot, parse_connection_names, parse_description, requested_expiry,
};
use crate::domain::secret::{OwnerRef, now};
use crate::error::Error;
use crate::http::AppState;
use crate::http::auth::{Admin, Anyone, Caller};
use crate::http::dialect::HoopError;
use crate::http::extract::{Json, Path, Query, not_null};
use crate::http::idempotency::Answer;
use crate::http::pagination::{Linked, PageParams};
use crate::http::rotation::{RotateRequest, Rotating};
use crate::http::usage::{UsageParams, UsageView};
use crate::secrets::SecretKind;

/// A machine identity as hoop's clients send it, for a create or an update.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct MachineIdentityRequest {
    /// Unique name in the organization (hoop's name rule). On update, the identity's own name
    /// or absent.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, required = true, min_length = 1, example = "backend-prod")]
    pub name: Option<String>,
    #[schema(example = "Production backend service identity")]
    pub description: Option<String>,
    /// Connections carrying one of these attributes get a credential too.
    #[schema(example = json!(["env:prod", "team:backend"]))]
    pub attributes: Option<Vec<String>>,
    #[schema(example = json!(["prod-postgres", "api-proxy"]))]
    pub connection_names: Option<Vec<String>>,
    /// keygate extension: seconds until the identity's credentials stop working.
    #[schema(example = 86400)]
    pub ttl: Option<u64>,
    /// keygate extension: when the identity's credentials stop working (in the future).
    pub expires_at: Option<DateTime<Utc>>,
}

/// What `PUT` takes: the same document, `name` optional.
pub type MachineIdentityUpdate = super::Update<MachineIdentityRequest>;

/// An identity with the credentials just issued to it, each shown only here.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MachineIdentityIssued {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub attributes: Vec<String>,
    pub connection_names: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// keygate extension: when its credentials stop working; absent when never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// One per connection newly reached, named or through a shared attribute.
    pub credentials: Vec<MachineCredential>,
}

/// An identity as listed: its credentials' metadata, never a secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MachineIdentityView {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub attributes: Vec<String>,
    pub connection_names: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub credentials: Vec<CredentialView>,
}

/// A credential as listed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CredentialView {
    pub connection_name: String,
    pub connection_type: ConnectionType,
    pub connection_subtype: String,
    /// `name` when the identity names the connection, `attribute` when it reaches it only
    /// through a shared attribute.
    #[schema(example = "name")]
    pub reached_by: &'static str,
    /// The secret's prefix and last four characters.
    #[schema(example = "kgmi_…3fQk")]
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<&CredentialMeta> for CredentialView {
    fn from(credential: &CredentialMeta) -> CredentialView {
        CredentialView {
            connection_name: credential.connection.name.clone(),
            connection_type: credential.connection.connection_type,
            connection_subtype: credential.connection.subtype.clone(),
            reached_by: if credential.position.is_some() {
                "name"
            } else {
                "attribute"
            },
            hint: credential.secret.hint.clone(),
            created_at: credential.secret.created_at,
            expires_at: credential.secret.expires_at,
            revoked_at: credential.secret.revoked_at,
            last_used_at: credential.secret.last_used_at,
        }
    }
}

impl From<MachineIdentity> for MachineIdentityView {
    fn from(identity: MachineIdentity) -> MachineIdentityView {
        MachineIdentityView {
            connection_names: identity.connection_names(),
            credentials: identity
                .credentials
                .iter()
                .map(CredentialView::from)
                .collect(),
            id: identity.id,
            name: identity.name,
            description: identity.description,
            attributes: identity.attributes,
            created_at: identity.created_at,
            updated_at: identity.updated_at,
            expires_at: identity.expires_at,
        }
    }
}

impl MachineIdentityIssued {
    fn new(identity: MachineIdentity, credentials: Vec<MachineCredential>) -> Self {
        MachineIdentityIssued {
            connection_names: identity.connection_names(),
            id: identity.id,
            name: identity.name,
            description: identity.description,
            attributes: identity.attributes,
            created_at: identity.created_at,
            updated_at: identity.updated_at,
            expires_at: identity.expires_at,
            credentials,
        }
    }
}

/// The credentials `issued` to `identity_id`, with the secrets the mint kept for them.
fn show_issued(
    listeners: &GatewayListeners,
    identity_id: Uuid,
    issued: &[Issued],
    mint: &CredentialMint,
) -> Result<Vec<MachineCredential>, Error> {
    issued
        .iter()
        .map(|issued| {
            let secret = mint.take(issued.secret_id)?;
            Ok(build(
                &issued.connection,
                identity_id,
                listeners,
                &secret,
                issued.expires_at,
            ))
        })
        .collect()
}

/// Create Machine Identity: the identity and a native credential for each connection it names
/// or shares an attribute with, all or nothing. The credentials are shown only here.
#[utoipa::path(
    post,
    path = "/machineidentities",
    tag = "Machine identities",
    request_body = MachineIdentityRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = MachineIdentityIssued),
        (status = 400, description = "Bad Request", body = HoopError),
        (status = 403, description = "Forbidden", body = HoopError),
        (status = 409, description = "The name is taken", body = HoopError),
        (status = 422, description = "Unprocessable Entity; also an unknown connection, named", body = HoopError),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Json(body): Json<MachineIdentityRequest>,
) -> Result<Response, Error> {
    // hoop treats an empty name as a missing one (400), not as a rule violation (422).
    let name = Error::required("name", body.name.filter(|name| !name.is_empty()))?;
    let expires_at = requested_expiry(body.ttl, body.expires_at)?;
    let expires_at = state
        .new_expiry(
            caller.org_id,
            SecretKind::MachineCredential,
            "expires_at",
            expires_at,
        )
        .await?;
    let identity = NewMachineIdentity {
        id: Uuid::now_v7(),
        org_id: caller.org_id,
        name: parse_name(&name)?,
        description: parse_description(body.description)?,
        attributes: parse_attributes("attributes", body.attributes.unwrap_or_default())?,
        connection_names: parse_connection_names(body.connection_names.unwrap_or_default())?,
        expires_at,
        created_at: now(),
    };
    let change = caller.change("machine_identity.created", "machine_identity", identity.id);
    let listeners = gateway_listeners(&state).await?;
    let mint = Arc::new(CredentialMint::default());
    // Which connections the identity reaches is settled by the transaction that issues them.
    let answer = Answer::json(&state, StatusCode::CREATED, {
        let (identity, mint) = (identity.clone(), mint.clone());
        move |issued: &Vec<Issued>| {
            Ok(MachineIdentityIssued {
                id: identity.id,
                name: identity.name.clone(),
                description: identity.description.clone(),
                attributes: identity.attributes.clone(),
                connection_names: identity.connection_names.clone(),
                created_at: identity.created_at,
                updated_at: identity.created_at,
                expires_at: identity.expires_at,
                credentials: show_issued(&listeners, identity.id, issued, &mint)?,
            })
        }
    });
    let issued = state
        .store
        .create_machine_identity(&identity, mint.as_ref(), &change)
        .await?;
    change.log();
    answer.respond(&issued)
}

/// List Machine Identities: a bare array by name, a page at a time; never a secret.
#[utoipa::path(
    get,
    path = "/machineidentities",
    tag = "Machine identities",
    params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<MachineIdentityView>, headers(("Link" = String, description = "`<…?limit=n&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, body = HoopError), (status = 422, body = HoopError),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Anyone>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<PageParams>,
) -> Result<Linked<MachineIdentityView>, Error> {
    let page = params.request()?;
    let identities = state
        .store
        .list_machine_identities(caller.org_id, &page)
        .await?;
    Ok(Linked::from_page(identities, &uri, page.limit))
}

/// Get Machine Identity: never a secret.
#[utoipa::path(
    get,
    path = "/machineidentities/{name}",
    tag = "Machine identities",
    params(("name" = String, Path, description = "The identity's name")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = MachineIdentityView),
        (status = 404, description = "Not Found", body = HoopError),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller<Anyone>,
    Path(name): Path<String>,
) -> Result<axum::Json<MachineIdentityView>, Error> {
    Ok(axum::Json(find(&state, &caller, &name).await?.into()))
}

/// Update Machine Identity: the fields given replace the identity's. Connections it newly
/// reaches get a credential, shown only in this response; those it no longer reaches stop
/// working at once. A new `ttl` or `expires_at` applies to every credential it holds.
#[utoipa::path(
    put,
    path = "/machineidentities/{name}",
    tag = "Machine identities",
    params(("name" = String, Path, description = "The identity's name")),
    request_body = MachineIdentityUpdate,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated; `credentials` holds those newly issued", body = MachineIdentityIssued),
        (status = 400, description = "Bad Request", body = HoopError),
        (status = 403, description = "Forbidden", body = HoopError),
        (status = 404, description = "Not Found", body = HoopError),
        (status = 422, description = "Unprocessable Entity; also an unknown connection, named", body = HoopError),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Path(name): Path<String>,
    Json(body): Json<MachineIdentityRequest>,
) -> Result<axum::Json<MachineIdentityIssued>, Error> {
    if body.name.as_ref().is_some_and(|given| *given != name) {
        return Err(Error::invalid(
            "name",
            "a machine identity cannot be renamed",
        ));
    }
    // A new expiry is held to the organization's policy like a creation's; none keeps the old.
    let expires_at = match requested_expiry(body.ttl, body.expires_at)? {
        Some(asked) => {
            let kind = SecretKind::MachineCredential;
            state
                .new_expiry(caller.org_id, kind, "expires_at", Some(asked))
                .await?
        }
        None => None,
    };
    let changes = IdentityChanges {
        description: body
            .description
            .map(|description| parse_description(Some(description)))
            .transpose()?,
        attributes: body
            .attributes
            .map(|attributes| parse_attributes("attributes", attributes))
            .transpose()?,
        connection_names: body
            .connection_names
            .map(parse_connection_names)
            .transpose()?,
        expires_at,
    };
    let mint = CredentialMint::default();
    let existing = find(&state, &caller, &name).await?;
    let change = caller.change("machine_identity.updated", "machine_identity", existing.id);
    let (identity, issued) = state
        .store
        .update_machine_identity(caller.org_id, &name, &changes, &mint, &change)
        .await?
        .ok_or(Error::NotFound("machine identity"))?;
    change.log();
    let listeners = gateway_listeners(&state).await?;
    let credentials = show_issued(&listeners, identity.id, &issued, &mint)?;
    Ok(axum::Json(MachineIdentityIssued::new(
        identity,
        credentials,
    )))
}

/// Delete Machine Identity: every credential it holds stops working at once. 404 when there is
/// no such identity.
#[utoipa::path(
    delete,
    path = "/machineidentities/{name}",
    tag = "Machine identities",
    params(("name" = String, Path, description = "The identity's name")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Forbidden", body = HoopError),
        (status = 404, description = "Not Found", body = HoopError),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Path(name): Path<String>,
) -> Result<StatusCode, Error> {
    let identity = find(&state, &caller, &name).await?;
    let change = caller.change("machine_identity.deleted", "machine_identity", identity.id);
    if state
        .store
        .delete_machine_identity(caller.org_id, identity.id, &change)
        .await?
    {
        change.log();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound("machine identity"))
    }
}

/// Rotate Machine Credential: a new credential for the connection, shown once, written in the
/// same transaction that ends the old one, so one always works. The old one stops now, or after
/// the grace period; the new one keeps its expiry unless `expires_at` is given.
#[utoipa::path(
    post,
    path = "/machineidentities/{name}/credentials/{connection}/rotate",
    tag = "Machine identities",
    params(
        ("name" = String, Path, description = "The identity's name"),
        ("connection" = String, Path, description = "The connection's name"),
    ),
    request_body(content = Option<RotateRequest>, description = "Optional; an empty body rotates without grace"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Rotated", body = MachineCredential),
        (status = 400, description = "Bad Request", body = HoopError),
        (status = 403, description = "Forbidden", body = HoopError),
        (status = 404, description = "No such identity, or no credential for that connection", body = HoopError),
        (status = 409, description = "The credential is revoked, or a concurrent rotation won", body = HoopError),
        (status = 422, description = "Unprocessable Entity", body = HoopError),
    )
)]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Path((name, connection)): Path<(String, String)>,
    Json(body): Json<Option<RotateRequest>>,
) -> Result<Response, Error> {
    let identity = find(&state, &caller, &name).await?;
    let credential = identity
        .credential_for(&connection)
        .ok_or(Error::NotFound("credential"))?;
    let owner = OwnerRef {
        org_id: identity.org_id,
        id: identity.id,
    };
    let change = caller.change(
        "machine_identity.credential_rotated",
        "machine_identity",
        identity.id,
    );
    let listeners = gateway_listeners(&state).await?;
    let rotating = Rotating {
        kind: SecretKind::MachineCredential,
        owner,
        slot: credential_slot(credential.connection.id),
        current: credential.secret.id,
    };
    let connection = credential.connection.clone();
    let answer = body
        .unwrap_or_default()
        .rotate(
            &state,
            rotating,
            &change,
            StatusCode::CREATED,
            move |rotated| {
                Ok(build(
                    &connection,
                    identity.id,
                    &listeners,
                    rotated.plain,
                    rotated.expires_at,
                ))
            },
        )
        .await
        .map_err(|err| match err {
            Error::NotFound(_) => Error::NotFound("credential"),
            err => err,
        })?;
    change.log();
    Ok(answer)
}

/// keygate extension, Get Machine Identity Usage: how often the identity's credentials were
/// used, per hour, over the last `hours` (every connection's, rotated ones included).
#[utoipa::path(
    get,
    path = "/machineidentities/{name}/usage",
    tag = "Machine identities",
    params(("name" = String, Path, description = "The identity's name"), UsageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = UsageView),
        (status = 400, description = "Bad Request", body = HoopError),
        (status = 401, description = "Unauthorized", body = HoopError),
        (status = 404, description = "Not Found", body = HoopError),
        (status = 422, description = "Unprocessable Entity", body = HoopError),
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller<Anyone>,
    Path(name): Path<String>,
    Query(params): Query<UsageParams>,
) -> Result<axum::Json<UsageView>, Error> {
    let window = params.window()?;
    let identity = find(&state, &caller, &name).await?;
    let owner = OwnerRef {
        org_id: identity.org_id,
        id: identity.id,
    };
    Ok(axum::Json(
        state.store.owner_usage(owner, &window).await?.into(),
    ))
}

async fn find<R>(
    state: &AppState,
    caller: &Caller<R>,
    name: &str,
) -> Result<MachineIdentity, Error> {
    state
        .store
        .find_machine_identity(caller.org_id, name)
        .await?
        .ok_or(Error::NotFound("machine identity"))
}

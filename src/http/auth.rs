//! Who is calling, and may they: the authentication scheme an API family picks, the
//! [`Principal`] a credential comes to, and the [`Caller`] extractor whose type parameter
//! declares the role a handler requires (Ops Manager's extractors, declaring its roles, build on
//! [`authenticate`] too).
//!
//! A family's middleware puts its [`AuthScheme`] in the request; [`authenticate`] asks it for
//! the presented credential, and the family answers a 401 with that scheme's challenge. Failed
//! authentications count against the client address, but a valid credential always passes:
//! keygate's keys cannot be guessed, so the limit guards guessing, and a data plane sharing an
//! address with a guesser behind a load balancer keeps working.

use std::fmt::Display;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::http::HeaderValue;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tower_http::request_id::RequestId;
use uuid::Uuid;

use super::AppState;
use crate::domain::audit::{Actor, AuditContext, Change, Refusal};
use crate::domain::ops_manager::ProgrammaticKey;
use crate::domain::org::{ApiKey, Role};
use crate::error::Error;

/// Who a working credential belongs to.
#[derive(Clone, Debug)]
pub enum Principal {
    /// A keygate API key (bearer), and which of its secrets was presented: during a rotation's
    /// grace period the old one works too, and a console session ends with the one it began with.
    ApiKey { key: ApiKey, secret_id: Uuid },
    /// An Ops Manager programmatic API key pair (HTTP Digest), with its roles.
    ProgrammaticKey(ProgrammaticKey),
}

impl Principal {
    /// The credential's owner id: the API key's or the key pair's.
    pub fn id(&self) -> Uuid {
        match self {
            Principal::ApiKey { key, .. } => key.id,
            Principal::ProgrammaticKey(pair) => pair.id,
        }
    }
}

/// A principal that a middleware has already authenticated for this request: the credential is
/// checked once, since a Digest nonce count cannot be presented twice.
#[derive(Clone)]
pub struct Authenticated(pub Principal);

/// What a request's credentials came to.
pub enum Authentication {
    /// No credential in this scheme.
    Absent,
    /// A credential that does not work.
    Refused,
    Accepted(Principal),
}

/// How an API family's clients authenticate.
#[async_trait]
pub trait AuthScheme: Send + Sync + 'static {
    /// What the request's credentials come to. An `Err` refuses the request without counting
    /// a failure (a right credential answering an expired nonce, a key used from outside its
    /// access list).
    async fn authenticate(&self, parts: &Parts, state: &AppState) -> Result<Authentication, Error>;
    /// The `WWW-Authenticate` value of this scheme's 401; `stale` when the credentials were
    /// right but answered an expired server-issued nonce.
    fn challenge(&self, state: &AppState, stale: bool) -> HeaderValue;
}

/// `Authorization: Bearer <API key>`.
pub struct Bearer;

#[async_trait]
impl AuthScheme for Bearer {
    async fn authenticate(&self, parts: &Parts, state: &AppState) -> Result<Authentication, Error> {
        let Some(token) = bearer_token(parts) else {
            return Ok(Authentication::Absent);
        };
        Ok(match state.verifier.authenticate_api_key(token).await? {
            Some((key, secret_id)) => {
                Authentication::Accepted(Principal::ApiKey { key, secret_id })
            }
            None => Authentication::Refused,
        })
    }

    fn challenge(&self, _: &AppState, _: bool) -> HeaderValue {
        HeaderValue::from_static("Bearer realm=\"keygate\"")
    }
}

/// The credentials of `Authorization: <scheme> <credentials>` when its scheme is `scheme`.
pub fn authorization<'a>(parts: &'a Parts, scheme: &str) -> Option<&'a str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (name, credentials) = value.split_once(' ')?;
    let credentials = credentials.trim();
    (name.eq_ignore_ascii_case(scheme) && !credentials.is_empty()).then_some(credentials)
}

fn bearer_token(parts: &Parts) -> Option<&str> {
    authorization(parts, "bearer")
}

/// The scheme of the family serving the request, placed by its middleware.
#[derive(Clone)]
pub struct FamilyAuth(pub Arc<dyn AuthScheme>);

/// What a handler requires of its caller, declared in its signature: `Caller<Admin>`.
pub trait Requirement: Send + Sync + 'static {
    fn allows(role: Role, operator: bool) -> bool;
}

/// Any authenticated API key.
pub struct Anyone;
/// Admins and members: those who may use what they are granted (auditors only read).
pub struct User;
/// Admins of the caller's organization.
pub struct Admin;
/// Admins of the operator organization (`default`).
pub struct Operator;
/// Admins and auditors: those who may read the audit trail.
pub struct Overseer;

impl Requirement for Anyone {
    fn allows(_: Role, _: bool) -> bool {
        true
    }
}

impl Requirement for User {
    fn allows(role: Role, _: bool) -> bool {
        role != Role::Auditor
    }
}

impl Requirement for Admin {
    fn allows(role: Role, _: bool) -> bool {
        role == Role::Admin
    }
}

impl Requirement for Overseer {
    fn allows(role: Role, _: bool) -> bool {
        role != Role::Member
    }
}

impl Requirement for Operator {
    fn allows(_: Role, operator: bool) -> bool {
        operator
    }
}

/// The authenticated caller: an API key of an organization, allowed what `R` requires.
#[derive(Clone, Debug)]
pub struct Caller<R = Anyone> {
    pub org_id: Uuid,
    pub api_key_id: Uuid,
    pub role: Role,
    /// An admin of the operator organization (`default`).
    pub operator: bool,
    /// What the audit trail records of this caller's changes.
    pub context: AuditContext,
    requirement: PhantomData<fn() -> R>,
}

impl<R> Caller<R> {
    /// The change `action` this caller makes to the resource `kind` `id`, for the store method
    /// that makes it to record and for the handler to log once made.
    pub fn change(&self, action: &'static str, kind: &'static str, id: impl Display) -> Change {
        self.context.change(action, kind, id)
    }
}

/// What the audit trail records of a request by `actor` in organization `org_id`.
pub fn audit_context(parts: &Parts, state: &AppState, org_id: Uuid, actor: Actor) -> AuditContext {
    AuditContext {
        org_id,
        actor,
        request_id: request_id(parts),
        client: client_address(parts, state),
    }
}

/// The `x-request-id` the server assigned to the request.
pub fn request_id(parts: &Parts) -> Option<String> {
    let id = parts.extensions.get::<RequestId>()?;
    id.header_value().to_str().ok().map(str::to_owned)
}

pub fn client_address(parts: &Parts, state: &AppState) -> Option<std::net::IpAddr> {
    super::client::client_address(parts, &state.trusted_proxies)
}

/// Authenticates the request in the serving family's scheme. A refused credential counts
/// against the client address and is recorded in the audit trail; past the limit the answer
/// is 429. A span of its own in the request's trace (at debug level: free when neither the
/// logs nor a trace collector want it); the credential is never one of its fields.
#[tracing::instrument(level = "debug", name = "authenticate", skip_all)]
pub async fn authenticate(parts: &Parts, state: &AppState) -> Result<Principal, Error> {
    if let Some(Authenticated(principal)) = parts.extensions.get::<Authenticated>() {
        return Ok(principal.clone());
    }
    let scheme = parts.extensions.get::<FamilyAuth>().map_or_else(
        || Arc::new(Bearer) as Arc<dyn AuthScheme>,
        |auth| auth.0.clone(),
    );
    match scheme.authenticate(parts, state).await? {
        Authentication::Accepted(principal) => Ok(principal),
        Authentication::Absent => Err(Error::Unauthenticated),
        Authentication::Refused => Err(refused(parts, state)),
    }
}

/// A credential of this request was refused: it counts against the client address and is
/// recorded in the audit trail; past the limit the answer is 429, else 401.
pub fn refused(parts: &Parts, state: &AppState) -> Error {
    let address = client_address(parts, state).map(|ip| ip.to_string());
    let client = address.clone().unwrap_or_else(|| "unknown".to_owned());
    if let Err(limited) = state.auth_limiter.check(&client) {
        return limited;
    }
    // Past the limit nothing is recorded: a client cannot write faster than it may fail.
    state.refusals.record(Refusal {
        request_id: request_id(parts),
        client: address,
    });
    state.auth_limiter.failed(&client);
    Error::Unauthenticated
}

impl<R: Requirement> FromRequestParts<AppState> for Caller<R> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        // keygate's own roles belong to its API keys; a key pair of another family has none.
        let Principal::ApiKey { key, .. } = authenticate(parts, state).await? else {
            return Err(Error::Forbidden);
        };
        let operator = key.org_id == state.operator_org_id && key.role == Role::Admin;
        if !R::allows(key.role, operator) {
            return Err(Error::Forbidden);
        }
        Ok(Caller {
            org_id: key.org_id,
            api_key_id: key.id,
            role: key.role,
            operator,
            context: audit_context(parts, state, key.org_id, Actor::ApiKey(key.id)),
            requirement: PhantomData,
        })
    }
}

//! MongoDB Ops Manager's public API: projects ("groups"), programmatic API key pairs with their
//! roles and access lists, and project agent API keys. Clients authenticate with HTTP Digest
//! (a key pair) or a keygate API key, errors come in Ops Manager's shape, and every answer
//! honours `?pretty=true` and `?envelope=true`. Served at the root and under [`BASE`], where
//! Ops Manager's clients look for it.

mod access;
mod agent_api_keys;
mod api_keys;
pub mod digest;
mod errors;
pub mod format;
mod orgs;
mod projects;

use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::idempotency::honoured;

/// Where Ops Manager's clients find its public API.
pub const BASE: &str = "/api/public/v1.0";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(projects::list))
        .routes(routes!(projects::get, projects::delete))
        .routes(routes!(projects::list_in_org))
        .routes(routes!(agent_api_keys::list))
        .routes(routes!(agent_api_keys::delete))
        .routes(routes!(api_keys::list))
        .routes(routes!(api_keys::get, api_keys::update, api_keys::delete))
        .routes(routes!(api_keys::list_in_project))
        .routes(routes!(api_keys::assign, api_keys::unassign))
        .routes(routes!(api_keys::access_list))
        .routes(routes!(api_keys::remove_from_access_list))
        .merge(honoured(
            OpenApiRouter::new()
                .routes(routes!(projects::create))
                .routes(routes!(agent_api_keys::create))
                .routes(routes!(agent_api_keys::rotate))
                .routes(routes!(api_keys::create))
                .routes(routes!(api_keys::add_to_access_list)),
        ))
}

/// Ops Manager's organization documents: at the root, `GET /orgs` is keygate's own (for the
/// operators), so Ops Manager's clients reach these under [`BASE`] only.
pub fn base_only_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(orgs::list))
        .routes(routes!(orgs::get))
}

/// Ops Manager's list document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Results<T> {
    pub results: Vec<T>,
    #[serde(rename = "totalCount")]
    pub total_count: usize,
    /// Ops Manager's hypermedia links; keygate has none to offer.
    #[schema(value_type = Vec<Object>)]
    pub links: [(); 0],
}

impl<T> From<Vec<T>> for Results<T> {
    fn from(results: Vec<T>) -> Results<T> {
        Results {
            total_count: results.len(),
            results,
            links: [],
        }
    }
}

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
mod version;

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::Uri;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::openapi::{ObjectBuilder, RefOr, Type};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Query;
use super::idempotency::honoured;
use super::usage::{HourUses, UsageView};
use super::{AppState, operations_mut};
use crate::domain::usage::Usage;
use crate::error::Error;
use chrono::{DateTime, Utc};

/// Where Ops Manager's clients find its public API.
pub const BASE: &str = "/api/public/v1.0";

/// Ops Manager's private API, of which keygate serves only the version call; any other route
/// under it is answered as Ops Manager answers an unknown route.
pub const PRIVATE_BASE: &str = "/api/private";

pub fn routes() -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(projects::list))
        .routes(routes!(projects::get, projects::delete))
        .routes(routes!(projects::list_in_org))
        .routes(routes!(projects::get_by_name))
        .routes(routes!(agent_api_keys::list))
        .routes(routes!(agent_api_keys::delete))
        .routes(routes!(agent_api_keys::usage))
        .routes(routes!(api_keys::list))
        .routes(routes!(api_keys::get, api_keys::update, api_keys::delete))
        .routes(routes!(api_keys::usage))
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
                .routes(routes!(api_keys::rotate))
                .routes(routes!(api_keys::add_to_access_list)),
        ));
    with_object_id_patterns(routes)
}

/// Ops Manager's organization documents: at the root, `GET /orgs` is keygate's own (for the
/// operators), so Ops Manager's clients reach these under [`BASE`] only. And the version call,
/// which Ops Manager serves outside its public base path.
pub fn base_only_routes() -> OpenApiRouter<AppState> {
    with_object_id_patterns(
        OpenApiRouter::new()
            .routes(routes!(orgs::list))
            .routes(routes!(orgs::get))
            .routes(routes!(version::version)),
    )
}

/// The path parameters that are ObjectIds.
const OBJECT_ID_PARAMETERS: [&str; 4] = ["ORG-ID", "PROJECT-ID", "API-KEY-ID", "AGENT-API-KEY-ID"];

/// Documents every ObjectId path parameter's shape (24 hex characters, either case) once for
/// all routes, so that clients know what `INVALID_GROUP_ID` and `INVALID_ORG_ID` refuse.
fn with_object_id_patterns(mut routes: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    for operation in operations_mut(routes.get_openapi_mut()) {
        for parameter in operation.parameters.iter_mut().flatten() {
            if let RefOr::T(parameter) = parameter
                && OBJECT_ID_PARAMETERS.contains(&parameter.name.as_str())
            {
                parameter.schema = Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some("^[0-9a-fA-F]{24}$"))
                        .into(),
                );
            }
        }
    }
    routes
}

/// Ops Manager's list document: one page of the results, how many there are in all, and links
/// to this page and its neighbours.
/// What Ops Manager answers a delete with: 200 and an empty JSON document, which its clients
/// decode as JSON like any other answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Deleted {}

impl axum::response::IntoResponse for Deleted {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self).into_response()
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Results<T> {
    pub results: Vec<T>,
    #[serde(rename = "totalCount")]
    pub total_count: usize,
    pub links: Vec<Link>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Link {
    #[schema(
        example = "https://keygate.example.com/api/public/v1.0/groups?pageNum=2&itemsPerPage=100"
    )]
    pub href: String,
    /// `self`, `next` or `previous`.
    pub rel: &'static str,
}

/// The whole list on one page (an answer that is not a paged list, e.g. a creation's).
impl<T> From<Vec<T>> for Results<T> {
    fn from(results: Vec<T>) -> Results<T> {
        Results {
            total_count: results.len(),
            results,
            links: Vec::new(),
        }
    }
}

/// A key's usage in Ops Manager's list document: its hours, oldest first, a page at a time,
/// and the window's total beside them.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UsageResults {
    /// Every hour of the window (a page of them), zero where the key was not used.
    pub results: Vec<HourUses>,
    /// How many hours the window has.
    #[serde(rename = "totalCount")]
    pub total_count: usize,
    pub links: Vec<Link>,
    /// The start of the window's first hour (UTC).
    pub start: DateTime<Utc>,
    /// The end of its last hour, the current one.
    pub end: DateTime<Utc>,
    /// Uses over the whole window.
    #[serde(rename = "totalUses")]
    #[schema(example = 42)]
    pub total_uses: u64,
}

impl UsageResults {
    /// The page of `usage`'s hours that `paging` asks for.
    pub fn new(usage: Usage, paging: &Paging) -> UsageResults {
        let view = UsageView::from(usage);
        let page = paging.of(view.hours);
        UsageResults {
            results: page.results,
            total_count: page.total_count,
            links: page.links,
            start: view.start,
            end: view.end,
            total_uses: view.total_uses,
        }
    }
}

/// `?pageNum=&itemsPerPage=`: which page of an Ops Manager list, as its clients ask.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageNum {
    /// The page, from 1.
    #[serde(rename = "pageNum")]
    #[param(rename = "pageNum", minimum = 1, default = 1)]
    pub page_num: Option<i32>,
    /// Items per page.
    #[serde(rename = "itemsPerPage")]
    #[param(rename = "itemsPerPage", minimum = 1, maximum = 500, default = 100)]
    pub items_per_page: Option<i32>,
}

/// The page a list request asks for, with the request's path and parameters for the links.
/// Ops Manager's lists are small (an organization's projects and key pairs, a key's access
/// list) and filtered by the caller's roles after reading, so a page is cut from the whole.
pub struct Paging {
    page_num: u64,
    items_per_page: u64,
    uri: Uri,
    /// Where the client reached keygate: Ops Manager's links are absolute URLs.
    origin: Option<String>,
}

impl FromRequestParts<AppState> for Paging {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Paging, Error> {
        let Query(params) = Query::<PageNum>::from_request_parts(parts, state).await?;
        // Ops Manager's page parameters are 32-bit integers.
        let page_num = params.page_num.unwrap_or(1);
        if page_num < 1 {
            return Err(Error::invalid_query("pageNum", "it must be at least 1"));
        }
        let items_per_page = params.items_per_page.unwrap_or(100);
        if !(1..=500).contains(&items_per_page) {
            return Err(Error::invalid_query(
                "itemsPerPage",
                "it must be between 1 and 500",
            ));
        }
        let (page_num, items_per_page) = (
            page_num.unsigned_abs().into(),
            items_per_page.unsigned_abs().into(),
        );
        let uri = match parts.extensions.get::<OriginalUri>() {
            Some(OriginalUri(uri)) => uri.clone(),
            None => parts.uri.clone(),
        };
        Ok(Paging {
            page_num,
            items_per_page,
            uri,
            origin: super::client::public_origin(parts, &state.trusted_proxies),
        })
    }
}

impl Paging {
    /// This page of `all`, with `self`, `previous` and `next` links where they lead somewhere.
    pub fn of<T>(&self, all: Vec<T>) -> Results<T> {
        let total_count = all.len();
        let skip = (self.page_num - 1).saturating_mul(self.items_per_page);
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        let mut links = vec![self.link(self.page_num, "self")];
        if self.page_num > 1 {
            links.push(self.link(self.page_num - 1, "previous"));
        }
        if skip.saturating_add(self.items_per_page as usize) < total_count {
            links.push(self.link(self.page_num + 1, "next"));
        }
        let results = all
            .into_iter()
            .skip(skip)
            .take(self.items_per_page as usize)
            .collect();
        Results {
            results,
            total_count,
            links,
        }
    }

    fn link(&self, page_num: u64, rel: &'static str) -> Link {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        let kept = self.uri.query().unwrap_or_default();
        for (name, value) in url::form_urlencoded::parse(kept.as_bytes()) {
            if name != "pageNum" && name != "itemsPerPage" {
                query.append_pair(&name, &value);
            }
        }
        query.append_pair("pageNum", &page_num.to_string());
        query.append_pair("itemsPerPage", &self.items_per_page.to_string());
        Link {
            href: format!(
                "{}{}?{}",
                self.origin.as_deref().unwrap_or_default(),
                self.uri.path(),
                query.finish()
            ),
            rel,
        }
    }
}

//! `GET /api/private/unauth/version`: the version call Ops Manager's clients make without
//! credentials, as a health check and for their reports.

use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ServiceVersion {
    /// keygate's own version: the service answering is keygate, not an Ops Manager release.
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    /// What answers: `keygate` and its version.
    #[serde(rename = "gitVersion")]
    #[schema(example = "keygate 0.1.0")]
    pub git_version: &'static str,
}

/// Get the Service Version (no credentials needed).
#[utoipa::path(
    get,
    path = "/api/private/unauth/version",
    tag = "Ops Manager",
    responses((status = 200, body = ServiceVersion)),
)]
pub async fn version() -> axum::Json<ServiceVersion> {
    axum::Json(ServiceVersion {
        version: env!("CARGO_PKG_VERSION"),
        git_version: concat!("keygate ", env!("CARGO_PKG_VERSION")),
    })
}

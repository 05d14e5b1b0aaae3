//! keygate's own routes: health, organizations and their policy, API keys, verification and
//! the audit trail.

mod api_keys;
mod audit;
mod health;
pub(super) mod metrics;
mod orgs;
mod overview;
mod policy;
mod secret_scanning;
mod verify;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::idempotency::honoured;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(orgs::list))
        .routes(routes!(policy::get, policy::put))
        .routes(routes!(api_keys::list))
        .routes(routes!(api_keys::revoke))
        .routes(routes!(api_keys::usage))
        .routes(routes!(verify::verify))
        .routes(routes!(secret_scanning::github))
        .merge(honoured(
            OpenApiRouter::new()
                .routes(routes!(orgs::create))
                .routes(routes!(api_keys::create))
                .routes(routes!(api_keys::rotate)),
        ))
        .routes(routes!(audit::list))
        .routes(routes!(overview::overview))
}

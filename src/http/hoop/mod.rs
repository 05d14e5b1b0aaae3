//! hoop's gateway API: agents and server information, with `{"message": ...}` errors.
//! Mounted at the root and under `/api`, where hoop's clients expect it.

mod agents;
mod serverinfo;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(agents::create, agents::list))
        .routes(routes!(agents::get, agents::delete))
        .routes(routes!(agents::rotate))
        .routes(routes!(serverinfo::serverinfo))
}

//! hoop's gateway API: agents, connections and their gateway listeners, machine identities and
//! server information, with `{"message": ...}` errors.
//! Mounted at the root and under `/api`, where hoop's clients expect it.

mod agents;
mod connections;
mod machine_identities;
mod serverinfo;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::idempotency::honoured;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(agents::list))
        .routes(routes!(agents::get, agents::delete))
        .routes(routes!(serverinfo::serverinfo))
        .routes(routes!(connections::list))
        .routes(routes!(
            connections::get,
            connections::update,
            connections::delete
        ))
        .routes(routes!(connections::list_listeners))
        .routes(routes!(
            connections::set_listener,
            connections::reset_listener
        ))
        .routes(routes!(machine_identities::list))
        .routes(routes!(
            machine_identities::get,
            machine_identities::update,
            machine_identities::delete
        ))
        .merge(honoured(
            OpenApiRouter::new()
                .routes(routes!(agents::create))
                .routes(routes!(agents::rotate))
                .routes(routes!(connections::create))
                .routes(routes!(machine_identities::create))
                .routes(routes!(machine_identities::rotate)),
        ))
}

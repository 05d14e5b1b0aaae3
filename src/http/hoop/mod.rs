//! hoop's gateway API: agents, connections and their gateway listeners, machine identities and
//! server information, with `{"message": ...}` errors.
//! Mounted at the root and under `/api`, where hoop's clients expect it.

mod agents;
mod connections;
mod machine_identities;
mod serverinfo;

use std::borrow::Cow;
use std::marker::PhantomData;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::idempotency::honoured;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(agents::list))
        .routes(routes!(agents::get, agents::delete))
        .routes(routes!(agents::usage))
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
        .routes(routes!(machine_identities::usage))
        .merge(honoured(
            OpenApiRouter::new()
                .routes(routes!(agents::create))
                .routes(routes!(agents::rotate))
                .routes(routes!(connections::create))
                .routes(routes!(machine_identities::create))
                .routes(routes!(machine_identities::rotate)),
        ))
}

/// The document `T` that creates a resource, as its `PUT` takes it: the same fields, where
/// `name` may be left out (the path names the resource, which is never renamed).
pub struct Update<T>(PhantomData<T>);

impl<T: ToSchema> PartialSchema for Update<T> {
    fn schema() -> RefOr<Schema> {
        let mut schema = T::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.required.retain(|field| field != "name");
        }
        schema
    }
}

impl<T: ToSchema> ToSchema for Update<T> {
    fn name() -> Cow<'static, str> {
        format!("{}Update", T::name()).into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        T::schemas(schemas);
    }
}

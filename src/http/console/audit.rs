//! The organization's audit trail, filtered and paged as `GET /audit` does it.

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Chrome, Console, Session, page, query, when};

/// Events per page.
const PAGE: &str = "50";

/// The filters, as the form sends them and `GET /audit` takes them; empty ones are left out.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Filters {
    action: String,
    resource_kind: String,
    resource_id: String,
    actor: String,
    since: String,
    until: String,
    cursor: String,
}

impl Filters {
    fn pairs(&self) -> [(&'static str, &str); 6] {
        [
            ("action", &self.action),
            ("resource_kind", &self.resource_kind),
            ("resource_id", &self.resource_id),
            ("actor", &self.actor),
            ("since", &self.since),
            ("until", &self.until),
        ]
    }
}

#[derive(Template)]
#[template(path = "audit.html", config = "src/http/console/askama.toml")]
struct Audit {
    chrome: Chrome,
    filters: Filters,
    events: Vec<EventRow>,
    next: Option<String>,
    error: Option<String>,
}

struct EventRow {
    at: String,
    action: String,
    resource: String,
    actor: String,
    client: String,
    request_id: String,
    outcome: String,
}

#[derive(Deserialize)]
struct Listed {
    items: Vec<Event>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Event {
    at: DateTime<Utc>,
    action: String,
    resource_kind: Option<String>,
    resource_id: Option<String>,
    actor_kind: Option<String>,
    actor: Option<String>,
    client: Option<String>,
    request_id: Option<String>,
    outcome: String,
}

pub(super) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Query(filters): Query<Filters>,
) -> Response {
    let mut pairs = filters.pairs().to_vec();
    pairs.push(("limit", PAGE));
    pairs.push(("cursor", &filters.cursor));
    let path = format!("/audit?{}", query(&pairs));
    let answer = console.api(&session, Method::GET, &path, None).await;
    let (status, events, next, error) = match answer.json::<Listed>() {
        Ok(listed) => {
            let next = listed.next_cursor.map(|cursor| {
                let mut pairs = filters.pairs().to_vec();
                pairs.push(("cursor", &cursor));
                format!("/console/audit?{}", query(&pairs))
            });
            let events = listed.items.into_iter().map(EventRow::from).collect();
            (StatusCode::OK, events, next, None)
        }
        // A filter the API refused is told beside the filters, to be corrected there.
        Err(err) if err.status.is_client_error() && err.status != StatusCode::FORBIDDEN => {
            (err.status, Vec::new(), None, Some(err.message))
        }
        Err(err) => return err.into_response(),
    };
    page(
        status,
        &Audit {
            chrome: session.chrome("audit"),
            filters,
            events,
            next,
            error,
        },
    )
}

impl From<Event> for EventRow {
    fn from(event: Event) -> EventRow {
        let join = |kind: Option<String>, id: Option<String>| match (kind, id) {
            (Some(kind), Some(id)) => format!("{kind} {id}"),
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => "—".to_owned(),
        };
        EventRow {
            at: when(&Some(event.at)),
            action: event.action,
            resource: join(event.resource_kind, event.resource_id),
            actor: join(event.actor_kind, event.actor),
            client: event.client.unwrap_or_else(|| "—".to_owned()),
            request_id: event.request_id.unwrap_or_else(|| "—".to_owned()),
            outcome: event.outcome,
        }
    }
}

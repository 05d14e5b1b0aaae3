//! The console's first page, the organization at a glance (`GET /overview`), and each key's
//! usage page (its family's `…/usage` route): charts drawn on the server, lists beside them.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::chart::{Bucket, Chart, Series};
use super::{Chrome, Console, Session, page, path_segment, when};

/// The outcomes drawn apart, in stacking order; every other code is drawn as `other`.
const OUTCOMES: [Series; 5] = [
    Series {
        name: "valid",
        class: "s-valid",
    },
    Series {
        name: "not_found",
        class: "s-not-found",
    },
    Series {
        name: "revoked",
        class: "s-revoked",
    },
    Series {
        name: "expired",
        class: "s-expired",
    },
    Series {
        name: "other",
        class: "s-other",
    },
];

const USES: [Series; 1] = [Series {
    name: "uses",
    class: "s-uses",
}];

/// Hours of a key's usage page: the last week.
const USAGE_HOURS: &str = "168";

#[derive(Deserialize)]
struct Overview {
    last_hour: Vec<OutcomeCounts>,
    last_week: Vec<OutcomeCounts>,
    secrets: Vec<KindCounts>,
    expiring: Vec<Key>,
    top_keys: Vec<Key>,
    leaked: Vec<Leaked>,
    refused: Option<Vec<Refusal>>,
}

/// A secret GitHub secret scanning reported leaked.
#[derive(Deserialize)]
struct Leaked {
    kind: String,
    hint: String,
    url: Option<String>,
    source: Option<String>,
    action: String,
    reported_at: DateTime<Utc>,
}

struct LeakedRow {
    at: String,
    kind: &'static str,
    hint: String,
    url: String,
    source: String,
    action: String,
}

#[derive(Deserialize)]
struct OutcomeCounts {
    start: DateTime<Utc>,
    outcomes: std::collections::BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct KindCounts {
    kind: String,
    active: u64,
    in_grace: u64,
    expiring_soon: u64,
}

/// A key in the lists: the busiest, or the soonest to expire.
#[derive(Deserialize)]
struct Key {
    owner_id: Uuid,
    kind: String,
    name: String,
    #[serde(default)]
    uses: u64,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct Refusal {
    at: DateTime<Utc>,
    client: Option<String>,
    request_id: Option<String>,
}

#[derive(Template)]
#[template(path = "overview.html", config = "src/http/console/askama.toml")]
struct OverviewPage {
    chrome: Chrome,
    last_hour: Chart,
    last_week: Chart,
    secrets: Vec<KindRow>,
    expiring: Vec<KeyRow>,
    top_keys: Vec<KeyRow>,
    leaked: Vec<LeakedRow>,
    refused: Option<Vec<RefusalRow>>,
}

struct KindRow {
    kind: &'static str,
    active: u64,
    in_grace: u64,
    expiring_soon: u64,
}

struct KeyRow {
    name: String,
    kind: &'static str,
    /// The key's usage page, where the console has one for its kind.
    usage: Option<String>,
    uses: u64,
    expires: String,
}

struct RefusalRow {
    at: String,
    client: String,
    request_id: String,
}

pub(super) async fn overview(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
) -> Response {
    let answer = console.api(&session, Method::GET, "/overview", None).await;
    let overview: Overview = match answer.json() {
        Ok(overview) => overview,
        Err(err) => return err.into_response(),
    };
    let rows = |keys: Vec<Key>| keys.into_iter().map(KeyRow::from).collect();
    page(
        StatusCode::OK,
        &OverviewPage {
            chrome: session.chrome("overview"),
            last_hour: outcome_chart(
                "last-hour",
                "Verifications per minute, last hour",
                overview.last_hour,
                "%H:%M",
                10,
            ),
            last_week: outcome_chart(
                "last-week",
                "Verifications per hour, last 7 days",
                overview.last_week,
                "%a %d %H:00",
                24,
            ),
            secrets: overview
                .secrets
                .into_iter()
                .map(|count| KindRow {
                    kind: kind_name(&count.kind),
                    active: count.active,
                    in_grace: count.in_grace,
                    expiring_soon: count.expiring_soon,
                })
                .collect(),
            expiring: rows(overview.expiring),
            top_keys: rows(overview.top_keys),
            leaked: overview
                .leaked
                .into_iter()
                .map(|leak| LeakedRow {
                    at: when(&Some(leak.reported_at)),
                    kind: kind_name(&leak.kind),
                    hint: leak.hint,
                    url: leak.url.unwrap_or_else(|| "—".to_owned()),
                    source: leak.source.unwrap_or_else(|| "—".to_owned()),
                    action: leak.action,
                })
                .collect(),
            refused: overview.refused.map(|refused| {
                refused
                    .into_iter()
                    .map(|refusal| RefusalRow {
                        at: when(&Some(refusal.at)),
                        client: refusal.client.unwrap_or_else(|| "—".to_owned()),
                        request_id: refusal.request_id.unwrap_or_else(|| "—".to_owned()),
                    })
                    .collect()
            }),
        },
    )
}

/// The answers of `buckets` stacked by outcome, every `label_every`-th bucket labelled with
/// its start in `format` (UTC).
fn outcome_chart(
    id: &str,
    title: &str,
    buckets: Vec<OutcomeCounts>,
    format: &str,
    label_every: usize,
) -> Chart {
    let buckets = buckets
        .into_iter()
        .map(|bucket| {
            let mut counts = vec![0; OUTCOMES.len()];
            for (outcome, count) in bucket.outcomes {
                let series = OUTCOMES[..OUTCOMES.len() - 1]
                    .iter()
                    .position(|series| series.name == outcome)
                    .unwrap_or(OUTCOMES.len() - 1);
                counts[series] += count;
            }
            Bucket {
                label: bucket.start.format(format).to_string(),
                counts,
            }
        })
        .collect();
    Chart::stacked(id, title, &OUTCOMES, buckets, label_every)
}

impl From<Key> for KeyRow {
    fn from(key: Key) -> KeyRow {
        let usage = match key.kind.as_str() {
            "agent_key" => Some(format!("/console/agents/{}/usage", path_segment(&key.name))),
            "api_key" => Some(format!("/console/apikeys/{}/usage", key.owner_id)),
            "machine_credential" => Some(format!(
                "/console/identities/{}/usage",
                path_segment(&key.name)
            )),
            _ => None,
        };
        KeyRow {
            kind: kind_name(&key.kind),
            usage,
            uses: key.uses,
            expires: when(&key.expires_at),
            name: key.name,
        }
    }
}

/// What people call a kind of secret.
fn kind_name(kind: &str) -> &'static str {
    match kind {
        "agent_key" => "hoop agent key",
        "api_key" => "keygate API key",
        "project_agent_key" => "Ops Manager agent API key",
        "programmatic_key" => "Ops Manager key pair",
        "machine_credential" => "machine credential",
        "agentex_key" => "Agentex API key",
        "agentex_signing_secret" => "Agentex signing secret",
        _ => "other",
    }
}

#[derive(Template)]
#[template(path = "usage.html", config = "src/http/console/askama.toml")]
struct UsagePage {
    chrome: Chrome,
    title: String,
    back: String,
    chart: Chart,
}

/// A key's usage, as its family's route answers it: `hours` (native, hoop, Agentex) or
/// Ops Manager's `results`.
#[derive(Deserialize)]
struct Usage {
    #[serde(alias = "results")]
    hours: Vec<HourUses>,
}

#[derive(Deserialize)]
struct HourUses {
    start: DateTime<Utc>,
    uses: u64,
}

/// The page of the key the API's `api` usage route reads: `title` names it, `back` is the
/// page it is listed on (its navigation entry `current`).
async fn key_usage(
    console: &Console,
    session: &Session,
    api: String,
    title: String,
    back: String,
    current: &'static str,
) -> Response {
    let answer = console.api(session, Method::GET, &api, None).await;
    let usage: Usage = match answer.json() {
        Ok(usage) => usage,
        Err(err) => return err.into_response(),
    };
    let buckets = usage
        .hours
        .into_iter()
        .map(|hour| Bucket {
            label: hour.start.format("%a %d %H:00").to_string(),
            counts: vec![hour.uses],
        })
        .collect();
    page(
        StatusCode::OK,
        &UsagePage {
            chrome: session.chrome(current),
            chart: Chart::stacked("usage", "Uses per hour, last 7 days", &USES, buckets, 24),
            title,
            back,
        },
    )
}

pub(super) async fn agent(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    let name = path_segment(&name);
    let api = format!("/agents/{name}/usage?hours={USAGE_HOURS}");
    let title = format!("Agent {name}");
    let back = "/console/agents".to_owned();
    key_usage(&console, &session, api, title, back, "agents").await
}

pub(super) async fn api_key(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(id): Path<Uuid>,
) -> Response {
    let api = format!("/apikeys/{id}/usage?hours={USAGE_HOURS}");
    let title = format!("API key {id}");
    let back = "/console/apikeys".to_owned();
    key_usage(&console, &session, api, title, back, "apikeys").await
}

pub(super) async fn identity(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    let name = path_segment(&name);
    let api = format!("/machineidentities/{name}/usage?hours={USAGE_HOURS}");
    let title = format!("Machine identity {name}");
    let back = "/console/identities".to_owned();
    key_usage(&console, &session, api, title, back, "identities").await
}

pub(super) async fn agentex_key(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path((agent, id)): Path<(String, Uuid)>,
) -> Response {
    let agent = path_segment(&agent);
    let api = format!("/agent_api_keys/{id}/usage?hours={USAGE_HOURS}");
    let title = format!("Agentex key {id} of agent {agent}");
    let back = format!("/console/agents/{agent}/keys");
    key_usage(&console, &session, api, title, back, "agents").await
}

pub(super) async fn key_pair(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let id = path_segment(&id);
    let org = match super::ops_manager::org_id(&console, &session).await {
        Ok(org) => path_segment(&org),
        Err(err) => return err.into_response(),
    };
    let api = format!("/orgs/{org}/apiKeys/{id}/usage?hours={USAGE_HOURS}&itemsPerPage=500");
    let title = format!("Key pair {id}");
    let back = "/console/keypairs".to_owned();
    key_usage(&console, &session, api, title, back, "keypairs").await
}

pub(super) async fn project_agent_key(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path((project, id)): Path<(String, String)>,
) -> Response {
    let (project, id) = (path_segment(&project), path_segment(&id));
    let api =
        format!("/groups/{project}/agentapikeys/{id}/usage?hours={USAGE_HOURS}&itemsPerPage=500");
    let title = format!("Agent API key {id}");
    let back = format!("/console/projects/{project}");
    key_usage(&console, &session, api, title, back, "projects").await
}

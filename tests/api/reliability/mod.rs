//! The reliability campaign: what holds under concurrency, racing lifecycle changes, database
//! faults, crashes, hostile clients and every role, each test printing its figures
//! (`figures: …` lines, gathered into docs/RELIABILITY.md).

mod authorization;
mod concurrency;
mod crash;
mod database_faults;
mod hostile;
mod races;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, read};

/// Ops Manager's base path.
const OPS: &str = "/api/public/v1.0";

/// One resource of each kind in an organization, made by its admin.
pub struct Estate {
    pub agent: String,
    pub connection: String,
    pub identity: String,
    pub agentex_key: String,
    pub ops_org: String,
    pub project: String,
    pub project_key: String,
    pub key_pair: String,
    pub api_key: String,
}

impl Estate {
    pub async fn build(app: &TestApp, admin: &str) -> Estate {
        let created = |path: &str, body: Value| {
            let path = path.to_owned();
            async move {
                let (status, answer) = send(app, Method::POST, &path, admin, Some(body)).await;
                assert!(status.is_success(), "{path}: {status} {answer}");
                answer
            }
        };
        created("/agents", json!({"name": "estate-agent"})).await;
        created(
            "/connections",
            json!({"name": "estate-pg", "type": "database", "subtype": "postgres",
                   "agent_id": "estate-agent"}),
        )
        .await;
        created(
            "/machineidentities",
            json!({"name": "estate-identity", "connection_names": ["estate-pg"]}),
        )
        .await;
        let agentex_key = created(
            "/agent_api_keys",
            json!({"agent_name": "estate-agent", "name": "estate-key"}),
        )
        .await;
        let (_, orgs) = send(app, Method::GET, &format!("{OPS}/orgs"), admin, None).await;
        let ops_org = orgs["results"][0]["id"].as_str().unwrap().to_owned();
        let project = created(&format!("{OPS}/groups"), json!({"name": "estate-project"})).await;
        let project = project["id"].as_str().unwrap().to_owned();
        let project_key = created(
            &format!("{OPS}/groups/{project}/agentapikeys"),
            json!({"desc": "estate"}),
        )
        .await;
        let key_pair = created(
            &format!("{OPS}/orgs/{ops_org}/apiKeys"),
            json!({"desc": "estate", "roles": ["ORG_MEMBER"]}),
        )
        .await;
        let api_key = created("/apikeys", json!({"name": "estate", "role": "member"})).await;
        Estate {
            agent: "estate-agent".into(),
            connection: "estate-pg".into(),
            identity: "estate-identity".into(),
            agentex_key: agentex_key["id"].as_str().unwrap().into(),
            ops_org,
            project,
            project_key: project_key["_id"].as_str().unwrap().into(),
            key_pair: key_pair["id"].as_str().unwrap().into(),
            api_key: api_key["id"].as_str().unwrap().into(),
        }
    }

    /// `template` (an OpenAPI path) with each parameter naming this estate's resource.
    pub fn path(&self, template: &str) -> String {
        template
            .replace("{nameOrId}", &self.agent)
            .replace("{connection}", &self.connection)
            .replace("{ORG-ID}", &self.ops_org)
            .replace("{PROJECT-ID}", &self.project)
            .replace("{AGENT-API-KEY-ID}", &self.project_key)
            .replace("{API-KEY-ID}", &self.key_pair)
            .replace("{ACCESS-LIST-ENTRY}", "192.0.2.7")
            .replace("{protocol}", "postgres")
            .replace(
                "/connections/{name}",
                &format!("/connections/{}", self.connection),
            )
            .replace(
                "/machineidentities/{name}",
                &format!("/machineidentities/{}", self.identity),
            )
            .replace(
                "/agent_api_keys/name/{name}",
                "/agent_api_keys/name/estate-key",
            )
            .replace("/apikeys/{id}", &format!("/apikeys/{}", self.api_key))
            .replace(
                "/agent_api_keys/{id}",
                &format!("/agent_api_keys/{}", self.agentex_key),
            )
    }
}

pub async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = app.request(method, path, Some(token));
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    read(request.send().await.unwrap()).await
}

/// How many items a list answer holds, in any family's shape.
pub fn count(list: &Value) -> usize {
    let items = list
        .get("items")
        .or_else(|| list.get("results"))
        .unwrap_or(list);
    items.as_array().map_or(0, Vec::len)
}

/// Prints one line of figures for docs/RELIABILITY.md.
pub fn figures(family: &str, backend: crate::common::Backend, line: std::fmt::Arguments) {
    println!("figures: {family} [{backend:?}] {line}");
}

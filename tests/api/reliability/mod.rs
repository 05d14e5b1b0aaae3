//! The reliability campaign: what holds under concurrency, racing lifecycle changes, database
//! faults, crashes, hostile clients and every role, each test printing its figures
//! (`figures: …` lines, gathered into docs/RELIABILITY.md).

mod authorization;
mod concurrency;
mod crash;
mod database_faults;
mod hostile;
mod races;

use md5::Digest;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, read};

/// Ops Manager's base path.
const OPS: &str = "/api/public/v1.0";

/// One resource of each kind in an organization, made by its admin, named after a tag.
pub struct Estate {
    pub agent: String,
    pub connection: String,
    pub identity: String,
    pub agentex_key_name: String,
    pub agentex_key: String,
    pub ops_org: String,
    pub project: String,
    pub project_key: String,
    pub key_pair: String,
    pub api_key: String,
}

impl Estate {
    pub async fn build(app: &TestApp, admin: &str, tag: &str) -> Estate {
        let created = |path: &str, body: Value| {
            let path = path.to_owned();
            async move {
                let (status, answer) = send(app, Method::POST, &path, admin, Some(body)).await;
                assert!(status.is_success(), "{path}: {status} {answer}");
                answer
            }
        };
        let (agent, connection) = (format!("{tag}-agent"), format!("{tag}-pg"));
        let (identity, agentex_key_name) = (format!("{tag}-identity"), format!("{tag}-key"));
        created("/agents", json!({"name": agent})).await;
        created(
            "/connections",
            json!({"name": connection, "type": "database", "subtype": "postgres",
                   "agent_id": agent}),
        )
        .await;
        created(
            "/machineidentities",
            json!({"name": identity, "connection_names": [connection]}),
        )
        .await;
        let agentex_key = created(
            "/agent_api_keys",
            json!({"agent_name": agent, "name": agentex_key_name}),
        )
        .await;
        let (_, orgs) = send(app, Method::GET, &format!("{OPS}/orgs"), admin, None).await;
        let ops_org = orgs["results"][0]["id"].as_str().unwrap().to_owned();
        let project = created("/groups", json!({"name": format!("{tag}-project")})).await;
        let project = project["id"].as_str().unwrap().to_owned();
        let project_key = created(
            &format!("/groups/{project}/agentapikeys"),
            json!({"desc": tag}),
        )
        .await;
        let key_pair = created(
            &format!("/orgs/{ops_org}/apiKeys"),
            json!({"desc": tag, "roles": ["ORG_MEMBER"]}),
        )
        .await;
        let api_key = created("/apikeys", json!({"name": tag, "role": "member"})).await;
        Estate {
            agent,
            connection,
            identity,
            agentex_key_name,
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
        let by_name = format!(
            "/agent_api_keys/name/{}?agent_name={}",
            self.agentex_key_name, self.agent
        );
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
            .replace("/agent_api_keys/name/{name}", &by_name)
            .replace("/apikeys/{id}", &format!("/apikeys/{}", self.api_key))
            .replace(
                "/agent_api_keys/{id}",
                &format!("/agent_api_keys/{}", self.agentex_key),
            )
    }

    /// What would reveal this estate to an outsider: its names and ids.
    pub fn identifiers(&self) -> Vec<&str> {
        vec![
            &self.agent,
            &self.connection,
            &self.identity,
            &self.agentex_key_name,
            &self.agentex_key,
            &self.ops_org,
            &self.project,
            &self.project_key,
            &self.key_pair,
            &self.api_key,
        ]
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

/// A request authenticated by HTTP Digest (MD5, `qop=auth`) with a key pair, after asking for
/// a fresh challenge.
pub async fn send_digest(
    app: &TestApp,
    method: Method,
    path: &str,
    (public, private): (&str, &str),
    body: Option<Value>,
) -> (StatusCode, Value) {
    let challenge = app
        .request(method.clone(), path, None)
        .send()
        .await
        .unwrap();
    let Some(header) = challenge.headers().get("www-authenticate") else {
        return read(challenge).await;
    };
    let header = header.to_str().unwrap().to_owned();
    let Some(nonce) = header
        .split("nonce=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
    else {
        return read(challenge).await;
    };
    let md5 = |text: String| hex::encode(md5::Md5::digest(text.as_bytes()));
    let ha1 = md5(format!("{public}:MMS Public API:{private}"));
    let ha2 = md5(format!("{method}:{path}"));
    let response = md5(format!("{ha1}:{nonce}:00000001:keygate-tests:auth:{ha2}"));
    let authorization = format!(
        "Digest username=\"{public}\", realm=\"MMS Public API\", nonce=\"{nonce}\", \
         uri=\"{path}\", response=\"{response}\", cnonce=\"keygate-tests\", nc=00000001, qop=auth"
    );
    let request = app
        .request(method, path, None)
        .header("authorization", authorization);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    read(request.send().await.unwrap()).await
}

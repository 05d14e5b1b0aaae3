//! Lifecycle changes of one resource fired together, for every kind of secret, 50 rounds on
//! each database: each is one transaction that locks the owner first, so none answers 5xx, and
//! afterwards no secret of a revoked or deleted resource (the first one, or one a racing
//! rotation minted) works.

use std::collections::BTreeMap;

use futures::StreamExt;
use futures::future::join_all;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{figures, send, send_digest};
use crate::common::{
    BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, minted_secrets_in, on_both_backends,
};

on_both_backends!(revoke_rotate_and_delete_fired_together_leave_no_working_secret);

const ROUNDS: usize = 50;
/// Rounds of one kind in flight at once: each races on its own resource.
const ROUNDS_IN_FLIGHT: usize = 5;

#[derive(Clone, Copy, Debug)]
enum Kind {
    AgentKey,
    ApiKey,
    ProjectAgentKey,
    KeyPair,
    AgentexKey,
    SigningSecret,
    MachineCredential,
}

const KINDS: [Kind; 7] = [
    Kind::AgentKey,
    Kind::ApiKey,
    Kind::ProjectAgentKey,
    Kind::KeyPair,
    Kind::AgentexKey,
    Kind::SigningSecret,
    Kind::MachineCredential,
];

/// A resource of one round: the secret it was made with, what it takes to present it, and the
/// three changes fired at it together.
struct Subject {
    secret: String,
    /// The key pair's public key, the signing secret's repository, the credential's connection.
    context: String,
    racing: [(Method, String, Option<Value>); 3],
}

async fn created(app: &TestApp, path: &str, body: Value) -> Value {
    let (status, answer) = send(app, Method::POST, path, ADMIN, Some(body)).await;
    assert!(status.is_success(), "POST {path}: {status} {answer}");
    answer
}

fn text(value: &Value, field: &str) -> String {
    value[field].as_str().unwrap().to_owned()
}

/// The Ops Manager organization id of `default`, and an agent for Agentex keys.
async fn prepare(app: &TestApp) -> String {
    created(app, "/agents", json!({"name": "race-agent"})).await;
    let (_, orgs) = send(app, Method::GET, "/api/public/v1.0/orgs", ADMIN, None).await;
    text(&orgs["results"][0], "id")
}

async fn make(app: &TestApp, kind: Kind, round: usize, ops_org: &str) -> Subject {
    let name = format!("race-{round}");
    let grace = Some(json!({"grace_period_seconds": 600}));
    match kind {
        Kind::AgentKey => {
            let dsn = text(
                &created(app, "/agents", json!({"name": name})).await,
                "token",
            );
            let (_, agent) = send(app, Method::GET, &format!("/agents/{name}"), ADMIN, None).await;
            Subject {
                secret: dsn,
                context: String::new(),
                racing: [
                    (Method::POST, format!("/agents/{name}/rotate"), grace),
                    (Method::DELETE, format!("/agents/{name}"), None),
                    (
                        Method::DELETE,
                        format!("/agents/{}", text(&agent, "id")),
                        None,
                    ),
                ],
            }
        }
        Kind::ApiKey => {
            let key = created(app, "/apikeys", json!({"name": name, "role": "member"})).await;
            let path = format!("/apikeys/{}", text(&key, "id"));
            Subject {
                secret: text(&key, "key"),
                context: String::new(),
                racing: [
                    (Method::POST, format!("{path}/rotate"), grace),
                    (Method::POST, format!("{path}/rotate"), Some(json!({}))),
                    (Method::DELETE, path, None),
                ],
            }
        }
        Kind::ProjectAgentKey => {
            let project = text(&created(app, "/groups", json!({"name": name})).await, "id");
            let key = created(
                app,
                &format!("/groups/{project}/agentapikeys"),
                json!({"desc": name}),
            )
            .await;
            let path = format!("/groups/{project}/agentapikeys/{}", text(&key, "_id"));
            Subject {
                secret: text(&key, "key"),
                context: String::new(),
                racing: [
                    (Method::POST, format!("{path}/rotate"), grace),
                    (Method::DELETE, path, None),
                    (Method::DELETE, format!("/groups/{project}"), None),
                ],
            }
        }
        Kind::KeyPair => {
            let body = json!({"desc": name, "roles": ["ORG_OWNER"]});
            let pair = created(app, &format!("/orgs/{ops_org}/apiKeys"), body).await;
            let path = format!("/orgs/{ops_org}/apiKeys/{}", text(&pair, "id"));
            Subject {
                secret: text(&pair, "privateKey"),
                context: text(&pair, "publicKey"),
                racing: [
                    (Method::POST, format!("{path}/rotate"), grace),
                    (Method::DELETE, path.clone(), None),
                    (
                        Method::PATCH,
                        path,
                        Some(json!({"roles": ["ORG_READ_ONLY"]})),
                    ),
                ],
            }
        }
        Kind::AgentexKey => {
            let body = json!({"agent_name": "race-agent", "name": name});
            let key = created(app, "/agent_api_keys", body).await;
            let path = format!("/agent_api_keys/{}", text(&key, "id"));
            Subject {
                secret: text(&key, "api_key"),
                context: String::new(),
                racing: [
                    (Method::POST, format!("{path}/rotate"), grace),
                    (Method::DELETE, path, None),
                    (
                        Method::DELETE,
                        format!("/agent_api_keys/name/{name}?agent_name=race-agent"),
                        None,
                    ),
                ],
            }
        }
        Kind::SigningSecret => {
            let repository = format!("octo/{name}");
            let body =
                json!({"agent_name": "race-agent", "name": repository, "api_key_type": "github"});
            let key = created(app, "/agent_api_keys", body).await;
            let path = format!("/agent_api_keys/{}", text(&key, "id"));
            let by_name = format!(
                "/agent_api_keys/name/octo%2F{name}?agent_name=race-agent&api_key_type=github"
            );
            Subject {
                secret: text(&key, "api_key"),
                context: repository,
                racing: [
                    (Method::POST, format!("{path}/rotate"), grace),
                    (Method::DELETE, path, None),
                    (Method::DELETE, by_name, None),
                ],
            }
        }
        Kind::MachineCredential => {
            let connection = format!("race-pg-{round}");
            let body = json!({"name": connection, "type": "database", "subtype": "postgres",
                              "agent_id": "race-agent"});
            created(app, "/connections", body).await;
            let body = json!({"name": name, "connection_names": [connection]});
            let identity = created(app, "/machineidentities", body).await;
            Subject {
                secret: minted_secrets_in(&identity.to_string()).remove(0),
                racing: [
                    (
                        Method::POST,
                        format!("/machineidentities/{name}/credentials/{connection}/rotate"),
                        grace,
                    ),
                    (Method::DELETE, format!("/connections/{connection}"), None),
                    (Method::DELETE, format!("/machineidentities/{name}"), None),
                ],
                context: connection,
            }
        }
    }
}

/// Whether `secret` still works, presented as its kind is presented.
async fn works(app: &TestApp, kind: Kind, secret: &str, context: &str) -> bool {
    match kind {
        Kind::ApiKey => app.get("/agents", secret).await.0 == StatusCode::OK,
        Kind::KeyPair => {
            let key_pair = (context, secret);
            send_digest(app, Method::GET, "/groups", key_pair, None)
                .await
                .0
                == StatusCode::OK
        }
        Kind::SigningSecret => {
            let body = json!({"repository": {"full_name": context}}).to_string();
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(body.as_bytes());
            let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            let request = json!({
                "agent_name": "race-agent", "source": "github",
                "headers": {"x-hub-signature-256": signature},
                "body_base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, body),
            });
            let (status, answer) = app
                .post("/agent_api_keys/verify-signature", ADMIN, request)
                .await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            answer["code"] == "valid"
        }
        Kind::MachineCredential => {
            let request = json!({"key": secret, "connection": context});
            app.post("/verify", ADMIN, request).await.1["code"] == "valid"
        }
        Kind::AgentKey | Kind::ProjectAgentKey | Kind::AgentexKey => {
            app.verify(ADMIN, secret).await.1["code"] == "valid"
        }
    }
}

/// One round: makes the subject, fires its changes together, and checks what is left.
/// Returns the statuses answered.
async fn race(app: &TestApp, kind: Kind, round: usize, ops_org: &str) -> Vec<StatusCode> {
    let subject = make(app, kind, round, ops_org).await;
    assert!(
        works(app, kind, &subject.secret, &subject.context).await,
        "{kind:?} round {round}: the new secret works"
    );
    let answers = join_all(
        subject
            .racing
            .iter()
            .map(|(method, path, body)| send(app, method.clone(), path, ADMIN, body.clone())),
    )
    .await;
    let mut secrets = vec![subject.secret.clone()];
    for ((method, path, _), (status, answer)) in subject.racing.iter().zip(&answers) {
        assert!(
            !status.is_server_error() && !matches!(*status, StatusCode::BAD_REQUEST),
            "{kind:?} round {round}: {method} {path}: {status} {answer}"
        );
        secrets.extend(minted_secrets_in(&answer.to_string()));
    }
    for secret in &secrets {
        assert!(
            !works(app, kind, secret, &subject.context).await,
            "{kind:?} round {round}: a secret of a revoked or deleted resource still works"
        );
    }
    answers.into_iter().map(|(status, _)| status).collect()
}

async fn revoke_rotate_and_delete_fired_together_leave_no_working_secret(backend: Backend) {
    let app = TestApp::start_with(backend, |config| {
        // Every round presents dead secrets on purpose.
        config.auth_failures_per_minute = 1_000_000;
        config.verify_failures_per_minute = 1_000_000;
    })
    .await;
    let ops_org = prepare(&app).await;
    for kind in KINDS {
        let statuses: Vec<StatusCode> = futures::stream::iter(0..ROUNDS)
            .map(|round| race(&app, kind, round, &ops_org))
            .buffer_unordered(ROUNDS_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await
            .concat();
        let mut tally = BTreeMap::new();
        for status in &statuses {
            *tally.entry(status.as_u16()).or_insert(0) += 1;
        }
        figures(
            "lifecycle races",
            backend,
            format_args!(
                "kind={kind:?} rounds={ROUNDS} racing_requests={} statuses={tally:?} \
                 server_errors=0 secrets_still_working=0",
                statuses.len()
            ),
        );
    }
}

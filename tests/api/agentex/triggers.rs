//! `POST /agent_api_keys/webhook-trigger`, the official SDK's `create_webhook_trigger`: a
//! source's signing secret registered as the agent's key, the forward URL to paste, the secret
//! shown once; and the SDK itself from PyPI calling it.

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use super::agent;
use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends};

on_both_backends!(
    a_github_trigger_generates_its_secret_and_answers_the_forward_url,
    a_slack_trigger_takes_the_apps_signing_secret,
    trigger_requests_are_validated_in_fastapis_shape,
    the_agentex_sdk_from_pypi_creates_a_webhook_trigger,
);

const PATH: &str = "/agent_api_keys/webhook-trigger";
const SLACK_SECRET: &str = "8f742231b10e8888abcd99edabcd85a5";

async fn a_github_trigger_generates_its_secret_and_answers_the_forward_url(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "support-bot").await;
    let body = json!({"agent_name": "support-bot", "forward_path": "github-pr/cfg-1",
        "name": "octo-org/hello-world", "base_url": "https://agentex.example.com/"});
    let (status, trigger) = app.post(PATH, ADMIN, body).await;
    assert_eq!(status, StatusCode::OK, "{trigger}");
    let mut fields: Vec<&str> = trigger
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "agent_name",
            "key_id",
            "name",
            "secret",
            "source",
            "webhook_path",
            "webhook_url"
        ]
    );
    assert_eq!(trigger["agent_name"], "support-bot");
    assert_eq!(trigger["name"], "octo-org/hello-world");
    assert_eq!(trigger["source"], "github");
    assert_eq!(
        trigger["webhook_path"],
        "/agents/forward/name/support-bot/github-pr/cfg-1"
    );
    assert_eq!(
        trigger["webhook_url"],
        "https://agentex.example.com/agents/forward/name/support-bot/github-pr/cfg-1"
    );
    let secret = trigger["secret"].as_str().unwrap();
    assert!(secret.starts_with("agx_whsec_"), "a minted signing secret");

    // It is the agent's github key: deliveries signed with the secret verify…
    let delivery = r#"{"repository":{"full_name":"octo-org/hello-world"}}"#;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(delivery.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let check = json!({"agent_name": "support-bot", "source": "github",
        "headers": {"X-Hub-Signature-256": format!("sha256={signature}")},
        "body_base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, delivery)});
    let (_, verdict) = app
        .post("/agent_api_keys/verify-signature", ADMIN, check)
        .await;
    assert_eq!(verdict["code"], "valid", "{verdict}");
    assert_eq!(verdict["api_key_id"], trigger["key_id"]);
    // …and the secret is never shown again.
    let (_, listed) = app
        .get("/agent_api_keys?agent_name=support-bot", ADMIN)
        .await;
    assert_eq!(listed[0]["api_key_type"], "github", "{listed}");
    assert!(!listed.to_string().contains(secret));
}

async fn a_slack_trigger_takes_the_apps_signing_secret(backend: Backend) {
    let app = TestApp::start_with(backend, |config| {
        config.public_url = Some("https://keygate.example.com/agentex".into());
    })
    .await;
    agent(&app, "support-bot").await;
    let body = |secret: Option<&str>| {
        let mut body = json!({"agent_name": "support-bot", "forward_path": "/slack/events",
            "name": "A0123456", "source": "slack"});
        if let Some(secret) = secret {
            body["secret"] = json!(secret);
        }
        body
    };
    let (status, refused) = app.post(PATH, ADMIN, body(None)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["detail"][0]["loc"], json!(["body", "secret"]));
    let (status, trigger) = app.post(PATH, ADMIN, body(Some(SLACK_SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{trigger}");
    assert_eq!(trigger["secret"], SLACK_SECRET);
    assert_eq!(
        trigger["webhook_url"],
        "https://keygate.example.com/agentex/agents/forward/name/support-bot/slack/events",
        "the configured public URL when the request names none"
    );
    // One key per agent, source and name.
    let (status, _) = app.post(PATH, ADMIN, body(Some(SLACK_SECRET))).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

async fn trigger_requests_are_validated_in_fastapis_shape(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "support-bot").await;
    let bad = json!({"agent_name": "support-bot", "forward_path": "../admin", "name": "o/r",
        "base_url": "ftp://example.com"});
    let (status, refused) = app.post(PATH, ADMIN, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let weak = json!({"agent_name": "support-bot", "forward_path": "gh", "name": "o/r",
        "secret": "password1234password1234password"});
    let (status, refused) = app.post(PATH, ADMIN, weak).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["detail"][0]["loc"], json!(["body", "secret"]));
    assert!(
        !refused.to_string().contains("password1234"),
        "never repeated"
    );
    let missing = json!({"agent_name": "nobody-here", "forward_path": "gh", "name": "o/r"});
    let (status, _) = app.post(PATH, ADMIN, missing).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = app
        .get("/agent_api_keys?agent_name=support-bot", ADMIN)
        .await;
    assert_eq!(listed, json!([]), "nothing refused was created");
}

/// The official `agentex-client` SDK (0.28.4, from PyPI): `client.webhooks.create_webhook_trigger`
/// decodes keygate's answer into its own response type, and a conflict is not retried.
async fn the_agentex_sdk_from_pypi_creates_a_webhook_trigger(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "support-bot").await;
    let python =
        tokio::task::spawn_blocking(|| crate::common::python_with(&["agentex-client==0.28.4"]))
            .await
            .unwrap();
    // The SDK keeps its default retries (2): keygate's `x-should-retry: false` must stop it
    // from repeating a conflict, which only a changed request can fix.
    let script = r#"
import json, sys
import agentex, httpx
from agentex import Agentex
sent = []
http = httpx.Client(event_hooks={"request": [sent.append]})
client = Agentex(base_url=sys.argv[1], api_key=sys.argv[2], http_client=http)
trigger = client.webhooks.create_webhook_trigger(
    agent_name="support-bot", forward_path="github-pr/cfg-9", name="octo-org/sdk",
    base_url="https://agentex.example.com", source="github")
try:
    client.webhooks.create_webhook_trigger(
        agent_name="support-bot", forward_path="github-pr/cfg-9", name="octo-org/sdk",
        source="github")
    sys.exit("a second trigger of the same name was accepted")
except agentex.ConflictError:
    pass
if len(sent) != 2:
    sys.exit(f"the SDK sent {len(sent)} requests for two calls: it retried a conflict")
print(json.dumps(trigger.model_dump()))
"#;
    let output = tokio::task::spawn_blocking({
        let url = app.url("");
        move || {
            std::process::Command::new(python)
                .args(["-c", script, &url, ADMIN])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let trigger: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(trigger["source"], "github", "{trigger}");
    assert_eq!(
        trigger["webhook_url"],
        "https://agentex.example.com/agents/forward/name/support-bot/github-pr/cfg-9"
    );
    assert!(
        trigger["secret"]
            .as_str()
            .unwrap()
            .starts_with("agx_whsec_")
    );
    assert!(!stderr.contains(trigger["secret"].as_str().unwrap()));
}

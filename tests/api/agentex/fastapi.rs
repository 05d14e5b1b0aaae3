//! keygate's refusals on the Agentex routes are FastAPI's, compared with FastAPI itself: a
//! FastAPI + pydantic v2 app from PyPI (`tests/fastapi_reference.py`) declares the same
//! request models, and every request below must get the same status and the same body from
//! both — but for `input` where it holds text or a number, which keygate never repeats (either
//! could be a secret pasted into the wrong field).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::agent;
use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends};

on_both_backends!(refusals_are_fastapis_own);

const REFERENCE: [&str; 4] = [
    "fastapi==0.165.0",
    "pydantic==2.14.4",
    "starlette==1.10.0",
    "httpx==0.29.0",
];

/// A key's usage route; FastAPI reads the id as text, so only `hours` is refused.
const USAGE: &str = "/agent_api_keys/0196f3c2-5b1e-7c3a-9d2f-6a8b4c1e0f27/usage";

/// Requests every one of which FastAPI refuses: (method, path, raw body or none).
fn requests() -> Vec<(&'static str, String, Option<String>)> {
    let post = |path: &str, body: &str| ("POST", path.to_owned(), Some(body.to_owned()));
    let get = |path: &str| ("GET", path.to_owned(), None);
    let create = |body: &str| post("/agent_api_keys", body);
    let trigger = |body: &str| post("/agent_api_keys/webhook-trigger", body);
    let verify = |body: &str| post("/agent_api_keys/verify-signature", body);
    let rotate = |body: &str| {
        let path = "/agent_api_keys/0196f3c2-5b1e-7c3a-9d2f-6a8b4c1e0f27/rotate";
        post(path, body)
    };
    vec![
        // Missing and mistyped fields, every one reported, in the model's order.
        create("{}"),
        create(r#"{"agent_name": "edge-1"}"#),
        create(r#"{"agent_name": "edge-1", "name": 5}"#),
        create(r#"{"agent_name": ["edge-1"], "name": "x"}"#),
        create(r#"{"name": null}"#),
        create(r#"{"agent_id": 5, "agent_name": false, "name": {}, "api_key": 1.5}"#),
        // Enum values, with the values a field takes as `ctx`.
        create(r#"{"agent_name": "edge-1", "name": "x", "api_key_type": "bearer"}"#),
        create(r#"{"agent_name": "edge-1", "name": "x", "api_key_type": null}"#),
        create(r#"{"name": 5, "colour": "red", "api_key_type": "githb"}"#),
        // Fields the model does not have, named, in the order sent.
        create(r#"{"agent_name": "edge-1", "name": "x", "size": 1, "colour": true}"#),
        // Bodies that are not objects, and no body.
        create("[]"),
        create("[1]"),
        create(r#""edge-1""#),
        create("5"),
        create("null"),
        create(""),
        // JSON that does not parse: where, and Python's words for it.
        create(r#"{"agent_name": "#),
        create(r#"{"name": }"#),
        create(r#"{"name": "a",}"#),
        create(r#"{name: "a"}"#),
        create(r#"{"name" "a"}"#),
        create(r#"{"name": "a" "agent_name": "b"}"#),
        create(r#"{"name": "a"} x"#),
        create(r#"{"name": "abc"#),
        create(r#"{"ä": "ö",}"#),
        create("   "),
        trigger("{}"),
        trigger(r#"{"agent_name": "a", "forward_path": "p", "name": "n", "source": "gitlab"}"#),
        trigger(
            r#"{"agent_name": 1, "forward_path": null, "name": "n", "base_url": 2, "secret": 3}"#,
        ),
        verify(r#"{"agent_name": "edge-1"}"#),
        verify(r#"{"source": "gitlab", "headers": {"x-hub-signature-256": 1}, "body_base64": 5}"#),
        verify(r#"{"source": "github", "headers": ["x"], "body_base64": ""}"#),
        verify(r#"{"source": null, "headers": null, "body_base64": null}"#),
        rotate(r#"{"grace_period_seconds": -1}"#),
        rotate(r#"{"grace_period_seconds": 1.5}"#),
        rotate(r#"{"grace_period_seconds": "soon"}"#),
        rotate(r#"{"grace_period_seconds": [1]}"#),
        rotate(r#"{"grace": 5}"#),
        rotate("[]"),
        get("/agent_api_keys?agent_name=edge-1&limit=0"),
        get("/agent_api_keys?agent_name=edge-1&limit=1001"),
        get("/agent_api_keys?agent_name=edge-1&limit=ten"),
        get("/agent_api_keys?agent_name=edge-1&limit="),
        get("/agent_api_keys?agent_name=edge-1&page_number=-1"),
        get("/agent_api_keys?agent_name=edge-1&limit=0&page_number=0"),
        get("/agent_api_keys/name/ci?agent_name=edge-1&api_key_type=webhook"),
        get(&format!("{USAGE}?hours=0")),
        get(&format!("{USAGE}?hours=721")),
        get(&format!("{USAGE}?hours=day")),
        get(&format!("{USAGE}?hours=")),
        get(&format!("{USAGE}?hours=1.5")),
    ]
}

/// FastAPI's answers to `requests`, from the reference app.
async fn fastapis_answers(requests: &[(&str, String, Option<String>)]) -> Vec<Value> {
    let cases: Vec<Value> = requests
        .iter()
        .map(|(method, path, body)| json!({"method": method, "path": path, "body": body}))
        .collect();
    let input = serde_json::to_vec(&cases).unwrap();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let python = crate::common::python_with(&REFERENCE);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fastapi_reference.py");
        let mut child = std::process::Command::new(python)
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        serde_json::from_slice(&output.stdout).unwrap()
    })
    .await
    .unwrap()
}

/// FastAPI's body as keygate gives it: without an `input` that holds text or a number.
fn without_text_input(mut body: Value) -> Value {
    fn has_text(value: &Value) -> bool {
        match value {
            Value::String(_) | Value::Number(_) => true,
            Value::Array(items) => items.iter().any(has_text),
            Value::Object(fields) => !fields.is_empty(),
            Value::Null | Value::Bool(_) => false,
        }
    }
    for detail in body["detail"].as_array_mut().into_iter().flatten() {
        let fields = detail.as_object_mut().unwrap();
        if fields.get("input").is_some_and(has_text) {
            fields.remove("input");
        }
    }
    body
}

async fn refusals_are_fastapis_own(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    let requests = requests();
    let expected = fastapis_answers(&requests).await;
    for ((method, path, body), fastapi) in requests.iter().zip(expected) {
        assert_eq!(
            fastapi["status"], 422,
            "FastAPI refuses {method} {path} {body:?}"
        );
        let mut request = app.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            path,
            Some(ADMIN),
        );
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            (status, &answer),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                &without_text_input(fastapi["body"].clone())
            ),
            "{method} {path} {body:?}"
        );
    }
    let (_, keys) = app.get("/agent_api_keys?agent_name=edge-1", ADMIN).await;
    assert_eq!(keys, json!([]), "nothing refused was created");
}

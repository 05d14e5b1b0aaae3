//! The edge: input one database would refuse is refused for both, every answer of a family is
//! in its dialect (the router's own included), and the OpenAPI document lists what the server
//! can answer.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{
    BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends, operations, read,
};

on_both_backends!(
    nul_characters_are_refused_on_every_route,
    keys_of_free_form_objects_never_come_back_in_an_error,
    a_mistyped_value_is_named_by_field_and_never_repeated,
    the_routers_own_answers_are_in_the_familys_dialect,
    every_operation_documents_the_statuses_it_can_answer,
    the_recovery_subcommand_prints_a_working_admin_key,
);

async fn nul_characters_are_refused_on_every_route(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_agent("existing").await;
    let nul_body = json!({
        "name": "a\u{0}bc", "key": "xagt-\u{0}", "role": "member", "mode": "standard",
    });
    for (method, template, operation) in operations(&app).await {
        let has_params = template.contains('{');
        let has_body = operation.get("requestBody").is_some();
        let path = template
            .split('/')
            .map(|part| {
                if part.starts_with('{') {
                    "a%00bc"
                } else {
                    part
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for base in ["", "/api"] {
            let request = app.request(method.clone(), &format!("{base}{path}"), Some(ADMIN));
            let request = if has_body {
                request.json(&nul_body)
            } else {
                request
            };
            let (status, body) = read(request.send().await.unwrap()).await;
            assert!(
                !status.is_server_error(),
                "{method} {base}{path}: {status} {body}"
            );
            // GitHub's alerts are read only once their signature holds, which none here has.
            if template == "/secret-scanning/github" && base.is_empty() {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
            } else if (has_params || has_body)
                && !(base == "/api" && status == StatusCode::NOT_FOUND)
            {
                assert!(
                    status.is_client_error(),
                    "{method} {base}{path}: {status} {body}"
                );
                assert!(
                    body.to_string().contains("NUL"),
                    "{method} {base}{path}: the refusal says why: {body}"
                );
            }
        }
    }
    let (_, agents) = app.get("/agents", ADMIN).await;
    assert_eq!(agents.as_array().unwrap().len(), 1, "nothing was written");
}

async fn the_routers_own_answers_are_in_the_familys_dialect(backend: Backend) {
    let app = TestApp::start(backend).await;
    let send = |method: Method, path: &str| app.request(method, path, Some(ADMIN)).send();

    for path in ["/agents", "/api/agents"] {
        let response = send(Method::PUT, path).await.unwrap();
        assert!(
            response.headers().contains_key("allow"),
            "405 names the allowed methods"
        );
        let (status, body) = read(response).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(
            body,
            json!({"message": "the method is not allowed on this route"})
        );
    }
    let (status, body) = read(send(Method::PATCH, "/apikeys").await.unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["code"], "method_not_allowed");

    let (status, body) = read(send(Method::GET, "/agents/%FF%FE").await.unwrap()).await;
    assert!(status.is_client_error(), "{status}");
    assert_eq!(body.as_object().unwrap().len(), 1, "hoop's shape: {body}");

    let (status, body) = read(send(Method::GET, "/api/no-such-route").await.unwrap()).await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"message": "route not found"})),
        "unknown routes under hoop's base path answer in hoop's dialect"
    );
    let (status, body) = read(send(Method::GET, "/no-such-route").await.unwrap()).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );

    let response = app
        .request(Method::GET, "/api/agents", None)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"keygate\"",
        "a 401 carries the family's challenge"
    );
}

async fn every_operation_documents_the_statuses_it_can_answer(backend: Backend) {
    let app = TestApp::start(backend).await;
    for (method, path, operation) in operations(&app).await {
        let responses = operation["responses"].as_object().unwrap();
        let mut expected = vec!["408"];
        if operation.get("security").is_some() {
            expected.extend(["401", "429", "503"]);
        }
        if operation.get("requestBody").is_some() {
            expected.push("413");
        }
        for status in expected {
            assert!(
                responses.contains_key(status),
                "{method} {path} lacks {status}"
            );
        }
    }
}

/// `keygate admin-key` on the server's host mints an admin key straight in the database and
/// prints it once, alone on stdout.
async fn the_recovery_subcommand_prints_a_working_admin_key(backend: Backend) {
    let app = TestApp::start(backend).await;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"));
    command
        .args(["admin-key", "--org", "default", "--data-dir"])
        .arg(&app.config.data_dir)
        .env_remove("KEYGATE_DATABASE_URL")
        .env_remove("KEYGATE_BOOTSTRAP_TOKEN");
    if let Some(url) = &app.config.database_url {
        command.args(["--database-url", url]);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let key = stdout.trim_end();
    assert!(
        key.starts_with("kgk_") && !key.contains(char::is_whitespace),
        "{stdout:?}"
    );
    let (status, _) = app
        .post(
            "/apikeys",
            key,
            json!({"name": "after recovery", "role": "member"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the recovered key is an admin key"
    );

    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["admin-key", "--org", "no-such-org", "--data-dir"])
        .arg(&app.config.data_dir)
        .args(
            app.config
                .database_url
                .iter()
                .flat_map(|url| ["--database-url", url.as_str()]),
        )
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(
        unknown.stdout.is_empty(),
        "nothing on stdout when nothing was minted"
    );
}

/// Policy lifetimes and webhook headers are objects whose keys are the client's own: a pasted
/// secret used as a key, with a value of the wrong type, is refused without being repeated.
async fn keys_of_free_form_objects_never_come_back_in_an_error(backend: Backend) {
    let app = TestApp::start(backend).await;
    let pasted = keygate::secrets::PlainSecret::mint(keygate::secrets::SecretKind::AgentKey);
    let pasted = pasted.expose();
    let policy = json!({"max_lifetime_seconds": {pasted: "a day"}});
    let response = app
        .request(Method::PUT, "/orgs/policy", Some(ADMIN))
        .json(&policy)
        .send()
        .await
        .unwrap();
    let (status, error) = read(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(
        error["errors"][0]["field"], "max_lifetime_seconds",
        "{error}"
    );
    assert!(!error.to_string().contains(pasted), "{error}");

    app.create_agent("edge-1").await;
    let delivery = json!({
        "agent_name": "edge-1", "source": "github", "headers": {pasted: 42}, "body_base64": "e30=",
    });
    let (status, error) = app
        .post("/agent_api_keys/verify-signature", ADMIN, delivery)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(
        error["detail"][0]["loc"],
        json!(["body", "headers"]),
        "{error}"
    );
    assert!(!error.to_string().contains(pasted), "{error}");
}

/// A value of the wrong type is refused naming the field and the type it needs, in every
/// family's dialect; the value itself (serde quotes numbers, booleans and text) never comes back.
async fn a_mistyped_value_is_named_by_field_and_never_repeated(backend: Backend) {
    const NUMBER: i64 = 987654321;
    const TEXT: &str = "zq-marker-value";
    let app = TestApp::start(backend).await;
    app.create_agent("edge-1").await;
    let project = crate::ops_manager::project(&app, "marked").await;
    let agent_keys = format!("/groups/{project}/agentapikeys");
    let cases = [
        // keygate's own routes
        (
            "/apikeys",
            json!({"name": NUMBER, "role": "member"}),
            "name",
        ),
        (
            "/apikeys",
            json!({"name": "x", "role": "member", "expires_at": NUMBER}),
            "expires_at",
        ),
        (
            "/orgs",
            json!({"name": true, "admin_key_name": TEXT}),
            "name",
        ),
        // hoop's
        ("/agents", json!({"name": NUMBER}), "name"),
        (
            "/api/agents",
            json!({"name": "edge-2", "mode": NUMBER}),
            "mode",
        ),
        (
            "/machineidentities",
            json!({"name": "mi", "ttl": TEXT}),
            "ttl",
        ),
        (
            "/machineidentities",
            json!({"name": "mi", "ttl": -NUMBER}),
            "ttl",
        ),
        (
            "/machineidentities",
            json!({"name": "mi", "attributes": TEXT}),
            "attributes",
        ),
        // Ops Manager's
        (&agent_keys, json!({"desc": NUMBER}), "desc"),
        (
            &format!("{}{agent_keys}", crate::ops_manager::BASE),
            json!({"desc": "x", "expiresAt": NUMBER}),
            "expiresAt",
        ),
        ("/groups", json!({"name": {"nested": TEXT}}), "name"),
        // Agentex's
        (
            "/agent_api_keys",
            json!({"agent_name": "edge-1", "name": NUMBER}),
            "name",
        ),
        (
            "/agent_api_keys",
            json!({"agent_name": "edge-1", "name": "x", "expires_at": NUMBER}),
            "expires_at",
        ),
        (
            "/agent_api_keys",
            json!({"agent_name": "edge-1", "name": "x", "api_key_type": NUMBER}),
            "api_key_type",
        ),
        (
            "/agent_api_keys/verify-signature",
            json!({"agent_name": "edge-1", "source": "github", "body_base64": "e30=",
                   "headers": {"x-hub-signature-256": NUMBER}}),
            "headers",
        ),
    ];
    for (path, body, field) in cases {
        let (status, answer) = app.post(path, ADMIN, body.clone()).await;
        assert!(status.is_client_error(), "{path} {body}: {status} {answer}");
        let shown = answer.to_string();
        for marker in [&NUMBER.to_string(), TEXT] {
            assert!(!shown.contains(marker), "{path} {body}: {answer}");
        }
        assert!(shown.contains(field), "{path} {body}: {answer}");
    }

    // Ops Manager's detail names the field and the type it needs, and nothing else.
    let (_, answer) = app.post(&agent_keys, ADMIN, json!({"desc": NUMBER})).await;
    assert_eq!(answer["detail"], "desc: expected a string", "{answer}");
    assert_eq!(answer["parameters"], json!(["desc"]), "{answer}");
}

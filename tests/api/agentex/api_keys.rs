//! `/agent_api_keys`: create as Agentex documents it, every refusal in FastAPI's shape, duplicates
//! refused by the database, reads that never show a key, bounded pages, deletes.

use keygate::domain::agent::NAME_RULE;
use keygate::secrets::chosen::GUESSABLE;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{agent, create_key, created_key, refused};
use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends, read};

on_both_backends!(
    create_answers_200_with_agentexs_fields,
    keygates_own_rules_are_value_errors_in_fastapis_shape,
    a_guessable_chosen_key_is_refused_without_being_repeated,
    unknown_agents_are_404_in_agentexs_words,
    a_duplicate_is_409_and_a_secret_in_use_is_422,
    reads_never_show_the_key,
    lists_are_paged_oldest_first,
    keys_are_deleted_by_id_and_by_name,
    only_admins_create_and_delete,
    deleting_the_agent_deletes_its_keys,
    an_id_of_another_kind_of_owner_is_no_agent_api_key,
    the_routers_own_answers_are_in_fastapis_shape,
);

const STRONG: &str = "5c1b0e8e0f2f3b7a9d64c2a71e3f08d4";

async fn create_answers_200_with_agentexs_fields(backend: Backend) {
    let app = TestApp::start(backend).await;
    let agent_id = agent(&app, "edge-1").await;
    let by_name = created_key(&app, json!({"agent_name": "edge-1", "name": "ci"})).await;
    let fields: Vec<&str> = by_name
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "id",
            "agent_id",
            "created_at",
            "name",
            "api_key_type",
            "api_key"
        ]
    );
    assert_eq!(by_name["agent_id"], json!(agent_id));
    assert_eq!(by_name["name"], "ci");
    assert_eq!(by_name["api_key_type"], "external", "the default type");
    assert!(by_name["api_key"].as_str().unwrap().starts_with("agx_key_"));
    let created_at = by_name["created_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created_at).is_ok(),
        "{created_at}"
    );
    assert!(uuid::Uuid::parse_str(by_name["id"].as_str().unwrap()).is_ok());

    let by_id = created_key(
        &app,
        json!({"agent_id": agent_id, "name": "acp", "api_key_type": "internal", "agent_name": null}),
    )
    .await;
    assert_eq!(
        (&by_id["agent_id"], &by_id["api_key_type"]),
        (&json!(agent_id), &json!("internal"))
    );
    let github = created_key(
        &app,
        json!({"agent_name": "edge-1", "name": "octo-org/hello-world", "api_key_type": "github"}),
    )
    .await;
    assert!(
        github["api_key"]
            .as_str()
            .unwrap()
            .starts_with("agx_whsec_")
    );
    let chosen = created_key(
        &app,
        json!({"agent_name": "edge-1", "name": "A0123", "api_key_type": "slack", "api_key": STRONG}),
    )
    .await;
    assert_eq!(chosen["api_key"], STRONG, "a chosen key is shown back once");
}

async fn keygates_own_rules_are_value_errors_in_fastapis_shape(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    let exactly_one = json!({"loc": ["body"], "msg": "Value error, exactly one of agent_id or agent_name must be given", "type": "value_error"});
    let cases = [
        (json!({"name": "x"}), json!({"detail": [exactly_one]})),
        (
            json!({"agent_name": "edge-1", "agent_id": "0196f3c2-5b1e-7c3a-9d2f-6a8b4c1e0f27", "name": "x"}),
            json!({"detail": [exactly_one]}),
        ),
        (
            json!({"agent_id": "edge-1", "name": "x"}),
            refused(
                json!(["body", "agent_id"]),
                "Value error, it must be a UUID",
                "value_error",
            ),
        ),
        (
            json!({"agent_name": "a b", "name": "x"}),
            refused(
                json!(["body", "agent_name"]),
                &format!("Value error, {NAME_RULE}"),
                "value_error",
            ),
        ),
        (
            json!({"agent_name": "edge-1", "name": " "}),
            refused(
                json!(["body", "name"]),
                "Value error, it must contain between 1 and 256 characters",
                "value_error",
            ),
        ),
        (
            json!({"agent_name": "edge-1", "name": "x", "api_key": "password1234"}),
            refused(
                json!(["body", "api_key"]),
                "Value error, it must be at least 32 characters long",
                "value_error",
            ),
        ),
        (
            json!({"agent_name": "edge-1", "name": "x", "api_key": "password1234password1234password"}),
            refused(
                json!(["body", "api_key"]),
                &format!("Value error, it {GUESSABLE}"),
                "value_error",
            ),
        ),
        (
            json!({"agent_name": "edge-1", "name": "x", "api_key": format!("kgk_{STRONG}")}),
            refused(
                json!(["body", "api_key"]),
                "Value error, it must not start with the prefix of a secret keygate mints",
                "value_error",
            ),
        ),
        (
            json!({"agent_name": "edge-1", "name": "A0123", "api_key_type": "slack"}),
            refused(
                json!(["body", "api_key"]),
                "Value error, a slack key is the Slack app's signing secret: give it as api_key",
                "value_error",
            ),
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = create_key(&app, body.clone()).await;
        assert_eq!(
            (status, &answer),
            (StatusCode::UNPROCESSABLE_ENTITY, &expected),
            "{body}"
        );
    }
    let (_, keys) = app.get("/agent_api_keys?agent_name=edge-1", ADMIN).await;
    assert_eq!(keys, json!([]), "nothing was written");
}

async fn a_guessable_chosen_key_is_refused_without_being_repeated(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    for weak in [
        "password1234password1234password",
        "qwertyuiopasdfghjklzxcvbnm1234567890",
        "Password123456789012345678901234",
    ] {
        for (name, kind) in [
            ("ci", "external"),
            ("A0123", "slack"),
            ("octo/repo", "github"),
        ] {
            let body = json!({"agent_name": "edge-1", "name": name, "api_key_type": kind, "api_key": weak});
            let (status, answer) = create_key(&app, body).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{kind} {weak}: {answer}"
            );
            assert_eq!(
                answer["detail"],
                json!([{"loc": ["body", "api_key"], "msg": format!("Value error, it {GUESSABLE}"), "type": "value_error"}]),
            );
            assert!(!answer.to_string().contains(weak), "{answer}");
        }
    }
    // Random values pass: a Slack signing secret (32 hex digits), `openssl rand -hex 32`, base64.
    for (name, kind, key) in [
        ("A0123", "slack", "8f742231b10e8888abcd99edabcd85a5"),
        (
            "ci",
            "external",
            "5c1b0e8e0f2f3b7a9d64c2a71e3f08d4b6a95c27e1d0f34b8a6c9e2d7f1a0b53",
        ),
        (
            "octo/repo",
            "github",
            "q3Zb7Xv0Pj1Wm8kT5rYc2Hn6Ld9Fs4Ga+Ue/Ko0Bi3M=",
        ),
    ] {
        created_key(
            &app,
            json!({"agent_name": "edge-1", "name": name, "api_key_type": kind, "api_key": key}),
        )
        .await;
    }
}

async fn unknown_agents_are_404_in_agentexs_words(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, other_org_admin) = app.create_org("elsewhere").await;
    let (status, body) = app
        .post("/agents", &other_org_admin, json!({"name": "theirs"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, theirs) = app.get("/agents/theirs", &other_org_admin).await;
    let unknown_id = "0196f3c2-5b1e-7c3a-9d2f-6a8b4c1e0f27";
    for (body, detail) in [
        (
            json!({"agent_name": "nobody", "name": "x"}),
            "Item with name 'nobody' does not exist.".to_owned(),
        ),
        (
            json!({"agent_id": unknown_id, "name": "x"}),
            format!("Item with id '{unknown_id}' does not exist."),
        ),
        (
            json!({"agent_name": "theirs", "name": "x"}),
            "Item with name 'theirs' does not exist.".to_owned(),
        ),
        (
            json!({"agent_id": theirs["id"], "name": "x"}),
            format!(
                "Item with id '{}' does not exist.",
                theirs["id"].as_str().unwrap()
            ),
        ),
    ] {
        let (status, answer) = create_key(&app, body.clone()).await;
        assert_eq!(
            (status, answer),
            (StatusCode::NOT_FOUND, json!({"detail": detail})),
            "{body}"
        );
    }
    let (status, answer) = app.get("/agent_api_keys?agent_name=nobody", ADMIN).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "Item with name 'nobody' does not exist."})
        )
    );
}

async fn a_duplicate_is_409_and_a_secret_in_use_is_422(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    agent(&app, "edge-2").await;
    let key = json!({"agent_name": "edge-1", "name": "ci", "api_key": STRONG});
    created_key(&app, key).await;
    let (status, answer) = create_key(&app, json!({"agent_name": "edge-1", "name": "ci"})).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::CONFLICT,
            json!({"detail": "the agent already has an API key of this type with this name"})
        )
    );
    for other in [
        json!({"agent_name": "edge-1", "name": "ci", "api_key_type": "internal"}),
        json!({"agent_name": "edge-2", "name": "ci"}),
    ] {
        created_key(&app, other).await;
    }
    let in_use = refused(
        json!(["body", "api_key"]),
        "Value error, it is already in use",
        "value_error",
    );
    for reuse in [
        json!({"agent_name": "edge-2", "name": "other", "api_key": STRONG}),
        json!({"agent_name": "edge-1", "name": "octo/repo", "api_key_type": "github", "api_key": STRONG}),
    ] {
        let (status, answer) = create_key(&app, reuse).await;
        assert_eq!(
            (status, &answer),
            (StatusCode::UNPROCESSABLE_ENTITY, &in_use)
        );
    }
    let (_, keys) = app.get("/agent_api_keys?agent_name=edge-1", ADMIN).await;
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
}

async fn reads_never_show_the_key(backend: Backend) {
    let app = TestApp::start(backend).await;
    let agent_id = agent(&app, "edge-1").await;
    let created = created_key(
        &app,
        json!({"agent_name": "edge-1", "name": "octo-org/hello-world", "api_key_type": "github"}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let expected = json!({
        "id": id, "agent_id": agent_id, "created_at": created["created_at"],
        "name": "octo-org/hello-world", "api_key_type": "github", "last_used_at": null,
    });
    let reads = [
        format!("/agent_api_keys/{id}"),
        format!(
            "/agent_api_keys/name/octo-org%2Fhello-world?agent_id={agent_id}&api_key_type=github"
        ),
        "/agent_api_keys/name/octo-org%2Fhello-world?agent_name=edge-1&api_key_type=github".into(),
    ];
    for path in &reads {
        let (status, body) = app.get(path, ADMIN).await;
        assert_eq!((status, &body), (StatusCode::OK, &expected), "{path}");
    }
    let (_, listed) = app.get("/agent_api_keys?agent_name=edge-1", ADMIN).await;
    assert_eq!(listed, json!([expected]));
    let secret = created["api_key"].as_str().unwrap();
    for path in reads
        .iter()
        .map(String::as_str)
        .chain(["/agent_api_keys?agent_name=edge-1"])
    {
        assert!(!app.get(path, ADMIN).await.1.to_string().contains(secret));
    }
    let (status, body) = app
        .get(
            "/agent_api_keys/name/octo-org%2Fhello-world?agent_name=edge-1",
            ADMIN,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": format!("Agent api_key 'octo-org/hello-world' not found for agent ID {agent_id}")})
        ),
        "by name, the type is external unless given"
    );
    let unknown = "0196f3c2-5b1e-7c3a-9d2f-6a8b4c1e0f27";
    assert_eq!(
        app.get(&format!("/agent_api_keys/{unknown}"), ADMIN).await,
        (
            StatusCode::NOT_FOUND,
            json!({"detail": format!("Item with id '{unknown}' does not exist.")})
        )
    );
    assert_eq!(
        app.get("/agent_api_keys/not-an-id", ADMIN).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            refused(
                json!(["path", "id"]),
                "Value error, it must be a UUID",
                "value_error"
            )
        )
    );
    assert_eq!(
        app.get("/agent_api_keys/name/x", ADMIN).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            refused(
                json!(["query"]),
                "Value error, exactly one of agent_id or agent_name must be given",
                "value_error"
            )
        )
    );
}

async fn lists_are_paged_oldest_first(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    agent(&app, "edge-2").await;
    created_key(&app, json!({"agent_name": "edge-2", "name": "not mine"})).await;
    let mut names = Vec::new();
    for n in 0..5 {
        let name = format!("key {n}");
        created_key(&app, json!({"agent_name": "edge-1", "name": name})).await;
        names.push(name);
    }
    let page =
        |query: &str| names_on_page(&app, format!("/agent_api_keys?agent_name=edge-1{query}"));
    assert_eq!(page("").await, names, "default: 50 per page, first page");
    assert_eq!(page("&limit=2").await, names[..2]);
    assert_eq!(page("&limit=2&page_number=2").await, names[2..4]);
    assert_eq!(page("&limit=2&page_number=3").await, names[4..]);
    assert!(page("&limit=2&page_number=4").await.is_empty());
    assert_eq!(page("&limit=1000&page_number=1").await, names);
    assert!(
        page("&limit=1000&page_number=9223372036854775807")
            .await
            .is_empty()
    );
    assert_eq!(
        page("&limit=1&page_number=5&utm_source=x").await,
        names[4..]
    );
}

/// The names a list request answers, in order.
async fn names_on_page(app: &TestApp, path: String) -> Vec<String> {
    let (status, body) = app.get(&path, ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    let keys = body.as_array().unwrap();
    keys.iter()
        .map(|key| key["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn keys_are_deleted_by_id_and_by_name(backend: Backend) {
    let app = TestApp::start(backend).await;
    let agent_id = agent(&app, "edge-1").await;
    let by_id = created_key(&app, json!({"agent_name": "edge-1", "name": "one"})).await;
    let id = by_id["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/agent_api_keys/{id}"), ADMIN).await,
        (
            StatusCode::OK,
            json!(format!("Agent API key with ID {id} deleted"))
        )
    );
    assert_eq!(
        app.delete(&format!("/agent_api_keys/{id}"), ADMIN).await,
        (
            StatusCode::NOT_FOUND,
            json!({"detail": format!("Item with id '{id}' does not exist.")})
        )
    );
    created_key(
        &app,
        json!({"agent_name": "edge-1", "name": "octo/repo", "api_key_type": "github"}),
    )
    .await;
    let path = "/agent_api_keys/name/octo%2Frepo?agent_name=edge-1";
    assert_eq!(
        app.delete(path, ADMIN).await,
        (
            StatusCode::NOT_FOUND,
            json!({"detail": format!("Agent api_key 'octo/repo' not found for agent ID {agent_id}")})
        ),
        "an external key is meant unless the type is given"
    );
    let typed = format!("{path}&api_key_type=github");
    assert_eq!(
        app.delete(&typed, ADMIN).await,
        (StatusCode::OK, json!("Agent api_key 'octo/repo' deleted"))
    );
    assert_eq!(app.get(&typed, ADMIN).await.0, StatusCode::NOT_FOUND);
    let (_, keys) = app.get("/agent_api_keys?agent_name=edge-1", ADMIN).await;
    assert_eq!(keys, json!([]));
    created_key(&app, json!({"agent_name": "edge-1", "name": "one"})).await;
}

async fn only_admins_create_and_delete(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    let created = created_key(&app, json!({"agent_name": "edge-1", "name": "ci"})).await;
    let id = created["id"].as_str().unwrap();
    let forbidden = json!({"detail": "the API key's role does not allow this"});
    for role in ["member", "auditor"] {
        let key = app.create_api_key(role).await;
        let body = json!({"agent_name": "edge-1", "name": role});
        assert_eq!(
            app.post("/agent_api_keys", &key, body).await,
            (StatusCode::FORBIDDEN, forbidden.clone())
        );
        assert_eq!(
            app.delete(&format!("/agent_api_keys/{id}"), &key).await,
            (StatusCode::FORBIDDEN, forbidden.clone())
        );
        assert_eq!(
            app.get(&format!("/agent_api_keys/{id}"), &key).await.0,
            StatusCode::OK
        );
    }
    let response = app
        .request(Method::GET, "/agent_api_keys?agent_name=edge-1", None)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"keygate\""
    );
    assert_eq!(
        read(response).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "missing or invalid credentials"})
        )
    );
}

async fn deleting_the_agent_deletes_its_keys(backend: Backend) {
    let app = TestApp::start(backend).await;
    agent(&app, "edge-1").await;
    let chosen = json!({"agent_name": "edge-1", "name": "ci", "api_key": STRONG, "api_key_type": "internal"});
    let created = created_key(&app, chosen).await;
    let github = json!({"agent_name": "edge-1", "name": "octo/repo", "api_key_type": "github"});
    created_key(&app, github).await;
    let verify = json!({"key": format!("AgentKey {STRONG}")});
    assert_eq!(
        app.post("/verify", ADMIN, verify.clone()).await.1["valid"],
        true
    );

    assert_eq!(
        app.delete("/agents/edge-1", ADMIN).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, verdict) = app.post("/verify", ADMIN, verify).await;
    assert_eq!(
        verdict,
        json!({"valid": false, "code": "not_found", "kind": "agentex_key"})
    );
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/agent_api_keys/{id}"), ADMIN).await.0,
        StatusCode::NOT_FOUND
    );
    agent(&app, "edge-1").await;
    let reuse = json!({"agent_name": "edge-1", "name": "ci", "api_key": STRONG});
    created_key(&app, reuse).await;
}

async fn an_id_of_another_kind_of_owner_is_no_agent_api_key(backend: Backend) {
    let app = TestApp::start(backend).await;
    let agent_id = agent(&app, "edge-1").await;
    let (_, keys) = app.get("/apikeys", ADMIN).await;
    let api_key_id = keys["items"][0]["id"].as_str().unwrap().to_owned();
    for id in [&agent_id, &api_key_id] {
        let expected = json!({"detail": format!("Item with id '{id}' does not exist.")});
        assert_eq!(
            app.delete(&format!("/agent_api_keys/{id}"), ADMIN).await,
            (StatusCode::NOT_FOUND, expected.clone())
        );
        assert_eq!(
            app.get(&format!("/agent_api_keys/{id}"), ADMIN).await,
            (StatusCode::NOT_FOUND, expected)
        );
    }
    assert_eq!(app.get("/agents/edge-1", ADMIN).await.0, StatusCode::OK);
    let (_, keys) = app.get("/apikeys", ADMIN).await;
    assert_eq!(keys["items"][0]["id"], json!(api_key_id));
    assert!(keys[0]["revoked_at"].is_null());
}

async fn the_routers_own_answers_are_in_fastapis_shape(backend: Backend) {
    let app = TestApp::start(backend).await;
    let response = app
        .request(Method::PUT, "/agent_api_keys", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("allow"));
    assert_eq!(
        read(response).await,
        (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"detail": "the method is not allowed on this route"})
        )
    );
    let huge = json!({"agent_name": "edge-1", "name": "a".repeat(70 * 1024)});
    assert_eq!(
        create_key(&app, huge).await,
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"detail": "request body is larger than 65536 bytes"})
        )
    );
}

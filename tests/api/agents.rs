//! hoop agents: `POST /agents` and its family, also under `/api`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends};

const NAME_RULE: &str = "name: it must contain between 3 and 254 alphanumeric characters, it may include (-), (_) or (.) characters";

on_both_backends!(
    create_returns_201_with_a_dsn_the_verifier_accepts,
    compat_base_path_api_is_the_same_operation,
    mode_defaults_to_standard_only_when_absent,
    invalid_names_are_422_with_hoops_message,
    missing_name_or_malformed_json_is_400,
    duplicate_name_is_409_but_other_orgs_may_reuse_it,
    dsn_is_built_from_the_configured_grpc_url,
    list_is_a_bare_array_without_keys,
    get_by_name_or_id_and_404_when_missing,
    delete_revokes_at_once_and_404_when_missing,
    rotate_shows_a_new_dsn_and_ends_the_old_key,
    rotate_with_grace_keeps_the_old_key_until_it_ends,
    rotate_refuses_bad_input,
    expiry_must_be_in_the_future_and_is_reported,
    concurrent_rotations_leave_exactly_one_valid_key,
    delete_also_ends_keys_still_in_their_grace_period,
    roles_limit_what_api_keys_may_do,
);

fn key_of(dsn: &str) -> String {
    let after_user = dsn.split_once("://").unwrap().1;
    after_user
        .split_once('@')
        .unwrap()
        .0
        .split_once(':')
        .unwrap()
        .1
        .to_owned()
}

async fn create_returns_201_with_a_dsn_the_verifier_accepts(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (status, body) = app.post("/agents", ADMIN, json!({"name": "default"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let token = body["token"].as_str().unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "only the token: {body}");
    let key = key_of(token);
    assert!(key.starts_with("xagt-"));
    assert_eq!(
        key.len(),
        5 + 43 + 6,
        "base64url of 32 bytes and a 6-character checksum"
    );
    assert_eq!(
        token,
        format!("grpc://default:{key}@127.0.0.1:8010?mode=standard")
    );

    let (status, verdict) = app.verify(ADMIN, token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verdict["valid"], true);
    assert_eq!(verdict["agent"]["name"], "default");
}

async fn compat_base_path_api_is_the_same_operation(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (status, body) = app
        .post("/api/agents", ADMIN, json!({"name": "via-api"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, listed) = app.get("/agents", ADMIN).await;
    assert_eq!(listed[0]["name"], "via-api");
    let (status, _) = app
        .post("/api/agents", ADMIN, json!({"name": "via-api"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, got) = app.get("/api/agents/via-api", ADMIN).await;
    assert_eq!((status, &got["name"]), (StatusCode::OK, &json!("via-api")));
    let (status, err) = app.get("/api/agents/nope", ADMIN).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err, json!({"message": "agent not found"}));
    assert_eq!(
        app.verify(ADMIN, body["token"].as_str().unwrap()).await.1["valid"],
        true
    );
}

async fn mode_defaults_to_standard_only_when_absent(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, body) = app
        .post("/agents", ADMIN, json!({"name": "std-agent"}))
        .await;
    assert!(body["token"].as_str().unwrap().ends_with("?mode=standard"));
    let (_, body) = app
        .post(
            "/agents",
            ADMIN,
            json!({"name": "emb-agent", "mode": "embedded"}),
        )
        .await;
    assert!(body["token"].as_str().unwrap().ends_with("?mode=embedded"));
    for mode in [json!(""), json!("bogus"), json!("Standard")] {
        let (status, body) = app
            .post("/agents", ADMIN, json!({"name": "x-agent", "mode": mode}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{mode}");
        assert_eq!(
            body,
            json!({"message": "mode: it must be one of standard or embedded"})
        );
    }
    let (_, listed) = app.get("/agents", ADMIN).await;
    let modes: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["mode"].clone())
        .collect();
    assert_eq!(modes, [json!("embedded"), json!("standard")]);
}

async fn invalid_names_are_422_with_hoops_message(backend: Backend) {
    let app = TestApp::start(backend).await;
    let too_long = "a".repeat(255);
    for name in [
        "ab",
        "a-b",
        "-abc",
        "abc-",
        "a--bc",
        "a b c",
        "ágent",
        "a/b/c",
        too_long.as_str(),
    ] {
        let (status, body) = app.post("/agents", ADMIN, json!({"name": name})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        assert_eq!(body, json!({"message": NAME_RULE}), "{name}");
    }
    let longest = "a".repeat(254);
    for name in ["abc", "a.b-c_d", longest.as_str()] {
        let (status, body) = app.post("/agents", ADMIN, json!({"name": name})).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
    }
}

async fn missing_name_or_malformed_json_is_400(backend: Backend) {
    let app = TestApp::start(backend).await;
    for body in [
        json!({}),
        json!({"name": ""}),
        json!({"name": null}),
        json!({"mode": "standard"}),
    ] {
        let (status, err) = app.post("/agents", ADMIN, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(err, json!({"message": "name: missing required field"}));
    }
    for raw in ["{\"name\":", "not json", "[1,2]", "{\"name\": 42}"] {
        let response = app
            .request(Method::POST, "/agents", Some(ADMIN))
            .body(raw)
            .send()
            .await
            .unwrap();
        let (status, err) = crate::common::read(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{raw}");
        assert!(!err["message"].as_str().unwrap().is_empty(), "{err}");
        assert_eq!(err.as_object().unwrap().len(), 1, "hoop's shape: {err}");
    }
    let (_, listed) = app.get("/agents", ADMIN).await;
    assert_eq!(listed, json!([]), "nothing was written");
}

async fn duplicate_name_is_409_but_other_orgs_may_reuse_it(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_agent("shared-name").await;
    let (status, body) = app
        .post(
            "/agents",
            ADMIN,
            json!({"name": "shared-name", "mode": "embedded"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body, json!({"message": "resource already exists"}));
    let (_, other_admin) = app.create_org("other").await;
    let (status, _) = app
        .post("/agents", &other_admin, json!({"name": "shared-name"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn dsn_is_built_from_the_configured_grpc_url(backend: Backend) {
    let cases = [
        (
            "grpcs://[2001:db8::7]",
            "grpcs://edge-1:{key}@[2001:db8::7]:443?mode=standard",
        ),
        (
            "grpc://gw.example.com",
            "grpc://edge-1:{key}@gw.example.com:8010?mode=standard",
        ),
        (
            "grpcs://gw.example.com:9443",
            "grpcs://edge-1:{key}@gw.example.com:9443?mode=standard",
        ),
    ];
    for (grpc_url, expected) in cases {
        let app = TestApp::start_with(backend, |config| {
            config.grpc_url = keygate::config::parse_grpc_url(grpc_url).unwrap();
        })
        .await;
        let dsn = app.create_agent("edge-1").await;
        assert_eq!(dsn, expected.replace("{key}", &key_of(&dsn)));
        assert_eq!(app.verify(ADMIN, &dsn).await.1["code"], "valid", "{dsn}");
        let (_, info) = app.get("/serverinfo", ADMIN).await;
        assert_eq!(info["grpc_url"], grpc_url);
    }
}

async fn list_is_a_bare_array_without_keys(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn_b = app.create_agent("bravo").await;
    let dsn_a = app.create_agent("alpha").await;
    let (status, listed) = app.get("/agents", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    let agents = listed.as_array().expect("a bare JSON array");
    assert_eq!(agents.len(), 2);
    assert_eq!(agents[0]["name"], "alpha");
    assert_eq!(agents[0]["mode"], "standard");
    let text = listed.to_string();
    for dsn in [&dsn_a, &dsn_b] {
        let key = key_of(dsn);
        assert!(!text.contains(&key), "a key leaked into the list");
        assert!(
            agents
                .iter()
                .any(|a| a["key"]["hint"] == format!("xagt-…{}", &key[key.len() - 4..]))
        );
    }
}

async fn get_by_name_or_id_and_404_when_missing(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_agent("finder").await;
    let (status, by_name) = app.get("/agents/finder", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    let id = by_name["id"].as_str().unwrap();
    let (status, by_id) = app.get(&format!("/agents/{id}"), ADMIN).await;
    assert_eq!((status, &by_id), (StatusCode::OK, &by_name));
    let (status, err) = app.get("/agents/missing-agent", ADMIN).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err, json!({"message": "agent not found"}));
    let (status, _) = app
        .get(&format!("/agents/{}", uuid::Uuid::new_v4()), ADMIN)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn delete_revokes_at_once_and_404_when_missing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("doomed").await;
    let (status, body) = app.delete("/agents/doomed", ADMIN).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (_, verdict) = app.verify(ADMIN, &dsn).await;
    assert_eq!(
        (verdict["valid"].clone(), verdict["code"].clone()),
        (json!(false), json!("not_found"))
    );
    let (status, err) = app.delete("/agents/doomed", ADMIN).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "hoop answers 204 here; keygate does not"
    );
    assert_eq!(err, json!({"message": "agent not found"}));
    let (status, _) = app.delete("/api/agents/never-was", ADMIN).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The name is free again.
    app.create_agent("doomed").await;
}

async fn rotate_shows_a_new_dsn_and_ends_the_old_key(backend: Backend) {
    let app = TestApp::start(backend).await;
    let old = app.create_agent("rotor").await;
    let (status, body) = app.post("/agents/rotor/rotate", ADMIN, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    let new = body["token"].as_str().unwrap();
    assert_ne!(key_of(new), key_of(&old));
    assert!(new.starts_with("grpc://rotor:xagt-"));
    assert_eq!(app.verify(ADMIN, new).await.1["code"], "valid");
    assert_eq!(app.verify(ADMIN, &old).await.1["code"], "revoked");
    // An empty body is a rotation without grace, under /api too.
    let response = app
        .request(Method::POST, "/api/agents/rotor/rotate", Some(ADMIN))
        .send()
        .await
        .unwrap();
    let (status, body) = crate::common::read(response).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(app.verify(ADMIN, new).await.1["code"], "revoked");
    assert_eq!(
        app.verify(ADMIN, body["token"].as_str().unwrap()).await.1["code"],
        "valid"
    );
    let (_, got) = app.get("/agents/rotor", ADMIN).await;
    let newest = key_of(body["token"].as_str().unwrap());
    assert!(
        got["key"]["hint"]
            .as_str()
            .unwrap()
            .ends_with(&newest[newest.len() - 4..])
    );
}

async fn rotate_with_grace_keeps_the_old_key_until_it_ends(backend: Backend) {
    let app = TestApp::start(backend).await;
    let old = app.create_agent("graceful").await;
    let (status, body) = app
        .post(
            "/agents/graceful/rotate",
            ADMIN,
            json!({"grace_period_seconds": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let new = body["token"].as_str().unwrap();
    let (_, verdict) = app.verify(ADMIN, &old).await;
    assert_eq!(verdict["code"], "valid", "within the grace period");
    assert!(verdict["expires_at"].is_string());
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(app.verify(ADMIN, &old).await.1["code"], "expired");
    assert_eq!(app.verify(ADMIN, new).await.1["code"], "valid");
}

async fn rotate_refuses_bad_input(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_agent("stubborn").await;
    let (status, err) = app.post("/agents/nobody/rotate", ADMIN, json!({})).await;
    assert_eq!(
        (status, err),
        (StatusCode::NOT_FOUND, json!({"message": "agent not found"}))
    );
    let (status, err) = app
        .post(
            "/agents/stubborn/rotate",
            ADMIN,
            json!({"grace_period_seconds": 99_999_999}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("grace_period_seconds:")
    );
    let (status, _) = app
        .post(
            "/agents/stubborn/rotate",
            ADMIN,
            json!({"grace_period_seconds": -1}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "well-formed, but out of range"
    );
    let (status, _) = app
        .post("/agents/stubborn/rotate", ADMIN, json!({"grace": 5}))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused"
    );
}

async fn expiry_must_be_in_the_future_and_is_reported(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (status, err) = app
        .post(
            "/agents",
            ADMIN,
            json!({"name": "late", "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        err,
        json!({"message": "expires_at: it must be in the future"})
    );
    let (status, body) = app
        .post(
            "/agents",
            ADMIN,
            json!({"name": "timed", "expires_at": "2999-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, verdict) = app.verify(ADMIN, body["token"].as_str().unwrap()).await;
    assert_eq!(verdict["expires_at"], "2999-01-01T00:00:00Z");
    let (_, got) = app.get("/agents/timed", ADMIN).await;
    assert_eq!(got["key"]["expires_at"], "2999-01-01T00:00:00Z");
}

async fn roles_limit_what_api_keys_may_do(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_agent("guarded").await;
    let member = app.create_api_key("member").await;
    let auditor = app.create_api_key("auditor").await;
    for token in [&member, &auditor] {
        let (status, _) = app.get("/agents", token).await;
        assert_eq!(status, StatusCode::OK);
        let (status, err) = app.post("/agents", token, json!({"name": "sneaky"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(
            err,
            json!({"message": "the API key's role does not allow this"})
        );
        assert_eq!(
            app.delete("/agents/guarded", token).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.post("/agents/guarded/rotate", token, json!({})).await.0,
            StatusCode::FORBIDDEN
        );
    }
    let response = app
        .request(Method::POST, "/agents", None)
        .json(&json!({"name": "anon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"keygate\""
    );
    let (status, err) = crate::common::read(response).await;
    assert_eq!(
        (status, err),
        (
            StatusCode::UNAUTHORIZED,
            json!({"message": "missing or invalid credentials"})
        )
    );
}

async fn concurrent_rotations_leave_exactly_one_valid_key(backend: Backend) {
    let app = TestApp::start(backend).await;
    let original = app.create_agent("spinning").await;
    let attempts = (0..16).map(|_| app.post("/agents/spinning/rotate", ADMIN, json!({})));
    let results = futures::future::join_all(attempts).await;
    let issued: Vec<&str> = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, body)| body["token"].as_str().unwrap())
        .collect();
    assert!(!issued.is_empty());
    for (status, body) in &results {
        assert!(
            *status == StatusCode::CREATED || *status == StatusCode::CONFLICT,
            "{status}: {body}"
        );
    }
    let mut valid = 0;
    for dsn in issued.iter().copied().chain([original.as_str()]) {
        if app.verify(ADMIN, dsn).await.1["valid"] == true {
            valid += 1;
        }
    }
    assert_eq!(valid, 1, "one current key, whatever the interleaving");
}

async fn delete_also_ends_keys_still_in_their_grace_period(backend: Backend) {
    let app = TestApp::start(backend).await;
    let old = app.create_agent("leaving").await;
    let (_, rotated) = app
        .post(
            "/agents/leaving/rotate",
            ADMIN,
            json!({"grace_period_seconds": 3600}),
        )
        .await;
    assert_eq!(app.verify(ADMIN, &old).await.1["code"], "valid");
    assert_eq!(
        app.delete("/agents/leaving", ADMIN).await.0,
        StatusCode::NO_CONTENT
    );
    for dsn in [old.as_str(), rotated["token"].as_str().unwrap()] {
        assert_eq!(app.verify(ADMIN, dsn).await.1["code"], "not_found");
    }
}

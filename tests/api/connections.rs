//! hoop connections (`/connections`, also under `/api`) and the gateway listeners credentials
//! point at.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends, read};

on_both_backends!(
    create_returns_201_in_hoops_shape_also_under_api,
    fields_are_checked_with_hoops_name_rule,
    an_unknown_agent_is_refused_naming_agent_id,
    names_are_unique_per_organization,
    list_is_a_bare_array_and_get_is_404_when_missing,
    put_replaces_the_connection_and_refuses_a_rename,
    delete_is_404_when_missing,
    deleting_its_agent_leaves_the_connection_unserved,
    members_may_read_but_not_change_connections,
    listeners_default_to_the_configuration,
    operators_set_and_reset_listeners,
    the_upstream_secret_is_kept_sealed_and_shown_only_to_admins,
);

/// A PUT as `token`.
pub async fn put(app: &TestApp, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    read(
        app.request(Method::PUT, path, Some(token))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Creates a connection served by agent `default` (created on first use) as the bootstrap
/// admin; `extra` adds or replaces fields of the body.
pub async fn create_connection(app: &TestApp, name: &str, subtype: &str, extra: Value) -> Value {
    if app.get("/agents/default", ADMIN).await.0 == StatusCode::NOT_FOUND {
        app.create_agent("default").await;
    }
    let connection_type = match subtype {
        "postgres" | "mysql" | "mssql" | "mongodb" => "database",
        "ssh" | "rdp" | "tcp" | "httpproxy" | "kubernetes" => "application",
        _ => "custom",
    };
    let mut body = json!({
        "name": name, "type": connection_type, "subtype": subtype, "agent_id": "default",
    });
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    let (status, created) = app.post("/connections", ADMIN, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn create_returns_201_in_hoops_shape_also_under_api(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_agent("edge-agent").await;
    let (_, agent) = app.get("/agents/edge-agent", ADMIN).await;
    let body = json!({
        "name": "prod-postgres", "type": "database", "subtype": "postgres",
        "agent_id": agent["id"], "attributes": ["env:prod", "team:backend"],
        "database_name": "app",
        // hoop's clients send fields keygate does not model, which are ignored, and the
        // upstream's credentials, which are kept (sealed) and shown back to admins.
        "secret": {"envvar:HOST": "ZGI="}, "access_mode_runbooks": "enabled",
    });
    let (status, created) = app.post("/api/connections", ADMIN, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let fields: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "id",
            "name",
            "type",
            "subtype",
            "agent_id",
            "attributes",
            "database_name",
            "secret",
            "created_at",
            "updated_at"
        ]
    );
    assert_eq!(created["secret"], json!({"envvar:HOST": "ZGI="}));
    assert_eq!(
        (
            &created["name"],
            &created["type"],
            &created["subtype"],
            &created["agent_id"]
        ),
        (
            &json!("prod-postgres"),
            &json!("database"),
            &json!("postgres"),
            &agent["id"]
        )
    );
    assert_eq!(created["attributes"], json!(["env:prod", "team:backend"]));
    assert_eq!(created["database_name"], "app");
    assert_eq!(created["created_at"], created["updated_at"]);
    let (status, got) = app.get("/connections/prod-postgres", ADMIN).await;
    assert_eq!((status, &got), (StatusCode::OK, &created));
}

async fn fields_are_checked_with_hoops_name_rule(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_agent("default").await;
    let valid =
        json!({"name": "pg-1", "type": "database", "subtype": "postgres", "agent_id": "default"});
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        body
    };
    let refused = [
        (
            with("name", json!("ab")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name: it must contain between 3 and 254 alphanumeric characters, it may include (-), (_) or (.) characters",
        ),
        (
            with("type", json!("queue")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "type: it must be one of database, application or custom",
        ),
        (
            with("subtype", json!("Post gres")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "subtype: it must be 1 to 64 lowercase letters or digits, with single hyphens between them",
        ),
        (
            with("attributes", json!(["env:prod", "env:prod"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "attributes.1: it is listed twice",
        ),
        (
            with("database_name", json!("")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "database_name: it must contain between 1 and 128 characters",
        ),
        (
            with("name", json!("")),
            StatusCode::BAD_REQUEST,
            "name: missing required field",
        ),
        (
            with("subtype", Value::Null),
            StatusCode::BAD_REQUEST,
            "subtype: missing required field",
        ),
        (
            with("attributes", json!("env:prod")),
            StatusCode::BAD_REQUEST,
            "attributes: expected a sequence",
        ),
    ];
    for (body, status, message) in refused {
        let (got, err) = app.post("/connections", ADMIN, body.clone()).await;
        assert_eq!(got, status, "{body}: {err}");
        assert!(
            err["message"].as_str().unwrap().starts_with(message),
            "{body}: {err}"
        );
        assert_eq!(err.as_object().unwrap().len(), 1, "hoop's shape: {err}");
    }
    let (status, err) = read(
        app.request(Method::POST, "/connections", Some(ADMIN))
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(app.get("/connections", ADMIN).await.1, json!([]));
}

async fn an_unknown_agent_is_refused_naming_agent_id(backend: Backend) {
    let app = TestApp::start(backend).await;
    for agent in [json!("nobody"), json!(uuid::Uuid::now_v7())] {
        let body =
            json!({"name": "pg-1", "type": "database", "subtype": "postgres", "agent_id": agent});
        let (status, err) = app.post("/connections", ADMIN, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err, json!({"message": "agent_id: there is no such agent"}));
    }
    // Another organization's agent is no agent of this one.
    let (_, org_admin) = app.create_org("other-org").await;
    let (_, theirs) = app
        .post("/agents", &org_admin, json!({"name": "their-agent"}))
        .await;
    assert!(theirs["token"].is_string());
    let body = json!({"name": "pg-1", "type": "database", "subtype": "postgres", "agent_id": "their-agent"});
    assert_eq!(
        app.post("/connections", ADMIN, body).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

async fn names_are_unique_per_organization(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "shared-name", "ssh", json!({})).await;
    let body = json!({"name": "shared-name", "type": "application", "subtype": "rdp", "agent_id": "default"});
    let (status, err) = app.post("/connections", ADMIN, body.clone()).await;
    assert_eq!(
        (status, err),
        (
            StatusCode::CONFLICT,
            json!({"message": "resource already exists"})
        )
    );
    let (_, org_admin) = app.create_org("other-org").await;
    app.post("/agents", &org_admin, json!({"name": "default"}))
        .await;
    let (status, _) = app.post("/connections", &org_admin, body).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "another organization may reuse it"
    );
    let (_, ours) = app.get("/connections", ADMIN).await;
    assert_eq!(ours.as_array().unwrap().len(), 1);
}

async fn list_is_a_bare_array_and_get_is_404_when_missing(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "zeta-ssh", "ssh", json!({})).await;
    create_connection(&app, "alpha-pg", "postgres", json!({"attributes": ["a:1"]})).await;
    let (status, listed) = app.get("/connections", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha-pg", "zeta-ssh"]);
    assert_eq!(listed[0]["attributes"], json!(["a:1"]));
    assert_eq!(listed[1]["attributes"], json!([]));
    for path in ["/connections/nope", "/api/connections/nope"] {
        let (status, err) = app.get(path, ADMIN).await;
        assert_eq!(
            (status, err),
            (
                StatusCode::NOT_FOUND,
                json!({"message": "connection not found"})
            )
        );
    }
}

async fn put_replaces_the_connection_and_refuses_a_rename(backend: Backend) {
    let app = TestApp::start(backend).await;
    let created = create_connection(
        &app,
        "app-db",
        "postgres",
        json!({"attributes": ["x:1"], "database_name": "one"}),
    )
    .await;
    app.create_agent("second-agent").await;
    let body = json!({
        "type": "database", "subtype": "mysql", "agent_id": "second-agent",
        "attributes": ["y:2", "x:1"], "database_name": "two",
    });
    let (status, updated) = put(&app, "/connections/app-db", ADMIN, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let (_, agent) = app.get("/agents/second-agent", ADMIN).await;
    assert_eq!(updated["agent_id"], agent["id"]);
    assert_eq!(updated["subtype"], "mysql");
    assert_eq!(updated["attributes"], json!(["y:2", "x:1"]));
    assert_eq!(updated["database_name"], "two");
    assert_eq!(
        (&updated["id"], &updated["created_at"]),
        (&created["id"], &created["created_at"])
    );
    assert_ne!(updated["updated_at"], created["updated_at"]);
    assert_eq!(app.get("/connections/app-db", ADMIN).await.1, updated);

    let mut renamed = body.clone();
    renamed["name"] = json!("other-db");
    let (status, err) = put(&app, "/api/connections/app-db", ADMIN, renamed).await;
    assert_eq!(
        (status, err),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "name: a connection cannot be renamed"})
        )
    );
    let (status, err) = put(&app, "/api/connections/missing", ADMIN, body).await;
    assert_eq!(
        (status, err),
        (
            StatusCode::NOT_FOUND,
            json!({"message": "connection not found"})
        )
    );
}

async fn delete_is_404_when_missing(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "doomed", "tcp", json!({})).await;
    assert_eq!(
        app.delete("/api/connections/doomed", ADMIN).await.0,
        StatusCode::NO_CONTENT
    );
    for path in ["/connections/doomed", "/api/connections/doomed"] {
        let (status, err) = app.delete(path, ADMIN).await;
        assert_eq!(
            (status, err),
            (
                StatusCode::NOT_FOUND,
                json!({"message": "connection not found"})
            )
        );
    }
    assert_eq!(
        app.get("/connections/doomed", ADMIN).await.0,
        StatusCode::NOT_FOUND
    );
}

async fn deleting_its_agent_leaves_the_connection_unserved(backend: Backend) {
    let app = TestApp::start(backend).await;
    let created = create_connection(&app, "orphan-pg", "postgres", json!({})).await;
    assert!(created["agent_id"].is_string());
    assert_eq!(
        app.delete("/agents/default", ADMIN).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, got) = app.get("/connections/orphan-pg", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["agent_id"], Value::Null);
}

async fn members_may_read_but_not_change_connections(backend: Backend) {
    let app = TestApp::start(backend).await;
    create_connection(&app, "guarded", "ssh", json!({})).await;
    let member = app.create_api_key("member").await;
    assert_eq!(app.get("/connections", &member).await.0, StatusCode::OK);
    assert_eq!(
        app.get("/connections/guarded", &member).await.0,
        StatusCode::OK
    );
    let body =
        json!({"name": "sneaky", "type": "application", "subtype": "ssh", "agent_id": "default"});
    assert_eq!(
        app.post("/connections", &member, body.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put(&app, "/connections/guarded", &member, body).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete("/connections/guarded", &member).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get_anonymous("/api/connections").await.0,
        StatusCode::UNAUTHORIZED
    );
}

fn listener<'a>(listeners: &'a Value, protocol: &str) -> &'a Value {
    listeners
        .as_array()
        .unwrap()
        .iter()
        .find(|listener| listener["protocol"] == protocol)
        .unwrap()
}

async fn listeners_default_to_the_configuration(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (status, listeners) = app.get("/gateway/listeners", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    let defaults: Vec<(String, u64)> = listeners
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(
                (&l["host"], &l["tls"], &l["source"]),
                (&json!("127.0.0.1"), &json!(false), &json!("configuration"))
            );
            (
                l["protocol"].as_str().unwrap().to_owned(),
                l["port"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("postgres", 15432),
        ("mysql", 13306),
        ("mssql", 11433),
        ("mongodb", 17017),
        ("ssh", 12222),
        ("rdp", 13389),
        ("tcp", 19000),
        ("httpproxy", 18888),
        ("api", 8009),
    ];
    assert_eq!(
        defaults,
        expected
            .iter()
            .map(|(p, port)| (p.to_string(), *port))
            .collect::<Vec<_>>()
    );

    let app = TestApp::start_with(backend, |config| {
        config.gateway_host = "gw.example.com".into();
        config.gateway_listeners = vec![
            "postgres=5432".parse().unwrap(),
            "ssh=[2001:db8::7]:22".parse().unwrap(),
        ];
        config.gateway_tls = vec!["postgres".parse().unwrap()];
    })
    .await;
    let (_, listeners) = app.get("/api/gateway/listeners", ADMIN).await;
    let postgres = listener(&listeners, "postgres");
    assert_eq!(
        (&postgres["host"], &postgres["port"], &postgres["tls"]),
        (&json!("gw.example.com"), &json!(5432), &json!(true))
    );
    let ssh = listener(&listeners, "ssh");
    assert_eq!(
        (&ssh["host"], &ssh["port"]),
        (&json!("2001:db8::7"), &json!(22))
    );
    assert_eq!(listener(&listeners, "mysql")["host"], "gw.example.com");
}

async fn operators_set_and_reset_listeners(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = json!({"host": "PG.Example.com", "port": 6432, "tls": true});
    let (status, set) = put(&app, "/gateway/listeners/postgres", ADMIN, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(
        set,
        json!({"protocol": "postgres", "host": "pg.example.com", "port": 6432, "tls": true, "source": "api"})
    );
    let (_, listeners) = app.get("/gateway/listeners", ADMIN).await;
    assert_eq!(listener(&listeners, "postgres"), &set);

    // Only the operators (admins of `default`) may change where the gateway listens.
    let (_, org_admin) = app.create_org("tenant").await;
    let member = app.create_api_key("member").await;
    for token in [org_admin.as_str(), member.as_str()] {
        assert_eq!(
            put(&app, "/gateway/listeners/ssh", token, body.clone())
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.delete("/gateway/listeners/postgres", token).await.0,
            StatusCode::FORBIDDEN
        );
    }
    let (status, listed) = app.get("/gateway/listeners", &org_admin).await;
    assert_eq!(status, StatusCode::OK, "anyone may read them");
    assert_eq!(listener(&listed, "postgres")["source"], "api");

    for (body, message) in [
        (
            json!({"host": "bad host", "port": 1}),
            "host: the host must be a DNS name or an IP address",
        ),
        (
            json!({"host": "gw", "port": 0}),
            "port: it must be between 1 and 65535",
        ),
        (json!({"host": "gw", "port": 70000}), "port: expected u16"),
        (json!({"port": 1}), "host: missing required field"),
        (
            json!({"host": "gw", "port": 1, "scheme": "x"}),
            "unknown field",
        ),
    ] {
        let (status, err) = put(&app, "/gateway/listeners/ssh", ADMIN, body.clone()).await;
        assert!(status.is_client_error(), "{body}: {status}");
        assert!(
            err["message"].as_str().unwrap().starts_with(message),
            "{body}: {err}"
        );
    }
    let (status, err) = put(&app, "/gateway/listeners/smtp", ADMIN, body).await;
    assert_eq!(
        (status, err),
        (
            StatusCode::NOT_FOUND,
            json!({"message": "gateway listener not found"})
        )
    );

    assert_eq!(
        app.delete("/api/gateway/listeners/postgres", ADMIN).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, listeners) = app.get("/gateway/listeners", ADMIN).await;
    assert_eq!(
        listener(&listeners, "postgres"),
        &json!({"protocol": "postgres", "host": "127.0.0.1", "port": 15432, "tls": false, "source": "configuration"})
    );
}

/// What hoop's clients send as a connection's `secret` (the upstream's credentials for the
/// gateway's agent) is kept, sealed under the server key: shown back to admins on the
/// connection itself, never to others nor in lists, never stored or logged in plain text.
async fn the_upstream_secret_is_kept_sealed_and_shown_only_to_admins(backend: Backend) {
    let app = TestApp::start(backend).await;
    let password = "cGFzc3dvcmQtb2YtdGhlLXVwc3RyZWFtLWRi";
    crate::common::forbid_in_logs(password);
    let secret = json!({"envvar:HOST": "MTAuMC4wLjU=", "envvar:PASS": password});
    let created =
        create_connection(&app, "upstream-pg", "postgres", json!({"secret": secret})).await;
    assert_eq!(created["secret"], secret);
    let (_, read_back) = app.get("/connections/upstream-pg", ADMIN).await;
    assert_eq!(read_back["secret"], secret, "admins read it back");
    let (_, listed) = app.get("/connections", ADMIN).await;
    assert!(
        listed[0].get("secret").is_none(),
        "never in lists: {listed}"
    );
    let member = app.create_api_key("member").await;
    let (_, as_member) = app.get("/connections/upstream-pg", &member).await;
    assert!(as_member.get("secret").is_none(), "{as_member}");

    // Stored sealed: the plain value is nowhere in the row.
    let mut db = crate::common::Database::open(&app).await;
    let sealed = db
        .count("SELECT COUNT(*) FROM connections WHERE sealed_secret IS NOT NULL AND sealed_key_id IS NOT NULL")
        .await;
    assert_eq!(sealed, 1);
    let stored = db
        .bytes("SELECT sealed_secret FROM connections WHERE name = 'upstream-pg'")
        .await;
    assert!(
        !stored
            .windows(password.len())
            .any(|window| window == password.as_bytes()),
        "the row holds the password in plain text"
    );

    // An update without `secret` keeps it; one with `secret` replaces it.
    let body = json!({"type": "database", "subtype": "postgres", "agent_id": "default"});
    let (status, kept) = put(&app, "/connections/upstream-pg", ADMIN, body.clone()).await;
    assert_eq!((status, &kept["secret"]), (StatusCode::OK, &secret));
    let replaced_secret = json!({"envvar:PASS": "bmV3LXBhc3N3b3Jk"});
    let mut replace = body;
    replace["secret"] = replaced_secret.clone();
    let (_, replaced) = put(&app, "/connections/upstream-pg", ADMIN, replace).await;
    assert_eq!(replaced["secret"], replaced_secret);
    let (_, read_back) = app.get("/connections/upstream-pg", ADMIN).await;
    assert_eq!(read_back["secret"], replaced_secret);

    // A value that is not text is refused naming the map, never the entry.
    let bad = json!({"name": "bad-pg", "type": "database", "subtype": "postgres",
        "agent_id": "default", "secret": {"envvar:PASS": 5}});
    let (status, refused) = app.post("/connections", ADMIN, bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("secret"),
        "{refused}"
    );
    assert!(!refused.to_string().contains("envvar:PASS"), "{refused}");
}

//! Organizations: operators create them, and nothing of one is visible or changeable from another.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{BOOTSTRAP_TOKEN as OPERATOR, Backend, TestApp, on_both_backends};

on_both_backends!(
    operators_create_organizations_with_a_first_admin_key,
    duplicate_organization_names_are_409,
    only_operators_manage_organizations,
    organizations_are_isolated,
);

async fn operators_create_organizations_with_a_first_admin_key(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (status, created) = app.post("/orgs", OPERATOR, json!({"name": "acme"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["org"]["name"], "acme");
    assert_eq!(created["api_key"]["role"], "admin");
    let key = created["api_key"]["key"].as_str().unwrap();
    assert_eq!(
        app.post("/agents", key, json!({"name": "acme-agent"}))
            .await
            .0,
        StatusCode::CREATED
    );
    let (_, orgs) = app.get("/orgs", OPERATOR).await;
    let names: Vec<_> = orgs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme", "default"], "by name");
}

async fn duplicate_organization_names_are_409(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_org("twice").await;
    let (status, err) = app.post("/orgs", OPERATOR, json!({"name": "twice"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        err,
        json!({"code": "conflict", "message": "resource already exists"})
    );
    let (status, _) = app
        .post("/orgs", OPERATOR, json!({"name": "default"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

async fn only_operators_manage_organizations(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, tenant_admin) = app.create_org("tenant").await;
    let member_of_default = app.create_api_key("member").await;
    for token in [&tenant_admin, &member_of_default] {
        assert_eq!(
            app.post("/orgs", token, json!({"name": "mine"})).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(app.get("/orgs", token).await.0, StatusCode::FORBIDDEN);
    }
    assert_eq!(app.get("/orgs", "").await.0, StatusCode::UNAUTHORIZED);
}

async fn organizations_are_isolated(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("alpha-agent").await;
    let (_, alpha_agent) = app.get("/agents/alpha-agent", OPERATOR).await;
    let id = alpha_agent["id"].as_str().unwrap();
    let (_, other) = app.create_org("beta").await;

    assert_eq!(app.get("/agents", &other).await.1, json!([]));
    for path in ["/agents/alpha-agent".to_owned(), format!("/agents/{id}")] {
        assert_eq!(
            app.get(&path, &other).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
        assert_eq!(
            app.delete(&path, &other).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
        assert_eq!(
            app.post(&format!("{path}/rotate"), &other, json!({}))
                .await
                .0,
            StatusCode::NOT_FOUND
        );
    }
    let (_, their_keys) = app.get("/apikeys", &other).await;
    assert_eq!(
        their_keys["items"].as_array().unwrap().len(),
        1,
        "only beta's own admin key"
    );
    assert_eq!(app.verify(&other, &dsn).await.1["code"], "not_found");
    // Nothing was changed from the other organization.
    assert_eq!(app.verify(OPERATOR, &dsn).await.1["code"], "valid");
}

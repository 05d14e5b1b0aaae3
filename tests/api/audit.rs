//! The audit trail (`GET /audit`): every family's changes with who, what, which resource and
//! which request; refused changes leave no trace of success; refused credentials are recorded;
//! filters and cursor pages; who may read it; retention; and never a secret.

use std::collections::HashSet;
use std::time::Duration;

use keygate::storage;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends};
use crate::connections::{create_connection, put};
use crate::ops_manager::{BASE, DigestClient, key_pair, org_id, send};

on_both_backends!(
    every_familys_changes_are_recorded_with_actor_resource_and_request_id,
    a_refused_change_leaves_no_success_behind,
    refused_credentials_are_recorded_for_the_operators,
    refused_credentials_past_the_limit_are_not_recorded,
    filters_select_and_cursor_pages_cover_every_event_once_while_new_ones_arrive,
    auditors_read_members_are_refused_and_other_orgs_stay_invisible,
    events_past_retention_are_purged_in_batches,
    no_secret_reaches_the_audit_trail,
);

/// Every event `query` selects, page by page as `token`.
async fn all_events(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/audit?limit=50&{query}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = app.get(&path, token).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        events.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return events,
        }
    }
}

fn actions(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["action"].as_str().unwrap())
        .collect()
}

/// The id of the bootstrap admin key.
async fn admin_key_id(app: &TestApp) -> String {
    let (_, keys) = app.get("/apikeys", ADMIN).await;
    let bootstrap = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["name"] == "bootstrap")
        .unwrap();
    bootstrap["id"].as_str().unwrap().to_owned()
}

/// A request as `token` answered `expected`; its body and its `x-request-id`.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    expected: StatusCode,
) -> (Value, String) {
    let request = app.request(method, path, Some(ADMIN));
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.send().await.unwrap();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, expected, "{path}: {text}");
    (
        serde_json::from_str(&text).unwrap_or(Value::Null),
        request_id,
    )
}

/// Makes a change of every kind, in every family; every answer that minted a secret.
async fn change_everything(app: &TestApp) -> Vec<Value> {
    use Method as M;
    use StatusCode as S;
    let mut minted = Vec::new();

    // Native: API keys and organizations.
    let (key, _) = call(
        app,
        M::POST,
        "/apikeys",
        Some(json!({"name": "ci", "role": "member"})),
        S::CREATED,
    )
    .await;
    let key_id = key["id"].as_str().unwrap().to_owned();
    minted.push(key);
    minted.push(
        call(
            app,
            M::POST,
            &format!("/apikeys/{key_id}/rotate"),
            None,
            S::CREATED,
        )
        .await
        .0,
    );
    call(
        app,
        M::DELETE,
        &format!("/apikeys/{key_id}"),
        None,
        S::NO_CONTENT,
    )
    .await;
    minted.push(
        call(
            app,
            M::POST,
            "/orgs",
            Some(json!({"name": "acme"})),
            S::CREATED,
        )
        .await
        .0,
    );

    // hoop: agents, connections, listeners, machine identities.
    minted.push(
        call(
            app,
            M::POST,
            "/agents",
            Some(json!({"name": "edge-1"})),
            S::CREATED,
        )
        .await
        .0,
    );
    minted.push(
        call(app, M::POST, "/agents/edge-1/rotate", None, S::CREATED)
            .await
            .0,
    );
    call(app, M::DELETE, "/agents/edge-1", None, S::NO_CONTENT).await;
    create_connection(app, "prod-pg", "postgres", json!({})).await;
    let update = json!({"type": "database", "subtype": "postgres", "agent_id": "default", "attributes": ["env:prod"]});
    assert_eq!(
        put(app, "/connections/prod-pg", ADMIN, update).await.0,
        S::OK
    );
    let listener = json!({"host": "pg.example.com", "port": 6432});
    assert_eq!(
        put(app, "/gateway/listeners/postgres", ADMIN, listener)
            .await
            .0,
        S::OK
    );
    call(
        app,
        M::DELETE,
        "/gateway/listeners/postgres",
        None,
        S::NO_CONTENT,
    )
    .await;
    let identity = json!({"name": "robot", "connection_names": ["prod-pg"]});
    minted.push(
        call(
            app,
            M::POST,
            "/machineidentities",
            Some(identity),
            S::CREATED,
        )
        .await
        .0,
    );
    let (status, updated) = put(
        app,
        "/machineidentities/robot",
        ADMIN,
        json!({"description": "ci robot"}),
    )
    .await;
    assert_eq!(status, S::OK, "{updated}");
    minted.push(updated);
    minted.push(
        call(
            app,
            M::POST,
            "/machineidentities/robot/credentials/prod-pg/rotate",
            None,
            S::CREATED,
        )
        .await
        .0,
    );
    call(
        app,
        M::DELETE,
        "/machineidentities/robot",
        None,
        S::NO_CONTENT,
    )
    .await;
    call(app, M::DELETE, "/connections/prod-pg", None, S::NO_CONTENT).await;

    // Agentex.
    let (agentex, _) = call(
        app,
        M::POST,
        "/agent_api_keys",
        Some(json!({"agent_name": "default", "name": "ext"})),
        S::OK,
    )
    .await;
    let agentex_id = agentex["id"].as_str().unwrap().to_owned();
    minted.push(agentex);
    call(
        app,
        M::DELETE,
        &format!("/agent_api_keys/{agentex_id}"),
        None,
        S::OK,
    )
    .await;

    // Ops Manager, the project made by a key pair over Digest.
    let org = org_id(app, ADMIN).await;
    let owner = key_pair(app, json!(["ORG_OWNER"])).await;
    minted.push(json!({"privateKey": owner.private}));
    let digest = DigestClient::new(app, &owner);
    let (status, project) = digest
        .send(
            M::POST,
            &format!("{BASE}/groups"),
            Some(json!({"name": "prod"})),
        )
        .await;
    assert_eq!(status, S::CREATED, "{project}");
    let project = project["id"].as_str().unwrap().to_owned();
    let agent_keys = format!("{BASE}/groups/{project}/agentapikeys");
    let (status, agent_key) = send(
        app,
        M::POST,
        &agent_keys,
        Some(ADMIN),
        Some(json!({"desc": "agent"})),
    )
    .await;
    assert_eq!(status, S::OK, "{agent_key}");
    let agent_key_id = agent_key["_id"].as_str().unwrap().to_owned();
    minted.push(agent_key);
    call(
        app,
        M::DELETE,
        &format!("{agent_keys}/{agent_key_id}"),
        None,
        S::OK,
    )
    .await;
    let other = key_pair(app, json!(["ORG_MEMBER"])).await;
    minted.push(json!({"privateKey": other.private}));
    let one = format!("{BASE}/orgs/{org}/apiKeys/{}", other.id);
    let roles = json!({"roles": ["GROUP_READ_ONLY"]});
    let assign = format!("{BASE}/groups/{project}/apiKeys/{}", other.id);
    assert_eq!(
        send(app, M::PATCH, &assign, Some(ADMIN), Some(roles))
            .await
            .0,
        S::OK
    );
    assert_eq!(
        send(
            app,
            M::PATCH,
            &one,
            Some(ADMIN),
            Some(json!({"desc": "renamed"}))
        )
        .await
        .0,
        S::OK
    );
    let list = format!("{one}/accessList");
    assert_eq!(
        send(
            app,
            M::POST,
            &list,
            Some(ADMIN),
            Some(json!([{"ipAddress": "192.0.2.7"}]))
        )
        .await
        .0,
        S::CREATED
    );
    // Ops Manager answers a delete 200 with `{}`.
    call(app, M::DELETE, &format!("{list}/192.0.2.7"), None, S::OK).await;
    call(app, M::DELETE, &one, None, S::OK).await;
    call(
        app,
        M::DELETE,
        &format!("{BASE}/groups/{project}"),
        None,
        S::OK,
    )
    .await;
    minted
}

async fn every_familys_changes_are_recorded_with_actor_resource_and_request_id(backend: Backend) {
    let app = TestApp::start(backend).await;
    change_everything(&app).await;
    let (agent, request_id) = call(
        &app,
        Method::POST,
        "/agents",
        Some(json!({"name": "traced"})),
        StatusCode::CREATED,
    )
    .await;
    assert!(agent["token"].is_string());

    let events = all_events(&app, ADMIN, "").await;
    let recorded: HashSet<&str> = actions(&events).into_iter().collect();
    for action in [
        "api_key.created",
        "api_key.rotated",
        "api_key.revoked",
        "org.created",
        "agent.created",
        "agent.rotated",
        "agent.deleted",
        "connection.created",
        "connection.updated",
        "connection.deleted",
        "gateway_listener.set",
        "gateway_listener.reset",
        "machine_identity.created",
        "machine_identity.updated",
        "machine_identity.credential_rotated",
        "machine_identity.deleted",
        "agent_api_key.created",
        "agent_api_key.deleted",
        "project.created",
        "project_agent_key.created",
        "project_agent_key.deleted",
        "programmatic_key.created",
        "programmatic_key.project_roles_set",
        "programmatic_key.updated",
        "programmatic_key.access_list_extended",
        "programmatic_key.access_list_entry_removed",
        "programmatic_key.deleted",
        "project.deleted",
    ] {
        assert!(
            recorded.contains(action),
            "{action} missing from {recorded:?}"
        );
    }
    assert!(events.iter().all(|event| event["outcome"] == "success"));

    let traced: Vec<&Value> = events
        .iter()
        .filter(|event| event["request_id"] == request_id.as_str())
        .collect();
    assert_eq!(traced.len(), 1, "one change in that request");
    let (_, found) = app.get("/agents/traced", ADMIN).await;
    let event = traced[0];
    assert_eq!(event["action"], "agent.created");
    assert_eq!(event["resource_kind"], "agent");
    assert_eq!(event["resource_id"], found["id"]);
    assert_eq!(event["actor_kind"], "api_key");
    assert_eq!(event["actor"], admin_key_id(&app).await.as_str());
    assert_eq!(event["client"], "127.0.0.1");

    let by_key_pair = events
        .iter()
        .find(|event| event["action"] == "project.created")
        .unwrap();
    assert_eq!(by_key_pair["actor_kind"], "key_pair");
    assert!(
        by_key_pair["actor"].as_str().unwrap().len() >= 8,
        "the key pair's public key: {by_key_pair}"
    );
}

async fn a_refused_change_leaves_no_success_behind(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_agent("twice").await;
    let (status, _) = app.post("/agents", ADMIN, json!({"name": "twice"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let created = all_events(&app, ADMIN, "action=agent.created").await;
    assert_eq!(created.len(), 1, "{created:?}");

    // The last admin key cannot be revoked: nothing is recorded of the attempt.
    let admin = admin_key_id(&app).await;
    let (status, _) = app.delete(&format!("/apikeys/{admin}"), ADMIN).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        all_events(&app, ADMIN, "action=api_key.revoked")
            .await
            .is_empty()
    );

    // A project name taken, over Ops Manager.
    let path = format!("{BASE}/groups");
    let body = json!({"name": "one"});
    assert_eq!(
        send(&app, Method::POST, &path, Some(ADMIN), Some(body.clone()))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        send(&app, Method::POST, &path, Some(ADMIN), Some(body))
            .await
            .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        all_events(&app, ADMIN, "action=project.created")
            .await
            .len(),
        1
    );
}

async fn refused_credentials_are_recorded_for_the_operators(backend: Backend) {
    let app = TestApp::start(backend).await;
    let response = app
        .request(Method::GET, "/agents", Some("kgk_not-a-key-at-all"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // Written off the request path: give the writer a moment.
    let mut refused = Vec::new();
    for _ in 0..100 {
        refused = all_events(&app, ADMIN, "action=authentication.refused").await;
        if !refused.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(refused.len(), 1, "{refused:?}");
    let event = &refused[0];
    assert_eq!(event["outcome"], "refused");
    assert_eq!(event["request_id"], request_id.as_str());
    assert_eq!(event["client"], "127.0.0.1");
    assert!(event["actor"].is_null() && event["org_id"].is_null());

    // It names no organization: another organization's admin does not see it.
    let (_, acme) = app.create_org("acme").await;
    assert!(
        all_events(&app, &acme, "action=authentication.refused")
            .await
            .is_empty()
    );
}

async fn refused_credentials_past_the_limit_are_not_recorded(backend: Backend) {
    let app = TestApp::start_with(backend, |config| config.auth_failures_per_minute = 3).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (status, _) = app.get("/agents", "kgk_not-a-key-at-all").await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = all_events(&app, ADMIN, "action=authentication.refused").await;
    assert_eq!(refused.len(), 3, "{refused:?}");
}

async fn filters_select_and_cursor_pages_cover_every_event_once_while_new_ones_arrive(
    backend: Backend,
) {
    let app = TestApp::start(backend).await;
    for n in 0..12 {
        app.create_agent(&format!("agent-{n:02}")).await;
    }
    let (_, agent) = app.get("/agents/agent-03", ADMIN).await;
    let id = agent["id"].as_str().unwrap();
    app.delete("/agents/agent-03", ADMIN).await;

    let of_one = all_events(
        &app,
        ADMIN,
        &format!("resource_kind=agent&resource_id={id}"),
    )
    .await;
    assert_eq!(actions(&of_one), ["agent.created", "agent.deleted"]);
    let admin = admin_key_id(&app).await;
    let by_admin = all_events(&app, ADMIN, &format!("actor={admin}")).await;
    assert_eq!(by_admin.len(), 13);
    assert!(
        all_events(&app, ADMIN, "actor=00000000-0000-0000-0000-000000000000")
            .await
            .is_empty()
    );

    // The time range: `since` inclusive, `until` exclusive.
    let first = &by_admin[0]["at"];
    let last = &by_admin[12]["at"];
    let encode = |at: &Value| {
        url::form_urlencoded::byte_serialize(at.as_str().unwrap().as_bytes()).collect::<String>()
    };
    let between = all_events(
        &app,
        ADMIN,
        &format!(
            "actor={admin}&since={}&until={}",
            encode(first),
            encode(last)
        ),
    )
    .await;
    assert_eq!(between.len(), 12, "all but the last");
    assert_eq!(between[0]["id"], by_admin[0]["id"]);

    // Pages of 5 while agents are created between pages: no event twice, none of those
    // there at the start missed, in (time, id) order.
    let before: Vec<Value> = all_events(&app, ADMIN, "").await;
    let mut seen = Vec::new();
    let mut path = "/audit?limit=5".to_owned();
    let mut n = 0;
    loop {
        let (status, page) = app.get(&path, ADMIN).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page["items"].as_array().unwrap().len() <= 5);
        seen.extend(page["items"].as_array().unwrap().iter().cloned());
        app.create_agent(&format!("late-{n}")).await;
        n += 1;
        match page["next_cursor"].as_str() {
            Some(next) => path = format!("/audit?limit=5&cursor={next}"),
            None => break,
        }
    }
    let ids: Vec<&str> = seen
        .iter()
        .map(|event| event["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "no duplicates"
    );
    for event in &before {
        assert!(ids.contains(&event["id"].as_str().unwrap()), "no gaps");
    }
    let order: Vec<(i64, String)> = seen
        .iter()
        .map(|event| {
            let at = chrono::DateTime::parse_from_rfc3339(event["at"].as_str().unwrap()).unwrap();
            let id = event["id"].as_str().unwrap().to_owned();
            (at.timestamp_nanos_opt().unwrap(), id)
        })
        .collect();
    assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "ordered");

    // Pages read while many writers commit at once are, in the end, a prefix of the whole
    // trail: no event lands behind a cursor already passed.
    let writers: Vec<_> = (0..24)
        .map(|n| {
            let request = app
                .request(Method::POST, "/agents", Some(ADMIN))
                .json(&json!({ "name": format!("busy-{n}") }));
            tokio::spawn(async move { request.send().await.unwrap().status() })
        })
        .collect();
    let mut paged = Vec::new();
    let mut path = "/audit?limit=3".to_owned();
    loop {
        let (status, page) = app.get(&path, ADMIN).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        paged.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => path = format!("/audit?limit=3&cursor={next}"),
            None => break,
        }
    }
    for writer in writers {
        assert_eq!(writer.await.unwrap(), StatusCode::CREATED);
    }
    let whole = all_events(&app, ADMIN, "").await;
    let id = |event: &Value| event["id"].as_str().unwrap().to_owned();
    assert_eq!(
        paged.iter().map(id).collect::<Vec<_>>(),
        whole[..paged.len()].iter().map(id).collect::<Vec<_>>()
    );

    for (bad, expected) in [
        ("limit=0", StatusCode::UNPROCESSABLE_ENTITY),
        ("limit=1001", StatusCode::UNPROCESSABLE_ENTITY),
        ("cursor=garbage", StatusCode::UNPROCESSABLE_ENTITY),
        ("since=yesterday", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (status, body) = app.get(&format!("/audit?{bad}"), ADMIN).await;
        assert_eq!(status, expected, "{bad}: {body}");
        assert_eq!(body["errors"][0]["location"], "query", "{body}");
    }
}

async fn auditors_read_members_are_refused_and_other_orgs_stay_invisible(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_agent("ours").await;
    let auditor = app.create_api_key("auditor").await;
    let member = app.create_api_key("member").await;
    let (status, page) = app.get("/audit", &auditor).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(actions(page["items"].as_array().unwrap()).contains(&"agent.created"));
    assert_eq!(app.get("/audit", &member).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        app.get_anonymous("/audit").await.0,
        StatusCode::UNAUTHORIZED
    );

    let (acme_id, acme) = app.create_org("acme").await;
    let (status, _) = app.post("/agents", &acme, json!({"name": "theirs"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let theirs = all_events(&app, &acme, "").await;
    assert_eq!(actions(&theirs), ["agent.created"]);
    assert_eq!(theirs[0]["org_id"], acme_id.as_str());
    let ours = all_events(&app, ADMIN, "").await;
    assert!(ours.iter().all(|event| event["org_id"] != acme_id.as_str()));
}

async fn events_past_retention_are_purged_in_batches(backend: Backend) {
    let app = TestApp::start(backend).await;
    for n in 0..3 {
        app.create_agent(&format!("old-{n}")).await;
    }
    let store = storage::connect(&app.config.database_url(), 2)
        .await
        .unwrap();
    keygate::audit::purge(store.as_ref(), 1).await;
    assert_eq!(
        all_events(&app, ADMIN, "action=agent.created").await.len(),
        3,
        "a day's retention keeps today's events"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    keygate::audit::purge(store.as_ref(), 0).await;
    assert!(all_events(&app, ADMIN, "").await.is_empty());
    let deleted = store
        .purge_audit_events(chrono::Utc::now(), 10)
        .await
        .unwrap();
    assert_eq!(deleted, 0);
}

async fn no_secret_reaches_the_audit_trail(backend: Backend) {
    let app = TestApp::start(backend).await;
    let minted = change_everything(&app).await;
    let secrets = secrets_in(&minted);
    assert!(secrets.len() >= 10, "{secrets:?}");
    // A refused credential that looks like a real one is not kept either.
    let revoked = &secrets[0];
    let _ = app.get("/agents", revoked).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let trail = serde_json::to_string(&all_events(&app, ADMIN, "").await).unwrap();
    for secret in &secrets {
        assert!(
            !trail.contains(secret.as_str()),
            "a secret is in the audit trail"
        );
    }
}

/// The secrets in minted answers: every token with one of keygate's prefixes.
fn secrets_in(answers: &[Value]) -> Vec<String> {
    const PREFIXES: [&str; 6] = ["kgk_", "xagt-", "mdbak_", "mdbpk_", "agx_key_", "kgmi_"];
    let text = serde_json::to_string(answers).unwrap();
    let mut secrets = Vec::new();
    for prefix in PREFIXES {
        for (start, _) in text.match_indices(prefix) {
            let token: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                .collect();
            if token.len() > prefix.len() + 20 {
                secrets.push(token);
            }
        }
    }
    secrets
}

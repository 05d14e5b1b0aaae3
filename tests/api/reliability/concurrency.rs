//! 64 concurrent creates of one resource, for every create operation: where the name is unique,
//! exactly one succeeds and the rest are conflicts; elsewhere all succeed. Never a 5xx, on
//! SQLite ("database is locked" never reaches a client) as on Postgres.

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Estate, count, figures, send};
use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends, operations};

on_both_backends!(sixty_four_concurrent_creates_make_one_resource_or_sixty_four);

const ATTEMPTS: usize = 64;

/// A create operation, and what 64 identical requests to it end in.
struct Create {
    template: &'static str,
    body: Value,
    succeeded: StatusCode,
    /// How many succeed: 1 where the name is unique, else all.
    winners: usize,
    /// The list that shows what was made, and by how many items it grows.
    list: &'static str,
    growth: usize,
}

fn creates() -> Vec<Create> {
    let unique = |template, body, succeeded, list| Create {
        template,
        body,
        succeeded,
        winners: 1,
        list,
        growth: 1,
    };
    let each = |template, body, succeeded, list, growth| Create {
        template,
        body,
        succeeded,
        winners: ATTEMPTS,
        list,
        growth,
    };
    vec![
        unique(
            "/agents",
            json!({"name": "contended"}),
            StatusCode::CREATED,
            "/agents",
        ),
        unique(
            "/connections",
            json!({"name": "contended", "type": "database", "subtype": "postgres",
                   "agent_id": "estate-agent"}),
            StatusCode::CREATED,
            "/connections",
        ),
        unique(
            "/machineidentities",
            json!({"name": "contended", "connection_names": ["estate-pg"]}),
            StatusCode::CREATED,
            "/machineidentities",
        ),
        unique(
            "/agent_api_keys",
            json!({"agent_name": "estate-agent", "name": "contended"}),
            StatusCode::OK,
            "/agent_api_keys?agent_name=estate-agent",
        ),
        unique(
            "/agent_api_keys/webhook-trigger",
            json!({"agent_name": "estate-agent", "name": "contended-trigger",
                   "forward_path": "github-pr/contended"}),
            StatusCode::OK,
            "/agent_api_keys?agent_name=estate-agent",
        ),
        unique(
            "/orgs",
            json!({"name": "contended"}),
            StatusCode::CREATED,
            "/orgs",
        ),
        unique(
            "/groups",
            json!({"name": "contended"}),
            StatusCode::CREATED,
            "/groups",
        ),
        each(
            "/apikeys",
            json!({"name": "contended", "role": "member"}),
            StatusCode::CREATED,
            "/apikeys",
            ATTEMPTS,
        ),
        each(
            "/groups/{PROJECT-ID}/agentapikeys",
            json!({"desc": "contended"}),
            StatusCode::OK,
            "/groups/{PROJECT-ID}/agentapikeys",
            ATTEMPTS,
        ),
        each(
            "/orgs/{ORG-ID}/apiKeys",
            json!({"desc": "contended", "roles": ["ORG_MEMBER"]}),
            StatusCode::CREATED,
            "/orgs/{ORG-ID}/apiKeys",
            ATTEMPTS,
        ),
        // Adding an entry already on the list succeeds and adds nothing.
        each(
            "/orgs/{ORG-ID}/apiKeys/{API-KEY-ID}/accessList",
            json!([{"ipAddress": "192.0.2.9"}]),
            StatusCode::CREATED,
            "/orgs/{ORG-ID}/apiKeys/{API-KEY-ID}/accessList",
            1,
        ),
    ]
}

async fn sixty_four_concurrent_creates_make_one_resource_or_sixty_four(backend: Backend) {
    let app = TestApp::start(backend).await;
    let estate = Estate::build(&app, ADMIN, "estate").await;
    let creates = creates();
    // Every create operation (those honouring Idempotency-Key, rotations aside) is in the table.
    for (method, template, operation) in operations(&app).await {
        let honoured = operation.to_string().contains("Idempotency-Key");
        if method == Method::POST && honoured && !template.ends_with("/rotate") {
            assert!(
                creates.iter().any(|create| create.template == template),
                "POST {template} is a create operation missing from the table"
            );
        }
    }
    let mut conflicts = 0;
    for create in &creates {
        let (path, list) = (estate.path(create.template), estate.path(create.list));
        let before = count(&send(&app, Method::GET, &list, ADMIN, None).await.1);
        let answers = join_all(
            (0..ATTEMPTS)
                .map(|_| send(&app, Method::POST, &path, ADMIN, Some(create.body.clone()))),
        )
        .await;
        let won = answers
            .iter()
            .filter(|(status, _)| *status == create.succeeded)
            .count();
        for (status, body) in &answers {
            assert!(
                *status == create.succeeded || *status == StatusCode::CONFLICT,
                "POST {path}: {status} {body}"
            );
        }
        assert_eq!(
            won, create.winners,
            "POST {path}: {won} of {ATTEMPTS} succeeded"
        );
        conflicts += ATTEMPTS - won;
        let after = count(&send(&app, Method::GET, &list, ADMIN, None).await.1);
        assert_eq!(
            after - before,
            create.growth,
            "GET {list} after POST {path}"
        );
    }
    figures(
        "concurrency",
        backend,
        format_args!(
            "operations={} requests={} conflicts={conflicts} server_errors=0",
            creates.len(),
            creates.len() * ATTEMPTS
        ),
    );
}

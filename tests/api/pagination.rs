//! Every list pages in its family's shape: keygate's own as `{items, next_cursor}`, hoop's and
//! Ops Manager's agent keys as bare arrays with an RFC 8288 `Link: <…>; rel="next"`, Ops
//! Manager's documents by `pageNum`/`itemsPerPage` with their `links`. Pages are in a stable
//! order and show every item once, even while items are created.

use std::collections::HashSet;

use futures::StreamExt;
use reqwest::header::LINK;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends, read};
use crate::connections::create_connection;
use crate::ops_manager::BASE;

on_both_backends!(
    paging_through_2500_agents_while_others_are_created_shows_each_once,
    keygates_own_lists_answer_items_and_a_next_cursor,
    connections_and_machine_identities_page_whole,
    ops_manager_documents_page_by_page_num_with_links,
    ops_manager_links_name_the_public_host_a_trusted_proxy_forwards,
    ops_manager_agent_keys_page_as_a_linked_array,
    bad_limits_and_cursors_are_refused_in_each_dialect,
);

/// GET `path`; the body and the `Link: rel="next"` target, if any.
async fn page(app: &TestApp, path: &str) -> (Value, Option<String>) {
    let response = app
        .request(Method::GET, path, Some(ADMIN))
        .send()
        .await
        .unwrap();
    let next = response.headers().get(LINK).map(|link| {
        let link = link.to_str().unwrap();
        assert!(link.ends_with(">; rel=\"next\""), "{link}");
        link[1..link.find('>').unwrap()].to_owned()
    });
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    (body, next)
}

/// Every page of a linked list from `path` on: the names of its items, page by page.
async fn follow_links(app: &TestApp, path: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(path.to_owned());
    while let Some(path) = next {
        let (body, link) = page(app, &path).await;
        pages.push(names(&body));
        next = link;
    }
    pages
}

fn names(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn paging_through_2500_agents_while_others_are_created_shows_each_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let existing: Vec<String> = (0..2500).map(|i| format!("agent-{i:04}")).collect();
    futures::stream::iter(&existing)
        .for_each_concurrent(16, |name| {
            let app = &app;
            async move {
                app.create_agent(name).await;
            }
        })
        .await;

    // Names sorting before, between and after the existing ones arrive while a client pages.
    let creating = async {
        for i in 0..150 {
            for prefix in ["aaa", "agent-1250x", "zzz"] {
                app.create_agent(&format!("{prefix}-{i:03}")).await;
            }
        }
    };
    let (pages, ()) = tokio::join!(follow_links(&app, "/api/agents?limit=100"), creating);

    let seen: Vec<&String> = pages.iter().flatten().collect();
    let unique: HashSet<&String> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no agent is shown twice");
    for name in &existing {
        assert!(unique.contains(name), "{name} was skipped");
    }
    assert!(pages.iter().all(|page| page.len() <= 100));
    assert!(pages.len() >= 25, "2,500 agents take at least 25 pages");
    // The order is the database's name order: the same on every read.
    let (first_again, _) = page(&app, "/agents?limit=1000").await;
    let listed = names(&first_again);
    let mut resorted = listed.clone();
    resorted.sort();
    assert_eq!(listed, resorted, "agents are listed by name");
}

async fn keygates_own_lists_answer_items_and_a_next_cursor(backend: Backend) {
    let app = TestApp::start(backend).await;
    for _ in 0..4 {
        app.create_api_key("member").await;
    }
    let mut ids = Vec::new();
    let mut path = "/apikeys?limit=2".to_owned();
    loop {
        let (status, body) = app.get(&path, ADMIN).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        ids.extend(
            items
                .iter()
                .map(|key| key["id"].as_str().unwrap().to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/apikeys?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(ids.len(), 5, "the bootstrap key and four more");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 5);

    app.create_org("acme").await;
    app.create_org("beta").await;
    let (_, first) = app.get("/orgs?limit=2", ADMIN).await;
    assert_eq!(names(&first["items"]), ["acme", "beta"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(&format!("/orgs?limit=2&cursor={cursor}"), ADMIN)
        .await;
    assert_eq!(names(&rest["items"]), ["default"]);
    assert_eq!(rest["next_cursor"], Value::Null);
}

async fn connections_and_machine_identities_page_whole(backend: Backend) {
    let app = TestApp::start(backend).await;
    for name in ["conn-1", "conn-2", "conn-3"] {
        create_connection(&app, name, "postgres", json!({"attributes": ["env:prod"]})).await;
    }
    let pages = follow_links(&app, "/connections?limit=2").await;
    assert_eq!(pages, [vec!["conn-1", "conn-2"], vec!["conn-3"]]);

    for name in ["mi-1", "mi-2", "mi-3"] {
        let body = json!({"name": name, "attributes": ["env:prod"]});
        let (status, created) = app.post("/machineidentities", ADMIN, body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    let mut next = Some("/api/machineidentities?limit=1".to_owned());
    let mut seen = Vec::new();
    while let Some(path) = next {
        let (body, link) = page(&app, &path).await;
        for identity in body.as_array().unwrap() {
            assert_eq!(
                identity["credentials"].as_array().unwrap().len(),
                3,
                "a page carries each identity's credentials: {identity}"
            );
        }
        seen.extend(names(&body));
        next = link;
    }
    assert_eq!(seen, ["mi-1", "mi-2", "mi-3"]);
}

async fn ops_manager_documents_page_by_page_num_with_links(backend: Backend) {
    let app = TestApp::start(backend).await;
    for name in ["p-1", "p-2", "p-3"] {
        let (status, body) = app
            .post(&format!("{BASE}/groups"), ADMIN, json!({"name": name}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let path = format!("{BASE}/groups?itemsPerPage=2");
    let (status, first) = app.get(&path, ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["totalCount"], 3);
    assert_eq!(names(&first["results"]), ["p-1", "p-2"]);
    let rels = |body: &Value| -> Vec<(String, String)> {
        body["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|link| {
                let rel = link["rel"].as_str().unwrap().to_owned();
                (rel, link["href"].as_str().unwrap().to_owned())
            })
            .collect()
    };
    // Absolute URLs, as Ops Manager's: where the client reached keygate.
    let origin = app.url("");
    let next = format!("{BASE}/groups?pageNum=2&itemsPerPage=2");
    assert_eq!(
        rels(&first),
        [
            (
                "self".into(),
                format!("{origin}{BASE}/groups?pageNum=1&itemsPerPage=2")
            ),
            ("next".into(), format!("{origin}{next}")),
        ]
    );
    let (_, second) = app.get(&next, ADMIN).await;
    assert_eq!(names(&second["results"]), ["p-3"]);
    assert_eq!(second["totalCount"], 3);
    assert_eq!(
        rels(&second)
            .into_iter()
            .map(|(rel, _)| rel)
            .collect::<Vec<_>>(),
        ["self", "previous"]
    );
    let (_, past_the_end) = app.get(&format!("{BASE}/groups?pageNum=9"), ADMIN).await;
    assert_eq!(past_the_end["results"], json!([]));
    assert_eq!(past_the_end["totalCount"], 3);
}

/// Behind a trusted proxy, a link names the host and scheme the client used; from anyone else,
/// forwarded headers are ignored (they would let a client put any host in the answer).
async fn ops_manager_links_name_the_public_host_a_trusted_proxy_forwards(backend: Backend) {
    let behind_proxy = |trusted: bool| {
        move |config: &mut keygate::config::Config| {
            if trusted {
                config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            }
        }
    };
    for (trusted, origin) in [
        (true, "https://keygate.example.com".to_owned()),
        (false, String::new()),
    ] {
        let app = TestApp::start_with(backend, behind_proxy(trusted)).await;
        let origin = if trusted { origin } else { app.url("") };
        let response = app
            .request(Method::GET, &format!("{BASE}/groups"), Some(ADMIN))
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "keygate.example.com")
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["links"][0]["href"],
            format!("{origin}{BASE}/groups?pageNum=1&itemsPerPage=100"),
            "trusted proxy: {trusted}"
        );
    }
}

async fn ops_manager_agent_keys_page_as_a_linked_array(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, project) = app
        .post(&format!("{BASE}/groups"), ADMIN, json!({"name": "keys"}))
        .await;
    let path = format!(
        "{BASE}/groups/{}/agentapikeys",
        project["id"].as_str().unwrap()
    );
    let mut created = Vec::new();
    for desc in ["first", "second", "third"] {
        let (status, key) = app.post(&path, ADMIN, json!({"desc": desc})).await;
        assert_eq!(status, StatusCode::OK, "{key}");
        created.push(key["_id"].as_str().unwrap().to_owned());
    }
    let mut listed = Vec::new();
    let mut next = Some(format!("{path}?limit=2"));
    while let Some(path) = next {
        let (body, link) = page(&app, &path).await;
        assert!(body.as_array().unwrap().len() <= 2);
        listed.extend(
            body.as_array()
                .unwrap()
                .iter()
                .map(|key| key["_id"].as_str().unwrap().to_owned()),
        );
        next = link;
    }
    assert_eq!(listed, created, "oldest first, each once");
}

async fn bad_limits_and_cursors_are_refused_in_each_dialect(backend: Backend) {
    let app = TestApp::start(backend).await;
    for query in [
        "limit=0",
        "limit=1001",
        "limit=many",
        "cursor=%%%",
        "cursor=bm90LWEtdXVpZA",
    ] {
        let (status, body) = app.get(&format!("/apikeys?{query}"), ADMIN).await;
        assert!(status.is_client_error(), "{query}: {status}");
        assert_eq!(body["errors"][0]["location"], "query", "{query}: {body}");
        let (status, body) = app.get(&format!("/api/agents?{query}"), ADMIN).await;
        if query.starts_with("cursor=bm90") {
            // Any text is a name to continue after: an unknown one is simply past the end.
            assert_eq!((status, body), (StatusCode::OK, json!([])));
            continue;
        }
        assert!(status.is_client_error(), "{query}: {status}");
        assert!(body["message"].is_string(), "hoop's shape: {body}");
    }
    for query in [
        "itemsPerPage=501",
        "itemsPerPage=0",
        "pageNum=0",
        "pageNum=x",
    ] {
        let (status, body) = app.get(&format!("{BASE}/groups?{query}"), ADMIN).await;
        assert!(status.is_client_error(), "{query}: {status}");
        assert!(body["errorCode"].is_string(), "Ops Manager's shape: {body}");
    }
}

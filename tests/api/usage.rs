//! Per-key usage: every use of a secret is counted per hour and every verification answer per
//! minute and hour, in memory, and written by the periodic flush in one transaction; each kind
//! of key reads its usage in its own family's route, and the console's reads (answers over
//! time, busiest keys, secrets by kind and state, keys expiring soon, the latest refused
//! credentials) return what was recorded. Counts past retention are purged.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use keygate::domain::audit::Refusal;
use keygate::domain::secret::{OwnerRef, now};
use keygate::domain::usage::{
    Cutoffs, Granularity, OutcomeCount, RETENTION_DAYS, SecretHour, UsageBatch, Window,
};
use keygate::secrets::SecretKind;
use keygate::storage::{self, Store};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends};
use crate::ops_manager::{BASE, DigestClient, key_pair, org_id, project};

on_both_backends!(
    verifications_are_counted_per_hour_after_a_flush,
    a_rotated_agents_usage_includes_both_its_secrets,
    a_refused_verification_counts_in_outcomes_but_not_in_key_usage,
    uses_are_written_in_one_batch_not_one_write_per_verification,
    every_kind_reads_its_usage_in_its_own_route,
    another_organizations_key_usage_is_not_found,
    a_bad_hours_is_refused_in_each_familys_dialect,
    usage_older_than_the_retention_is_purged,
    uses_of_a_deleted_secret_are_skipped,
    the_consoles_reads_return_what_was_recorded,
    the_overview_shows_the_callers_organization_only,
);

/// A store opened on the test server's database, and the id of organization `default`.
async fn store_of(app: &TestApp) -> (Arc<dyn Store>, Uuid) {
    let store = storage::connect(&app.config.database_url(), 2)
        .await
        .unwrap();
    let org = store.find_org_by_name("default").await.unwrap().unwrap().id;
    (store, org)
}

/// Reads `path` as `token` until its total (`field`) is `expected`: the flush runs every 50 ms
/// in the tests.
async fn usage_once_flushed(
    app: &TestApp,
    path: &str,
    token: &str,
    field: &str,
    expected: u64,
) -> Value {
    let mut usage = Value::Null;
    for _ in 0..100 {
        let (status, body) = app.get(path, token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        if body[field] == expected {
            return body;
        }
        usage = body;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} never counted {expected}: {usage}");
}

fn valid(verdict: &(StatusCode, Value)) -> bool {
    verdict.0 == StatusCode::OK && verdict.1["valid"] == true
}

async fn verifications_are_counted_per_hour_after_a_flush(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("counted").await;
    for _ in 0..3 {
        assert!(valid(&app.verify(ADMIN, &dsn).await));
    }
    let usage = usage_once_flushed(&app, "/agents/counted/usage", ADMIN, "total_uses", 3).await;
    let hours = usage["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 24, "a day by default: {usage}");
    let this_hour = Granularity::Hour.start_of(now());
    let start = |hour: &Value| {
        hour["start"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
    };
    assert_eq!(start(&hours[23]), this_hour, "the current hour is the last");
    assert_eq!(hours[23]["uses"], 3);
    assert!(
        hours[..23].iter().all(|hour| hour["uses"] == 0),
        "zero-filled: {usage}"
    );
    for pair in hours.windows(2) {
        assert_eq!(
            start(&pair[1]) - start(&pair[0]),
            chrono::Duration::hours(1)
        );
    }
    assert_eq!(start(&usage), start(&hours[0]));
    assert_eq!(
        usage["end"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        this_hour + chrono::Duration::hours(1)
    );
    let (_, week) = app.get("/agents/counted/usage?hours=168", ADMIN).await;
    assert_eq!(
        (
            week["hours"].as_array().unwrap().len(),
            week["total_uses"].clone()
        ),
        (168, json!(3))
    );
    // By id too, as every agent route.
    let (_, agent) = app.get("/agents/counted", ADMIN).await;
    let by_id = format!("/agents/{}/usage?hours=1", agent["id"].as_str().unwrap());
    let (_, usage) = app.get(&by_id, ADMIN).await;
    assert_eq!(
        usage["hours"],
        json!([{"start": usage["start"], "uses": 3}])
    );
}

async fn a_rotated_agents_usage_includes_both_its_secrets(backend: Backend) {
    let app = TestApp::start(backend).await;
    let old = app.create_agent("rotated").await;
    for _ in 0..2 {
        assert!(valid(&app.verify(ADMIN, &old).await));
    }
    let (status, rotated) = app
        .post(
            "/agents/rotated/rotate",
            ADMIN,
            json!({"grace_period_seconds": 600}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let new = rotated["token"].as_str().unwrap();
    for _ in 0..3 {
        assert!(valid(&app.verify(ADMIN, new).await));
    }
    assert!(valid(&app.verify(ADMIN, &old).await), "in its grace period");
    usage_once_flushed(&app, "/agents/rotated/usage", ADMIN, "total_uses", 6).await;
}

async fn a_refused_verification_counts_in_outcomes_but_not_in_key_usage(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("checked").await;
    let (store, org) = store_of(&app).await;
    assert!(valid(&app.verify(ADMIN, &dsn).await));
    // The right key under another agent's name, and a key nobody has.
    let misnamed = dsn.replacen("checked:", "impostor:", 1);
    assert_eq!(
        app.verify(ADMIN, &misnamed).await.1["code"],
        "name_mismatch"
    );
    let unknown = app.create_agent("deleted-since").await;
    assert_eq!(
        app.delete("/agents/deleted-since", ADMIN).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.verify(ADMIN, &unknown).await.1["code"], "not_found");
    assert_eq!(app.verify(ADMIN, "garbage").await.1["code"], "malformed");

    let window = Window::last(Granularity::Minute, 60, now());
    let mut answers = Vec::new();
    for _ in 0..100 {
        answers = store
            .verification_outcomes(Some(org), &window)
            .await
            .unwrap();
        if answers.iter().map(|answer| answer.count).sum::<u64>() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut outcomes: Vec<(String, u64)> = answers
        .iter()
        .map(|answer| (answer.outcome.clone(), answer.count))
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("malformed", 1),
            ("name_mismatch", 1),
            ("not_found", 1),
            ("valid", 1)
        ]
        .map(|(outcome, count)| (outcome.to_owned(), count))
    );
    let usage = usage_once_flushed(&app, "/agents/checked/usage", ADMIN, "total_uses", 1).await;
    assert_eq!(usage["total_uses"], 1, "only the valid one is a use");
}

async fn uses_are_written_in_one_batch_not_one_write_per_verification(backend: Backend) {
    let mut app = TestApp::start_with(backend, |config| config.usage_flush_ms = 3_600_000).await;
    let dsn = app.create_agent("batched").await;
    for _ in 0..20 {
        assert!(valid(&app.verify(ADMIN, &dsn).await));
    }
    let (_, usage) = app.get("/agents/batched/usage", ADMIN).await;
    assert_eq!(
        usage["total_uses"], 0,
        "nothing is written per verification"
    );
    let mut db = crate::common::Database::open(&app).await;
    assert_eq!(db.count("SELECT COUNT(*) FROM secret_usage").await, 0);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM verification_outcomes").await,
        0
    );
    // The flush at shutdown writes the twenty as one row per bucket they fell in (one, but
    // for a run across the turn of an hour or a minute).
    app.restart().await;
    let (_, usage) = app.get("/agents/batched/usage", ADMIN).await;
    assert_eq!(usage["total_uses"], 20);
    let mut db = crate::common::Database::open(&app).await;
    assert!(db.count("SELECT COUNT(*) FROM secret_usage").await <= 2);
    let answers = |span| format!("SELECT COUNT(*) FROM verification_outcomes WHERE span = {span}");
    assert!(db.count(&answers(3600)).await <= 2);
    assert!(db.count(&answers(60)).await <= 2);
    let summed = "SELECT CAST(SUM(verifications) AS BIGINT) FROM verification_outcomes";
    assert_eq!(db.count(&format!("{summed} WHERE span = 60")).await, 20);
    assert_eq!(db.count(&format!("{summed} WHERE span = 3600")).await, 20);
}

async fn every_kind_reads_its_usage_in_its_own_route(backend: Backend) {
    let app = TestApp::start(backend).await;
    // A machine identity, used at its connection.
    crate::connections::create_connection(&app, "usage-db", "postgres", json!({})).await;
    let identity = crate::machine_identities::create_identity(
        &app,
        json!({"name": "used-identity", "connection_names": ["usage-db"]}),
    )
    .await;
    let credential = crate::machine_identities::secret_of(crate::machine_identities::credential(
        &identity, "usage-db",
    ));
    assert!(valid(&app.verify(ADMIN, &credential).await));
    // An Agentex bearer key.
    crate::agentex::agent(&app, "agentex-edge").await;
    let agentex_key =
        crate::agentex::created_key(&app, json!({"agent_name": "agentex-edge", "name": "ci"}))
            .await;
    assert!(valid(
        &app.verify(ADMIN, agentex_key["api_key"].as_str().unwrap())
            .await
    ));
    // An Ops Manager agent API key.
    let group = project(&app, "usage-project").await;
    let (_, agent_key) = app
        .post(
            &format!("{BASE}/groups/{group}/agentapikeys"),
            ADMIN,
            json!({"desc": "edge"}),
        )
        .await;
    assert!(valid(
        &app.verify(ADMIN, agent_key["key"].as_str().unwrap()).await
    ));
    // A keygate API key and an Ops Manager key pair, by authenticating with them.
    let member = app.create_api_key("member").await;
    for _ in 0..2 {
        assert_eq!(app.get("/agents", &member).await.0, StatusCode::OK);
    }
    let pair = key_pair(&app, json!(["ORG_READ_ONLY"])).await;
    let (status, _) = DigestClient::new(&app, &pair)
        .send(Method::GET, &format!("{BASE}/groups"), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    usage_once_flushed(
        &app,
        "/machineidentities/used-identity/usage",
        ADMIN,
        "total_uses",
        1,
    )
    .await;
    let path = format!(
        "/agent_api_keys/{}/usage",
        agentex_key["id"].as_str().unwrap()
    );
    usage_once_flushed(&app, &path, ADMIN, "total_uses", 1).await;
    let path = format!(
        "{BASE}/groups/{group}/agentapikeys/{}/usage",
        agent_key["_id"].as_str().unwrap()
    );
    let usage = usage_once_flushed(&app, &path, ADMIN, "totalUses", 1).await;
    assert_eq!(usage["totalCount"], 24);
    assert_eq!(usage["results"].as_array().unwrap().len(), 24);
    assert_eq!(usage["results"][23]["uses"], 1);
    assert_eq!(usage["links"][0]["rel"], "self");
    let (_, page) = app
        .get(
            &format!("{path}?hours=720&itemsPerPage=500&pageNum=2"),
            ADMIN,
        )
        .await;
    assert_eq!(
        (
            page["totalCount"].clone(),
            page["results"].as_array().unwrap().len()
        ),
        (json!(720), 220),
        "Ops Manager's pages: {page}"
    );
    assert_eq!(page["totalUses"], 1);
    let org = org_id(&app, ADMIN).await;
    let path = format!("{BASE}/orgs/{org}/apiKeys/{}/usage", pair.id);
    usage_once_flushed(&app, &path, ADMIN, "totalUses", 1).await;
    let (_, keys) = app.get("/apikeys", ADMIN).await;
    let member_id = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["name"] == "member key")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    usage_once_flushed(
        &app,
        &format!("/apikeys/{member_id}/usage"),
        ADMIN,
        "total_uses",
        2,
    )
    .await;
}

async fn another_organizations_key_usage_is_not_found(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_agent("ours").await;
    crate::agentex::agent(&app, "our-agentex").await;
    let agentex_key =
        crate::agentex::created_key(&app, json!({"agent_name": "our-agentex", "name": "ci"})).await;
    let (_, keys) = app.get("/apikeys", ADMIN).await;
    let api_key = keys["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, agent) = app.get("/agents/ours", ADMIN).await;
    let (_, tenant) = app.create_org("tenant").await;
    for path in [
        "/agents/ours/usage".to_owned(),
        format!("/agents/{}/usage", agent["id"].as_str().unwrap()),
        format!("/apikeys/{api_key}/usage"),
        format!(
            "/agent_api_keys/{}/usage",
            agentex_key["id"].as_str().unwrap()
        ),
    ] {
        let (status, body) = app.get(&path, &tenant).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(body.get("total_uses").is_none());
    }
}

async fn a_bad_hours_is_refused_in_each_familys_dialect(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_agent("asked").await;
    let (_, keys) = app.get("/apikeys", ADMIN).await;
    let api_key = keys["items"][0]["id"].as_str().unwrap().to_owned();
    crate::agentex::agent(&app, "agentex-asked").await;
    let agentex_key =
        crate::agentex::created_key(&app, json!({"agent_name": "agentex-asked", "name": "ci"}))
            .await;
    let pair = key_pair(&app, json!(["ORG_READ_ONLY"])).await;
    let org = org_id(&app, ADMIN).await;
    // Out of range is a broken rule (422 where the family has one), not a number a mistype.
    for (hours, rule) in [
        ("0", true),
        ("721", true),
        ("-1", true),
        ("day", false),
        ("", false),
    ] {
        let status_of = |rule| match rule {
            true => StatusCode::UNPROCESSABLE_ENTITY,
            false => StatusCode::BAD_REQUEST,
        };
        // hoop: {"message"}.
        let (status, body) = app
            .get(&format!("/agents/asked/usage?hours={hours}"), ADMIN)
            .await;
        assert_eq!(status, status_of(rule), "{hours}: {body}");
        assert!(
            body["message"].as_str().unwrap().starts_with("hours: "),
            "{body}"
        );
        // keygate's own, the refused parameter named.
        let (status, body) = app
            .get(&format!("/apikeys/{api_key}/usage?hours={hours}"), ADMIN)
            .await;
        assert_eq!(status, status_of(rule), "{hours}: {body}");
        assert_eq!(
            (
                body["errors"][0]["location"].clone(),
                body["errors"][0]["field"].clone()
            ),
            (json!("query"), json!("hours")),
            "{body}"
        );
        // Agentex: FastAPI's 422, located in the query.
        let path = format!(
            "/agent_api_keys/{}/usage?hours={hours}",
            agentex_key["id"].as_str().unwrap()
        );
        let (status, body) = app.get(&path, ADMIN).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            body["detail"][0]["loc"],
            json!(["query", "hours"]),
            "{body}"
        );
        // Ops Manager: its error document, naming the parameter.
        let path = format!("{BASE}/orgs/{org}/apiKeys/{}/usage?hours={hours}", pair.id);
        let (status, body) = app.get(&path, ADMIN).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            (body["errorCode"].clone(), body["parameters"].clone()),
            (json!("INVALID_ATTRIBUTE"), json!(["hours"])),
            "{body}"
        );
    }
    let path = format!(
        "/agent_api_keys/{}/usage?hours=721",
        agentex_key["id"].as_str().unwrap()
    );
    let (_, body) = app.get(&path, ADMIN).await;
    assert_eq!(
        (
            body["detail"][0]["type"].clone(),
            body["detail"][0]["ctx"].clone()
        ),
        (json!("less_than_equal"), json!({"le": 720}))
    );
}

/// One use of `secret_id` in `hour`, as a flush writes it.
fn uses(secret_id: Uuid, hour: DateTime<Utc>, count: u64) -> UsageBatch {
    UsageBatch {
        last_used: vec![(secret_id, hour)],
        hourly: vec![SecretHour {
            secret_id,
            hour: Granularity::Hour.start_of(hour),
            uses: count,
        }],
        outcomes: Vec::new(),
    }
}

/// `count` answers of `outcome` for organization `org` in the minute of `at`.
fn answers(org: Uuid, at: DateTime<Utc>, outcome: &'static str, count: u64) -> UsageBatch {
    UsageBatch {
        outcomes: vec![OutcomeCount {
            org_id: org,
            minute: Granularity::Minute.start_of(at),
            kind: "agent_key",
            outcome,
            count,
        }],
        ..UsageBatch::default()
    }
}

/// The agent named `name`'s owner, and its current secret's id.
async fn agent_secret(store: &dyn Store, org: Uuid, name: &str) -> (OwnerRef, Uuid) {
    let (agent, key) = store.find_agent_by_name(org, name).await.unwrap().unwrap();
    (
        OwnerRef {
            org_id: org,
            id: agent.id,
        },
        key.id,
    )
}

async fn usage_older_than_the_retention_is_purged(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_agent("long-lived").await;
    let (store, org) = store_of(&app).await;
    let (owner, secret) = agent_secret(store.as_ref(), org, "long-lived").await;
    let at = now();
    let old = at - chrono::Duration::days(RETENTION_DAYS) - chrono::Duration::hours(2);
    for batch in [
        uses(secret, old, 5),
        uses(secret, at, 2),
        answers(org, old, "valid", 5),
        answers(org, at - chrono::Duration::hours(3), "valid", 7),
        answers(org, at, "valid", 1),
    ] {
        store.record_usage(&batch).await.unwrap();
    }
    let everything = Window::last(Granularity::Hour, 24 * (RETENTION_DAYS as u32 + 2), at);
    assert_eq!(
        store.owner_usage(owner, &everything).await.unwrap().total,
        7
    );
    let hourly = |store: Arc<dyn Store>| async move {
        let counts = store
            .verification_outcomes(Some(org), &everything)
            .await
            .unwrap();
        counts.iter().map(|answer| answer.count).sum::<u64>()
    };
    let minutes = Window::last(
        Granularity::Minute,
        60 * 24 * (RETENTION_DAYS as u32 + 2),
        at,
    );
    let per_minute = |store: Arc<dyn Store>| async move {
        let counts = store
            .verification_outcomes(Some(org), &minutes)
            .await
            .unwrap();
        counts.iter().map(|answer| answer.count).sum::<u64>()
    };
    assert_eq!(hourly(store.clone()).await, 13);
    assert_eq!(per_minute(store.clone()).await, 13);

    store.purge_usage(Cutoffs::at(at), 1000).await.unwrap();
    assert_eq!(
        store.owner_usage(owner, &everything).await.unwrap().total,
        2,
        "the hour of 30 days ago is gone"
    );
    assert_eq!(
        hourly(store.clone()).await,
        8,
        "hourly answers are kept 30 days"
    );
    assert_eq!(
        per_minute(store.clone()).await,
        1,
        "answers per minute are kept 2 hours"
    );
}

async fn uses_of_a_deleted_secret_are_skipped(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.create_agent("kept").await;
    app.create_agent("gone").await;
    let (store, org) = store_of(&app).await;
    let (kept, kept_secret) = agent_secret(store.as_ref(), org, "kept").await;
    let (_, gone_secret) = agent_secret(store.as_ref(), org, "gone").await;
    assert_eq!(
        app.delete("/agents/gone", ADMIN).await.0,
        StatusCode::NO_CONTENT
    );
    let at = now();
    let mut batch = uses(kept_secret, at, 1);
    batch.hourly.extend(uses(gone_secret, at, 4).hourly);
    batch.outcomes = answers(Uuid::now_v7(), at, "valid", 3).outcomes;
    store.record_usage(&batch).await.unwrap();
    let window = Window::last(Granularity::Hour, 1, at);
    assert_eq!(store.owner_usage(kept, &window).await.unwrap().total, 1);
    let mut db = crate::common::Database::open(&app).await;
    // Those of the deleted agent's secret, told apart by their count.
    assert_eq!(
        db.count("SELECT COUNT(*) FROM secret_usage WHERE uses = 4")
            .await,
        0
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM verification_outcomes").await,
        0
    );
}

async fn the_consoles_reads_return_what_was_recorded(backend: Backend) {
    let app = TestApp::start(backend).await;
    let soon = (now() + chrono::Duration::days(3)).to_rfc3339();
    let later = (now() + chrono::Duration::days(30)).to_rfc3339();
    for (name, expires_at) in [
        ("busy", Some(&soon)),
        ("quiet", Some(&later)),
        ("idle", None),
    ] {
        let body = json!({"name": name, "expires_at": expires_at});
        assert_eq!(
            app.post("/agents", ADMIN, body).await.0,
            StatusCode::CREATED
        );
    }
    let (status, _) = app
        .post(
            "/agents/quiet/rotate",
            ADMIN,
            json!({"grace_period_seconds": 600}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, tenant_admin) = app.create_org("tenant").await;
    let (status, _) = app
        .post("/agents", &tenant_admin, json!({"name": "theirs"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (store, org) = store_of(&app).await;
    let tenant = store.find_org_by_name("tenant").await.unwrap().unwrap().id;
    let (busy, busy_secret) = agent_secret(store.as_ref(), org, "busy").await;
    let (quiet, quiet_secret) = agent_secret(store.as_ref(), org, "quiet").await;
    let (theirs, theirs_secret) = agent_secret(store.as_ref(), tenant, "theirs").await;
    let at = now();
    let an_hour_ago = at - chrono::Duration::hours(1);
    for batch in [
        uses(busy_secret, at, 9),
        uses(busy_secret, an_hour_ago, 1),
        uses(quiet_secret, at, 2),
        uses(theirs_secret, at, 50),
        answers(org, at, "valid", 11),
        answers(org, at, "not_found", 2),
        answers(org, an_hour_ago, "expired", 1),
        answers(tenant, at, "valid", 50),
    ] {
        store.record_usage(&batch).await.unwrap();
    }

    // The busiest keys, in an organization and across all of them.
    let day = Window::last(Granularity::Hour, 24, at);
    let top = store.top_owners(Some(org), &day, 5).await.unwrap();
    assert!(top.iter().all(|owner| owner.org_id == org));
    // The bootstrap admin key is used too, by this test's requests.
    let summary: Vec<(Uuid, SecretKind, &str, u64)> = top
        .iter()
        .filter(|owner| owner.kind == SecretKind::AgentKey)
        .map(|owner| (owner.owner_id, owner.kind, owner.name.as_str(), owner.uses))
        .collect();
    assert_eq!(
        summary,
        [
            (busy.id, SecretKind::AgentKey, "busy", 10),
            (quiet.id, SecretKind::AgentKey, "quiet", 2)
        ]
    );
    let everyone = store.top_owners(None, &day, 1).await.unwrap();
    assert_eq!((everyone[0].owner_id, everyone[0].uses), (theirs.id, 50));
    let this_hour = Window::last(Granularity::Hour, 1, at);
    assert_eq!(
        store.top_owners(Some(org), &this_hour, 5).await.unwrap()[0].uses,
        9
    );

    // Answers per minute over the last hour, per hour over a week.
    let minutes = Window::last(Granularity::Minute, 60, at);
    let per_minute = store
        .verification_outcomes(Some(org), &minutes)
        .await
        .unwrap();
    let minute = Granularity::Minute.start_of(at);
    let seen: Vec<(DateTime<Utc>, &str, u64)> = per_minute
        .iter()
        .map(|answer| (answer.start, answer.outcome.as_str(), answer.count))
        .collect();
    // The answer of an hour ago is a minute before the chart's first.
    assert_eq!(seen, [(minute, "not_found", 2), (minute, "valid", 11)]);
    let week = Window::last(Granularity::Hour, 168, at);
    let per_hour = store.verification_outcomes(Some(org), &week).await.unwrap();
    let hour = Granularity::Hour.start_of(at);
    let seen: Vec<(DateTime<Utc>, &str, u64)> = per_hour
        .iter()
        .map(|answer| (answer.start, answer.outcome.as_str(), answer.count))
        .collect();
    assert_eq!(
        seen,
        [
            (Granularity::Hour.start_of(an_hour_ago), "expired", 1),
            (hour, "not_found", 2),
            (hour, "valid", 11)
        ]
    );
    let all_valid: u64 = store
        .verification_outcomes(None, &week)
        .await
        .unwrap()
        .iter()
        .filter(|answer| answer.outcome == "valid")
        .map(|answer| answer.count)
        .sum();
    assert_eq!(all_valid, 61, "the operator sees every organization's");

    // Secrets by kind and state: the bootstrap admin key, three agents (one rotated with
    // grace, one expiring in three days), and the tenant's agent and admin key.
    let counts = store.secret_counts(Some(org), at).await.unwrap();
    let agent_keys = counts
        .iter()
        .find(|count| count.kind == SecretKind::AgentKey)
        .unwrap();
    assert_eq!(
        (
            agent_keys.active,
            agent_keys.in_grace,
            agent_keys.expiring_soon
        ),
        (3, 1, 1)
    );
    let api_keys = counts
        .iter()
        .find(|count| count.kind == SecretKind::ApiKey)
        .unwrap();
    assert_eq!(
        (api_keys.active, api_keys.in_grace, api_keys.expiring_soon),
        (1, 0, 0)
    );
    let overall = store.secret_counts(None, at).await.unwrap();
    let active_agent_keys: u64 = overall
        .iter()
        .filter(|count| count.kind == SecretKind::AgentKey)
        .map(|count| count.active)
        .sum();
    assert_eq!(active_agent_keys, 4);
    assert!(overall.iter().any(|count| count.org_id == tenant));

    // Keys expiring soon: only the current one expiring within 7 days.
    let expiring = store.expiring_secrets(Some(org), at, 10).await.unwrap();
    assert_eq!(expiring.len(), 1, "{expiring:?}");
    assert_eq!(
        (
            expiring[0].owner_id,
            expiring[0].secret_id,
            expiring[0].name.as_str()
        ),
        (busy.id, busy_secret, "busy")
    );
    assert_eq!(expiring[0].kind, SecretKind::AgentKey);
    assert!(
        store
            .expiring_secrets(Some(tenant), at, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The latest refused credentials, newest first.
    for request in ["first", "second", "third"] {
        let refusal = Refusal {
            request_id: Some(request.into()),
            client: Some("198.51.100.7".into()),
        };
        store.record_refusals(&[refusal]).await.unwrap();
    }
    let latest = store.latest_refusals(2).await.unwrap();
    let requests: Vec<_> = latest
        .iter()
        .map(|event| event.request_id.as_deref())
        .collect();
    assert_eq!(requests, [Some("third"), Some("second")]);
}

/// `GET /overview`: an hour of minutes and a week of hours of answers, every bucket present;
/// the caller's organization's keys and answers only; refused credentials, which belong to no
/// organization, for the operators alone.
async fn the_overview_shows_the_callers_organization_only(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("gateway-eu").await;
    for _ in 0..3 {
        assert!(valid(&app.verify(ADMIN, &dsn).await));
    }
    app.verify(ADMIN, "xagt-00000000000000000000000000000000000000000000")
        .await;
    let (_, tenant) = app.create_org("acme").await;
    let (status, created) = app
        .post("/agents", &tenant, json!({"name": "acme-gw"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let acme_dsn = created["token"].as_str().unwrap().to_owned();
    assert!(valid(&app.verify(&tenant, &acme_dsn).await));
    let refused = app
        .request(Method::GET, "/agents", Some("not-a-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let answers = |overview: &Value, outcome: &str| -> u64 {
        overview["last_hour"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|bucket| bucket["outcomes"][outcome].as_u64())
            .sum()
    };
    let mut operator = Value::Null;
    for _ in 0..100 {
        operator = app.get("/overview", ADMIN).await.1;
        if answers(&operator, "valid") == 3
            && operator["refused"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answers(&operator, "valid"), 3, "{operator}");
    assert_eq!(answers(&operator, "malformed"), 1, "{operator}");
    assert_eq!(operator["last_hour"].as_array().unwrap().len(), 60);
    assert_eq!(operator["last_week"].as_array().unwrap().len(), 168);
    // The busiest keys: the admin key every request here authenticated with, then the agent.
    let uses = |overview: &Value, name: &str| {
        overview["top_keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|key| key["name"] == name)
            .map(|key| key["uses"].clone())
    };
    assert_eq!(operator["top_keys"][0]["name"], "bootstrap", "{operator}");
    assert_eq!(uses(&operator, "gateway-eu"), Some(json!(3)), "{operator}");
    assert!(!operator.to_string().contains("acme-gw"), "{operator}");
    let agent_keys = operator["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|count| count["kind"] == "agent_key")
        .unwrap();
    assert_eq!(agent_keys["active"], 1, "{operator}");
    assert_eq!(operator["refused"][0]["action"], "authentication.refused");

    let mut acme = Value::Null;
    for _ in 0..100 {
        let (status, overview) = app.get("/overview", &tenant).await;
        assert_eq!(status, StatusCode::OK, "{overview}");
        acme = overview;
        if answers(&acme, "valid") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answers(&acme, "valid"), 1, "{acme}");
    assert_eq!(answers(&acme, "malformed"), 0, "{acme}");
    assert_eq!(uses(&acme, "acme-gw"), Some(json!(1)), "{acme}");
    assert!(acme.get("refused").is_none(), "{acme}");
    assert!(!acme.to_string().contains("gateway-eu"), "{acme}");
}

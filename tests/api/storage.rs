//! The storage conformance suite: both backends keep the same constraints in the database and
//! write multi-row changes atomically, whatever the HTTP layer above them checks first.

use keygate::agents::AgentMode;
use keygate::error::Error;
use keygate::secrets::{PlainSecret, SecretKind};
use keygate::storage::{self, NewAgent, NewSecret, Predecessor, Store};
use std::sync::Arc;
use uuid::Uuid;

use crate::common::{Backend, TestApp, on_both_backends};

on_both_backends!(
    a_failed_secret_insert_leaves_no_agent_behind,
    agent_names_are_unique_per_organization_in_the_database,
    rotating_a_secret_that_is_no_longer_current_is_a_conflict,
    deleting_an_agent_cascades_to_all_its_secrets,
    usage_batches_set_last_used_at,
);

/// The store of a fresh test server's database, and the id of its `default` organization.
async fn store_of(app: &TestApp) -> (Arc<dyn Store>, Uuid) {
    let store = storage::connect(&app.config.database_url()).await.unwrap();
    let org = store.find_org_by_name("default").await.unwrap().unwrap();
    (store, org.id)
}

fn agent(org_id: Uuid, name: &str, plain: &PlainSecret) -> NewAgent {
    NewAgent {
        id: Uuid::now_v7(),
        org_id,
        name: name.into(),
        mode: AgentMode::Standard,
        secret: NewSecret::from_plain(SecretKind::AgentKey, plain, None),
    }
}

async fn a_failed_secret_insert_leaves_no_agent_behind(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store, org) = store_of(&app).await;
    let shared = PlainSecret::from_operator("the same digest twice".into());
    store
        .create_agent(&agent(org, "first", &shared))
        .await
        .unwrap();
    let second = store.create_agent(&agent(org, "second", &shared)).await;
    assert!(matches!(second, Err(Error::Conflict)), "{second:?}");
    assert!(
        store
            .find_agent_by_name(org, "second")
            .await
            .unwrap()
            .is_none(),
        "half-written agent"
    );
}

async fn agent_names_are_unique_per_organization_in_the_database(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store, org) = store_of(&app).await;
    let mint = || PlainSecret::mint(SecretKind::AgentKey);
    store
        .create_agent(&agent(org, "unique", &mint()))
        .await
        .unwrap();
    let again = store.create_agent(&agent(org, "unique", &mint())).await;
    assert!(matches!(again, Err(Error::Conflict)), "{again:?}");
}

async fn rotating_a_secret_that_is_no_longer_current_is_a_conflict(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store, org) = store_of(&app).await;
    store
        .create_agent(&agent(
            org,
            "rotated",
            &PlainSecret::mint(SecretKind::AgentKey),
        ))
        .await
        .unwrap();
    let current = store
        .find_agent_by_name(org, "rotated")
        .await
        .unwrap()
        .unwrap()
        .key;
    let successor = |plain: &PlainSecret| NewSecret::from_plain(SecretKind::AgentKey, plain, None);
    let ending = Predecessor::ending(&current, chrono::Duration::zero());
    store
        .rotate_secret(
            &ending,
            &successor(&PlainSecret::mint(SecretKind::AgentKey)),
        )
        .await
        .unwrap();
    let stale = store
        .rotate_secret(
            &ending,
            &successor(&PlainSecret::mint(SecretKind::AgentKey)),
        )
        .await;
    assert!(matches!(stale, Err(Error::Conflict)), "{stale:?}");
    let now_current = store
        .find_agent_by_name(org, "rotated")
        .await
        .unwrap()
        .unwrap()
        .key;
    assert_ne!(now_current.id, current.id);
}

async fn deleting_an_agent_cascades_to_all_its_secrets(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store, org) = store_of(&app).await;
    let first = PlainSecret::mint(SecretKind::AgentKey);
    store
        .create_agent(&agent(org, "cascade", &first))
        .await
        .unwrap();
    let record = store
        .find_agent_by_name(org, "cascade")
        .await
        .unwrap()
        .unwrap();
    let second = PlainSecret::mint(SecretKind::AgentKey);
    let grace = Predecessor::ending(&record.key, chrono::Duration::hours(1));
    let successor = NewSecret::from_plain(SecretKind::AgentKey, &second, None);
    store.rotate_secret(&grace, &successor).await.unwrap();
    assert!(store.find_secret(&first.hash()).await.unwrap().is_some());

    assert!(store.delete_agent(org, record.id).await.unwrap());
    for plain in [&first, &second] {
        assert!(store.find_secret(&plain.hash()).await.unwrap().is_none());
    }
    assert!(!store.delete_agent(org, record.id).await.unwrap());
}

async fn usage_batches_set_last_used_at(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store, org) = store_of(&app).await;
    store
        .create_agent(&agent(
            org,
            "busy",
            &PlainSecret::mint(SecretKind::AgentKey),
        ))
        .await
        .unwrap();
    let key = store
        .find_agent_by_name(org, "busy")
        .await
        .unwrap()
        .unwrap()
        .key;
    let at = storage::now();
    store
        .record_usage(&[(key.id, at), (Uuid::now_v7(), at)])
        .await
        .unwrap();
    let key = store
        .find_agent_by_name(org, "busy")
        .await
        .unwrap()
        .unwrap()
        .key;
    assert_eq!(
        key.last_used_at,
        Some(at),
        "timestamps round-trip exactly on both backends"
    );
}

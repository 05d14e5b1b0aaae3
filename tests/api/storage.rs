//! The storage conformance suite: both backends keep the same constraints in the database and
//! write multi-row changes atomically, whatever the HTTP layer above them checks first.

use std::sync::Arc;

use chrono::Duration;
use keygate::agents::AgentMode;
use keygate::error::Error;
use keygate::secrets::{PlainSecret, SecretKind};
use keygate::storage::{self, AgentRecord, NewAgent, NewSecret, Predecessor, Store};
use uuid::Uuid;

use crate::common::{Backend, TestApp, on_both_backends};

on_both_backends!(
    a_failed_secret_insert_leaves_no_agent_behind,
    agent_names_are_unique_per_organization_in_the_database,
    rotating_a_secret_that_is_no_longer_current_is_a_conflict,
    deleting_an_agent_cascades_to_all_its_secrets,
    usage_batches_set_last_used_at,
);

/// A store opened on a fresh test server's database, working in organization `default`.
struct Fixture {
    _app: TestApp,
    store: Arc<dyn Store>,
    org: Uuid,
}

impl Fixture {
    async fn new(backend: Backend) -> Fixture {
        let app = TestApp::start(backend).await;
        let store = storage::connect(&app.config.database_url(), 2)
            .await
            .unwrap();
        let org = store.find_org_by_name("default").await.unwrap().unwrap().id;
        Fixture {
            _app: app,
            store,
            org,
        }
    }

    async fn add_agent(&self, name: &str, key: &PlainSecret) -> Result<(), Error> {
        let agent = NewAgent {
            id: Uuid::now_v7(),
            org_id: self.org,
            name: name.into(),
            mode: AgentMode::Standard,
            secret: NewSecret::from_plain(SecretKind::AgentKey, key, None),
        };
        self.store.create_agent(&agent).await
    }

    async fn agent(&self, name: &str) -> Option<AgentRecord> {
        self.store.find_agent_by_name(self.org, name).await.unwrap()
    }

    /// Rotates `agent`'s current key to `key`, keeping the old one for `grace`.
    async fn rotate(
        &self,
        agent: &AgentRecord,
        key: &PlainSecret,
        grace: Duration,
    ) -> Result<(), Error> {
        let old = Predecessor::ending(&agent.key, grace);
        let new = NewSecret::from_plain(SecretKind::AgentKey, key, None);
        self.store.rotate_secret(&old, &new).await
    }
}

fn mint() -> PlainSecret {
    PlainSecret::mint(SecretKind::AgentKey)
}

async fn a_failed_secret_insert_leaves_no_agent_behind(backend: Backend) {
    let db = Fixture::new(backend).await;
    let shared = PlainSecret::from_operator("the same digest twice".into());
    db.add_agent("first", &shared).await.unwrap();
    let second = db.add_agent("second", &shared).await;
    assert!(matches!(second, Err(Error::Conflict)), "{second:?}");
    assert!(db.agent("second").await.is_none(), "half-written agent");
}

async fn agent_names_are_unique_per_organization_in_the_database(backend: Backend) {
    let db = Fixture::new(backend).await;
    db.add_agent("unique", &mint()).await.unwrap();
    let again = db.add_agent("unique", &mint()).await;
    assert!(matches!(again, Err(Error::Conflict)), "{again:?}");
}

async fn rotating_a_secret_that_is_no_longer_current_is_a_conflict(backend: Backend) {
    let db = Fixture::new(backend).await;
    db.add_agent("rotated", &mint()).await.unwrap();
    let before = db.agent("rotated").await.unwrap();
    db.rotate(&before, &mint(), Duration::zero()).await.unwrap();
    let stale = db.rotate(&before, &mint(), Duration::zero()).await;
    assert!(matches!(stale, Err(Error::Conflict)), "{stale:?}");
    assert_ne!(db.agent("rotated").await.unwrap().key.id, before.key.id);
}

async fn deleting_an_agent_cascades_to_all_its_secrets(backend: Backend) {
    let db = Fixture::new(backend).await;
    let (first, second) = (mint(), mint());
    db.add_agent("cascade", &first).await.unwrap();
    let agent = db.agent("cascade").await.unwrap();
    db.rotate(&agent, &second, Duration::hours(1))
        .await
        .unwrap();
    assert!(
        db.store.find_secret(&first.hash()).await.unwrap().is_some(),
        "in its grace period"
    );

    assert!(db.store.delete_agent(db.org, agent.id).await.unwrap());
    for key in [&first, &second] {
        assert!(db.store.find_secret(&key.hash()).await.unwrap().is_none());
    }
    assert!(!db.store.delete_agent(db.org, agent.id).await.unwrap());
}

async fn usage_batches_set_last_used_at(backend: Backend) {
    let db = Fixture::new(backend).await;
    db.add_agent("busy", &mint()).await.unwrap();
    let key_id = db.agent("busy").await.unwrap().key.id;
    let at = storage::now();
    // A secret deleted since its use is simply skipped.
    db.store
        .record_usage(&[(key_id, at), (Uuid::now_v7(), at)])
        .await
        .unwrap();
    let last_used_at = db.agent("busy").await.unwrap().key.last_used_at;
    assert_eq!(
        last_used_at,
        Some(at),
        "timestamps round-trip exactly on both backends"
    );
}

#[tokio::test]
async fn unsupported_database_urls_are_refused_at_start_up() {
    for url in [
        "sqlite::memory:",
        "sqlite://?mode=memory",
        "mysql://root@localhost/keygate",
    ] {
        let refused = storage::connect(url, 1).await;
        assert!(refused.is_err(), "{url}");
    }
}

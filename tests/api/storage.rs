//! The storage conformance suite: both backends keep the same constraints in the database,
//! write multi-row changes atomically, and order lifecycle changes of one owner, whatever the
//! HTTP layer above them checks first.

use std::sync::Arc;

use chrono::Duration;
use keygate::domain::agent::{Agent, AgentMode, AgentName, NewAgent};
use keygate::domain::audit::{AuditContext, Change};
use keygate::domain::secret::{NewSecret, OwnerRef, Rotation, SecretMeta, now};
use keygate::domain::usage::UsageBatch;
use keygate::error::Error;
use keygate::secrets::{PlainSecret, SecretKind};
use keygate::storage::{self, Store};
use uuid::Uuid;

use crate::common::{Backend, TestApp, on_both_backends};

on_both_backends!(
    a_failed_secret_insert_leaves_no_agent_behind,
    agent_names_are_unique_per_organization_in_the_database,
    rotating_a_secret_that_is_no_longer_current_is_a_conflict,
    a_rotation_keeps_the_expiry_and_caps_the_grace_at_it,
    deleting_an_agent_cascades_to_all_its_secrets,
    creations_keep_the_cache_and_lifecycle_changes_outdate_it,
    usage_batches_set_last_used_at,
    last_used_at_only_moves_forward,
    a_database_of_the_first_schema_keeps_its_keys_through_the_ownership_migration,
    sealed_material_moves_to_its_secret_unchanged_through_the_per_secret_migrations,
);

/// Gives the fresh database at `$url` the schema of the migrations numbered below `$before`,
/// runs `$seed` with its pool as `$pool`, and closes the pool: a database as an older keygate
/// left it.
macro_rules! old_database {
    ($backend:expr, $url:expr, $before:expr, |$pool:ident| $seed:block) => {
        match $backend {
            Backend::Sqlite => old_database!(
                @at sqlx::SqlitePool::connect(&format!("{}?mode=rwc", $url)).await.unwrap(),
                "migrations/sqlite", $before, |$pool| $seed
            ),
            Backend::Postgres => old_database!(
                @at sqlx::PgPool::connect(&$url).await.unwrap(),
                "migrations/postgres", $before, |$pool| $seed
            ),
        }
    };
    (@at $connect:expr, $migrations:literal, $before:expr, |$pool:ident| $seed:block) => {{
        let $pool = $connect;
        let mut older = sqlx::migrate!($migrations);
        older.migrations = std::borrow::Cow::Owned(
            older.migrations.iter().filter(|m| m.version < $before).cloned().collect(),
        );
        older.run(&$pool).await.unwrap();
        $seed
        $pool.close().await;
    }};
}

/// A change made straight on the store, as the server's host makes them.
pub fn host_change(org: Uuid) -> Change {
    AuditContext::host(org).change("test.change", "test", org)
}

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
        self.add_expiring_agent(name, key, None).await
    }

    async fn add_expiring_agent(
        &self,
        name: &str,
        key: &PlainSecret,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), Error> {
        let agent = NewAgent {
            id: Uuid::now_v7(),
            org_id: self.org,
            name: AgentName::parse(name).unwrap(),
            mode: AgentMode::Standard,
            secret: NewSecret::from_plain(SecretKind::AgentKey, key, expires_at),
        };
        self.store
            .create_agent(&agent, &host_change(self.org))
            .await
    }

    async fn agent(&self, name: &str) -> Option<(Agent, SecretMeta)> {
        self.store.find_agent_by_name(self.org, name).await.unwrap()
    }

    /// Rotates the key `current` of `agent` to `key`, keeping the old one for `grace`.
    async fn rotate(
        &self,
        agent: &Agent,
        current: Uuid,
        key: &PlainSecret,
        grace: Duration,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, Error> {
        let rotation = Rotation {
            owner: OwnerRef {
                org_id: agent.org_id,
                id: agent.id,
            },
            slot: String::new(),
            current,
            grace,
            successor: NewSecret::from_plain(SecretKind::AgentKey, key, None),
            latest_expiry: None,
        };
        self.store
            .rotate_secret(&rotation, &host_change(self.org))
            .await
    }

    async fn key_state(&self, key: &PlainSecret) -> Option<keygate::domain::secret::SecretState> {
        let found = self.store.find_agent_by_secret(&key.hash()).await.unwrap();
        found.map(|(state, _)| state)
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
    assert!(matches!(second, Err(Error::AlreadyExists)), "{second:?}");
    assert!(db.agent("second").await.is_none(), "half-written agent");
}

async fn agent_names_are_unique_per_organization_in_the_database(backend: Backend) {
    let db = Fixture::new(backend).await;
    db.add_agent("unique", &mint()).await.unwrap();
    let again = db.add_agent("unique", &mint()).await;
    assert!(matches!(again, Err(Error::AlreadyExists)), "{again:?}");
}

async fn rotating_a_secret_that_is_no_longer_current_is_a_conflict(backend: Backend) {
    let db = Fixture::new(backend).await;
    db.add_agent("rotated", &mint()).await.unwrap();
    let (agent, before) = db.agent("rotated").await.unwrap();
    db.rotate(&agent, before.id, &mint(), Duration::zero())
        .await
        .unwrap();
    let stale = db
        .rotate(&agent, before.id, &mint(), Duration::zero())
        .await;
    assert!(matches!(stale, Err(Error::Conflict(_))), "{stale:?}");
    assert_ne!(db.agent("rotated").await.unwrap().1.id, before.id);
}

async fn a_rotation_keeps_the_expiry_and_caps_the_grace_at_it(backend: Backend) {
    let db = Fixture::new(backend).await;
    let (old, new) = (mint(), mint());
    let expires_at = now() + Duration::minutes(10);
    db.add_expiring_agent("expiring", &old, Some(expires_at))
        .await
        .unwrap();
    let (agent, current) = db.agent("expiring").await.unwrap();
    let inherited = db
        .rotate(&agent, current.id, &new, Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(
        inherited,
        Some(expires_at),
        "the successor inherits the expiry"
    );
    assert_eq!(
        db.key_state(&new).await.unwrap().expires_at,
        Some(expires_at)
    );
    assert_eq!(
        db.key_state(&old).await.unwrap().expires_at,
        Some(expires_at),
        "a one-hour grace period ends with the old key's ten-minute expiry"
    );
}

/// A creation cannot make a cached answer wrong (its secret's digest is new, and misses are
/// never cached), so it leaves every instance's cache in place; a rotation or a deletion
/// outdates it.
async fn creations_keep_the_cache_and_lifecycle_changes_outdate_it(backend: Backend) {
    let db = Fixture::new(backend).await;
    let changes = db.store.changes();
    let before = changes.generation().unwrap();
    db.add_agent("created", &mint()).await.unwrap();
    assert_eq!(
        changes.generation(),
        Some(before),
        "a creation keeps the cache"
    );
    let (agent, current) = db.agent("created").await.unwrap();
    db.rotate(&agent, current.id, &mint(), Duration::zero())
        .await
        .unwrap();
    let rotated = changes.generation().unwrap();
    assert!(rotated > before, "a rotation outdates the cache");
    let change = host_change(db.org);
    db.store
        .delete_agent(db.org, agent.id, &change)
        .await
        .unwrap();
    assert!(
        changes.generation().unwrap() > rotated,
        "a deletion outdates the cache"
    );
}

async fn deleting_an_agent_cascades_to_all_its_secrets(backend: Backend) {
    let db = Fixture::new(backend).await;
    let (first, second) = (mint(), mint());
    db.add_agent("cascade", &first).await.unwrap();
    let (agent, current) = db.agent("cascade").await.unwrap();
    db.rotate(&agent, current.id, &second, Duration::hours(1))
        .await
        .unwrap();
    assert!(db.key_state(&first).await.is_some(), "in its grace period");

    let change = host_change(db.org);
    assert!(
        db.store
            .delete_agent(db.org, agent.id, &change)
            .await
            .unwrap()
    );
    for key in [&first, &second] {
        assert!(db.key_state(key).await.is_none());
    }
    assert!(
        !db.store
            .delete_agent(db.org, agent.id, &change)
            .await
            .unwrap()
    );
    let gone = db
        .rotate(&agent, current.id, &mint(), Duration::zero())
        .await;
    assert!(matches!(gone, Err(Error::NotFound(_))), "{gone:?}");
}

/// A flush of latest uses only.
fn last_used(uses: &[(Uuid, chrono::DateTime<chrono::Utc>)]) -> UsageBatch {
    UsageBatch {
        last_used: uses.to_vec(),
        ..UsageBatch::default()
    }
}

async fn usage_batches_set_last_used_at(backend: Backend) {
    let db = Fixture::new(backend).await;
    db.add_agent("busy", &mint()).await.unwrap();
    let key_id = db.agent("busy").await.unwrap().1.id;
    let at = now();
    // A secret deleted since its use is simply skipped.
    db.store
        .record_usage(&last_used(&[(key_id, at), (Uuid::now_v7(), at)]))
        .await
        .unwrap();
    let last_used_at = db.agent("busy").await.unwrap().1.last_used_at;
    assert_eq!(
        last_used_at,
        Some(at),
        "timestamps round-trip exactly on both backends"
    );
}

/// Several instances flush in any order: an older use never overwrites a newer one.
async fn last_used_at_only_moves_forward(backend: Backend) {
    let db = Fixture::new(backend).await;
    db.add_agent("flushed", &mint()).await.unwrap();
    let key_id = db.agent("flushed").await.unwrap().1.id;
    let newer = now();
    let older = newer - Duration::seconds(30);
    db.store
        .record_usage(&last_used(&[(key_id, newer)]))
        .await
        .unwrap();
    db.store
        .record_usage(&last_used(&[(key_id, older)]))
        .await
        .unwrap();
    assert_eq!(
        db.agent("flushed").await.unwrap().1.last_used_at,
        Some(newer)
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

/// A database created before secrets had owners rows is migrated with every key intact: the
/// same digests verify for the same agents and API keys, and their lifecycle works.
async fn a_database_of_the_first_schema_keeps_its_keys_through_the_ownership_migration(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let (postgres_db, url) = empty_database(backend, &dir).await;
    let (agent_key, api_key, grace_key) = (mint(), PlainSecret::mint(SecretKind::ApiKey), mint());
    let (org, agent, key) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let rows = [
        "INSERT INTO orgs (id, name, created_at) VALUES ($1, 'default', $4)",
        "INSERT INTO agents (id, org_id, name, mode, created_at) VALUES ($2, $1, 'old-agent', 'embedded', $4)",
        "INSERT INTO api_keys (id, org_id, name, role, created_at) VALUES ($3, $1, 'old-key', 'admin', $4)",
    ];
    let secrets = [
        (&agent_key, "agent_key", Some(agent), None, None),
        (&grace_key, "agent_key", Some(agent), None, Some(now())),
        (&api_key, "api_key", None, Some(key), None),
    ];
    old_database!(backend, url, 2, |pool| {
        for sql in rows {
            sqlx::query(sql)
                .bind(org)
                .bind(agent)
                .bind(key)
                .bind(now())
                .execute(&pool)
                .await
                .unwrap();
        }
        for (plain, kind, agent_id, api_key_id, rotated_at) in secrets {
            sqlx::query(
                "INSERT INTO secrets (id, kind, hash, hint, agent_id, api_key_id, created_at, rotated_at)
                 VALUES ($1, $2, $3, 'hint', $4, $5, $6, $7)",
            )
            .bind(Uuid::now_v7()).bind(kind).bind(plain.hash().as_bytes().to_vec())
            .bind(agent_id).bind(api_key_id).bind(now()).bind(rotated_at)
            .execute(&pool).await.unwrap();
        }
    });

    let store = storage::connect(&url, 2).await.unwrap();
    let (state, found) = store
        .find_agent_by_secret(&agent_key.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.id, found.org_id, found.mode),
        (agent, org, AgentMode::Embedded)
    );
    assert!(state.revoked_at.is_none());
    assert!(
        store
            .find_agent_by_secret(&grace_key.hash())
            .await
            .unwrap()
            .is_some()
    );
    let (_, admin) = store
        .find_api_key_by_secret(&api_key.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((admin.id, admin.org_id), (key, org));
    let (_, current) = store
        .find_agent_by_name(org, "old-agent")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        current.id, state.id,
        "the current key is the one not rotated away"
    );
    assert!(
        store
            .delete_agent(org, agent, &host_change(org))
            .await
            .unwrap()
    );
    assert!(
        store
            .find_agent_by_secret(&agent_key.hash())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_agent_by_secret(&grace_key.hash())
            .await
            .unwrap()
            .is_none()
    );
    drop(store);
    drop_database(postgres_db).await;
}

/// A fresh database that no server has opened: a file in `dir`, or a new Postgres database (its
/// name, to drop it afterwards) and its URL.
pub(crate) async fn empty_database(
    backend: Backend,
    dir: &tempfile::TempDir,
) -> (Option<String>, String) {
    match backend {
        Backend::Sqlite => (
            None,
            format!("sqlite://{}", dir.path().join("old.db").display()),
        ),
        Backend::Postgres => {
            let (name, url) = crate::common::create_postgres_database().await;
            (Some(name), url)
        }
    }
}

/// Drops the Postgres database [`empty_database`] made, if it made one.
pub(crate) async fn drop_database(postgres_db: Option<String>) {
    if let Some(name) = postgres_db {
        crate::common::drop_postgres_database(&name).await;
    }
}

/// Key pairs and Agentex signing keys made when their sealed material was kept on the key's
/// row find it, unchanged, beside their secret once it is kept per secret (migrations 10, 11).
async fn sealed_material_moves_to_its_secret_unchanged_through_the_per_secret_migrations(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let (postgres_db, url) = empty_database(backend, &dir).await;
    let private = PlainSecret::mint(SecretKind::ProgrammaticKey);
    let signing = PlainSecret::mint(SecretKind::AgentexSigningSecret);
    let (org, key, secret) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let (agent, agentex_key, agentex_secret) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let sealed: Vec<u8> = (0..60).collect();
    let rows = [
        "INSERT INTO orgs (id, name, created_at) VALUES ($1, 'default', $4)",
        "INSERT INTO owners (id, org_id) VALUES ($2, $1)",
        "INSERT INTO programmatic_keys
             (id, org_id, object_id, public_key, description, ha1_key_id, ha1_sealed, created_at)
         VALUES ($2, $1, '0123456789abcdef01234567', 'oldpair', 'old', 'k1', $5, $4)",
        "INSERT INTO secrets (id, kind, hash, hint, owner_id, slot, created_at)
         VALUES ($3, 'programmatic_key', $6, 'hint', $2, '', $4)",
        "INSERT INTO owners (id, org_id) VALUES ($7, $1)",
        "INSERT INTO agents (id, org_id, name, mode, created_at) VALUES ($7, $1, 'edge', 'standard', $4)",
        "INSERT INTO owners (id, org_id) VALUES ($8, $1)",
        "INSERT INTO agent_api_keys
             (id, org_id, agent_id, name, api_key_type, created_at, sealed_secret, sealed_key_id)
         VALUES ($8, $1, $7, 'octo/repo', 'github', $4, $5, 'k2')",
        "INSERT INTO secrets (id, kind, hash, hint, owner_id, slot, created_at)
         VALUES ($9, 'agentex_signing_secret', $10, 'hint', $8, '', $4)",
    ];
    old_database!(backend, url, 10, |pool| {
        for sql in rows {
            sqlx::query(sql)
                .bind(org)
                .bind(key)
                .bind(secret)
                .bind(now())
                .bind(sealed.clone())
                .bind(private.hash().as_bytes().to_vec())
                .bind(agent)
                .bind(agentex_key)
                .bind(agentex_secret)
                .bind(signing.hash().as_bytes().to_vec())
                .execute(&pool)
                .await
                .unwrap();
        }
    });

    let store = storage::connect(&url, 2).await.unwrap();
    let account = store.find_digest_account("oldpair").await.unwrap().unwrap();
    assert_eq!(account.key.id, key);
    assert_eq!(account.credentials.len(), 1);
    let credential = &account.credentials[0];
    assert_eq!(credential.secret.id, secret);
    assert_eq!(
        (credential.sealed.key_id.as_str(), &credential.sealed.bytes),
        ("k1", &sealed)
    );
    let signing_secrets = store.live_sealed_secrets(agentex_key).await.unwrap();
    assert_eq!(signing_secrets.len(), 1);
    assert_eq!(signing_secrets[0].secret.id, agentex_secret);
    let moved = &signing_secrets[0].sealed;
    assert_eq!((moved.key_id.as_str(), &moved.bytes), ("k2", &sealed));
    drop(store);
    drop_database(postgres_db).await;
}

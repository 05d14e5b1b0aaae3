//! Verification, the hot path: "is this secret valid, and whose is it?".
//!
//! Every check goes through [`Verifier::lookup`], one read by digest answered from the
//! [`cache::VerifyCache`] when it can be. The path writes nothing: uses (`last_used_at` and
//! hourly counts) and answers are counted in memory and flushed in batches by
//! [`UsageRecorder`].

mod cache;
mod usage;

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::domain::agent::Agent;
use crate::domain::agentex::{AgentApiKey, AgentApiKeyType};
use crate::domain::machine_identities::CredentialHolder;
use crate::domain::ops_manager::ProjectAgentKey;
use crate::domain::org::ApiKey;
use crate::domain::secret::{SecretState, Standing, now};
use crate::error::Error;
use crate::secrets::agent_key::parse_dsn;
use crate::secrets::{Malformed, PlainSecret, SecretHash, SecretKind};
use crate::storage::Store;
use crate::storage::notify::ChangeCounts;
pub use cache::CacheCounts;
use cache::VerifyCache;
use usage::UsageRecorder;

/// Why a presented secret is or is not valid; the `code` of a `POST /verify` answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    Valid,
    /// Not a secret keygate could have minted (prefix, shape or checksum); no database read.
    Malformed,
    /// No such secret in the caller's organization.
    NotFound,
    Revoked,
    Expired,
    /// An agent DSN whose user part is not the agent's name.
    NameMismatch,
    /// A machine credential presented to a connection it was not issued for.
    ConnectionMismatch,
}

impl Code {
    /// The code as answered and as metrics label it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::Valid => "valid",
            Code::Malformed => "malformed",
            Code::NotFound => "not_found",
            Code::Revoked => "revoked",
            Code::Expired => "expired",
            Code::NameMismatch => "name_mismatch",
            Code::ConnectionMismatch => "connection_mismatch",
        }
    }
}

/// Whose a found secret is.
#[derive(Clone, Debug)]
pub enum Owner {
    Agent(Agent),
    ApiKey(ApiKey),
    /// An Ops Manager agent API key: which project (and so which organization) it serves.
    ProjectAgentKey(ProjectAgentKey),
    MachineCredential(CredentialHolder),
    /// An Agentex agent API key: of which type, and which agent's.
    AgentApiKey(AgentApiKey),
}

impl Owner {
    pub fn org_id(&self) -> Uuid {
        match self {
            Owner::Agent(agent) => agent.org_id,
            Owner::ApiKey(key) => key.org_id,
            Owner::ProjectAgentKey(key) => key.org_id,
            Owner::MachineCredential(holder) => holder.org_id,
            Owner::AgentApiKey(key) => key.org_id,
        }
    }
}

/// The result of checking a presented secret.
#[derive(Debug)]
pub struct Outcome {
    pub code: Code,
    pub kind: Option<SecretKind>,
    /// Set when the secret was found in the caller's organization.
    pub found: Option<(SecretState, Owner)>,
}

impl Outcome {
    /// The kind of secret presented, as metrics and usage label it: `unknown` when the
    /// presented text named none.
    pub fn kind_label(&self) -> &'static str {
        self.kind.map_or("unknown", SecretKind::as_str)
    }

    fn new(code: Code, kind: Option<SecretKind>) -> Outcome {
        Outcome {
            code,
            kind,
            found: None,
        }
    }
}

pub struct Verifier {
    store: Arc<dyn Store>,
    cache: VerifyCache,
    usage: UsageRecorder,
}

impl Verifier {
    /// A verifier caching up to about `cache_capacity` found secrets (0: none).
    pub fn new(store: Arc<dyn Store>, cache_capacity: usize) -> Verifier {
        Verifier {
            cache: VerifyCache::new(cache_capacity, store.changes()),
            store,
            usage: UsageRecorder::default(),
        }
    }

    /// The cache's counts, and what ended its generations.
    pub fn cache_counts(&self) -> (CacheCounts, ChangeCounts) {
        (self.cache.counts(), self.cache.changes().counts())
    }

    /// Writes the uses collected so far (called periodically and once more at shutdown).
    pub async fn flush_usage(&self) {
        self.usage.flush(self.store.as_ref()).await;
    }

    /// Flushes usage every `interval`, and purges counts past retention now and every hour,
    /// until `stop` changes (or its sender is dropped). A flush under way is finished, never cut
    /// short: the uses it took would be lost.
    pub fn spawn_usage_flusher(
        self: Arc<Self>,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut purges = tokio::time::interval(usage::PURGE_EVERY);
            purges.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => self.flush_usage().await,
                    _ = purges.tick() => usage::purge(self.store.as_ref()).await,
                    _ = stop.changed() => return,
                }
            }
        })
    }

    /// The one lookup behind every verification: by digest, from the cache or else in the
    /// table of the owner kind the prefix names.
    async fn lookup(&self, plain: &PlainSecret) -> Result<Option<(SecretState, Owner)>, Error> {
        let key = (plain.kind(), plain.hash());
        if let Some(found) = self.cache.get(&key) {
            return Ok(Some(found).filter(|(state, _)| state.hash.matches(&key.1)));
        }
        // Read before the database, so a change committed meanwhile outdates what is found.
        let generation = self.cache.generation();
        let found = self.read(plain.kind(), &key.1).await?;
        if let (Some(generation), Some(found)) = (generation, &found) {
            self.cache.insert(key, generation, found.clone());
        }
        Ok(found)
    }

    /// Reads a secret by digest in its owner kind's table. Operator-chosen secrets (no prefix)
    /// can only be API keys. The `store` span of a trace: only a read the cache could not
    /// answer has one.
    #[tracing::instrument(level = "debug", name = "store", skip_all)]
    async fn read(
        &self,
        kind: Option<SecretKind>,
        hash: &SecretHash,
    ) -> Result<Option<(SecretState, Owner)>, Error> {
        let found = match kind {
            Some(SecretKind::AgentKey) => self
                .store
                .find_agent_by_secret(hash)
                .await?
                .map(|(state, agent)| (state, Owner::Agent(agent))),
            Some(SecretKind::MachineCredential) => self
                .store
                .find_machine_credential_by_secret(hash)
                .await?
                .map(|(state, holder)| (state, Owner::MachineCredential(holder))),
            Some(SecretKind::ApiKey) | None => self
                .store
                .find_api_key_by_secret(hash)
                .await?
                .map(|(state, key)| (state, Owner::ApiKey(key))),
            Some(SecretKind::ProjectAgentKey) => self
                .store
                .find_project_agent_key_by_secret(hash)
                .await?
                .map(|(state, key)| (state, Owner::ProjectAgentKey(key))),
            // Checked by HTTP Digest against sealed HA1 values, and not answered for (below).
            Some(SecretKind::ProgrammaticKey) => None,
            Some(SecretKind::AgentexKey) => self
                .store
                .find_agent_api_key_by_secret(hash)
                .await?
                .map(|(state, key)| (state, Owner::AgentApiKey(key))),
            // HMAC keys of webhook signatures, never presented: checked where signatures are.
            Some(SecretKind::AgentexSigningSecret) => None,
        };
        // The index matched the digest already; the constant-time check keeps any later cache
        // or lookup change from turning into a byte-by-byte comparison of secrets.
        Ok(found.filter(|(state, _)| state.hash.matches(hash)))
    }

    /// Checks a secret's lifecycle; the caller records its use once every check has passed.
    async fn check(&self, plain: &PlainSecret, org_id: Option<Uuid>) -> Result<Outcome, Error> {
        let found = self
            .lookup(plain)
            .await?
            .filter(|(_, owner)| org_id.is_none_or(|org| owner.org_id() == org));
        let Some((state, owner)) = found else {
            return Ok(Outcome::new(Code::NotFound, plain.kind()));
        };
        let code = match state.standing(now()) {
            Standing::Active => Code::Valid,
            Standing::Revoked => Code::Revoked,
            Standing::Expired => Code::Expired,
        };
        Ok(Outcome {
            code,
            kind: Some(state.kind),
            found: Some((state, owner)),
        })
    }

    /// Verifies what the data plane presents for the caller's organization: an agent DSN or a
    /// bare secret, and for a machine credential the connection it was presented to, when the
    /// proxy knows it. API keys and Ops Manager key pairs are credentials of keygate's own API
    /// and are not answered for here. The `verify` span of a trace; the presented secret is
    /// never one of its fields.
    #[tracing::instrument(level = "debug", name = "verify", skip_all)]
    pub async fn verify_presented(
        &self,
        presented: &str,
        connection: Option<&str>,
        org_id: Uuid,
    ) -> Result<Outcome, Error> {
        let outcome = self.check_presented(presented, connection, org_id).await?;
        self.answered(&outcome, org_id);
        Ok(outcome)
    }

    async fn check_presented(
        &self,
        presented: &str,
        connection: Option<&str>,
        org_id: Uuid,
    ) -> Result<Outcome, Error> {
        let dsn = parse_dsn(presented);
        let key = dsn.as_ref().map_or(presented, |dsn| dsn.key.as_str());
        let plain = match PlainSecret::parse(key) {
            Ok(plain)
                if !matches!(
                    plain.kind(),
                    Some(SecretKind::ApiKey | SecretKind::ProgrammaticKey)
                ) =>
            {
                plain
            }
            Ok(plain) => return Ok(Outcome::new(Code::NotFound, plain.kind())),
            Err(_) => return Ok(Outcome::new(Code::Malformed, None)),
        };
        let mut outcome = self.check(&plain, Some(org_id)).await?;
        // Lifecycle answers (revoked, expired) take precedence over the name check.
        if let (Some(dsn), Some((_, Owner::Agent(agent)))) = (&dsn, &outcome.found)
            && outcome.code == Code::Valid
            && dsn.name != agent.name
        {
            outcome.code = Code::NameMismatch;
        }
        if let (Some(connection), Some((_, Owner::MachineCredential(holder)))) =
            (connection, &outcome.found)
            && outcome.code == Code::Valid
            && holder.connection.name != connection
        {
            outcome.code = Code::ConnectionMismatch;
        }
        Ok(outcome)
    }

    /// Verifies an Agentex agent API key as the data plane received it (the value of
    /// `x-agent-api-key`, or the key of `Authorization: AgentKey <key>`), minted or chosen at
    /// its creation. With `expected`, a key of another type is not found: types are never
    /// interchangeable. Signing secrets never verify here. The `verify` span of a trace.
    #[tracing::instrument(level = "debug", name = "verify", skip_all)]
    pub async fn verify_agent_api_key(
        &self,
        presented: &str,
        expected: Option<AgentApiKeyType>,
        org_id: Uuid,
    ) -> Result<Outcome, Error> {
        let outcome = self
            .check_agent_api_key(presented, expected, org_id)
            .await?;
        self.answered(&outcome, org_id);
        Ok(outcome)
    }

    async fn check_agent_api_key(
        &self,
        presented: &str,
        expected: Option<AgentApiKeyType>,
        org_id: Uuid,
    ) -> Result<Outcome, Error> {
        let plain = match PlainSecret::parse(presented) {
            Ok(plain) if plain.kind() == Some(SecretKind::AgentexKey) => plain,
            Ok(plain) => return Ok(Outcome::new(Code::NotFound, plain.kind())),
            // A chosen key never starts with a prefix keygate mints: this may be one.
            Err(Malformed::UnknownPrefix) => {
                PlainSecret::chosen(SecretKind::AgentexKey, presented.to_owned())
            }
            Err(_) => return Ok(Outcome::new(Code::Malformed, None)),
        };
        let mut outcome = self.check(&plain, Some(org_id)).await?;
        if let Some((_, Owner::AgentApiKey(key))) = &outcome.found
            && expected.is_some_and(|expected| expected != key.api_key_type)
        {
            outcome = Outcome::new(Code::NotFound, outcome.kind);
        }
        Ok(outcome)
    }

    /// Resolves a bearer credential of keygate's API to its API key and the id of the secret
    /// presented, when it works.
    /// Minted API keys are checked for shape and checksum first; any other string can only be
    /// an operator-chosen bootstrap token, looked up by digest.
    pub async fn authenticate_api_key(&self, token: &str) -> Result<Option<(ApiKey, Uuid)>, Error> {
        let plain = match PlainSecret::parse(token) {
            Ok(plain) if plain.kind() == Some(SecretKind::ApiKey) => plain,
            Ok(_) => return Ok(None),
            Err(_) if token.starts_with(SecretKind::ApiKey.prefix()) => return Ok(None),
            Err(_) => PlainSecret::from_operator(token.to_owned()),
        };
        let outcome = self.check(&plain, None).await?;
        self.record_if_valid(&outcome, now());
        Ok(match outcome.found {
            Some((state, Owner::ApiKey(key))) if outcome.code == Code::Valid => {
                Some((key, state.id))
            }
            _ => None,
        })
    }

    /// Records a use of a secret checked outside this module (an Ops Manager key pair by HTTP
    /// Digest, a webhook signature checked with a signing secret), batched like every other use.
    pub fn record_use(&self, secret_id: Uuid) {
        self.usage.record(secret_id, now());
    }

    /// Counts the answer of a verification asked by `org_id`, and the use of a valid secret.
    fn answered(&self, outcome: &Outcome, org_id: Uuid) {
        let at = now();
        self.usage
            .answered(org_id, outcome.kind_label(), outcome.code.as_str(), at);
        self.record_if_valid(outcome, at);
    }

    fn record_if_valid(&self, outcome: &Outcome, at: chrono::DateTime<chrono::Utc>) {
        if let (Code::Valid, Some((state, _))) = (outcome.code, &outcome.found) {
            self.usage.record(state.id, at);
        }
    }
}

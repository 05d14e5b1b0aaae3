//! Every value sealed under a server key, wherever it is kept, for the server key's rotation:
//! how many each key sealed, the values sealed under other keys than the current one a page at
//! a time, and their replacement by the same values sealed under the current key.
//!
//! Sealed values live in three tables: `sealed_secrets` (Ops Manager Digest HA1 values and
//! Agentex signing secrets, per secret), `idempotency_keys` (replayable answers) and
//! `connections` (hoop upstream secrets). Each is bound to its row by associated data, which
//! the pages carry beside it, built by the same functions that sealed it.

use async_trait::async_trait;
use uuid::Uuid;

use super::Result;
use super::rows::corrupt;
use crate::domain::agentex::{AgentApiKeyType, sealing_context as agentex_binding};
use crate::domain::connections::sealing_context as connection_binding;
use crate::domain::ops_manager::ha1_binding;
use crate::error::Error;
use crate::secrets::server_key::Sealed;
use crate::storage::idempotency::associated_data as answer_binding;

/// A table holding sealed values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SealedTable {
    /// Digest HA1 values and signing secrets.
    Secrets,
    /// Answers replayed under an `Idempotency-Key`.
    IdempotentAnswers,
    /// Connections' upstream secrets.
    Connections,
}

impl SealedTable {
    pub const ALL: [SealedTable; 3] = [
        SealedTable::Secrets,
        SealedTable::IdempotentAnswers,
        SealedTable::Connections,
    ];

    /// The table's name in the database.
    pub const fn name(self) -> &'static str {
        match self {
            SealedTable::Secrets => "sealed_secrets",
            SealedTable::IdempotentAnswers => "idempotency_keys",
            SealedTable::Connections => "connections",
        }
    }

    fn from_name(name: &str) -> Option<SealedTable> {
        Self::ALL.into_iter().find(|table| table.name() == name)
    }

    /// The compare-and-swap that replaces one value: `$1`, `$2` the new key id and value,
    /// `$3`, `$4` the old ones, then the row's primary key. A value a request replaced
    /// meanwhile (re-sealed by an instance, or a new answer) no longer matches and is kept.
    pub const fn reseal_sql(self) -> &'static str {
        match self {
            SealedTable::Secrets => {
                "UPDATE sealed_secrets SET sealed_key_id = $1, sealed = $2
                 WHERE sealed_key_id = $3 AND sealed = $4 AND secret_id = $5"
            }
            SealedTable::IdempotentAnswers => {
                "UPDATE idempotency_keys SET sealed_key_id = $1, sealed_response = $2
                 WHERE sealed_key_id = $3 AND sealed_response = $4
                   AND principal_id = $5 AND idempotency_key = $6"
            }
            SealedTable::Connections => {
                "UPDATE connections SET sealed_key_id = $1, sealed_secret = $2
                 WHERE sealed_key_id = $3 AND sealed_secret = $4 AND id = $5"
            }
        }
    }
}

/// Where one sealed value is kept: its row's primary key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealedPlace {
    Secret(Uuid),
    IdempotentAnswer { principal_id: Uuid, key: String },
    Connection(Uuid),
}

impl SealedPlace {
    pub fn table(&self) -> SealedTable {
        match self {
            SealedPlace::Secret(_) => SealedTable::Secrets,
            SealedPlace::IdempotentAnswer { .. } => SealedTable::IdempotentAnswers,
            SealedPlace::Connection(_) => SealedTable::Connections,
        }
    }

    /// The id in the row's primary key (an idempotency key's caller).
    pub fn id(&self) -> Uuid {
        match self {
            SealedPlace::Secret(id) | SealedPlace::Connection(id) => *id,
            SealedPlace::IdempotentAnswer { principal_id, .. } => *principal_id,
        }
    }

    /// The rest of an idempotency key's primary key: the key itself.
    pub fn key(&self) -> &str {
        match self {
            SealedPlace::IdempotentAnswer { key, .. } => key,
            SealedPlace::Secret(_) | SealedPlace::Connection(_) => "",
        }
    }
}

impl std::fmt::Display for SealedPlace {
    /// The row, never its key: an idempotency key is the caller's, not a secret, but it is
    /// left out all the same, as nothing needs it to find the row.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealedPlace::Secret(id) => write!(f, "sealed_secrets row of secret {id}"),
            SealedPlace::IdempotentAnswer { principal_id, .. } => {
                write!(f, "idempotency_keys row of caller {principal_id}")
            }
            SealedPlace::Connection(id) => write!(f, "connections row {id}"),
        }
    }
}

/// A sealed value, where it is kept and what binds it there.
#[derive(Clone, Debug)]
pub struct SealedValue {
    pub place: SealedPlace,
    pub associated: Vec<u8>,
    pub sealed: Sealed,
}

/// A value re-sealed: what was read, to be replaced only if it is still there.
#[derive(Clone, Debug)]
pub struct Resealed {
    pub place: SealedPlace,
    pub old: Sealed,
    pub new: Sealed,
}

/// How many values of a table one server key sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedCount {
    pub table: SealedTable,
    pub key_id: String,
    pub rows: i64,
}

#[async_trait]
pub trait SealedStore: Send + Sync + 'static {
    /// How many values each server key sealed, per table.
    async fn sealed_counts(&self) -> Result<Vec<SealedCount>>;
    /// Up to `limit` values of `table` sealed under another key than `current`, in primary-key
    /// order after `after` (a place in `table`), so that a walk ends even when values stay.
    async fn sealed_values(
        &self,
        table: SealedTable,
        current: &str,
        after: Option<&SealedPlace>,
        limit: i64,
    ) -> Result<Vec<SealedValue>>;
    /// Replaces each value that is still as it was read with its new form, in one
    /// transaction; how many were replaced.
    async fn reseal(&self, values: &[Resealed]) -> Result<u64>;
}

pub const COUNT: &str = "SELECT 'sealed_secrets' AS place, sealed_key_id AS key_id, COUNT(*) AS n
       FROM sealed_secrets GROUP BY sealed_key_id
     UNION ALL SELECT 'idempotency_keys', sealed_key_id, COUNT(*)
       FROM idempotency_keys WHERE sealed_key_id IS NOT NULL GROUP BY sealed_key_id
     UNION ALL SELECT 'connections', sealed_key_id, COUNT(*)
       FROM connections WHERE sealed_key_id IS NOT NULL GROUP BY sealed_key_id";

/// `$1` the current key id, `$2` the secret id to continue after (or NULL), `$3` the limit.
/// The owner says what the value is bound to: a key pair's id, or an Agentex key's row.
pub const SELECT_SECRETS: &str =
    "SELECT x.secret_id, x.sealed_key_id, x.sealed, s.owner_id, p.id AS pair_id,
            a.agent_id, a.api_key_type
     FROM sealed_secrets x
     JOIN secrets s ON s.id = x.secret_id
     LEFT JOIN programmatic_keys p ON p.id = s.owner_id
     LEFT JOIN agent_api_keys a ON a.id = s.owner_id
     WHERE x.sealed_key_id <> $1 AND ($2 IS NULL OR x.secret_id > $2)
     ORDER BY x.secret_id LIMIT $3";

/// `$1` the current key id, `$2`, `$3` the caller and key to continue after (or NULL), `$4`
/// the limit.
pub const SELECT_ANSWERS: &str =
    "SELECT principal_id, idempotency_key, request_digest, sealed_key_id, sealed_response
     FROM idempotency_keys
     WHERE sealed_key_id IS NOT NULL AND sealed_key_id <> $1
       AND ($2 IS NULL OR (principal_id, idempotency_key) > ($2, $3))
     ORDER BY principal_id, idempotency_key LIMIT $4";

/// `$1` the current key id, `$2` the connection id to continue after (or NULL), `$3` the limit.
pub const SELECT_CONNECTIONS: &str = "SELECT id, sealed_key_id, sealed_secret FROM connections
     WHERE sealed_key_id IS NOT NULL AND sealed_key_id <> $1 AND ($2 IS NULL OR id > $2)
     ORDER BY id LIMIT $3";

#[derive(sqlx::FromRow)]
pub struct CountRow {
    pub place: String,
    pub key_id: String,
    pub n: i64,
}

impl TryFrom<CountRow> for SealedCount {
    type Error = Error;
    fn try_from(row: CountRow) -> Result<SealedCount> {
        Ok(SealedCount {
            table: SealedTable::from_name(&row.place)
                .ok_or_else(|| corrupt("sealed table", &row.place))?,
            key_id: row.key_id,
            rows: row.n,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct SecretRow {
    pub secret_id: Uuid,
    pub sealed_key_id: String,
    pub sealed: Vec<u8>,
    pub owner_id: Uuid,
    pub pair_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub api_key_type: Option<String>,
}

impl TryFrom<SecretRow> for SealedValue {
    type Error = Error;
    fn try_from(row: SecretRow) -> Result<SealedValue> {
        let associated = match (row.pair_id, row.agent_id, row.api_key_type) {
            (Some(_), _, _) => ha1_binding(row.owner_id),
            (None, Some(agent_id), Some(kind)) => {
                let kind = AgentApiKeyType::from_db(&kind)
                    .ok_or_else(|| corrupt("api_key_type", &kind))?;
                agentex_binding(row.owner_id, agent_id, kind)
            }
            _ => {
                return Err(corrupt(
                    "owner of a sealed secret (neither a key pair nor an Agentex key)",
                    &row.owner_id.to_string(),
                ));
            }
        };
        Ok(SealedValue {
            place: SealedPlace::Secret(row.secret_id),
            associated,
            sealed: Sealed {
                key_id: row.sealed_key_id,
                bytes: row.sealed,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct AnswerRow {
    pub principal_id: Uuid,
    pub idempotency_key: String,
    pub request_digest: Vec<u8>,
    pub sealed_key_id: String,
    pub sealed_response: Vec<u8>,
}

impl TryFrom<AnswerRow> for SealedValue {
    type Error = Error;
    fn try_from(row: AnswerRow) -> Result<SealedValue> {
        Ok(SealedValue {
            associated: answer_binding(row.principal_id, &row.request_digest, &row.idempotency_key),
            place: SealedPlace::IdempotentAnswer {
                principal_id: row.principal_id,
                key: row.idempotency_key,
            },
            sealed: Sealed {
                key_id: row.sealed_key_id,
                bytes: row.sealed_response,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct ConnectionRow {
    pub id: Uuid,
    pub sealed_key_id: String,
    pub sealed_secret: Vec<u8>,
}

impl TryFrom<ConnectionRow> for SealedValue {
    type Error = Error;
    fn try_from(row: ConnectionRow) -> Result<SealedValue> {
        Ok(SealedValue {
            place: SealedPlace::Connection(row.id),
            associated: connection_binding(row.id),
            sealed: Sealed {
                key_id: row.sealed_key_id,
                bytes: row.sealed_secret,
            },
        })
    }
}

/// A re-sealed value opens as before, to every instance holding the current key, and nothing
/// cached holds sealed values: the writes outdate no verification answer.
macro_rules! impl_sealed_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::SealedStore for $store {
            async fn sealed_counts(
                &self,
            ) -> $crate::storage::Result<Vec<$crate::storage::sealed::SealedCount>> {
                $crate::storage::fetch_rows!(
                    all,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::sealed::CountRow,
                    $crate::storage::sealed::COUNT
                )
            }

            async fn sealed_values(
                &self,
                table: $crate::storage::sealed::SealedTable,
                current: &str,
                after: Option<&$crate::storage::sealed::SealedPlace>,
                limit: i64,
            ) -> $crate::storage::Result<Vec<$crate::storage::sealed::SealedValue>> {
                use $crate::storage::sealed::{SealedPlace, SealedTable};
                let after_id = after.map(SealedPlace::id);
                match table {
                    SealedTable::Secrets => $crate::storage::fetch_rows!(
                        all,
                        &mut *self.pool.acquire().await?,
                        $crate::storage::sealed::SecretRow,
                        $crate::storage::sealed::SELECT_SECRETS,
                        current,
                        after_id,
                        limit
                    ),
                    SealedTable::IdempotentAnswers => $crate::storage::fetch_rows!(
                        all,
                        &mut *self.pool.acquire().await?,
                        $crate::storage::sealed::AnswerRow,
                        $crate::storage::sealed::SELECT_ANSWERS,
                        current,
                        after_id,
                        after.map(SealedPlace::key),
                        limit
                    ),
                    SealedTable::Connections => $crate::storage::fetch_rows!(
                        all,
                        &mut *self.pool.acquire().await?,
                        $crate::storage::sealed::ConnectionRow,
                        $crate::storage::sealed::SELECT_CONNECTIONS,
                        current,
                        after_id,
                        limit
                    ),
                }
            }

            async fn reseal(
                &self,
                values: &[$crate::storage::sealed::Resealed],
            ) -> $crate::storage::Result<u64> {
                write_transaction!(self, cache_unaffected, |tx| {
                    let mut replaced = 0;
                    for value in values {
                        let query = sqlx::query(value.place.table().reseal_sql())
                            .bind(&value.new.key_id)
                            .bind(value.new.bytes.as_slice())
                            .bind(&value.old.key_id)
                            .bind(value.old.bytes.as_slice())
                            .bind(value.place.id());
                        let query = match &value.place {
                            $crate::storage::sealed::SealedPlace::IdempotentAnswer {
                                key, ..
                            } => query.bind(key.as_str()),
                            _ => query,
                        };
                        replaced += query.execute(&mut **tx).await?.rows_affected();
                    }
                    Ok(replaced)
                })
            }
        }
    };
}

pub(super) use impl_sealed_store;

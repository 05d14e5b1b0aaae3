//! The server keys a database's sealed values belong to: per key id, a check value (an HMAC of
//! a fixed label under the key) with which a starting instance proves it holds that key, and
//! which one is current, the key new values are sealed under.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Result;

/// A server key the database knows, by id, with its check value.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ServerKeyCheck {
    pub key_id: String,
    pub check_value: Vec<u8>,
    pub is_current: bool,
}

#[async_trait]
pub trait ServerKeyStore: Send + Sync + 'static {
    /// Every server key recorded for this database.
    async fn server_key_checks(&self) -> Result<Vec<ServerKeyCheck>>;
    /// Records `check` as the current server key's, unless a current key is recorded already
    /// (another instance may have recorded its own first).
    async fn add_current_server_key(&self, check: &ServerKeyCheck, at: DateTime<Utc>)
    -> Result<()>;
    /// Records `check` (if its key is new) and makes its key the current one, in place of the
    /// one that was: the step of a rotation that makes new values sealed under the new key.
    async fn make_current_server_key(
        &self,
        check: &ServerKeyCheck,
        at: DateTime<Utc>,
    ) -> Result<()>;
}

pub const SELECT_CHECKS: &str = "SELECT key_id, check_value, is_current FROM server_key_checks";
pub const INSERT_CURRENT: &str =
    "INSERT INTO server_key_checks (key_id, check_value, is_current, created_at)
     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
/// `$2` false, `$3` true: one statement before the key becomes current, as the unique index
/// on the current row is checked row by row.
pub const UNMARK_CURRENT: &str = "UPDATE server_key_checks SET is_current = $2
     WHERE is_current = $3 AND key_id <> $1";
pub const UPSERT_CURRENT: &str =
    "INSERT INTO server_key_checks (key_id, check_value, is_current, created_at)
     VALUES ($1, $2, $3, $4) ON CONFLICT (key_id) DO UPDATE SET is_current = excluded.is_current";

/// Read at start-up (and by the operator's commands) only; the writes outdate no
/// verification answer.
macro_rules! impl_server_key_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::ServerKeyStore for $store {
            async fn server_key_checks(
                &self,
            ) -> $crate::storage::Result<Vec<$crate::storage::server_keys::ServerKeyCheck>> {
                Ok(sqlx::query_as($crate::storage::server_keys::SELECT_CHECKS)
                    .fetch_all(&mut *self.pool.acquire().await?)
                    .await?)
            }

            async fn add_current_server_key(
                &self,
                check: &$crate::storage::server_keys::ServerKeyCheck,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::storage::Result<()> {
                sqlx::query($crate::storage::server_keys::INSERT_CURRENT)
                    .bind(&check.key_id)
                    .bind(check.check_value.as_slice())
                    .bind(true)
                    .bind(at)
                    .execute(&mut *self.pool.acquire().await?)
                    .await?;
                Ok(())
            }

            async fn make_current_server_key(
                &self,
                check: &$crate::storage::server_keys::ServerKeyCheck,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::storage::Result<()> {
                write_transaction!(self, cache_unaffected, |tx| {
                    sqlx::query($crate::storage::server_keys::UNMARK_CURRENT)
                        .bind(&check.key_id)
                        .bind(false)
                        .bind(true)
                        .execute(&mut **tx)
                        .await?;
                    sqlx::query($crate::storage::server_keys::UPSERT_CURRENT)
                        .bind(&check.key_id)
                        .bind(check.check_value.as_slice())
                        .bind(true)
                        .bind(at)
                        .execute(&mut **tx)
                        .await?;
                    Ok(())
                })
            }
        }
    };
}

pub(super) use impl_server_key_store;

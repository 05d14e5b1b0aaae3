//! The server keys a database's sealed values belong to: per key id, a check value (an HMAC of
//! a fixed label under the key) with which a starting instance proves it holds that key, and
//! the key ids the sealed values already stored carry.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Result;

/// A server key the database knows, by id, with its check value.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ServerKeyCheck {
    pub key_id: String,
    pub check_value: Vec<u8>,
}

#[async_trait]
pub trait ServerKeyStore: Send + Sync + 'static {
    /// Every server key recorded for this database.
    async fn server_key_checks(&self) -> Result<Vec<ServerKeyCheck>>;
    /// Records `check` as the current server key's, unless a current key is recorded already
    /// (another instance may have recorded its own first).
    async fn add_current_server_key(&self, check: &ServerKeyCheck, at: DateTime<Utc>)
    -> Result<()>;
    /// The distinct ids of the server keys that sealed the values stored: sealed secrets and
    /// idempotent responses.
    async fn sealed_key_ids(&self) -> Result<Vec<String>>;
}

pub const SELECT_CHECKS: &str = "SELECT key_id, check_value FROM server_key_checks";
pub const INSERT_CURRENT: &str =
    "INSERT INTO server_key_checks (key_id, check_value, is_current, created_at)
     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
pub const SELECT_SEALED_KEY_IDS: &str = "SELECT sealed_key_id FROM sealed_secrets
     UNION SELECT sealed_key_id FROM idempotency_keys WHERE sealed_key_id IS NOT NULL";

/// Read at start-up only; the one write outdates no verification answer.
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

            async fn sealed_key_ids(&self) -> $crate::storage::Result<Vec<String>> {
                Ok(
                    sqlx::query_scalar($crate::storage::server_keys::SELECT_SEALED_KEY_IDS)
                        .fetch_all(&mut *self.pool.acquire().await?)
                        .await?,
                )
            }
        }
    };
}

pub(super) use impl_server_key_store;

//! Web console sessions: the digest of a browser's session token, the API key secret it signed
//! in with (so the API key it acts as), and when it began and was last used. The token itself
//! is never stored.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Result;
use crate::domain::org::ApiKey;
use crate::domain::secret::SecretMeta;
use crate::error::Error;

/// A session as found by its token's digest, with its API key and the secret it signed in
/// with — not the key's current one, so that a rotation without grace, the end of a grace
/// period, a revocation or an expiry of that secret is seen on every request.
#[derive(Clone, Debug)]
pub struct ConsoleSession {
    pub api_key: ApiKey,
    pub secret: SecretMeta,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

#[async_trait]
pub trait ConsoleSessionStore: Send + Sync + 'static {
    /// Starts a session, signed in with the API key secret `secret_id`, whose token has the
    /// digest `token_hash`.
    async fn create_console_session(
        &self,
        token_hash: &[u8; 32],
        secret_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// The session whose token has the digest `token_hash`.
    async fn find_console_session(&self, token_hash: &[u8; 32]) -> Result<Option<ConsoleSession>>;
    /// Records that the session was used at `at`.
    async fn touch_console_session(&self, token_hash: &[u8; 32], at: DateTime<Utc>) -> Result<()>;
    /// Ends the session.
    async fn delete_console_session(&self, token_hash: &[u8; 32]) -> Result<()>;
    /// Deletes the sessions idle since before `idle_before` or begun before `begun_before`;
    /// returns how many.
    async fn purge_console_sessions(
        &self,
        idle_before: DateTime<Utc>,
        begun_before: DateTime<Utc>,
    ) -> Result<u64>;
}

pub const INSERT: &str =
    "INSERT INTO console_sessions (token_hash, secret_id, created_at, last_seen_at)
     VALUES ($1, $2, $3, $3)";
pub const TOUCH: &str = "UPDATE console_sessions SET last_seen_at = $2
     WHERE token_hash = $1 AND last_seen_at < $2";
pub const DELETE: &str = "DELETE FROM console_sessions WHERE token_hash = $1";
pub const PURGE: &str = "DELETE FROM console_sessions WHERE last_seen_at < $1 OR created_at < $2";

/// The session, its API key and the secret it signed in with.
pub fn select_session() -> String {
    format!(
        "SELECT c.created_at AS session_created_at, c.last_seen_at AS session_last_seen_at,
                k.id, k.org_id, k.name, k.role, {}
         FROM console_sessions c
         JOIN secrets s ON s.id = c.secret_id
         JOIN api_keys k ON k.id = s.owner_id
         WHERE c.token_hash = $1",
        super::rows::KEY_COLUMNS
    )
}

#[derive(sqlx::FromRow)]
pub struct SessionRow {
    pub session_created_at: DateTime<Utc>,
    pub session_last_seen_at: DateTime<Utc>,
    #[sqlx(flatten)]
    pub key: super::api_keys::ApiKeyRow,
}

impl TryFrom<SessionRow> for ConsoleSession {
    type Error = Error;
    fn try_from(row: SessionRow) -> Result<ConsoleSession> {
        let (api_key, secret) = row.key.try_into()?;
        Ok(ConsoleSession {
            api_key,
            secret,
            created_at: row.session_created_at,
            last_seen_at: row.session_last_seen_at,
        })
    }
}

/// Sessions are not verification answers: no write here outdates the verification cache, so
/// none goes through `write_transaction!`.
macro_rules! impl_console_session_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::ConsoleSessionStore for $store {
            async fn create_console_session(
                &self,
                token_hash: &[u8; 32],
                secret_id: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::storage::Result<()> {
                sqlx::query($crate::storage::console_sessions::INSERT)
                    .bind(token_hash.as_slice())
                    .bind(secret_id)
                    .bind(at)
                    .execute(&mut *self.pool.acquire().await?)
                    .await?;
                Ok(())
            }

            async fn find_console_session(
                &self,
                token_hash: &[u8; 32],
            ) -> $crate::storage::Result<Option<$crate::storage::console_sessions::ConsoleSession>>
            {
                let sql = $crate::storage::console_sessions::select_session();
                $crate::storage::fetch_rows!(
                    optional,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::console_sessions::SessionRow,
                    sql,
                    token_hash.as_slice()
                )
            }

            async fn touch_console_session(
                &self,
                token_hash: &[u8; 32],
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::storage::Result<()> {
                sqlx::query($crate::storage::console_sessions::TOUCH)
                    .bind(token_hash.as_slice())
                    .bind(at)
                    .execute(&mut *self.pool.acquire().await?)
                    .await?;
                Ok(())
            }

            async fn delete_console_session(
                &self,
                token_hash: &[u8; 32],
            ) -> $crate::storage::Result<()> {
                sqlx::query($crate::storage::console_sessions::DELETE)
                    .bind(token_hash.as_slice())
                    .execute(&mut *self.pool.acquire().await?)
                    .await?;
                Ok(())
            }

            async fn purge_console_sessions(
                &self,
                idle_before: chrono::DateTime<chrono::Utc>,
                begun_before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::storage::Result<u64> {
                let done = sqlx::query($crate::storage::console_sessions::PURGE)
                    .bind(idle_before)
                    .bind(begun_before)
                    .execute(&mut *self.pool.acquire().await?)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(super) use impl_console_session_store;

//! API keys: the bearer credentials of keygate's own API, each an owner of secrets.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Result;
use super::rows::corrupt;
use crate::domain::audit::Change;
use crate::domain::org::{ApiKey, NewApiKey};
use crate::domain::page::{Page, PageRequest};
use crate::domain::secret::{SecretMeta, SecretState};
use crate::error::Error;
use crate::secrets::SecretHash;

#[async_trait]
pub trait ApiKeyStore: Send + Sync + 'static {
    async fn create_api_key(&self, key: &NewApiKey, change: &Change) -> Result<()>;
    /// The organization's keys, each with its current secret.
    /// A page of the organization's API keys in id (creation) order.
    async fn list_api_keys(
        &self,
        org_id: Uuid,
        page: &PageRequest<Uuid>,
    ) -> Result<Page<(ApiKey, SecretMeta), Uuid>>;
    async fn find_api_key(&self, org_id: Uuid, id: Uuid) -> Result<Option<(ApiKey, SecretMeta)>>;
    /// The API key a presented secret (by digest) belongs to: the authentication lookup.
    async fn find_api_key_by_secret(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<(SecretState, ApiKey)>>;
    /// Revokes the key and every secret it still has; `false` when the organization has no
    /// such key. `Conflict` when it is the organization's last working admin key.
    async fn revoke_api_key(
        &self,
        org_id: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
        change: &Change,
    ) -> Result<bool>;
}

pub const INSERT_API_KEY: &str =
    "INSERT INTO api_keys (id, org_id, name, role, created_at) VALUES ($1, $2, $3, $4, $5)";

/// An API key with its current secret.
pub fn select_api_key(filter: &str) -> String {
    format!(
        "SELECT k.id, k.org_id, k.name, k.role, {}
         FROM api_keys k
         JOIN secrets s ON s.owner_id = k.id AND s.rotated_at IS NULL
         {filter}",
        super::rows::KEY_COLUMNS
    )
}

/// An API key by one of its secrets, current or rotated away.
pub fn select_api_key_by_secret() -> String {
    format!(
        "SELECT k.id, k.org_id, k.name, k.role, {}
         FROM secrets s
         JOIN api_keys k ON k.id = s.owner_id
         WHERE s.hash = $1",
        super::rows::SECRET_COLUMNS
    )
}

/// Admin keys of the organization, other than `$2`, whose current secret works at `$3`.
pub const OTHER_WORKING_ADMINS: &str = "
    SELECT COUNT(*) FROM api_keys k
    JOIN secrets s ON s.owner_id = k.id AND s.rotated_at IS NULL
    WHERE k.org_id = $1 AND k.id <> $2 AND k.role = 'admin'
      AND s.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > $3)";

#[derive(sqlx::FromRow)]
pub struct ApiKeyColumns {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub role: String,
}

impl TryFrom<ApiKeyColumns> for ApiKey {
    type Error = Error;
    fn try_from(row: ApiKeyColumns) -> Result<ApiKey> {
        Ok(ApiKey {
            id: row.id,
            org_id: row.org_id,
            name: row.name,
            role: row.role.parse().map_err(|_| corrupt("role", &row.role))?,
        })
    }
}

/// An API key with its current secret.
pub type ApiKeyRow = super::rows::WithKey<ApiKeyColumns>;
/// An API key with the secret it was found by.
pub type ApiKeyBySecretRow = super::rows::BySecret<ApiKeyColumns>;

macro_rules! impl_api_key_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::ApiKeyStore for $store {
            async fn create_api_key(
                &self,
                key: &$crate::domain::org::NewApiKey,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<()> {
                write_transaction!(self, cache_unaffected, |tx| {
                    insert_api_key(tx, key).await?;
                    record_change(tx, change).await
                })
            }

            async fn list_api_keys(
                &self,
                org_id: uuid::Uuid,
                page: &$crate::domain::page::PageRequest<uuid::Uuid>,
            ) -> $crate::storage::Result<
                $crate::domain::page::Page<
                    ($crate::domain::org::ApiKey, $crate::domain::secret::SecretMeta),
                    uuid::Uuid,
                >,
            > {
                let sql = $crate::storage::api_keys::select_api_key(
                    "WHERE k.org_id = $1 AND k.id > $2 ORDER BY k.id LIMIT $3",
                );
                let rows: $crate::storage::Result<Vec<($crate::domain::org::ApiKey, $crate::domain::secret::SecretMeta)>> = $crate::storage::fetch_rows!(
                    all,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::api_keys::ApiKeyRow,
                    sql,
                    org_id,
                    page.after_or_start(),
                    page.fetch()
                );
                Ok(page.page(rows?, |(key, _): &(_, _)| key.id))
            }

            async fn find_api_key(
                &self,
                org_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::storage::Result<Option<($crate::domain::org::ApiKey, $crate::domain::secret::SecretMeta)>> {
                let sql = $crate::storage::api_keys::select_api_key(
                    "WHERE k.org_id = $1 AND k.id = $2",
                );
                $crate::storage::fetch_rows!(optional, &mut *self.pool.acquire().await?, $crate::storage::api_keys::ApiKeyRow, sql, org_id, id)
            }

            async fn find_api_key_by_secret(
                &self,
                hash: &$crate::secrets::SecretHash,
            ) -> $crate::storage::Result<
                Option<($crate::domain::secret::SecretState, $crate::domain::org::ApiKey)>,
            > {
                let sql = $crate::storage::api_keys::select_api_key_by_secret();
                $crate::storage::fetch_rows!(optional, &mut *self.pool.acquire().await?, $crate::storage::api_keys::ApiKeyBySecretRow, sql, hash.as_bytes())
            }

            async fn revoke_api_key(
                &self,
                org_id: uuid::Uuid,
                id: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<bool> {
                let owner = $crate::domain::secret::OwnerRef { org_id, id };
                write_transaction!(self, |tx| {
                    // The organization first: two revocations of its last two admin keys must
                    // not both see the other one still working.
                    if !lock_org(tx, org_id).await? || !lock_owner(tx, owner).await? {
                        return Ok(false);
                    }
                    let sql = $crate::storage::api_keys::select_api_key("WHERE k.org_id = $1 AND k.id = $2");
                    let found: Option<($crate::domain::org::ApiKey, $crate::domain::secret::SecretMeta)> =
                        $crate::storage::fetch_rows!(optional, &mut **tx, $crate::storage::api_keys::ApiKeyRow, sql, org_id, id)?;
                    let Some((key, secret)) = found else {
                        return Ok(false);
                    };
                    let working = secret.revoked_at.is_none()
                        && secret.expires_at.is_none_or(|expires| expires > at);
                    if key.role == $crate::domain::org::Role::Admin && working {
                        let others: i64 = sqlx::query_scalar($crate::storage::api_keys::OTHER_WORKING_ADMINS)
                            .bind(org_id)
                            .bind(id)
                            .bind(at)
                            .fetch_one(&mut **tx)
                            .await?;
                        if others == 0 {
                            return Err($crate::error::Error::Conflict(
                                "this is the organization's last working admin key; create another admin key before revoking it",
                            ));
                        }
                    }
                    revoke_owner_secrets(tx, owner, at).await?;
                    record_change(tx, change).await?;
                    Ok(true)
                })
            }
        }

        async fn insert_api_key(
            tx: &mut Tx,
            key: &$crate::domain::org::NewApiKey,
        ) -> $crate::storage::Result<()> {
            insert_owner(tx, $crate::domain::secret::OwnerRef { org_id: key.org_id, id: key.id }).await?;
            sqlx::query($crate::storage::api_keys::INSERT_API_KEY)
                .bind(key.id)
                .bind(key.org_id)
                .bind(&key.name)
                .bind(key.role.as_str())
                .bind(key.secret.created_at)
                .execute(&mut **tx)
                .await?;
            insert_secret(tx, &key.secret, key.id, "").await
        }
    };
}

pub(super) use impl_api_key_store;

//! The SQL both backends run, written once. `$n` placeholders work on SQLite and Postgres alike,
//! and every value is bound with a type both drivers encode natively (Uuid, DateTime, bytes).
//! [`impl_store!`] implements [`Store`](super::Store) for a backend struct that has a `pool`
//! field and an async `begin()` returning a transaction.

pub const SELECT_AGENT: &str = "
    SELECT a.id, a.org_id, a.name, a.mode, a.created_at,
           s.id AS key_id, s.hint AS key_hint, s.created_at AS key_created_at,
           s.expires_at AS key_expires_at, s.revoked_at AS key_revoked_at,
           s.last_used_at AS key_last_used_at
    FROM agents a
    JOIN secrets s ON s.agent_id = a.id AND s.rotated_at IS NULL";

pub const SELECT_API_KEY: &str = "
    SELECT k.id, k.org_id, k.name, k.role,
           s.id AS key_id, s.hint AS key_hint, s.created_at AS key_created_at,
           s.expires_at AS key_expires_at, s.revoked_at AS key_revoked_at,
           s.last_used_at AS key_last_used_at
    FROM api_keys k
    JOIN secrets s ON s.api_key_id = k.id AND s.rotated_at IS NULL";

pub const SELECT_SECRET_BY_HASH: &str = "
    SELECT s.id, s.kind, s.hash, s.expires_at, s.revoked_at,
           COALESCE(a.id, k.id) AS owner_id,
           COALESCE(a.org_id, k.org_id) AS owner_org_id,
           COALESCE(a.name, k.name) AS owner_name,
           a.mode AS agent_mode, k.role AS api_key_role
    FROM secrets s
    LEFT JOIN agents a ON a.id = s.agent_id
    LEFT JOIN api_keys k ON k.id = s.api_key_id
    WHERE s.hash = $1";

pub const INSERT_SECRET: &str = "
    INSERT INTO secrets (id, kind, hash, hint, agent_id, api_key_id, created_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

macro_rules! impl_store {
    ($store:ty, $kind:literal) => {
        #[async_trait::async_trait]
        impl $crate::storage::Store for $store {
            fn kind(&self) -> &'static str {
                $kind
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn count_orgs(&self) -> Result<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM orgs").fetch_one(&self.pool).await?)
            }

            async fn create_org(&self, org: &Org, admin: &NewApiKey) -> Result<()> {
                let mut tx = self.begin().await?;
                sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(org.id)
                    .bind(&org.name)
                    .bind(org.created_at)
                    .execute(&mut *tx)
                    .await?;
                insert_api_key(&mut tx, admin).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_orgs(&self) -> Result<Vec<Org>> {
                let rows: Vec<rows::OrgRow> =
                    sqlx::query_as("SELECT id, name, created_at FROM orgs ORDER BY created_at, name")
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows.into_iter().map(Org::from).collect())
            }

            async fn find_org_by_name(&self, name: &str) -> Result<Option<Org>> {
                let row: Option<rows::OrgRow> =
                    sqlx::query_as("SELECT id, name, created_at FROM orgs WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(Org::from))
            }

            async fn create_api_key(&self, key: &NewApiKey) -> Result<()> {
                let mut tx = self.begin().await?;
                insert_api_key(&mut tx, key).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_api_keys(&self, org_id: Uuid) -> Result<Vec<ApiKeyRecord>> {
                let rows: Vec<rows::ApiKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{} WHERE k.org_id = $1 ORDER BY s.created_at, k.name",
                    sql::SELECT_API_KEY
                )))
                .bind(org_id)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(ApiKeyRecord::try_from).collect()
            }

            async fn find_api_key(&self, org_id: Uuid, id: Uuid) -> Result<Option<ApiKeyRecord>> {
                let row: Option<rows::ApiKeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{} WHERE k.org_id = $1 AND k.id = $2",
                    sql::SELECT_API_KEY
                )))
                .bind(org_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(ApiKeyRecord::try_from).transpose()
            }

            async fn revoke_api_key(&self, org_id: Uuid, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
                // COALESCE keeps the first revocation time: revoking twice is not an error.
                let done = sqlx::query(
                    "UPDATE secrets SET revoked_at = COALESCE(revoked_at, $1)
                     WHERE api_key_id = (SELECT id FROM api_keys WHERE id = $2 AND org_id = $3)",
                )
                .bind(at)
                .bind(id)
                .bind(org_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn create_agent(&self, agent: &NewAgent) -> Result<()> {
                let mut tx = self.begin().await?;
                sqlx::query("INSERT INTO agents (id, org_id, name, mode, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(agent.id)
                    .bind(agent.org_id)
                    .bind(&agent.name)
                    .bind(agent.mode.as_str())
                    .bind(agent.secret.created_at)
                    .execute(&mut *tx)
                    .await?;
                insert_secret(&mut tx, &agent.secret, Some(agent.id), None).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_agents(&self, org_id: Uuid) -> Result<Vec<AgentRecord>> {
                let rows: Vec<rows::AgentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{} WHERE a.org_id = $1 ORDER BY a.name",
                    sql::SELECT_AGENT
                )))
                .bind(org_id)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(AgentRecord::try_from).collect()
            }

            async fn find_agent_by_id(&self, org_id: Uuid, id: Uuid) -> Result<Option<AgentRecord>> {
                let row: Option<rows::AgentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{} WHERE a.org_id = $1 AND a.id = $2",
                    sql::SELECT_AGENT
                )))
                .bind(org_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(AgentRecord::try_from).transpose()
            }

            async fn find_agent_by_name(&self, org_id: Uuid, name: &str) -> Result<Option<AgentRecord>> {
                let row: Option<rows::AgentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{} WHERE a.org_id = $1 AND a.name = $2",
                    sql::SELECT_AGENT
                )))
                .bind(org_id)
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
                row.map(AgentRecord::try_from).transpose()
            }

            async fn delete_agent(&self, org_id: Uuid, id: Uuid) -> Result<bool> {
                let done = sqlx::query("DELETE FROM agents WHERE org_id = $1 AND id = $2")
                    .bind(org_id)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn rotate_secret(&self, old: &Predecessor, new: &NewSecret) -> Result<()> {
                let mut tx = self.begin().await?;
                let ended = sqlx::query(
                    "UPDATE secrets SET rotated_at = $1, expires_at = $2, revoked_at = $3
                     WHERE id = $4 AND rotated_at IS NULL",
                )
                .bind(old.rotated_at)
                .bind(old.expires_at)
                .bind(old.revoked_at)
                .bind(old.secret_id)
                .execute(&mut *tx)
                .await?;
                if ended.rows_affected() != 1 {
                    return Err(Error::Conflict);
                }
                // The successor belongs to whoever owned the predecessor, whatever its kind.
                sqlx::query(
                    "INSERT INTO secrets (id, kind, hash, hint, agent_id, api_key_id, created_at, expires_at)
                     SELECT $1, $2, $3, $4, agent_id, api_key_id, $5, $6 FROM secrets WHERE id = $7",
                )
                .bind(new.id)
                .bind(new.kind.as_str())
                .bind(new.hash.as_bytes())
                .bind(&new.hint)
                .bind(new.created_at)
                .bind(new.expires_at)
                .bind(old.secret_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn find_secret(&self, hash: &SecretHash) -> Result<Option<SecretRecord>> {
                let row: Option<rows::SecretRow> = sqlx::query_as(sql::SELECT_SECRET_BY_HASH)
                    .bind(hash.as_bytes())
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(SecretRecord::try_from).transpose()
            }

            async fn record_usage(&self, uses: &[(Uuid, DateTime<Utc>)]) -> Result<()> {
                let mut tx = self.begin().await?;
                for (id, at) in uses {
                    sqlx::query("UPDATE secrets SET last_used_at = $1 WHERE id = $2")
                        .bind(*at)
                        .bind(*id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }

        async fn insert_api_key(tx: &mut Tx, key: &NewApiKey) -> Result<()> {
            sqlx::query("INSERT INTO api_keys (id, org_id, name, role, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(key.id)
                .bind(key.org_id)
                .bind(&key.name)
                .bind(key.role.as_str())
                .bind(key.secret.created_at)
                .execute(&mut **tx)
                .await?;
            insert_secret(tx, &key.secret, None, Some(key.id)).await
        }

        async fn insert_secret(tx: &mut Tx, secret: &NewSecret, agent_id: Option<Uuid>, api_key_id: Option<Uuid>) -> Result<()> {
            sqlx::query(sql::INSERT_SECRET)
                .bind(secret.id)
                .bind(secret.kind.as_str())
                .bind(secret.hash.as_bytes())
                .bind(&secret.hint)
                .bind(agent_id)
                .bind(api_key_id)
                .bind(secret.created_at)
                .bind(secret.expires_at)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }
    };
}

pub(super) use impl_store;

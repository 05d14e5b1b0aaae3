//! What a start does to the database before serving: binds it to the server key, and
//! bootstraps an empty one with organization `default` and its first admin key.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::StartupError;
use crate::domain::audit::AuditContext;
use crate::domain::org::{NewApiKey, OPERATOR_ORG, Org, Role};
use crate::domain::secret::now;
use crate::error::Error;
use crate::secrets::PlainSecret;
use crate::secrets::server_key::ServerKey;
use crate::storage::Store;
use crate::storage::server_keys::ServerKeyCheck;

/// Refuses a server key that is not the one the database's sealed values belong to, so that
/// an instance with another key stops here rather than answering 500 to every request that
/// opens a sealed value. The first key to start on a database records its check value (a
/// database from before check values is first checked against the key ids its sealed values
/// carry); when two instances start together, the one whose record lands first decides.
pub async fn check_server_key(store: &dyn Store, key: &ServerKey) -> Result<(), StartupError> {
    let mut known = store.server_key_checks().await?;
    if known.is_empty() {
        // Instances that did not share a key may both have sealed values here: the key of
        // any of them may claim the database, and values sealed by another stay unreadable.
        let sealed_by = store.sealed_key_ids().await?;
        if !sealed_by.is_empty() && !sealed_by.iter().any(|id| id == key.id()) {
            return Err(wrong_key(key, &sealed_by));
        }
        let check = ServerKeyCheck {
            key_id: key.id().to_owned(),
            check_value: key.check_value().to_vec(),
        };
        store.add_current_server_key(&check, now()).await?;
        known = store.server_key_checks().await?;
    }
    match known.iter().find(|check| check.key_id == key.id()) {
        Some(check) if key.matches_check(&check.check_value) => Ok(()),
        _ => {
            let ids: Vec<String> = known.into_iter().map(|check| check.key_id).collect();
            Err(wrong_key(key, &ids))
        }
    }
}

/// The refusal, naming the setting and the key ids (never a key).
fn wrong_key(key: &ServerKey, database_key_ids: &[String]) -> StartupError {
    format!(
        "the server key (id {}, from KEYGATE_SECRET_KEY or else the data directory's secret-key \
         file) is not this database's (id {}), so it could not open the values sealed there: \
         every instance sharing a database needs the same KEYGATE_SECRET_KEY",
        key.id(),
        database_key_ids.join(", ")
    )
    .into()
}

/// On an empty database, creates organization `default` and its admin key: the operator's token
/// when given, else a minted one written to `<data dir>/bootstrap-token` (mode 0600). A token
/// given for a database that has data is left unused, with a warning (never the token).
/// Returns the operator organization either way.
pub async fn bootstrap(
    store: &dyn Store,
    data_dir: &Path,
    token: Option<&str>,
) -> Result<Org, Error> {
    if store.count_orgs().await? == 0 {
        let org = Org::new(OPERATOR_ORG.into());
        let (admin, written_to) = match token {
            Some(token) => {
                let plain = PlainSecret::from_operator(token.to_owned());
                (
                    NewApiKey::with_secret(org.id, "bootstrap".into(), Role::Admin, &plain, None),
                    None,
                )
            }
            None => {
                let (admin, plain) = NewApiKey::mint(org.id, "bootstrap".into(), Role::Admin, None);
                (admin, Some(write_token_file(data_dir, &plain)?))
            }
        };
        let change = AuditContext::host(org.id).change("org.created", "org", org.id);
        match store.create_org(&org, &admin, &change).await {
            Ok(()) => match written_to {
                Some(path) => {
                    tracing::info!(path = %path.display(), "bootstrapped organization `default`; admin API key written to file")
                }
                None => tracing::info!(
                    "bootstrapped organization `default` with the admin key from KEYGATE_BOOTSTRAP_TOKEN"
                ),
            },
            // Another instance bootstrapped the same database first; its key stands.
            Err(Error::AlreadyExists) => {
                if let Some(path) = written_to {
                    let _ = std::fs::remove_file(path);
                }
                if token.is_some() {
                    warn_token_unused();
                }
            }
            Err(err) => return Err(err),
        }
    } else if token.is_some() {
        warn_token_unused();
    }
    store
        .find_org_by_name(OPERATOR_ORG)
        .await?
        .ok_or_else(|| Error::internal("the database has organizations but none named `default`"))
}

/// An operator who set the token on a database that already has data would otherwise meet
/// only 401s, with nothing saying why.
fn warn_token_unused() {
    tracing::warn!(
        "KEYGATE_BOOTSTRAP_TOKEN is set but not used: the database already has its organizations \
         and admin key, and the token only applies to an empty database (`keygate admin-key` \
         mints a new admin key)"
    );
}

fn write_token_file(data_dir: &Path, plain: &PlainSecret) -> Result<PathBuf, Error> {
    let path = data_dir.join("bootstrap-token");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(Error::internal)?;
    // `mode` applies only to a new file; an older file left behind is tightened too.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(Error::internal)?;
    writeln!(file, "{}", plain.expose()).map_err(Error::internal)?;
    Ok(path)
}

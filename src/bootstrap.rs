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
use crate::secrets::server_key::{Keyring, ServerKey};
use crate::storage::Store;
use crate::storage::server_keys::ServerKeyCheck;

/// Refuses a keyring that cannot open what the database holds, so that an instance with
/// another key stops here rather than answering 500 to every request that opens a sealed value:
/// every key id the sealed values carry must be in the ring, every ring key the database knows
/// must match its check value, and the current key must be the database's current one — or
/// replace it, when the ring holds that one (a rotation: the old key moved to
/// `KEYGATE_PREVIOUS_SECRET_KEYS`). The first key to start on a database records its check
/// value (a database from before check values is first checked against the key ids its sealed
/// values carry); when two instances start together, the one whose record lands first decides.
pub async fn check_server_key(store: &dyn Store, ring: &Keyring) -> Result<(), StartupError> {
    let mut missing: Vec<(String, i64)> = Vec::new();
    for count in store.sealed_counts().await? {
        if ring.get(&count.key_id).is_none() {
            match missing.iter_mut().find(|(id, _)| *id == count.key_id) {
                Some((_, rows)) => *rows += count.rows,
                None => missing.push((count.key_id, count.rows)),
            }
        }
    }
    if !missing.is_empty() {
        return Err(keys_missing(ring, &missing));
    }
    let check_of = |key: &ServerKey| ServerKeyCheck {
        key_id: key.id().to_owned(),
        check_value: key.check_value().to_vec(),
        is_current: true,
    };
    let mut known = store.server_key_checks().await?;
    if !known.iter().any(|check| check.is_current) {
        store
            .add_current_server_key(&check_of(ring.current()), now())
            .await?;
        known = store.server_key_checks().await?;
    }
    for check in &known {
        if let Some(key) = ring.get(&check.key_id)
            && !key.matches_check(&check.check_value)
        {
            return Err(not_this_databases(ring, &check.key_id));
        }
    }
    let current = known
        .iter()
        .find(|check| check.is_current)
        .map(|check| check.key_id.as_str())
        .ok_or("the database records no current server key")?;
    if current == ring.id() {
        Ok(())
    } else if ring.get(current).is_some() {
        store
            .make_current_server_key(&check_of(ring.current()), now())
            .await?;
        tracing::info!(
            key_id = ring.id(),
            previous = current,
            "the server key now seals new values in place of the previous one; \
             `keygate server-key rotate` re-seals the others"
        );
        Ok(())
    } else {
        Err(not_this_databases(ring, current))
    }
}

/// The refusal of a ring the database's current key is not in, naming the settings and the
/// key ids (never a key).
fn not_this_databases(ring: &Keyring, database_key_id: &str) -> StartupError {
    format!(
        "the server key (id {}, from KEYGATE_SECRET_KEY or else the data directory's secret-key \
         file) is not this database's (id {database_key_id}), and KEYGATE_PREVIOUS_SECRET_KEYS \
         does not hold that one: every instance sharing a database needs the same \
         KEYGATE_SECRET_KEY (to change it, give the new key there and the old one in \
         KEYGATE_PREVIOUS_SECRET_KEYS)",
        ring.id()
    )
    .into()
}

/// The refusal of a ring lacking keys that sealed values here, naming them and how many values
/// each sealed.
fn keys_missing(ring: &Keyring, missing: &[(String, i64)]) -> StartupError {
    let missing: Vec<String> = missing
        .iter()
        .map(|(id, rows)| format!("{id} ({rows} values)"))
        .collect();
    format!(
        "values in this database are sealed under server key id {}, which neither \
         KEYGATE_SECRET_KEY (id {}) nor KEYGATE_PREVIOUS_SECRET_KEYS holds, so they could not be \
         opened: give every instance sharing the database the same KEYGATE_SECRET_KEY, and keep \
         a replaced key in KEYGATE_PREVIOUS_SECRET_KEYS until `keygate server-key status` shows \
         no value sealed under it",
        missing.join(", "),
        ring.id()
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

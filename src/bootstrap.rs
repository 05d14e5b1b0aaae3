//! The bootstrap of an empty database: organization `default` and its first admin key.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::domain::audit::AuditContext;
use crate::domain::org::{NewApiKey, OPERATOR_ORG, Org, Role};
use crate::error::Error;
use crate::secrets::PlainSecret;
use crate::storage::Store;

/// On an empty database, creates organization `default` and its admin key: the operator's token
/// when given, else a minted one written to `<data dir>/bootstrap-token` (mode 0600).
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
            }
            Err(err) => return Err(err),
        }
    }
    store
        .find_org_by_name(OPERATOR_ORG)
        .await?
        .ok_or_else(|| Error::internal("the database has organizations but none named `default`"))
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

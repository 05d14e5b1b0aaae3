//! Consistent copies of a keygate database taken while servers use it, and their restore into
//! an empty one. SQLite: `VACUUM INTO`, which writes a snapshot of one read transaction;
//! restored by copying the file into place. PostgreSQL: `pg_dump --format=custom` (one
//! snapshot too) and `pg_restore` in one transaction, run from the PATH.
//!
//! A backup holds what the database holds — digests, sealed values, check values of the server
//! keys — and never a server key, which lives outside the database.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::Connection;
use sqlx::sqlite::SqliteConnectOptions;

use crate::StartupError;

/// The first bytes of each kind of backup.
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";
const PG_DUMP_MAGIC: &[u8] = b"PGDMP";

/// Writes a consistent copy of the database at `url` to the new file `to` (mode 0600: it holds
/// every digest and sealed value).
pub async fn backup(url: &str, to: &Path) -> Result<(), StartupError> {
    create_private(to)?;
    let written = if is_postgres(url) {
        let mut file = std::ffi::OsString::from("--file=");
        file.push(to);
        run_pg_tool("pg_dump", url, &["--format=custom".as_ref(), &file]).await
    } else {
        vacuum_into(url, to).await
    };
    if written.is_err() {
        let _ = std::fs::remove_file(to);
    }
    written
}

/// Restores the backup `from` into the database at `url`, which must be empty: a SQLite file
/// that does not exist yet, or a PostgreSQL database without tables.
pub async fn restore(from: &Path, url: &str) -> Result<(), StartupError> {
    let mut magic = [0u8; 16];
    let read = std::fs::File::open(from)
        .and_then(|mut file| file.read(&mut magic))
        .map_err(|e| format!("cannot read the backup {}: {e}", from.display()))?;
    let magic = &magic[..read];
    match (is_postgres(url), magic) {
        (false, magic) if magic.starts_with(SQLITE_MAGIC) => restore_sqlite(from, url).await,
        (true, magic) if magic.starts_with(PG_DUMP_MAGIC) => {
            refuse_nonempty_postgres(url).await?;
            run_pg_tool(
                "pg_restore",
                url,
                &[
                    "--no-owner".as_ref(),
                    "--no-privileges".as_ref(),
                    "--exit-on-error".as_ref(),
                    "--single-transaction".as_ref(),
                    from.as_os_str(),
                ],
            )
            .await
        }
        (postgres, magic) => {
            let backup = if magic.starts_with(SQLITE_MAGIC) {
                "a SQLite backup"
            } else if magic.starts_with(PG_DUMP_MAGIC) {
                "a PostgreSQL backup (pg_dump --format=custom)"
            } else {
                "not a keygate backup (neither a SQLite database nor a pg_dump custom archive)"
            };
            let database = if postgres { "PostgreSQL" } else { "SQLite" };
            Err(format!(
                "{} is {backup}, and the database to restore into is {database}: a backup \
                 restores into the kind of database it was taken from",
                from.display()
            )
            .into())
        }
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Creates `path` empty, readable by its owner only; refuses an existing file.
fn create_private(path: &Path) -> Result<std::fs::File, StartupError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{} exists already; keygate does not overwrite it",
                path.display()
            )
            .into()
        } else {
            format!("cannot create {}: {e}", path.display()).into()
        }
    })
}

/// The SQLite file `url` names, opened without creating it.
fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, StartupError> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(|e| format!("cannot read the SQLite URL: {e}"))?
        .create_if_missing(false)
        .busy_timeout(std::time::Duration::from_secs(10)))
}

async fn vacuum_into(url: &str, to: &Path) -> Result<(), StartupError> {
    let options = sqlite_options(url)?;
    let source = options.get_filename().to_owned();
    let mut connection = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| format!("cannot open the database {}: {e}", source.display()))?;
    let target = to
        .to_str()
        .ok_or_else(|| format!("{} is not a UTF-8 path", to.display()))?;
    sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&mut connection)
        .await
        .map_err(|e| format!("cannot back up {}: {e}", source.display()))?;
    Ok(())
}

/// Checks the backup (a whole SQLite database of keygate's), then puts a copy of it where `url`
/// points, which must not exist: the copy is written beside it and linked into place, so that
/// nothing is ever half there or overwritten.
async fn restore_sqlite(from: &Path, url: &str) -> Result<(), StartupError> {
    let backup = SqliteConnectOptions::new().filename(from).read_only(true);
    let mut connection = sqlx::SqliteConnection::connect_with(&backup)
        .await
        .map_err(|e| format!("cannot open the backup {}: {e}", from.display()))?;
    let check: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut connection)
        .await
        .map_err(|e| format!("cannot check the backup {}: {e}", from.display()))?;
    let keygates: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'server_key_checks'",
    )
    .fetch_one(&mut connection)
    .await?;
    connection.close().await?;
    if check != "ok" || keygates == 0 {
        return Err(format!(
            "{} is not a whole keygate database (integrity check: {check})",
            from.display()
        )
        .into());
    }
    let target = sqlite_options(url)?.get_filename().to_owned();
    if target.exists() {
        return Err(format!(
            "{} exists already: restore into an empty data directory (or a --database-url \
             naming a new file)",
            target.display()
        )
        .into());
    }
    if let Some(dir) = target.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
    }
    let mut partial = target.clone().into_os_string();
    partial.push(".restoring");
    let partial = PathBuf::from(partial);
    let copied = copy_into(from, &partial, &target);
    let _ = std::fs::remove_file(&partial);
    copied
}

fn copy_into(from: &Path, partial: &Path, target: &Path) -> Result<(), StartupError> {
    let mut file = create_private(partial)?;
    let mut source = std::fs::File::open(from)
        .map_err(|e| format!("cannot read the backup {}: {e}", from.display()))?;
    std::io::copy(&mut source, &mut file)
        .and_then(|_| file.flush())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    // A link fails rather than replace a file that appeared meanwhile.
    std::fs::hard_link(partial, target)
        .map_err(|e| format!("cannot put the database at {}: {e}", target.display()))?;
    Ok(())
}

async fn refuse_nonempty_postgres(url: &str) -> Result<(), StartupError> {
    let mut connection = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| format!("cannot open the database to restore into: {e}"))?;
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut connection)
    .await?;
    if tables > 0 {
        return Err(
            "the database to restore into has tables already: restore into a new, empty \
             database (createdb)"
                .into(),
        );
    }
    Ok(())
}

/// Runs `pg_dump` or `pg_restore` on the database at `url` with `args`. The password goes in
/// `PGPASSWORD`, never on the command line, where other users of the host could read it; what
/// the tool says on failure is passed on.
async fn run_pg_tool(
    tool: &'static str,
    url: &str,
    args: &[&std::ffi::OsStr],
) -> Result<(), StartupError> {
    let (target, password) = without_password(url)?;
    let mut command = std::process::Command::new(tool);
    command.arg(format!("--dbname={target}")).args(args);
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "{tool} is not on the PATH: install the PostgreSQL client tools of the \
                     server's major version (e.g. the postgresql-client package)"
                )
            } else {
                format!("cannot run {tool}: {e}")
            }
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{tool} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into())
    }
}

/// `url` without its password (in the user info or a `password` parameter), and the password.
fn without_password(url: &str) -> Result<(String, Option<String>), StartupError> {
    let mut parsed =
        url::Url::parse(url).map_err(|e| format!("cannot read the database URL: {e}"))?;
    let mut password = parsed.password().map(|password| {
        percent_encoding::percent_decode_str(password)
            .decode_utf8_lossy()
            .into_owned()
    });
    let _ = parsed.set_password(None);
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(key, value)| {
            if key == "password" {
                password = Some(value.into_owned());
                None
            } else {
                Some((key.into_owned(), value.into_owned()))
            }
        })
        .collect();
    if pairs.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    Ok((parsed.to_string(), password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url_for_the_environment() {
        let (url, password) =
            without_password("postgres://keygate:hunter%402@db:5432/keygate?sslmode=require")
                .unwrap();
        assert_eq!(url, "postgres://keygate@db:5432/keygate?sslmode=require");
        assert_eq!(password.as_deref(), Some("hunter@2"));
        let (url, password) =
            without_password("postgres://db/keygate?password=hunter2&application_name=kg").unwrap();
        assert_eq!(url, "postgres://db/keygate?application_name=kg");
        assert_eq!(password.as_deref(), Some("hunter2"));
        let (url, password) = without_password("postgres://db/keygate").unwrap();
        assert_eq!((url.as_str(), password), ("postgres://db/keygate", None));
    }
}

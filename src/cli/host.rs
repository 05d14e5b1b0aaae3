//! The commands an operator runs on the server's host, on its database straight rather than
//! through the API: `admin-key`, `server-key status|rotate`, `backup`, `restore`. What a script
//! reads goes to stdout; logs and explanations go to stderr, prefixed with the command.

use std::process::ExitCode;

use super::command::{BackupArgs, DatabaseArgs, KeyRotationArgs, RestoreArgs, ServerKeyVerb};
use crate::StartupError;
use crate::config::{Config, redact_database_url};
use crate::error::with_causes;
use crate::key_rotation::{self, KeyUse};
use crate::secrets::server_key::{IfMissing, Keyring};
use crate::storage::sealed::SealedTable;
use crate::telemetry::{self, LogOutput, Traces};

/// Prints only the key on stdout, so that `keygate admin-key > file` captures just the key.
pub async fn admin_key(base: Config, database: &DatabaseArgs, org: &str) -> ExitCode {
    run(
        "admin-key",
        database.config(base),
        Existing::Required,
        async |config| {
            let key = crate::recover_admin_key(&config, org).await?;
            eprintln!(
                "New admin API key for organization {org:?}, shown once (only its digest is \
             stored); the organization's other keys stay valid:"
            );
            println!("{}", key.expose());
            Ok(ExitCode::SUCCESS)
        },
    )
    .await
}

pub async fn server_key(base: Config, verb: ServerKeyVerb) -> ExitCode {
    match verb {
        ServerKeyVerb::Status(database) => {
            run(
                "server-key status",
                database.config(base),
                Existing::Required,
                async |config| {
                    let store = crate::storage::connect(&config.database_url(), 1).await?;
                    print_keys(&key_rotation::status(store.as_ref()).await?);
                    Ok(ExitCode::SUCCESS)
                },
            )
            .await
        }
        ServerKeyVerb::Rotate(args) => rotate(base, args).await,
    }
}

async fn rotate(base: Config, args: KeyRotationArgs) -> ExitCode {
    let config = args.database.config(base);
    run("server-key rotate", config, Existing::Required, async |config| {
        let ring = Keyring::load(
            config.secret_key.as_deref(),
            &config.previous_secret_keys,
            &config.data_dir,
            IfMissing::Refuse,
        )?;
        let store = crate::storage::connect(&config.database_url(), 1).await?;
        let rotation =
            key_rotation::rotate(store.as_ref(), &ring, args.batch_size, args.limit).await?;
        println!(
            "{} re-sealed under server key {}",
            values(rotation.resealed),
            ring.id()
        );
        if rotation.changed_meanwhile > 0 {
            println!(
                "{} rewritten by a server meanwhile, left as they are",
                values(rotation.changed_meanwhile)
            );
        }
        let remaining = rotation.remaining.iter().map(KeyUse::total).sum::<i64>() as u64;
        let by_key: Vec<String> = rotation
            .remaining
            .iter()
            .map(|key| format!("{} ({})", key.key_id, key.total()))
            .collect();
        if remaining == 0 {
            println!("0 values remain under older keys");
        } else {
            println!(
                "{} remain under older keys: {}",
                values(remaining),
                by_key.join(", ")
            );
        }
        for place in &rotation.unreadable {
            eprintln!(
                "keygate server-key rotate: the {place} does not open under the key its id names \
                 (altered, or moved from another row): left as it is"
            );
        }
        Ok(if rotation.unreadable.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
    .await
}

pub async fn backup(base: Config, args: BackupArgs) -> ExitCode {
    run(
        "backup",
        args.database.config(base),
        Existing::Required,
        async |config| {
            let url = config.database_url();
            crate::storage::backup::backup(&url, &args.to).await?;
            eprintln!(
                "Wrote a consistent copy of {} to {}. It holds no server key: keep the key \
             (KEYGATE_SECRET_KEY, or the data directory's secret-key file) safe apart from it, \
             as without it the backup's Digest values, signing secrets and connection secrets \
             stay sealed.",
                redact_database_url(&url),
                args.to.display()
            );
            Ok(ExitCode::SUCCESS)
        },
    )
    .await
}

pub async fn restore(base: Config, args: RestoreArgs) -> ExitCode {
    run(
        "restore",
        args.database.config(base),
        Existing::Absent,
        async |config| {
            let url = config.database_url();
            crate::storage::backup::restore(&args.from, &url).await?;
            let store = crate::storage::connect(&url, 1).await?;
            let keys = key_rotation::status(store.as_ref()).await?;
            let needed: Vec<&str> = keys
                .iter()
                .filter(|key| key.current || key.total() > 0)
                .map(|key| key.key_id.as_str())
                .collect();
            eprintln!(
                "Restored {} into {}. Start keygate on it with the server key it was sealed under \
             (id {}) as KEYGATE_SECRET_KEY, or that key's secret-key file in the data directory:",
                args.from.display(),
                redact_database_url(&url),
                needed.join(", ")
            );
            print_keys(&keys);
            Ok(ExitCode::SUCCESS)
        },
    )
    .await
}

/// `n` values, in words.
fn values(n: u64) -> String {
    match n {
        1 => "1 value".into(),
        n => format!("{n} values"),
    }
}

/// The keys as a table: id, whether current, values per table, total.
fn print_keys(keys: &[KeyUse]) {
    let tables = SealedTable::ALL.map(SealedTable::name);
    println!(
        "{:<10} {:<8} {:>16} {:>16} {:>16} {:>8}",
        "key id", "current", tables[0], tables[1], tables[2], "total"
    );
    for key in keys {
        println!(
            "{:<10} {:<8} {:>16} {:>16} {:>16} {:>8}",
            key.key_id,
            if key.current { "yes" } else { "no" },
            key.rows[0],
            key.rows[1],
            key.rows[2],
            key.total()
        );
    }
    for key in keys.iter().filter(|key| !key.current && key.total() == 0) {
        eprintln!(
            "Server key {} seals nothing any more: it may leave KEYGATE_PREVIOUS_SECRET_KEYS.",
            key.key_id
        );
    }
}

/// Whether a command needs the SQLite database file to exist already.
enum Existing {
    Required,
    Absent,
}

/// Sets up logging on stderr, checks the database is where it should be, and runs `command`,
/// reporting its error as `keygate NAME: …`.
async fn run(
    name: &str,
    config: Config,
    existing: Existing,
    command: impl AsyncFnOnce(Config) -> Result<ExitCode, StartupError>,
) -> ExitCode {
    // Nothing to trace: these commands serve no requests.
    if let Err(err) = telemetry::init(&config, LogOutput::Stderr, Traces::Off) {
        eprintln!("keygate {name}: {err}");
        return ExitCode::FAILURE;
    }
    if let Existing::Required = existing
        && let Err(err) = config.check_database_exists()
    {
        eprintln!("keygate {name}: {err}");
        return ExitCode::FAILURE;
    }
    match command(config).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("keygate {name}: {}", with_causes(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

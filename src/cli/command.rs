//! The `keygate` binary's command line as a whole: the server (`serve`, or no subcommand, with
//! the settings of [`Config`]), the operator's commands on its database (`admin-key`,
//! `server-key`, `backup`, `restore`), and the client commands.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use super::ClientArgs;
use crate::config::{Config, redact_database_url};

/// The `keygate` command line: a subcommand, or the server's flags alone to serve.
#[derive(Debug, Parser)]
#[command(
    name = "keygate",
    version,
    about = "Mints and verifies the secrets of an access gateway",
    long_about = "Mints and verifies the secrets of an access gateway. Without a subcommand, or with \
                  `serve`, it is the server; the other subcommands are its command-line client, \
                  which talks to a server at --url (KEYGATE_URL).",
    after_long_help = super::EXIT_CODES
)]
pub struct Cli {
    /// `None`: serve with `config`.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The server's settings from flags given without a subcommand, else from the environment
    /// and defaults alone.
    #[command(
        flatten,
        next_help_heading = "Server options (without a subcommand, or after `serve`)"
    )]
    pub config: Config,

    /// How the client commands reach the server, given before or after the command (they are
    /// global, so a subcommand's matches carry them too).
    #[command(
        flatten,
        next_help_heading = "Client options (before or after a client command)"
    )]
    pub client: ClientArgs,
}

impl Cli {
    /// The process's command line, or exit with clap's usage error.
    pub fn from_env() -> Cli {
        Cli::checked_parse_from(std::env::args_os()).unwrap_or_else(|err| err.exit())
    }

    /// Parses `args` like [`Parser::try_parse_from`], and refuses what the parser alone would
    /// accept and then ignore: a server setting beside a subcommand, or a client option
    /// without a client command.
    pub fn checked_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut command = command();
        let matches = command
            .try_get_matches_from_mut(args)
            .map_err(|err| name_the_setting(err, &command))?;
        let cli = Cli::from_arg_matches(&matches).map_err(|err| err.format(&mut command))?;
        let given = |arguments: clap::Command| {
            arguments
                .get_arguments()
                .find(|arg| {
                    matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine)
                })
                .map(|arg| format!("--{}", arg.get_long().unwrap_or_default()))
        };
        let server_setting = || {
            given(Config::command()).map(|flag| {
                format!("{flag} is a server setting: give it after `serve`, or with no subcommand")
            })
        };
        let client_option = || {
            given(client_options()).map(|flag| {
                format!("{flag} is an option of the client commands (e.g. `keygate agents list`)")
            })
        };
        let refusal = match &cli.command {
            None => client_option(),
            // `scan --verify` asks the server as the client commands do.
            Some(Command::Client(_) | Command::Scan(_)) => server_setting(),
            Some(
                Command::Serve(_)
                | Command::AdminKey(_)
                | Command::ServerKey(_)
                | Command::Backup(_)
                | Command::Restore(_),
            ) => server_setting().or_else(client_option),
        };
        match refusal {
            Some(message) => Err(command.error(ErrorKind::ArgumentConflict, message)),
            None => Ok(cli),
        }
    }
}

/// A value the parser refused, with a tip naming the setting both ways, flag and environment
/// variable (a server's settings usually come from the environment, and clap names only the
/// flag), with what it takes: its help, and its default as an example.
fn name_the_setting(mut err: clap::Error, command: &clap::Command) -> clap::Error {
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return err;
    }
    let Some(ContextValue::String(refused)) = err.get(ContextKind::InvalidArg) else {
        return err;
    };
    // `--listen <LISTEN>`, or `--console-secure-cookie` for a flag.
    let long = refused
        .trim_start_matches("--")
        .split([' ', '='])
        .next()
        .unwrap_or_default();
    let Some(arg) = command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))
    else {
        return err;
    };
    let Some(variable) = arg.get_env() else {
        return err;
    };
    let variable = variable.to_string_lossy();
    let mut tip = format!("the setting is --{long} or {variable}");
    if let Some(help) = arg.get_help() {
        tip.push_str(&format!(": {help}"));
    }
    if let Some(default) = arg.get_default_values().first() {
        tip.push_str(&format!(" (e.g. {variable}={})", default.to_string_lossy()));
    }
    err.insert(
        ContextKind::Suggested,
        ContextValue::StyledStrs(vec![tip.into()]),
    );
    err
}

/// The client options alone, as a command holding nothing else.
fn client_options() -> clap::Command {
    ClientArgs::augment_args(clap::Command::new("client"))
}

/// The command line as it is parsed, completed and documented.
pub fn command() -> clap::Command {
    let mut command = Cli::command();
    // The client options are global, so that they may come before the command as well as after
    // it. The server's commands refuse them: hidden copies there keep them out of their help
    // (a subcommand holding an option is not given the global one).
    for server in ["serve", "admin-key", "server-key", "backup", "restore"] {
        command = command.mut_subcommand(server, |sub| {
            let hidden = client_options()
                .get_arguments()
                .map(|arg| arg.clone().hide(true))
                .collect::<Vec<_>>();
            sub.args(hidden)
        });
    }
    // `keygate agents create --help` is the way to a command's help: a `help` command under
    // each noun would only add pages to the manual (`keygate-agents-help-create(1)`).
    command.mut_subcommands(without_help_commands)
}

fn without_help_commands(command: clap::Command) -> clap::Command {
    command
        .disable_help_subcommand(true)
        .mut_subcommands(without_help_commands)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (what `keygate` does without a subcommand).
    Serve(Box<Config>),
    /// Mint a new admin API key for an organization straight in the database and print it once.
    ///
    /// The operator's way back in when an organization has lost its admin keys; run it on the
    /// server's host with the server's database settings.
    AdminKey(AdminKeyArgs),
    /// The server key: which keys sealed the stored values, and re-sealing them under the
    /// current one.
    ///
    /// Run on the server's host with the server's database settings and its keys in
    /// KEYGATE_SECRET_KEY (or the data directory's secret-key file) and
    /// KEYGATE_PREVIOUS_SECRET_KEYS.
    #[command(subcommand)]
    ServerKey(ServerKeyVerb),
    /// Write a consistent copy of the database to a new file, while the server runs.
    ///
    /// SQLite: `VACUUM INTO`; PostgreSQL: `pg_dump --format=custom` (from the PATH). The copy
    /// holds digests and sealed values, never the server key: keep the key apart.
    Backup(BackupArgs),
    /// Restore a backup into an empty data directory or an empty database.
    ///
    /// SQLite: the database file is put in place (it must not exist); PostgreSQL: `pg_restore`
    /// (from the PATH) into a database without tables. Start keygate on it with the server key
    /// the backup was taken under.
    Restore(RestoreArgs),
    /// Find keygate secrets in files, offline: for pre-commit hooks and CI.
    ///
    /// Reports every string that is a keygate secret with a valid checksum (look-alikes are
    /// not), by file, line and kind, showing its prefix and last four characters only.
    /// Directories are walked honouring .gitignore; `-` reads standard input. Exits 1 when a
    /// secret is found, 2 when a path cannot be read.
    Scan(super::scan::ScanArgs),
    #[command(flatten)]
    Client(Box<super::ClientCommand>),
}

/// The server's database, as the commands that work on it straight find it.
#[derive(Clone, Args)]
pub struct DatabaseArgs {
    /// Directory holding the embedded database (the server's `--data-dir`).
    #[arg(long, env = "KEYGATE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database URL (the server's `--database-url`). Default: `<data dir>/keygate.db`.
    #[arg(long, env = "KEYGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl DatabaseArgs {
    /// The configuration the database is opened with: `base` (the server's settings from the
    /// environment, e.g. logging and the server keys) with these database settings.
    pub fn config(&self, base: Config) -> Config {
        Config {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            ..base
        }
    }
}

// Hand-written so that a database password never reaches a terminal or a log line.
impl std::fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseArgs")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_database_url),
            )
            .finish()
    }
}

#[derive(Clone, Debug, Args)]
pub struct AdminKeyArgs {
    /// Organization whose new admin API key is minted.
    #[arg(long, default_value = "default")]
    pub org: String,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Subcommand)]
pub enum ServerKeyVerb {
    /// List the server keys of the database, which is current, and how many values each
    /// sealed.
    ///
    /// A key other than the current one that seals nothing any more may leave
    /// KEYGATE_PREVIOUS_SECRET_KEYS.
    Status(DatabaseArgs),
    /// Re-seal every value sealed under an older key under the current one (KEYGATE_SECRET_KEY).
    ///
    /// In batches, each its own transaction, while the server runs; an interrupted run is taken
    /// up by the next. Run it once every instance holds the new key, with the old one in
    /// KEYGATE_PREVIOUS_SECRET_KEYS; it says how many values remain under older keys.
    Rotate(KeyRotationArgs),
}

#[derive(Clone, Debug, Args)]
pub struct KeyRotationArgs {
    /// Values re-sealed per transaction.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,

    /// Re-seal at most this many values, then stop (a later run takes up the rest), e.g. 10000.
    #[arg(long)]
    pub limit: Option<u64>,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Clone, Debug, Args)]
pub struct BackupArgs {
    /// File to write the backup to; it must not exist, and is made readable by its owner only.
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Clone, Debug, Args)]
pub struct RestoreArgs {
    /// Backup to restore, written by `keygate backup`.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        command().debug_assert();
    }

    /// Every command and every argument a person can see says what it is, in `--help` and in
    /// the manual.
    #[test]
    fn every_command_and_argument_has_help() {
        fn undocumented(command: &clap::Command, path: &str, found: &mut Vec<String>) {
            if command.get_about().is_none() && path != "keygate" {
                found.push(path.to_owned());
            }
            for arg in command.get_arguments().filter(|arg| !arg.is_hide_set()) {
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    found.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                undocumented(sub, &format!("{path} {}", sub.get_name()), found);
            }
        }
        let mut command = command();
        command.build();
        let mut found = Vec::new();
        undocumented(&command, "keygate", &mut found);
        assert_eq!(found, Vec::<String>::new(), "without help text");
    }

    /// The command `main` runs, with `DatabaseArgs` still to be applied to the base config.
    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        let cli = Cli::checked_parse_from(std::iter::once("keygate").chain(args.iter().copied()))?;
        Ok(cli.command.unwrap_or(Command::Serve(Box::new(cli.config))))
    }

    #[test]
    fn a_time_that_is_not_rfc_3339_is_refused_with_an_example() {
        for args in [
            &["audit", "--since", "yesterday"][..],
            &["agents", "create", "edge-1", "--expires-at", "2026-12-01"][..],
        ] {
            let shown = parse(args).unwrap_err().render().to_string();
            assert!(
                shown.contains("expected an RFC 3339 time, e.g. 2026-12-01T00:00:00Z"),
                "{shown}"
            );
        }
        assert!(parse(&["audit", "--since", "2026-12-01T00:00:00+01:00"]).is_ok());
    }

    #[test]
    fn no_subcommand_serves_with_the_given_flags() {
        for args in [
            &["--listen", "127.0.0.1:9000", "--data-dir", "/srv/keygate"][..],
            &[
                "serve",
                "--listen",
                "127.0.0.1:9000",
                "--data-dir",
                "/srv/keygate",
            ][..],
        ] {
            let Ok(Command::Serve(config)) = parse(args) else {
                panic!("{args:?} did not parse as serve");
            };
            assert_eq!(config.listen.to_string(), "127.0.0.1:9000", "{args:?}");
            assert_eq!(config.data_dir, PathBuf::from("/srv/keygate"), "{args:?}");
        }
        assert!(matches!(parse(&[]), Ok(Command::Serve(_))));
    }

    #[test]
    fn server_flags_are_refused_next_to_a_subcommand() {
        let err = parse(&["--listen", "127.0.0.1:9000", "admin-key"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict, "{err}");
        let err = parse(&["admin-key", "--listen", "127.0.0.1:9000"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownArgument, "{err}");
    }

    #[test]
    fn client_options_come_before_or_after_a_client_command_only() {
        for args in [
            &[
                "--url",
                "http://gw.example:8009",
                "-o",
                "env",
                "agents",
                "list",
            ][..],
            &[
                "agents",
                "--url",
                "http://gw.example:8009",
                "list",
                "-o",
                "env",
            ],
            &[
                "agents",
                "list",
                "--url",
                "http://gw.example:8009",
                "--output",
                "env",
            ],
        ] {
            let cli =
                Cli::checked_parse_from(std::iter::once("keygate").chain(args.iter().copied()))
                    .unwrap_or_else(|err| panic!("{args:?}: {err}"));
            assert_eq!(
                cli.client.url.as_str(),
                "http://gw.example:8009/",
                "{args:?}"
            );
            assert_eq!(
                cli.client.output,
                Some(crate::cli::output::Format::Env),
                "{args:?}"
            );
            assert!(matches!(cli.command, Some(Command::Client(_))), "{args:?}");
        }
        for args in [
            &["--url", "http://gw.example:8009"][..],
            &["--token", "kgk_x", "serve"],
            &["serve", "--output", "json"],
            &["admin-key", "--url", "http://gw.example:8009"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ArgumentConflict, "{args:?}: {err}");
            assert!(err.to_string().contains("client commands"), "{err}");
        }
    }

    #[test]
    fn admin_key_takes_the_servers_database_settings() {
        let Ok(Command::AdminKey(args)) = parse(&["admin-key"]) else {
            panic!("admin-key did not parse");
        };
        assert_eq!(args.org, "default");
        let config = args.database.config(Config::parse_from(["keygate"]));
        assert_eq!(config.database_url(), "sqlite://./data/keygate.db");

        let Ok(Command::AdminKey(args)) = parse(&[
            "admin-key",
            "--org",
            "acme",
            "--data-dir",
            "/srv/keygate",
            "--database-url",
            "postgres://keygate:hunter2@db/keygate",
        ]) else {
            panic!("admin-key with flags did not parse");
        };
        assert_eq!(args.org, "acme");
        let config = args.database.config(Config::parse_from(["keygate"]));
        assert_eq!(config.data_dir, PathBuf::from("/srv/keygate"));
        assert_eq!(
            config.database_url(),
            "postgres://keygate:hunter2@db/keygate"
        );
        assert!(!format!("{args:?}").contains("hunter2"), "{args:?}");
    }

    #[test]
    fn the_database_commands_take_the_servers_database_settings_only() {
        let Ok(Command::ServerKey(ServerKeyVerb::Rotate(args))) = parse(&[
            "server-key",
            "rotate",
            "--limit",
            "1000",
            "--database-url",
            "postgres://db/keygate",
        ]) else {
            panic!("server-key rotate did not parse");
        };
        assert_eq!((args.batch_size, args.limit), (500, Some(1000)));
        let config = args.database.config(Config::parse_from(["keygate"]));
        assert_eq!(config.database_url(), "postgres://db/keygate");
        let Ok(Command::Backup(args)) = parse(&["backup", "--to", "/srv/backup/keygate.db"]) else {
            panic!("backup did not parse");
        };
        assert_eq!(args.to, PathBuf::from("/srv/backup/keygate.db"));
        assert!(matches!(
            parse(&["restore", "--from", "keygate.db", "--data-dir", "/srv/new"]),
            Ok(Command::Restore(_))
        ));
        assert!(parse(&["server-key", "rotate", "--batch-size", "0"]).is_err());
        for args in [
            &["server-key", "status", "--url", "http://gw.example:8009"][..],
            &["backup", "--to", "f", "--output", "json"],
            &["--listen", "127.0.0.1:9000", "restore", "--from", "f"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ArgumentConflict, "{args:?}: {err}");
        }
    }

    #[test]
    fn a_weak_bootstrap_token_stops_start_up_without_echoing_it() {
        for token in [
            "short-secret-hunter2",
            "kgk_hunter2-hunter2-hunter2-hunter2-hunter2",
            "hunter2 hunter2 hunter2 hunter2 hunter2",
            "hunter2hunter2hunter2hunter2hunter2hunter2",
        ] {
            for args in [
                &["--bootstrap-token", token][..],
                &["serve", "--bootstrap-token", token][..],
            ] {
                let err = parse(args).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::ValueValidation);
                let shown = err.render().to_string();
                assert!(shown.contains("bootstrap token"), "{shown}");
                assert!(!shown.contains("hunter2"), "{shown}");
            }
            let err = Config::try_parse_from(["keygate", "--bootstrap-token", token]).unwrap_err();
            assert!(!err.render().to_string().contains("hunter2"));
        }
    }
}

//! The `keygate` binary's command line as a whole: the server (`serve`, or no subcommand, with
//! the settings of [`Config`]), the operator's `admin-key`, and the client commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    after_long_help = super::EXIT_CODES,
    // `keygate --listen …` without a subcommand serves; mixing those flags with a subcommand is
    // refused rather than silently ignored.
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// `None`: serve with `config`.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The server's settings from flags given without a subcommand, else from the environment
    /// and defaults alone.
    #[command(flatten)]
    pub config: Config,
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
    #[command(flatten)]
    Client(Box<super::ClientCommand>),
}

#[derive(Clone, Args)]
pub struct AdminKeyArgs {
    /// Organization whose new admin API key is minted.
    #[arg(long, default_value = "default")]
    pub org: String,

    /// Directory holding the embedded database (the server's `--data-dir`).
    #[arg(long, env = "KEYGATE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database URL (the server's `--database-url`). Default: `<data dir>/keygate.db`.
    #[arg(long, env = "KEYGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl AdminKeyArgs {
    /// The configuration `recover_admin_key` opens the database with: `base` (the server's
    /// settings from the environment, e.g. logging) with this subcommand's database settings.
    pub fn config(&self, base: Config) -> Config {
        Config {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            ..base
        }
    }
}

// Hand-written so that a database password never reaches a terminal or a log line.
impl std::fmt::Debug for AdminKeyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminKeyArgs")
            .field("org", &self.org)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_database_url),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The command `main` runs, with `AdminKeyArgs` still to be applied to the base config.
    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("keygate").chain(args.iter().copied()))?;
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
    fn admin_key_takes_the_servers_database_settings() {
        let Ok(Command::AdminKey(args)) = parse(&["admin-key"]) else {
            panic!("admin-key did not parse");
        };
        assert_eq!(args.org, "default");
        let config = args.config(Config::parse_from(["keygate"]));
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
        let config = args.config(Config::parse_from(["keygate"]));
        assert_eq!(config.data_dir, PathBuf::from("/srv/keygate"));
        assert_eq!(
            config.database_url(),
            "postgres://keygate:hunter2@db/keygate"
        );
        assert!(!format!("{args:?}").contains("hunter2"), "{args:?}");
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

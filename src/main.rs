//! The `keygate` binary: parses the command line and runs the chosen subcommand — the server,
//! the admin-key recovery, or a client command.

use std::io::IsTerminal;
use std::process::ExitCode;

use keygate::cli::{Cli, Command};
use keygate::config::Config;
use keygate::error::with_causes;
use keygate::telemetry::{self, LogOutput};

#[tokio::main]
async fn main() -> ExitCode {
    let Cli {
        command,
        config,
        client,
    } = Cli::from_env();
    match command {
        None => serve(config).await,
        Some(Command::Serve(config)) => serve(*config).await,
        Some(Command::AdminKey(args)) => admin_key(args.config(config), &args.org).await,
        Some(Command::Client(command)) => keygate::cli::run(*command, client).await,
    }
}

async fn serve(config: Config) -> ExitCode {
    if let Err(err) = telemetry::init(&config, LogOutput::Stdout) {
        eprintln!("keygate: {err}");
        return ExitCode::FAILURE;
    }
    tracing::debug!(?config, "configuration");
    match keygate::serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let message = with_causes(err.as_ref());
            // On a terminal the log (stdout) and stderr are one screen: say it once there.
            // Where the log goes elsewhere (collected, a file), it carries the error too.
            let one_screen = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
            if !one_screen {
                tracing::error!("{message}");
            }
            eprintln!("keygate: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Prints only the key on stdout, so that `keygate admin-key > file` captures just the key;
/// logs and explanations go to stderr.
async fn admin_key(config: Config, org: &str) -> ExitCode {
    if let Err(err) = telemetry::init(&config, LogOutput::Stderr) {
        eprintln!("keygate admin-key: {err}");
        return ExitCode::FAILURE;
    }
    if let Err(err) = config.check_database_exists() {
        eprintln!("keygate admin-key: {err}");
        return ExitCode::FAILURE;
    }
    match keygate::recover_admin_key(&config, org).await {
        Ok(key) => {
            eprintln!(
                "New admin API key for organization {org:?}, shown once (only its digest is \
                 stored); the organization's other keys stay valid:"
            );
            println!("{}", key.expose());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("keygate admin-key: {}", with_causes(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

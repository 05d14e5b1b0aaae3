//! The `keygate` binary: parses the command line and runs the chosen subcommand — the server,
//! the admin-key recovery, or a client command.

use std::process::ExitCode;

use keygate::cli::{Cli, Command};
use keygate::config::{Config, LogFormat};
use keygate::error::with_causes;
use keygate::telemetry::{self, LogOutput, Traces};

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
    let telemetry = match telemetry::init(&config, LogOutput::Stdout, Traces::FromEnvironment) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("keygate: {err}");
            return ExitCode::FAILURE;
        }
    };
    tracing::debug!(?config, "configuration");
    let log_format = config.log_format;
    let served = keygate::serve(config).await;
    telemetry.shutdown().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let message = with_causes(err.as_ref());
            // Said once: a terminal, `2>&1` and a container's log all show stdout (the log) and
            // stderr together. JSON logs are read by a collector, which gets it as an event;
            // a person reading human logs gets the plain line.
            match log_format {
                LogFormat::Json => tracing::error!("{message}"),
                LogFormat::Human => eprintln!("keygate: {message}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// Prints only the key on stdout, so that `keygate admin-key > file` captures just the key;
/// logs and explanations go to stderr.
async fn admin_key(config: Config, org: &str) -> ExitCode {
    // Nothing to trace: the telemetry has nothing queued to finish either.
    if let Err(err) = telemetry::init(&config, LogOutput::Stderr, Traces::Off) {
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

//! The `keygate` binary: parses the command line and runs the chosen subcommand — the server,
//! an operator's command on its database (admin-key recovery, server key, backup, restore), or
//! a client command.

use std::process::ExitCode;

use keygate::cli::{Cli, Command, host};
use keygate::config::{Config, LogFormat};
use keygate::error::with_causes;
use keygate::telemetry::{self, LogOutput, Traces};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Some(Command::AdminKey(args)) => host::admin_key(config, &args.database, &args.org).await,
        Some(Command::ServerKey(verb)) => host::server_key(config, verb).await,
        Some(Command::Backup(args)) => host::backup(config, args).await,
        Some(Command::Restore(args)) => host::restore(config, args).await,
        Some(Command::Scan(args)) => keygate::cli::scan::scan(args, client).await,
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

use clap::Parser;
use keygate::config::Config;
use keygate::telemetry::LogOutput;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    if let Err(err) = keygate::telemetry::init(&config, LogOutput::Stdout) {
        eprintln!("keygate: {err}");
        return std::process::ExitCode::FAILURE;
    }
    tracing::debug!(?config, "configuration");
    match keygate::serve(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            let mut message = err.to_string();
            let mut source = err.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            tracing::error!("{message}");
            eprintln!("keygate: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! Logging: human-readable by default, JSON on request; the filter comes from the configuration.

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

pub fn init(config: &Config) -> Result<(), crate::StartupError> {
    let filter = EnvFilter::try_new(&config.log)
        .map_err(|e| format!("invalid log filter {:?}: {e}", config.log))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    }
}

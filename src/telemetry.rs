//! Logging: human-readable by default, JSON on request; the filter comes from the configuration,
//! and colour only when a person is watching the stream the logs go to.

use std::ffi::OsStr;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::config::{Config, LogFormat};

/// The stream logs are written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogOutput {
    /// The server's choice: its standard output is its log.
    Stdout,
    /// For commands whose standard output is their result, e.g. a key to capture.
    Stderr,
}

pub fn init(config: &Config, output: LogOutput) -> Result<(), crate::StartupError> {
    let filter = EnvFilter::try_new(&config.log).map_err(|e| {
        format!(
            "KEYGATE_LOG (--log) {:?} is not a log filter ({e}); e.g. info or \
                 keygate=debug,tower_http=info",
            config.log
        )
    })?;
    let (writer, is_terminal) = match output {
        LogOutput::Stdout => (
            BoxMakeWriter::new(std::io::stdout),
            std::io::stdout().is_terminal(),
        ),
        LogOutput::Stderr => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
    };
    let ansi = use_colour(
        config.log_format,
        is_terminal,
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
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

/// Escape codes only help a terminal; in a file or a pipe they are noise. A non-empty
/// `NO_COLOR` turns them off everywhere (<https://no-color.org>).
fn use_colour(format: LogFormat, is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    format == LogFormat::Human && is_terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_for_human_logs_on_a_terminal_without_no_color() {
        assert!(use_colour(LogFormat::Human, true, None));
        assert!(use_colour(LogFormat::Human, true, Some(OsStr::new(""))));
        assert!(!use_colour(LogFormat::Human, false, None));
        assert!(!use_colour(LogFormat::Human, true, Some(OsStr::new("1"))));
        assert!(!use_colour(LogFormat::Json, true, None));
        assert!(!use_colour(LogFormat::Json, false, None));
    }
}

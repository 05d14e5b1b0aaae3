//! Configuration: every setting has a flag, an environment variable and a documented default.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Parser, ValueEnum};
use ipnet::IpNet;
use url::Url;

use crate::secrets::SecretKind;

#[derive(Clone, Parser)]
#[command(
    name = "keygate",
    version,
    about = "Mints and verifies the secrets of an access gateway"
)]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long, env = "KEYGATE_LISTEN", default_value = "127.0.0.1:8009")]
    pub listen: SocketAddr,

    /// Directory for the embedded database and the bootstrap token file (created if missing).
    #[arg(long, env = "KEYGATE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database URL: `sqlite://…` or `postgres://…`. Default: `<data dir>/keygate.db`.
    #[arg(long, env = "KEYGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Public gRPC address of the gateway, used to build agent DSNs (`grpc://` or `grpcs://`).
    #[arg(long, env = "KEYGATE_GRPC_URL", default_value = "grpc://127.0.0.1:8010", value_parser = parse_grpc_url)]
    pub grpc_url: Url,

    /// Most connections the database pool opens.
    #[arg(long, env = "KEYGATE_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// Admin API key of organization `default`, used only when the database is empty: at least
    /// 32 characters, no whitespace, not starting with `kgk_`.
    #[arg(
        long,
        env = "KEYGATE_BOOTSTRAP_TOKEN",
        hide_env_values = true,
        value_parser = BootstrapTokenParser
    )]
    pub bootstrap_token: Option<String>,

    /// Log filter in `tracing` syntax, e.g. `info` or `keygate=debug,tower_http=info`.
    #[arg(long, env = "KEYGATE_LOG", default_value = "info")]
    pub log: String,

    /// Log format: `human` or `json`.
    #[arg(long, env = "KEYGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// Failed `POST /verify` answers allowed per API key per minute before 429.
    #[arg(
        long,
        env = "KEYGATE_VERIFY_FAILURES_PER_MINUTE",
        default_value_t = 120
    )]
    pub verify_failures_per_minute: u32,

    /// Failed API-key authentications allowed per client address per minute before 429.
    #[arg(long, env = "KEYGATE_AUTH_FAILURES_PER_MINUTE", default_value_t = 30)]
    pub auth_failures_per_minute: u32,

    /// Longest a request may take, body upload included, before it is answered 408.
    #[arg(long, env = "KEYGATE_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Proxies (IP addresses or CIDR ranges, comma-separated) whose `X-Forwarded-For` names the
    /// client; behind a load balancer, list it so failed attempts are counted per real client.
    #[arg(long, env = "KEYGATE_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    pub trusted_proxies: Vec<IpNet>,

    /// How often recorded secret usage (`last_used_at`) is written to the database, in milliseconds.
    #[arg(long, env = "KEYGATE_USAGE_FLUSH_MS", default_value_t = 5000)]
    pub usage_flush_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

impl Config {
    /// The database URL, defaulting to a SQLite file inside the data directory.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("keygate.db").display()))
    }
}

// Hand-written so that neither the bootstrap token nor a database password reaches a log line.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_database_url(&self.database_url()))
            .field("grpc_url", &self.grpc_url.as_str())
            .field(
                "bootstrap_token",
                &self.bootstrap_token.as_ref().map(|_| "<redacted>"),
            )
            .field("log", &self.log)
            .field("log_format", &self.log_format)
            .field(
                "verify_failures_per_minute",
                &self.verify_failures_per_minute,
            )
            .field("auth_failures_per_minute", &self.auth_failures_per_minute)
            .field("usage_flush_ms", &self.usage_flush_ms)
            .field("database_max_connections", &self.database_max_connections)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

/// The database URL with every secret replaced by `redacted`: the password in the user info,
/// password-like query parameters (`password`, `sslpassword`, …) and inline PEM key material.
/// A URL that does not parse is withheld whole, since where its secret sits is unknown.
pub fn redact_database_url(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        return "<unparseable database URL redacted>".into();
    };
    let mut redacted = false;
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("redacted"));
        redacted = true;
    }
    if let Some(query) = parsed.query() {
        // Rebuilt by hand rather than with `query_pairs_mut`, which would re-encode the
        // parameters that are shown as they were given.
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) if is_secret_parameter(key, value) => {
                    redacted = true;
                    format!("{key}=redacted")
                }
                _ => pair.to_owned(),
            })
            .collect();
        parsed.set_query(Some(&pairs.join("&")));
    }
    // Reserialising normalises the URL (e.g. percent-encodes a SQLite path); only do it when
    // there was a secret to hide.
    if redacted {
        parsed.to_string()
    } else {
        url.to_owned()
    }
}

fn is_secret_parameter(key: &str, value: &str) -> bool {
    let key = percent_encoding::percent_decode_str(key)
        .decode_utf8_lossy()
        .to_ascii_lowercase();
    let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
    // `sslkey`, `sslcert` and `sslrootcert` name files; their value is secret only when the key
    // itself is pasted inline.
    ["password", "passwd", "secret", "token"]
        .iter()
        .any(|word| key.contains(word))
        || value.contains("-----BEGIN")
}

/// Refuses a weak or misleading operator-chosen bootstrap token, naming the rule broken.
pub fn check_bootstrap_token(token: &str) -> Result<(), &'static str> {
    if token.chars().count() < 32 {
        return Err("must be at least 32 characters long");
    }
    if token.chars().any(char::is_whitespace) {
        return Err("must not contain whitespace");
    }
    // A `kgk_` bearer is checked as a minted API key, so such a token could never authenticate.
    if token.starts_with(SecretKind::ApiKey.prefix()) {
        return Err("must not start with `kgk_`, the prefix of minted API keys");
    }
    Ok(())
}

/// Applies [`check_bootstrap_token`] at parse time; hand-written because clap's stock error for
/// an invalid value quotes the value, and this one is a secret.
#[derive(Clone)]
struct BootstrapTokenParser;

impl TypedValueParser for BootstrapTokenParser {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<String, clap::Error> {
        let rule = match value.to_str() {
            Some(token) => match check_bootstrap_token(token) {
                Ok(()) => return Ok(token.to_owned()),
                Err(rule) => rule,
            },
            None => "must be valid UTF-8",
        };
        Err(cmd.clone().error(
            ErrorKind::ValueValidation,
            format!("the bootstrap token (--bootstrap-token, KEYGATE_BOOTSTRAP_TOKEN) {rule}"),
        ))
    }
}

/// An IP address (a single host) or a CIDR range.
fn parse_proxy(value: &str) -> Result<IpNet, String> {
    let value = value.trim();
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{value:?} is neither an IP address nor a CIDR range"))
}

/// Accepts `grpc://host[:port]` or `grpcs://host[:port]`; path, query and credentials are refused
/// because the DSN replaces them.
pub fn parse_grpc_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("invalid gRPC URL: {e}"))?;
    if !matches!(url.scheme(), "grpc" | "grpcs") {
        return Err("the gRPC URL scheme must be grpc or grpcs".into());
    }
    if url.host().is_none() {
        return Err("the gRPC URL needs a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the gRPC URL must not carry credentials".into());
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err("the gRPC URL must be scheme://host[:port] only".into());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    const STRONG_TOKEN: &str = "operator-chosen-bootstrap-token-0123456789";

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = Config::parse_from(["keygate"]);
        assert_eq!(config.listen.to_string(), "127.0.0.1:8009");
        assert_eq!(config.database_url(), "sqlite://./data/keygate.db");
        assert_eq!(config.grpc_url.as_str(), "grpc://127.0.0.1:8010");
        assert_eq!(config.log_format, LogFormat::Human);
    }

    #[test]
    fn cli_definition_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn grpc_url_must_be_a_bare_grpc_address() {
        for ok in [
            "grpc://h",
            "grpcs://h:443",
            "grpc://[::1]:8010",
            "grpcs://gw.example.com/",
        ] {
            assert!(parse_grpc_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://h",
            "grpc://u:p@h",
            "grpc://h/path",
            "grpc://h?mode=x",
            "not a url",
            "grpc:",
        ] {
            assert!(parse_grpc_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_redacts_the_bootstrap_token_and_database_password() {
        let config = Config::parse_from([
            "keygate",
            "--bootstrap-token",
            STRONG_TOKEN,
            "--database-url",
            "postgres://keygate:hunter2@db/keygate",
        ]);
        let debug = format!("{config:?}");
        assert!(
            !debug.contains(STRONG_TOKEN) && !debug.contains("hunter2"),
            "{debug}"
        );
    }

    #[test]
    fn database_url_redaction_covers_query_parameters() {
        for (url, shown) in [
            (
                "postgres://db/keygate?sslmode=require&password=hunter2",
                "postgres://db/keygate?sslmode=require&password=redacted",
            ),
            (
                "postgres://keygate:hunter2@db/keygate?sslpassword=hunter3&sslkey=/etc/keygate/client.key",
                "postgres://keygate:redacted@db/keygate?sslpassword=redacted&sslkey=/etc/keygate/client.key",
            ),
            (
                "postgres://db/keygate?PassWord=hunter2&application_name=keygate",
                "postgres://db/keygate?PassWord=redacted&application_name=keygate",
            ),
            (
                "postgres://db/keygate?sslkey=-----BEGIN%20PRIVATE%20KEY-----hunter2",
                "postgres://db/keygate?sslkey=redacted",
            ),
            // Nothing secret: shown exactly as given, not normalised.
            ("sqlite://./data/key gate.db", "sqlite://./data/key gate.db"),
            (
                "postgres://keygate@db/keygate?sslmode=require",
                "postgres://keygate@db/keygate?sslmode=require",
            ),
        ] {
            assert_eq!(redact_database_url(url), shown);
        }
        assert!(!redact_database_url("postgres://u:hunter2@[bad/db").contains("hunter2"));
    }

    #[test]
    fn bootstrap_token_rules() {
        assert_eq!(check_bootstrap_token(STRONG_TOKEN), Ok(()));
        assert_eq!(check_bootstrap_token(&"é".repeat(32)), Ok(()));
        for (token, rule) in [
            ("x".repeat(31), "at least 32 characters"),
            ("".into(), "at least 32 characters"),
            (format!("{STRONG_TOKEN} with spaces"), "whitespace"),
            (format!("{STRONG_TOKEN}\n"), "whitespace"),
            (format!("\t{STRONG_TOKEN}"), "whitespace"),
            (format!("kgk_{STRONG_TOKEN}"), "kgk_"),
        ] {
            let err = check_bootstrap_token(&token).unwrap_err();
            assert!(err.contains(rule), "{token:?}: {err}");
        }
    }

    #[test]
    fn a_weak_bootstrap_token_stops_start_up_without_echoing_it() {
        for token in [
            "short-secret-hunter2",
            "kgk_hunter2-hunter2-hunter2-hunter2-hunter2",
            "hunter2 hunter2 hunter2 hunter2 hunter2",
        ] {
            let err = Config::try_parse_from(["keygate", "--bootstrap-token", token]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation);
            let shown = err.render().to_string();
            assert!(shown.contains("bootstrap token"), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }

    /// Help text is rendered by a child test process that starts with the secret variables set:
    /// setting them here would race every other test reading the environment.
    #[test]
    fn help_never_shows_secret_environment_values() {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "config::tests::help_child_process",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(HELP_CHILD, "1")
            .env(
                "KEYGATE_DATABASE_URL",
                "postgres://keygate:hunter2@db/keygate?password=hunter2",
            )
            .env("KEYGATE_BOOTSTRAP_TOKEN", STRONG_TOKEN)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    const HELP_CHILD: &str = "KEYGATE_TEST_HELP_CHILD";

    /// The child half of `help_never_shows_secret_environment_values`; a no-op in a normal run.
    #[test]
    fn help_child_process() {
        if std::env::var_os(HELP_CHILD).is_none() {
            return;
        }
        // The variables did reach clap, so the help below had them to leak.
        let config = Config::parse_from(["keygate"]);
        assert_eq!(config.bootstrap_token.as_deref(), Some(STRONG_TOKEN));
        assert!(config.database_url.unwrap().contains("hunter2"));

        for flag in ["--help", "-h"] {
            let err = Config::try_parse_from(["keygate", flag]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::DisplayHelp);
            let help = err.render().to_string();
            assert!(help.contains("KEYGATE_DATABASE_URL"), "{help}");
            assert!(
                !help.contains("hunter2") && !help.contains(STRONG_TOKEN),
                "{flag} shows a secret:\n{help}"
            );
        }
        let help = Config::command().render_long_help().to_string();
        assert!(
            !help.contains("hunter2") && !help.contains(STRONG_TOKEN),
            "{help}"
        );
    }
}

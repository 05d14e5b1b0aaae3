//! The server's settings, each with a flag, an environment variable and a documented default.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Parser, ValueEnum};
use ipnet::IpNet;
use url::Url;

use crate::domain::connections::{GatewayListeners, ListenerSetting, Protocol, parse_host};
use crate::secrets::scanning::ScanningKeys;

/// The server's settings: what `keygate::serve` and `keygate::run` take.
#[derive(Clone, Parser)]
#[command(name = "keygate")]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long, env = "KEYGATE_LISTEN", default_value = "127.0.0.1:8009", value_parser = parse_listen)]
    pub listen: SocketAddr,

    /// Address of a second listener that serves only `GET /metrics`, to anyone who reaches
    /// it: bind it where only the scrapers do (a private interface, a sidecar's loopback),
    /// e.g. `10.0.0.5:9464`. Unset: the metrics are served on the API listener only, to
    /// operators' admin keys.
    #[arg(long, env = "KEYGATE_METRICS_LISTEN", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,

    /// Directory for the embedded database and the bootstrap token file (created if missing).
    #[arg(long, env = "KEYGATE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database URL: `sqlite://…` or `postgres://…`, e.g.
    /// `postgres://keygate@db.internal:5432/keygate`. Default: `<data dir>/keygate.db`.
    #[arg(long, env = "KEYGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Public gRPC address of the gateway, used to build agent DSNs (`grpc://` or `grpcs://`).
    #[arg(long, env = "KEYGATE_GRPC_URL", default_value = "grpc://127.0.0.1:8010", value_parser = parse_grpc_url)]
    pub grpc_url: Url,

    /// Public base URL of keygate's Agentex routes (http or https, maybe with a path prefix,
    /// e.g. `https://keygate.example.com`): the webhook URLs of webhook triggers are built on
    /// it when the request names none.
    #[arg(long, env = "KEYGATE_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,

    /// Most connections the database pool opens.
    #[arg(long, env = "KEYGATE_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// Admin API key of organization `default`, used only when the database is empty: at least
    /// 32 characters, no whitespace, no prefix of a secret keygate mints (such as `kgk_`), and
    /// hard to guess (at least 10^19 guesses by the zxcvbn estimate: a random value).
    #[arg(
        long,
        env = "KEYGATE_BOOTSTRAP_TOKEN",
        hide_env_values = true,
        value_parser = SecretValueParser {
            what: "the bootstrap token (--bootstrap-token, KEYGATE_BOOTSTRAP_TOKEN)",
            example: "one made by `openssl rand -base64 32`",
            check: crate::secrets::chosen::check,
        }
    )]
    pub bootstrap_token: Option<String>,

    /// Server key sealing what cannot be stored as a digest: 32 bytes in base64. Every instance
    /// sharing a database needs the same one. Default: `<data dir>/secret-key`, generated on
    /// first start.
    #[arg(
        long,
        env = "KEYGATE_SECRET_KEY",
        hide_env_values = true,
        value_parser = SecretValueParser {
            what: "the server key (--secret-key, KEYGATE_SECRET_KEY)",
            example: "one made by `openssl rand -base64 32`",
            check: |value| crate::secrets::server_key::parse_key(value).map(drop),
        }
    )]
    pub secret_key: Option<String>,

    /// Previous server keys, comma-separated (base64 of 32 bytes each), that still open the
    /// values sealed under them: set after changing KEYGATE_SECRET_KEY until `keygate
    /// server-key rotate` has re-sealed everything under the new key.
    #[arg(
        long,
        env = "KEYGATE_PREVIOUS_SECRET_KEYS",
        hide_env_values = true,
        value_delimiter = ',',
        value_parser = SecretValueParser {
            what: "a previous server key (--previous-secret-keys, KEYGATE_PREVIOUS_SECRET_KEYS)",
            example: "the key KEYGATE_SECRET_KEY held before",
            check: |value| crate::secrets::server_key::parse_key(value).map(drop),
        }
    )]
    pub previous_secret_keys: Vec<String>,

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

    /// Proxies (IP addresses or CIDR ranges, comma-separated, e.g. `10.0.0.0/8,192.168.1.7`)
    /// whose `X-Forwarded-For` names the client; behind a load balancer, list it so failed
    /// attempts are counted per real client.
    #[arg(long, env = "KEYGATE_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    pub trusted_proxies: Vec<IpNet>,

    /// How often recorded secret usage (`last_used_at`) is written to the database, in milliseconds.
    #[arg(long, env = "KEYGATE_USAGE_FLUSH_MS", default_value_t = 5000)]
    pub usage_flush_ms: u64,

    /// How many days audit events are kept before the background purge deletes them.
    #[arg(long, env = "KEYGATE_AUDIT_RETENTION_DAYS", default_value_t = 90)]
    pub audit_retention_days: u32,
    /// Most found secrets (verified keys and callers' API keys) kept in memory by `POST /verify`
    /// and authentication, a few hundred bytes each; 0 turns the cache off.
    #[arg(long, env = "KEYGATE_VERIFY_CACHE_CAPACITY", default_value_t = 100_000)]
    pub verify_cache_capacity: usize,

    /// Host where clients reach the gateway's listeners, as machine credentials name it.
    #[arg(long, env = "KEYGATE_GATEWAY_HOST", default_value = "127.0.0.1", value_parser = parse_host)]
    pub gateway_host: String,

    /// Gateway listeners that differ from the defaults, comma-separated `protocol=port` or
    /// `protocol=host:port`, e.g. `postgres=5432,ssh=bastion.example.com:22`; protocols:
    /// postgres, mysql, mssql, mongodb, ssh, rdp, tcp, httpproxy, api.
    #[arg(long, env = "KEYGATE_GATEWAY_LISTENERS", value_delimiter = ',')]
    pub gateway_listeners: Vec<ListenerSetting>,

    /// Gateway listeners that terminate TLS, comma-separated protocols, e.g. `postgres,api`.
    #[arg(long, env = "KEYGATE_GATEWAY_TLS", value_delimiter = ',')]
    pub gateway_tls: Vec<Protocol>,

    /// How long, in seconds, the answer to a create or rotate sent with an `Idempotency-Key` is
    /// kept (sealed) and replayed to a retry, before it is purged.
    #[arg(long, env = "KEYGATE_IDEMPOTENCY_WINDOW_SECS", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..))]
    pub idempotency_window_secs: u64,

    /// Origins whose web pages may call the API (CORS), comma-separated, e.g.
    /// `https://console.example.com`; `*` for any. None by default. Credentials are never allowed.
    #[arg(long, env = "KEYGATE_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,

    /// Seconds of inactivity after which a web console session ends.
    #[arg(long, env = "KEYGATE_CONSOLE_IDLE_TIMEOUT_SECS", default_value_t = 1_800, value_parser = clap::value_parser!(u64).range(1..))]
    pub console_idle_timeout_secs: u64,

    /// Seconds after sign-in at which a web console session ends, however busy.
    #[arg(long, env = "KEYGATE_CONSOLE_SESSION_LIFETIME_SECS", default_value_t = 43_200, value_parser = clap::value_parser!(u64).range(1..))]
    pub console_session_lifetime_secs: u64,

    /// Mark the web console's session cookie `Secure` (browsers then send it over HTTPS only):
    /// for a TLS terminator that does not send `X-Forwarded-Proto` from a trusted proxy address.
    #[arg(long, env = "KEYGATE_CONSOLE_SECURE_COOKIE")]
    pub console_secure_cookie: bool,

    /// A file holding GitHub's secret scanning public keys (the JSON document GitHub serves at
    /// `https://api.github.com/meta/public_keys/secret_scanning`), e.g.
    /// /etc/keygate/github-secret-scanning.json: alerts to `POST /secret-scanning/github`
    /// signed with one of them are acted on. Without it every alert is refused.
    #[arg(long, env = "KEYGATE_GITHUB_SCANNING_KEYS")]
    pub github_scanning_keys: Option<PathBuf>,
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

    /// GitHub's secret scanning keys, read from the configured file; none when unset.
    pub fn scanning_keys(&self) -> Result<Option<ScanningKeys>, String> {
        let Some(path) = &self.github_scanning_keys else {
            return Ok(None);
        };
        let document = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read KEYGATE_GITHUB_SCANNING_KEYS (--github-scanning-keys) {}: {e}",
                path.display()
            )
        })?;
        ScanningKeys::parse(&document).map(Some).map_err(|e| {
            format!(
                "KEYGATE_GITHUB_SCANNING_KEYS (--github-scanning-keys) {}: {e}",
                path.display()
            )
        })
    }

    /// The gateway listeners this configuration describes.
    pub fn gateway(&self) -> GatewayListeners {
        GatewayListeners::configured(
            &self.gateway_host,
            &self.gateway_listeners,
            &self.gateway_tls,
        )
    }

    /// How long idempotent answers are replayed, and how long a running request holds its
    /// key: past the request timeout, so that only a dead server's claim lapses.
    pub fn idempotency(&self) -> crate::http::idempotency::IdempotencyPolicy {
        crate::http::idempotency::IdempotencyPolicy {
            window: std::time::Duration::from_secs(self.idempotency_window_secs),
            lease: std::time::Duration::from_secs(self.request_timeout_secs.max(1) + 60),
        }
    }

    /// How long web console sessions last, and whether their cookie is always `Secure`.
    pub fn console(&self) -> crate::http::console::SessionPolicy {
        crate::http::console::SessionPolicy {
            idle: std::time::Duration::from_secs(self.console_idle_timeout_secs),
            lifetime: std::time::Duration::from_secs(self.console_session_lifetime_secs),
            secure_cookie: self.console_secure_cookie,
        }
    }

    /// For commands that work on the server's existing data: an error naming the path when the
    /// SQLite database file is missing, since opening it would create an empty one elsewhere.
    pub fn check_database_exists(&self) -> Result<(), String> {
        match sqlite_file(&self.database_url()) {
            Some(path) if !path.is_file() => Err(format!(
                "there is no database at {}; give the server's --data-dir or --database-url",
                path.display()
            )),
            _ => Ok(()),
        }
    }
}

// Hand-written so that neither the bootstrap token nor a database password reaches a log line.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_database_url(&self.database_url()))
            .field("grpc_url", &self.grpc_url.as_str())
            .field("public_url", &self.public_url)
            .field(
                "bootstrap_token",
                &self.bootstrap_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "previous_secret_keys",
                &vec!["<redacted>"; self.previous_secret_keys.len()],
            )
            .field("log", &self.log)
            .field("log_format", &self.log_format)
            .field(
                "verify_failures_per_minute",
                &self.verify_failures_per_minute,
            )
            .field("auth_failures_per_minute", &self.auth_failures_per_minute)
            .field("usage_flush_ms", &self.usage_flush_ms)
            .field("audit_retention_days", &self.audit_retention_days)
            .field("verify_cache_capacity", &self.verify_cache_capacity)
            .field("database_max_connections", &self.database_max_connections)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("gateway_host", &self.gateway_host)
            .field("gateway_listeners", &self.gateway_listeners)
            .field("gateway_tls", &self.gateway_tls)
            .field("idempotency_window_secs", &self.idempotency_window_secs)
            .field("cors_origins", &self.cors_origins)
            .field("console_idle_timeout_secs", &self.console_idle_timeout_secs)
            .field(
                "console_session_lifetime_secs",
                &self.console_session_lifetime_secs,
            )
            .field("console_secure_cookie", &self.console_secure_cookie)
            .finish()
    }
}

/// The database URL with every secret replaced by `redacted`: the password in the user info,
/// password-like query parameters (`password`, `sslpassword`, …) and inline PEM key material.
/// A URL that does not parse is withheld whole, since where its secret sits is unknown.
pub fn redact_database_url(url: &str) -> String {
    // libpq's list of hosts (`db1:5432,db2:5432`) is no URL host: it is set aside, as it is,
    // while the rest is redacted.
    const HOSTS: &str = "keygate-host-list.invalid";
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        let user_end = authority.rfind('@').map_or(0, |at| at + 1);
        let hosts = &authority[user_end..];
        if hosts.contains(',') {
            let single = format!(
                "{scheme}://{}{HOSTS}{}",
                &authority[..user_end],
                &rest[authority.len()..]
            );
            return redact_database_url(&single).replacen(HOSTS, hosts, 1);
        }
    }
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

/// Checks a secret setting at parse time; hand-written because clap's stock error for an
/// invalid value quotes the value, and these are secrets.
#[derive(Clone)]
struct SecretValueParser {
    /// The setting, as the error names it.
    what: &'static str,
    /// A value that would do, said without showing one.
    example: &'static str,
    check: fn(&str) -> Result<(), &'static str>,
}

impl TypedValueParser for SecretValueParser {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<String, clap::Error> {
        let rule = match value.to_str() {
            Some(value) => match (self.check)(value) {
                Ok(()) => return Ok(value.to_owned()),
                Err(rule) => rule,
            },
            None => "must be valid UTF-8",
        };
        Err(cmd.clone().error(
            ErrorKind::ValueValidation,
            format!("{} {rule}; e.g. {}", self.what, self.example),
        ))
    }
}

/// The file a `sqlite:` URL names, read the way sqlx reads it; `None` for other databases.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    Some(PathBuf::from(
        percent_encoding::percent_decode_str(path)
            .decode_utf8_lossy()
            .as_ref(),
    ))
}

/// An IP address (a single host) or a CIDR range.
/// A CORS origin, `scheme://host[:port]` as browsers send it (serialized, so it compares
/// exactly), or `*`.
fn parse_origin(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value == "*" {
        return Ok(value.into());
    }
    let url =
        Url::parse(value).map_err(|e| format!("not an origin (scheme://host[:port]): {e}"))?;
    let bare = matches!(url.path(), "" | "/") && url.query().is_none() && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https") || !bare || !url.username().is_empty() {
        return Err("an origin is http(s)://host[:port], without path, query or user".into());
    }
    Ok(url.origin().ascii_serialization())
}

fn parse_proxy(value: &str) -> Result<IpNet, String> {
    let value = value.trim();
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{value:?} is neither an IP address nor a CIDR range"))
}

/// Accepts `grpc://host[:port]` or `grpcs://host[:port]`; path, query and credentials are refused
/// because the DSN replaces them.
/// `HOST:PORT`, said with an example: a bare port is a likely first try.
fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|_| {
        "expected an address and a port, HOST:PORT, e.g. 127.0.0.1:8009 or [::]:8009".to_owned()
    })
}

fn parse_public_url(value: &str) -> Result<String, String> {
    crate::domain::agentex::parse_public_url(value)
        .map_err(|rule| format!("invalid public URL: {rule}"))
}

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
        assert_eq!(config.idempotency_window_secs, 86_400);
        assert!(config.cors_origins.is_empty());
    }

    #[test]
    fn cors_origins_are_bare_origins_or_a_wildcard() {
        let config = Config::parse_from([
            "keygate",
            "--cors-origins",
            "https://Console.Example.com/,http://localhost:3000,*",
        ]);
        assert_eq!(
            config.cors_origins,
            ["https://console.example.com", "http://localhost:3000", "*"]
        );
        for bad in [
            "https://x.example/app",
            "ftp://x.example",
            "x.example",
            "https://u@x.example",
        ] {
            assert!(
                Config::try_parse_from(["keygate", "--cors-origins", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn gateway_listeners_come_from_host_settings_and_tls() {
        let config = Config::parse_from(["keygate"]);
        let gateway = config.gateway();
        assert_eq!(
            gateway.get(Protocol::Postgres).authority(),
            "127.0.0.1:15432"
        );
        assert_eq!(
            gateway.get(Protocol::Api).http_url(),
            "http://127.0.0.1:8009"
        );
        let config = Config::parse_from([
            "keygate",
            "--gateway-host",
            "gw.example.com",
            "--gateway-listeners",
            "postgres=5432,ssh=bastion.example.com:22",
            "--gateway-tls",
            "postgres,api",
        ]);
        let gateway = config.gateway();
        let postgres = gateway.get(Protocol::Postgres);
        assert_eq!(
            (postgres.authority(), postgres.tls),
            ("gw.example.com:5432".into(), true)
        );
        assert_eq!(
            gateway.get(Protocol::Ssh).authority(),
            "bastion.example.com:22"
        );
        assert_eq!(
            gateway.get(Protocol::Api).http_url(),
            "https://gw.example.com:8009"
        );
        for bad in [
            &["--gateway-host", "gw example"][..],
            &["--gateway-listeners", "postgres=70000"],
            &["--gateway-tls", "smtp"],
        ] {
            let args = std::iter::once("keygate").chain(bad.iter().copied());
            assert!(Config::try_parse_from(args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn config_definition_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn sqlite_file_is_read_like_sqlx_reads_it() {
        for (url, file) in [
            ("sqlite://./data/keygate.db", Some("./data/keygate.db")),
            (
                "sqlite:///var/lib/keygate/keygate.db?mode=rwc",
                Some("/var/lib/keygate/keygate.db"),
            ),
            ("sqlite:keygate.db", Some("keygate.db")),
            ("sqlite:///srv/key%3Fgate.db", Some("/srv/key?gate.db")),
            ("postgres://db/keygate", None),
        ] {
            assert_eq!(sqlite_file(url), file.map(PathBuf::from), "{url}");
        }
    }

    #[test]
    fn a_missing_sqlite_database_is_reported_not_created() {
        let dir = std::env::temp_dir().join("keygate-config-test-no-such-dir");
        let config = Config::parse_from(["keygate", "--data-dir", dir.to_str().unwrap()]);
        let err = config.check_database_exists().unwrap_err();
        assert!(
            err.contains("keygate.db") && err.contains("--data-dir"),
            "{err}"
        );
        let config = Config::parse_from(["keygate", "--database-url", "postgres://db/keygate"]);
        assert_eq!(config.check_database_exists(), Ok(()));
    }

    #[test]
    fn a_listen_address_without_a_host_is_refused_with_an_example() {
        assert_eq!(
            parse_listen("0.0.0.0:8009").unwrap(),
            "0.0.0.0:8009".parse().unwrap()
        );
        let refused = parse_listen("8009").unwrap_err();
        assert!(refused.contains("e.g. 127.0.0.1:8009"), "{refused}");
    }

    /// A refused setting is shown with an example: its default, or one its help gives.
    #[test]
    fn every_setting_has_an_example() {
        let mut command = Config::command();
        command.build();
        let without: Vec<String> = command
            .get_arguments()
            .filter(|arg| arg.get_env().is_some() && arg.get_default_values().is_empty())
            .filter(|arg| {
                !arg.get_help()
                    .is_some_and(|help| help.to_string().contains("e.g."))
            })
            .map(|arg| arg.get_id().to_string())
            .collect();
        // The secrets' own refusals give theirs, never echoing a value.
        assert_eq!(
            without,
            ["bootstrap_token", "secret_key", "previous_secret_keys"]
        );
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
        // libpq's list of hosts is kept as given.
        assert_eq!(
            redact_database_url(
                "postgres://u:hunter2@h1:5432,[::1]:5433/db?sslpassword=x&target_session_attrs=read-write"
            ),
            "postgres://u:redacted@h1:5432,[::1]:5433/db?sslpassword=redacted&target_session_attrs=read-write"
        );
        assert_eq!(
            redact_database_url("postgres://h1:5432,h2:5432/db"),
            "postgres://h1:5432,h2:5432/db"
        );
    }
}

//! Connections — the databases, servers and services the gateway fronts — and the gateway
//! listeners: where clients reach each protocol's proxy.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::agent::AgentName;
use crate::error::{Error, FieldError, Location, Segment, Violation};
use crate::secrets::server_key::{Keyring, Sealed};

/// Most attributes a connection or a machine identity may carry.
pub const MAX_ATTRIBUTES: usize = 64;

/// hoop names agents, connections and machine identities by one rule: 3 to 254 word characters
/// with single `-` or `.` between them.
pub fn parse_name(value: &str) -> Result<String, Error> {
    AgentName::parse(value).map(AgentName::into_string)
}

/// A refused item of a list in the body, e.g. `attributes.2`.
pub fn list_item_error(field: &'static str, index: usize, message: String) -> FieldError {
    FieldError {
        location: Location::Body,
        path: vec![Segment::Key(Cow::Borrowed(field)), Segment::Index(index)],
        violation: Violation::Rule,
        message,
        input: None,
    }
}

/// Attributes as given: each 1 to 128 characters without control characters, none twice, at
/// most [`MAX_ATTRIBUTES`]. Every refused item is reported.
pub fn parse_attributes(field: &'static str, values: Vec<String>) -> Result<Vec<String>, Error> {
    if values.len() > MAX_ATTRIBUTES {
        let message = format!("it must hold at most {MAX_ATTRIBUTES} attributes");
        return Err(Error::invalid(field, message));
    }
    let mut refused = Vec::new();
    for (index, value) in values.iter().enumerate() {
        let problem = if value.trim().is_empty() || value.chars().count() > 128 {
            Some("it must contain between 1 and 128 characters")
        } else if value.chars().any(char::is_control) {
            Some("it must not contain control characters")
        } else if values[..index].contains(value) {
            Some("it is listed twice")
        } else {
            None
        };
        if let Some(problem) = problem {
            refused.push(list_item_error(field, index, problem.to_owned()));
        }
    }
    if refused.is_empty() {
        Ok(values)
    } else {
        Err(Error::Invalid(refused))
    }
}

/// hoop's kinds of connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionType {
    Database,
    Application,
    Custom,
}

impl ConnectionType {
    pub const fn as_str(self) -> &'static str {
        match self {
            ConnectionType::Database => "database",
            ConnectionType::Application => "application",
            ConnectionType::Custom => "custom",
        }
    }

    pub fn parse(value: &str) -> Result<ConnectionType, Error> {
        match value {
            "database" => Ok(ConnectionType::Database),
            "application" => Ok(ConnectionType::Application),
            "custom" => Ok(ConnectionType::Custom),
            _ => Err(Error::invalid(
                "type",
                "it must be one of database, application or custom",
            )),
        }
    }
}

/// A subtype names the connection's protocol (`postgres`, `ssh`, `aws-ssm`, …): 1 to 64
/// lowercase letters and digits, with single hyphens between them.
pub fn parse_subtype(value: &str) -> Result<String, Error> {
    let well_formed = (1..=64).contains(&value.len())
        && value.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if well_formed {
        Ok(value.to_owned())
    } else {
        Err(Error::invalid(
            "subtype",
            "it must be 1 to 64 lowercase letters or digits, with single hyphens between them",
        ))
    }
}

/// The upstream's credentials as hoop's clients give them with a connection, by name
/// (`envvar:HOST`, `envvar:PASS`, …): what the gateway's agent needs to reach the upstream.
/// keygate keeps them sealed under the server key, bound to the connection, and shows them
/// only to admins. Never printed: its `Debug` names the entries, not their values.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct UpstreamSecret(BTreeMap<String, String>);

impl fmt::Debug for UpstreamSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// The most entries a connection's secret may have.
const MAX_SECRET_ENTRIES: usize = 64;

impl UpstreamSecret {
    /// Refuses what hoop would not store: more than 64 entries, or a name of more than 128
    /// characters or none (names are the client's own; the refusal never repeats one).
    pub fn parse(entries: BTreeMap<String, String>) -> Result<UpstreamSecret, Error> {
        if entries.len() > MAX_SECRET_ENTRIES {
            return Err(Error::invalid("secret", "it must have at most 64 entries"));
        }
        if entries
            .keys()
            .any(|name| name.is_empty() || name.chars().count() > 128)
        {
            return Err(Error::invalid(
                "secret",
                "its names must be 1 to 128 characters long",
            ));
        }
        Ok(UpstreamSecret(entries))
    }

    pub fn expose(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Sealed for the connection `id` alone: a sealed value copied to another row does not open.
    pub fn seal(&self, id: Uuid, server_key: &Keyring) -> Sealed {
        let json = Zeroizing::new(serde_json::to_vec(&self.0).unwrap_or_default());
        server_key.seal(&json, &sealing_context(id))
    }

    /// The secret sealed for the connection `id`; an internal error when it does not open
    /// (another server key, or a row tampered with).
    pub fn open(sealed: &Sealed, id: Uuid, server_key: &Keyring) -> Result<UpstreamSecret, Error> {
        server_key
            .open(sealed, &sealing_context(id))
            .and_then(|json| serde_json::from_slice(&json).ok())
            .map(UpstreamSecret)
            .ok_or_else(|| {
                Error::internal(format!(
                    "the secret of connection {id} (sealed by server key {}) does not open with server key {}",
                    sealed.key_id,
                    server_key.id()
                ))
            })
    }
}

/// What a connection's secret is sealed with, binding it to the connection's row.
pub fn sealing_context(id: Uuid) -> Vec<u8> {
    let mut context = b"connections/".to_vec();
    context.extend_from_slice(id.as_bytes());
    context
}

/// What a connection is, as its creator or last updater gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionSpec {
    pub connection_type: ConnectionType,
    pub subtype: String,
    /// The id or name of the agent that serves it.
    pub agent: String,
    pub attributes: Vec<String>,
    /// The upstream's database, where it has one.
    pub database_name: Option<String>,
    /// The upstream credentials, sealed; on an update, `None` keeps those stored.
    pub secret: Option<Sealed>,
}

/// A connection about to be stored.
#[derive(Clone, Debug)]
pub struct NewConnection {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub spec: ConnectionSpec,
    pub created_at: DateTime<Utc>,
}

/// A stored connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub connection_type: ConnectionType,
    pub subtype: String,
    /// `None` once its agent has been deleted.
    pub agent_id: Option<Uuid>,
    pub attributes: Vec<String>,
    pub database_name: Option<String>,
    /// The upstream credentials its creator gave, sealed.
    pub secret: Option<Sealed>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a credential for a connection is built from and answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionSummary {
    pub id: Uuid,
    pub name: String,
    pub connection_type: ConnectionType,
    pub subtype: String,
    pub database_name: Option<String>,
}

/// The proxies of the gateway, and the public API whose URL aws-ssm credentials carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Postgres,
    Mysql,
    Mssql,
    Mongodb,
    Ssh,
    Rdp,
    Tcp,
    Httpproxy,
    Api,
}

impl Protocol {
    pub const ALL: [Protocol; 9] = [
        Protocol::Postgres,
        Protocol::Mysql,
        Protocol::Mssql,
        Protocol::Mongodb,
        Protocol::Ssh,
        Protocol::Rdp,
        Protocol::Tcp,
        Protocol::Httpproxy,
        Protocol::Api,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Postgres => "postgres",
            Protocol::Mysql => "mysql",
            Protocol::Mssql => "mssql",
            Protocol::Mongodb => "mongodb",
            Protocol::Ssh => "ssh",
            Protocol::Rdp => "rdp",
            Protocol::Tcp => "tcp",
            Protocol::Httpproxy => "httpproxy",
            Protocol::Api => "api",
        }
    }

    /// The port a fresh server hands out: the protocol's usual port behind a leading 1 where
    /// that fits, so a gateway on a developer's machine does not collide with a local server.
    pub const fn default_port(self) -> u16 {
        match self {
            Protocol::Postgres => 15432,
            Protocol::Mysql => 13306,
            Protocol::Mssql => 11433,
            Protocol::Mongodb => 17017,
            Protocol::Ssh => 12222,
            Protocol::Rdp => 13389,
            Protocol::Tcp => 19000,
            Protocol::Httpproxy => 18888,
            Protocol::Api => 8009,
        }
    }

    fn index(self) -> usize {
        Protocol::ALL
            .iter()
            .position(|protocol| *protocol == self)
            .expect("every protocol is in ALL")
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(value: &str) -> Result<Protocol, String> {
        Protocol::ALL
            .into_iter()
            .find(|protocol| protocol.as_str() == value)
            .ok_or_else(|| {
                let known: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown gateway protocol; expected one of {}",
                    known.join(", ")
                )
            })
    }
}

/// Where clients reach one of the gateway's proxies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// A DNS name or an IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Whether the listener terminates TLS.
    pub tls: bool,
}

impl Listener {
    /// `host:port`, with an IPv6 host in brackets.
    pub fn authority(&self) -> String {
        if self.is_ipv6() {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn is_ipv6(&self) -> bool {
        self.host.parse::<Ipv6Addr>().is_ok()
    }

    /// `http://` or, with TLS, `https://` and the authority.
    pub fn http_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.authority())
    }
}

/// A host clients can dial, safe to put in a URL or a shell command as is: an IP address, or
/// a DNS name of letters, digits and hyphens. An IPv6 address may come in brackets.
pub fn parse_host(value: &str) -> Result<String, String> {
    let bare = value
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(value);
    if bare.parse::<Ipv4Addr>().is_ok() || bare.parse::<Ipv6Addr>().is_ok() {
        return Ok(bare.to_owned());
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if value.len() <= 253 && value.split('.').all(label_ok) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err("the host must be a DNS name or an IP address".into())
    }
}

/// One entry of the listener setting: `protocol=port` or `protocol=host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerSetting {
    pub protocol: Protocol,
    pub host: Option<String>,
    pub port: u16,
}

impl FromStr for ListenerSetting {
    type Err = String;
    fn from_str(value: &str) -> Result<ListenerSetting, String> {
        let (protocol, address) = value
            .trim()
            .split_once('=')
            .ok_or("a gateway listener is `protocol=port` or `protocol=host:port`")?;
        let protocol = protocol.parse()?;
        let (host, port) = match address.rsplit_once(':') {
            // A bare IPv6 address has colons too; it needs brackets to carry a port.
            Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
                (Some(parse_host(host)?), port)
            }
            _ => (None, address),
        };
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or("a gateway listener's port must be a number from 1 to 65535")?;
        Ok(ListenerSetting {
            protocol,
            host,
            port,
        })
    }
}

/// Every protocol's listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayListeners([Listener; Protocol::ALL.len()]);

impl GatewayListeners {
    /// The listeners a configuration describes: each protocol on `host` at its default port,
    /// unless a setting names it; TLS on the protocols listed in `tls`.
    pub fn configured(host: &str, settings: &[ListenerSetting], tls: &[Protocol]) -> Self {
        GatewayListeners(Protocol::ALL.map(|protocol| {
            let setting = settings.iter().rev().find(|s| s.protocol == protocol);
            Listener {
                host: setting
                    .and_then(|s| s.host.clone())
                    .unwrap_or_else(|| host.to_owned()),
                port: setting.map_or(protocol.default_port(), |s| s.port),
                tls: tls.contains(&protocol),
            }
        }))
    }

    pub fn get(&self, protocol: Protocol) -> &Listener {
        &self.0[protocol.index()]
    }

    /// These listeners with `overrides` (set through the API) in place of the configured ones.
    pub fn overridden(&self, overrides: Vec<(Protocol, Listener)>) -> Self {
        let mut listeners = self.clone();
        for (protocol, listener) in overrides {
            listeners.0[protocol.index()] = listener;
        }
        listeners
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_settings_take_a_port_or_a_host_and_port() {
        let parse = |value: &str| value.parse::<ListenerSetting>();
        assert_eq!(
            parse("postgres=5433").unwrap(),
            ListenerSetting {
                protocol: Protocol::Postgres,
                host: None,
                port: 5433
            }
        );
        assert_eq!(
            parse("ssh=GW.example.com:22").unwrap().host.as_deref(),
            Some("gw.example.com")
        );
        assert_eq!(
            parse("api=[2001:db8::1]:443").unwrap().host.as_deref(),
            Some("2001:db8::1")
        );
        for bad in [
            "postgres",
            "nosuch=1",
            "postgres=0",
            "postgres=65536",
            "postgres=h:x",
            "postgres=2001:db8::1:5432",
            "ssh=bad host:22",
            "ssh=a;rm -rf:22",
            "ssh=-lead:22",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn configured_listeners_default_to_the_host_and_the_protocols_port() {
        let settings = [
            "mysql=3307".parse().unwrap(),
            "ssh=bastion:2222".parse().unwrap(),
        ];
        let listeners =
            GatewayListeners::configured("gw.internal", &settings, &[Protocol::Postgres]);
        let postgres = listeners.get(Protocol::Postgres);
        assert_eq!(
            (postgres.authority(), postgres.tls),
            ("gw.internal:15432".into(), true)
        );
        assert_eq!(
            listeners.get(Protocol::Mysql).authority(),
            "gw.internal:3307"
        );
        assert_eq!(listeners.get(Protocol::Ssh).authority(), "bastion:2222");
        assert_eq!(
            listeners.get(Protocol::Api).http_url(),
            "http://gw.internal:8009"
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed_where_a_port_follows() {
        let listener = Listener {
            host: "::1".into(),
            port: 443,
            tls: true,
        };
        assert_eq!(listener.http_url(), "https://[::1]:443");
    }

    #[test]
    fn attributes_are_refused_item_by_item() {
        assert_eq!(
            parse_attributes("attributes", vec!["env:prod".into(), "team:x".into()]).unwrap(),
            vec!["env:prod", "team:x"]
        );
        let Err(Error::Invalid(refused)) = parse_attributes(
            "attributes",
            vec!["ok".into(), " ".into(), "ok".into(), "a\u{7}".into()],
        ) else {
            panic!("expected refused attributes");
        };
        let paths: Vec<String> = refused.iter().map(FieldError::dotted_path).collect();
        assert_eq!(paths, ["attributes.1", "attributes.2", "attributes.3"]);
    }

    #[test]
    fn subtypes_are_lowercase_words_with_single_hyphens() {
        for ok in ["postgres", "aws-ssm", "httpproxy", "db2"] {
            assert!(parse_subtype(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Postgres",
            "aws--ssm",
            "-ssh",
            "ssh-",
            "a b",
            &"a".repeat(65),
        ] {
            assert!(parse_subtype(bad).is_err(), "{bad}");
        }
    }
}

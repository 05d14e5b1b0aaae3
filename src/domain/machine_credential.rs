//! A machine identity's native credential for one connection: the fields a client of the
//! connection's protocol needs, pointing at the gateway's listener for it, with the minted
//! secret where that protocol's proxy can read it.
//!
//! Database proxies read the secret from the user name: it is the one field every database
//! protocol sends as is (MySQL, MongoDB and Postgres clients send only a hash of a password).
//! Their password is the fixed [`PROXY_PASSWORD`], with which the proxy can complete any
//! password exchange a client insists on. ssh and rdp servers receive the password itself, so
//! there the secret is the password and the user name names the connection.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use url::Url;
use uuid::Uuid;

use super::connections::{ConnectionSummary, ConnectionType, GatewayListeners, Listener, Protocol};
use crate::secrets::PlainSecret;

/// The password of credentials whose secret is the user name.
pub const PROXY_PASSWORD: &str = "noop";

/// The region the AWS CLI signs for; the gateway's endpoint answers for any.
const AWS_REGION: &str = "us-east-1";

/// A credential as shown once, in the response that issues or rotates it. Only the fields of
/// the connection's subtype are present. Deliberately neither `Debug` nor `Clone`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MachineCredential {
    pub connection_name: String,
    pub connection_type: ConnectionType,
    #[schema(example = "postgres")]
    pub connection_subtype: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "127.0.0.1")]
    pub hostname: Option<String>,
    /// A string, as hoop sends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "15432")]
    pub port: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "postgres://kgmi_…:noop@127.0.0.1:15432/app?sslmode=disable")]
    pub connection_string: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "AKIAQ3EGRW5FBN7ZK2LM")]
    pub aws_access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_secret_access_key: Option<String>,
    /// The secret itself, for subtypes without a native client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
    /// keygate extension: when the credential stops working; absent when never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// How a subtype's clients connect, and so which fields its credential has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Postgres,
    Mysql,
    Mssql,
    Mongodb,
    Ssh,
    Rdp,
    Tcp,
    HttpProxy,
    AwsSsm,
}

impl Shape {
    /// `None` for a subtype without a native client, whose credential is the secret alone.
    fn of(subtype: &str) -> Option<Shape> {
        Some(match subtype {
            "postgres" => Shape::Postgres,
            "mysql" => Shape::Mysql,
            "mssql" => Shape::Mssql,
            "mongodb" => Shape::Mongodb,
            "ssh" => Shape::Ssh,
            "rdp" => Shape::Rdp,
            "tcp" => Shape::Tcp,
            "httpproxy" | "kubernetes" => Shape::HttpProxy,
            "aws-ssm" => Shape::AwsSsm,
            _ => return None,
        })
    }

    /// The listener its clients dial.
    fn protocol(self) -> Protocol {
        match self {
            Shape::Postgres => Protocol::Postgres,
            Shape::Mysql => Protocol::Mysql,
            Shape::Mssql => Protocol::Mssql,
            Shape::Mongodb => Protocol::Mongodb,
            Shape::Ssh => Protocol::Ssh,
            Shape::Rdp => Protocol::Rdp,
            Shape::Tcp => Protocol::Tcp,
            Shape::HttpProxy => Protocol::Httpproxy,
            Shape::AwsSsm => Protocol::Api,
        }
    }
}

/// The credential `identity_id` holds for `connection`, with `secret`, reached through
/// `listeners`.
pub fn build(
    connection: &ConnectionSummary,
    identity_id: Uuid,
    listeners: &GatewayListeners,
    secret: &PlainSecret,
    expires_at: Option<DateTime<Utc>>,
) -> MachineCredential {
    let secret = secret.expose().to_owned();
    let mut credential = MachineCredential {
        connection_name: connection.name.clone(),
        connection_type: connection.connection_type,
        connection_subtype: connection.subtype.clone(),
        hostname: None,
        port: None,
        username: None,
        password: None,
        database_name: None,
        connection_string: None,
        command: None,
        proxy_token: None,
        endpoint_url: None,
        aws_access_key_id: None,
        aws_secret_access_key: None,
        secret_key: None,
        expires_at,
    };
    let Some(shape) = Shape::of(&connection.subtype) else {
        credential.secret_key = Some(secret);
        return credential;
    };
    let listener = listeners.get(shape.protocol());
    if shape != Shape::AwsSsm {
        credential.hostname = Some(listener.host.clone());
        credential.port = Some(listener.port.to_string());
    }
    let database = connection.database_name.as_deref();
    match shape {
        Shape::Postgres | Shape::Mysql | Shape::Mongodb | Shape::Mssql => {
            credential.connection_string = Some(match shape {
                Shape::Postgres => {
                    let mode = if listener.tls { "require" } else { "disable" };
                    database_url(
                        "postgres",
                        listener,
                        &secret,
                        database,
                        &[("sslmode", mode)],
                    )
                }
                Shape::Mysql => {
                    let mode = if listener.tls { "REQUIRED" } else { "DISABLED" };
                    database_url("mysql", listener, &secret, database, &[("ssl-mode", mode)])
                }
                Shape::Mongodb => {
                    let tls = if listener.tls { "true" } else { "false" };
                    let options = [("directConnection", "true"), ("tls", tls)];
                    database_url("mongodb", listener, &secret, database, &options)
                }
                _ => ado_connection_string(listener, &secret, database),
            });
            credential.username = Some(secret);
            credential.password = Some(PROXY_PASSWORD.to_owned());
            credential.database_name = connection.database_name.clone();
        }
        Shape::Ssh => {
            // sshpass reads the password from SSHPASS, so it never shows in a process list.
            credential.command = Some(format!(
                "SSHPASS='{secret}' sshpass -e ssh -p {} {}@{}",
                listener.port, connection.name, listener.host
            ));
            credential.username = Some(connection.name.clone());
            credential.password = Some(secret);
        }
        Shape::Rdp => {
            credential.command = Some(format!(
                "xfreerdp /v:{} /u:{} /p:'{secret}'",
                listener.authority(),
                connection.name
            ));
            credential.username = Some(connection.name.clone());
            credential.password = Some(secret);
        }
        Shape::Tcp => {
            // The tcp proxy reads the secret from the first line, then relays the connection.
            credential.connection_string = Some(format!("tcp://{secret}@{}", listener.authority()));
            credential.command = Some(format!(
                "{{ printf '%s\\n' '{secret}'; cat; }} | nc {} {}",
                listener.host, listener.port
            ));
            credential.secret_key = Some(secret);
        }
        Shape::HttpProxy => {
            let url = listener.http_url();
            // curl reads brackets in a URL as a glob unless told not to.
            let globoff = if listener.is_ipv6() { "-g " } else { "" };
            credential.command = Some(format!(
                "curl {globoff}-H 'Authorization: Bearer {secret}' {url}/\n\
                 # in a browser: {url}/?proxy_token={secret}"
            ));
            credential.proxy_token = Some(secret);
        }
        Shape::AwsSsm => {
            let endpoint = listener.http_url();
            let key_id = aws_access_key_id(identity_id, connection.id);
            credential.connection_string = Some(format!(
                "AWS_ACCESS_KEY_ID={key_id} AWS_SECRET_ACCESS_KEY={secret} aws ssm start-session \
                 --target {} --endpoint-url {endpoint} --region {AWS_REGION}",
                connection.name
            ));
            credential.endpoint_url = Some(endpoint);
            credential.aws_access_key_id = Some(key_id);
            credential.aws_secret_access_key = Some(secret);
        }
    }
    credential
}

/// `scheme://<secret>:noop@host:port/<database>?<options>`. The secret needs no escaping
/// (prefix, base64url and base62 are all unreserved in a URL); the database name is escaped.
fn database_url(
    scheme: &str,
    listener: &Listener,
    secret: &str,
    database: Option<&str>,
    options: &[(&str, &str)],
) -> String {
    let mut url = Url::parse(&format!("{scheme}://{}/", listener.authority()))
        .expect("a validated host and a port make a URL");
    url.set_username(secret).expect("the URL has a host");
    url.set_password(Some(PROXY_PASSWORD))
        .expect("the URL has a host");
    if let Some(database) = database {
        url.path_segments_mut()
            .expect("the URL has a host")
            .pop()
            .push(database);
    }
    url.query_pairs_mut().extend_pairs(options);
    url.into()
}

/// SQL Server's ADO.NET form, which its drivers (SqlClient, go-mssqldb, tedious) read.
fn ado_connection_string(listener: &Listener, secret: &str, database: Option<&str>) -> String {
    let mut parts = vec![format!("Server=tcp:{},{}", listener.host, listener.port)];
    if let Some(database) = database {
        parts.push(format!("Database={}", ado_value(database)));
    }
    parts.push(format!("User ID={secret}"));
    parts.push(format!("Password={PROXY_PASSWORD}"));
    let encrypt = if listener.tls { "True" } else { "False" };
    parts.push(format!("Encrypt={encrypt}"));
    parts.join(";")
}

/// A value quoted when it holds what would end or change it.
fn ado_value(value: &str) -> String {
    let plain = !value.contains([';', '=', '"', '\'', '{']) && value.trim() == value;
    if plain {
        value.to_owned()
    } else {
        format!("\"{}\"", value.replace('"', "\"\""))
    }
}

/// An AWS-shaped access key id (`AKIA` and 16 base32 characters) derived from the identity
/// and the connection, so it names the credential without saying anything about its secret.
fn aws_access_key_id(identity_id: Uuid, connection_id: Uuid) -> String {
    let digest = Sha256::new()
        .chain_update(identity_id.as_bytes())
        .chain_update(connection_id.as_bytes())
        .finalize();
    const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bits = digest[..10]
        .iter()
        .fold(0u128, |bits, byte| bits << 8 | u128::from(*byte));
    let body: String = (0..16)
        .rev()
        .map(|chunk| BASE32[(bits >> (chunk * 5)) as usize & 31] as char)
        .collect();
    format!("AKIA{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretKind;

    fn connection(subtype: &str, database_name: Option<&str>) -> ConnectionSummary {
        ConnectionSummary {
            id: Uuid::now_v7(),
            name: "prod-conn".into(),
            connection_type: ConnectionType::Database,
            subtype: subtype.into(),
            database_name: database_name.map(str::to_owned),
        }
    }

    fn issue(subtype: &str, database_name: Option<&str>) -> (MachineCredential, PlainSecret) {
        let listeners = GatewayListeners::configured("gw.example.com", &[], &[]);
        let secret = PlainSecret::mint(SecretKind::MachineCredential);
        let credential = build(
            &connection(subtype, database_name),
            Uuid::now_v7(),
            &listeners,
            &secret,
            None,
        );
        (credential, secret)
    }

    /// RFC 3986's unreserved characters: safe in a URL's user part, a query or a shell word.
    #[test]
    fn minted_credentials_need_no_escaping_anywhere() {
        let unreserved =
            |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        for _ in 0..2000 {
            let secret = PlainSecret::mint(SecretKind::MachineCredential);
            assert!(secret.expose().bytes().all(unreserved), "{secret:?}");
        }
    }

    #[test]
    fn postgres_carries_the_secret_as_user_and_escapes_the_database() {
        let (credential, secret) = issue("postgres", Some("app db/1"));
        let url = Url::parse(credential.connection_string.as_deref().unwrap()).unwrap();
        assert_eq!(url.username(), secret.expose());
        assert_eq!(url.password(), Some(PROXY_PASSWORD));
        assert_eq!(url.path(), "/app%20db%2F1");
        assert_eq!(url.query(), Some("sslmode=disable"));
        assert_eq!(credential.username.as_deref(), Some(secret.expose()));
        assert_eq!(credential.port.as_deref(), Some("15432"));
    }

    #[test]
    fn mssql_quotes_a_database_name_that_would_break_the_string() {
        let (credential, secret) = issue("mssql", Some("a;b\"c"));
        assert_eq!(
            credential.connection_string.unwrap(),
            format!(
                "Server=tcp:gw.example.com,11433;Database=\"a;b\"\"c\";User ID={};Password=noop;Encrypt=False",
                secret.expose()
            )
        );
    }

    #[test]
    fn ssh_puts_the_connection_in_the_user_and_the_secret_in_the_password() {
        let (credential, secret) = issue("ssh", None);
        let command = credential.command.unwrap();
        assert_eq!(
            command,
            format!(
                "SSHPASS='{}' sshpass -e ssh -p 12222 prod-conn@gw.example.com",
                secret.expose()
            )
        );
        assert_eq!(credential.password.as_deref(), Some(secret.expose()));
    }

    #[test]
    fn aws_access_key_ids_look_like_aws_ones_and_are_stable() {
        let (identity, connection) = (Uuid::now_v7(), Uuid::now_v7());
        let id = aws_access_key_id(identity, connection);
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("AKIA"));
        assert!(
            id[4..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        );
        assert_eq!(id, aws_access_key_id(identity, connection));
        assert_ne!(id, aws_access_key_id(connection, identity));
    }

    #[test]
    fn unknown_subtypes_get_the_secret_alone() {
        let (credential, secret) = issue("bash", None);
        assert_eq!(credential.secret_key.as_deref(), Some(secret.expose()));
        assert!(credential.hostname.is_none() && credential.command.is_none());
    }
}

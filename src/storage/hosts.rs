//! Which Postgres server to use, from a database URL that may name several, as libpq writes
//! it: `postgres://keygate@db1:5432,db2:5432/keygate?target_session_attrs=read-write`. sqlx
//! takes one host, so each is parsed into its own connect options here, and a connection is
//! kept only from the first host, in order, whose session matches the target, as libpq does.
//! The pool checks every new connection this way (a standby it reached is replaced by a
//! connection to the server that matches), so that after a failover new connections land on
//! the new primary. A URL with one host and no `target_session_attrs` is sqlx's own, unchanged.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};

use crate::config::redact_database_url;

/// What a session must be to be kept: libpq's `target_session_attrs` values that can take
/// keygate's writes, or `any` (libpq's default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The first server that answers.
    Any,
    /// A server whose sessions may write (`SHOW transaction_read_only` is `off`).
    ReadWrite,
    /// A server that is not in recovery (`pg_is_in_recovery()` is false).
    Primary,
}

/// A server that answers neither yes nor no within this is passed over for the next one.
const HOST_TIMEOUT: Duration = Duration::from_secs(2);

/// The servers of a database URL, in the URL's order, and the session each connection needs.
#[derive(Debug)]
pub struct Hosts {
    hosts: Vec<PgConnectOptions>,
    target: Target,
    /// When the server in use was last found gone: connections opened before then are not
    /// handed out again.
    lost_at: Mutex<Option<Instant>>,
}

impl Hosts {
    /// Parses `url`. Errors name `KEYGATE_DATABASE_URL` and never show its password.
    pub fn parse(url: &str) -> Result<Hosts, String> {
        let invalid = |why: &str| {
            format!(
                "KEYGATE_DATABASE_URL (--database-url) {}: {why}",
                redact_database_url(url)
            )
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected postgres://"))?;
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (user, host_list) = match authority.rsplit_once('@') {
            Some((user, hosts)) => (format!("{user}@"), hosts),
            None => (String::new(), authority),
        };
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        let mut target = None;
        let mut params = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("target_session_attrs", value)) => {
                    target = Some(match value {
                        "any" => Target::Any,
                        "read-write" => Target::ReadWrite,
                        "primary" => Target::Primary,
                        other => {
                            return Err(invalid(&format!(
                                "target_session_attrs={other} is not supported: keygate \
                                 writes, so give read-write, primary or any"
                            )));
                        }
                    })
                }
                _ => params.push(pair),
            }
        }
        if !host_list.contains(',') && target.is_none() {
            let options = PgConnectOptions::from_str(url).map_err(|e| invalid(&e.to_string()))?;
            return Ok(Hosts::new(vec![options], Target::Any));
        }
        let query = if params.is_empty() {
            String::new()
        } else {
            format!("?{}", params.join("&"))
        };
        let hosts = host_list
            .split(',')
            .map(|host| {
                if host.is_empty() {
                    return Err(invalid("a host in the list is empty"));
                }
                let single = format!("{scheme}://{user}{host}{path}{query}");
                PgConnectOptions::from_str(&single)
                    .map_err(|e| invalid(&format!("host {host}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Hosts::new(hosts, target.unwrap_or(Target::Any)))
    }

    fn new(hosts: Vec<PgConnectOptions>, target: Target) -> Hosts {
        Hosts {
            hosts,
            target,
            lost_at: Mutex::new(None),
        }
    }

    /// Whether connections are chosen among servers at all: several hosts, or one with a
    /// target to check. Otherwise the URL is used as sqlx takes it.
    pub fn choose(&self) -> bool {
        self.hosts.len() > 1 || self.target != Target::Any
    }

    /// The servers' `host:port`, in order, for messages.
    pub fn describe(&self) -> String {
        self.hosts
            .iter()
            .map(|host| format!("{}:{}", host.get_host(), host.get_port()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The first server's connect options (a single host's are the URL's own).
    pub fn first(&self) -> &PgConnectOptions {
        &self.hosts[0]
    }

    /// The connect options of the first server, in order, whose session matches the target.
    pub async fn locate(&self) -> Result<PgConnectOptions, sqlx::Error> {
        let (host, connection) = self.connect().await?;
        connection.close().await?;
        Ok(host)
    }

    /// Connects to each server in order and returns the first connection whose session
    /// matches the target, with that server's connect options; otherwise the last error, or
    /// an I/O error (answered 503) naming the servers when all answered but none matched.
    async fn connect(&self) -> Result<(PgConnectOptions, PgConnection), sqlx::Error> {
        let mut last = None;
        for host in &self.hosts {
            let attempt = async {
                let mut connection = PgConnection::connect_with(host).await?;
                if self.matches(&mut connection).await? {
                    Ok(Some(connection))
                } else {
                    connection.close().await?;
                    Ok(None)
                }
            };
            match tokio::time::timeout(HOST_TIMEOUT, attempt).await {
                Ok(Ok(Some(connection))) => return Ok((host.clone(), connection)),
                Ok(Ok(None)) => {}
                Ok(Err(err)) => last = Some(err),
                Err(_) => last = Some(sqlx::Error::PoolTimedOut),
            }
        }
        Err(last.unwrap_or_else(|| {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                format!(
                    "no Postgres server at {} is {}",
                    self.describe(),
                    match self.target {
                        Target::ReadWrite => "read-write",
                        Target::Primary | Target::Any => "a primary",
                    }
                ),
            ))
        }))
    }

    /// Whether the session on `connection` is the kind the target asks for.
    pub async fn matches(&self, connection: &mut PgConnection) -> Result<bool, sqlx::Error> {
        Ok(match self.target {
            Target::Any => true,
            Target::ReadWrite => {
                let read_only: String = sqlx::query_scalar("SHOW transaction_read_only")
                    .fetch_one(&mut *connection)
                    .await?;
                read_only == "off"
            }
            Target::Primary => {
                !sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()")
                    .fetch_one(&mut *connection)
                    .await?
            }
        })
    }

    /// The server in use was found gone: connections opened before now are closed rather than
    /// handed out, since they lead to it.
    pub fn lost(&self) {
        *self.lost_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Whether a connection opened `age` ago may still be handed out.
    fn still_current(&self, age: Duration) -> bool {
        let lost_at = *self.lost_at.lock().unwrap_or_else(|e| e.into_inner());
        lost_at.is_none_or(|lost_at| age < lost_at.elapsed())
    }

    /// The pool's options for these servers. When there is a choice, every new connection is
    /// checked against the target and replaced by one to the first server that matches when
    /// it does not (after a failover the server the pool points to may be the old primary,
    /// back as a standby), and a connection opened before the server in use was found gone is
    /// closed instead of handed out.
    pub fn pool_options(self: &Arc<Hosts>) -> PgPoolOptions {
        let options = PgPoolOptions::new();
        if !self.choose() {
            return options;
        }
        let hosts = self.clone();
        let options = options.after_connect(move |connection, _| {
            let hosts = hosts.clone();
            Box::pin(async move {
                if !hosts.matches(connection).await? {
                    let (_, matching) = hosts.connect().await?;
                    std::mem::replace(connection, matching).close().await?;
                }
                Ok(())
            })
        });
        let hosts = self.clone();
        options.before_acquire(move |_, meta| {
            let current = hosts.still_current(meta.age);
            Box::pin(async move { Ok(current) })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(url: &str) -> Vec<(String, u16)> {
        Hosts::parse(url)
            .unwrap()
            .hosts
            .iter()
            .map(|host| (host.get_host().to_owned(), host.get_port()))
            .collect()
    }

    #[test]
    fn each_host_keeps_its_port_and_the_rest_of_the_url() {
        let parsed = Hosts::parse(
            "postgres://keygate:hunter2@db1:5433,db2,[::1]:5434/keygate?sslmode=disable&target_session_attrs=read-write&application_name=kg",
        )
        .unwrap();
        assert_eq!(parsed.target, Target::ReadWrite);
        assert!(parsed.choose());
        let found: Vec<_> = parsed
            .hosts
            .iter()
            .map(|host| {
                (
                    host.get_host().to_owned(),
                    host.get_port(),
                    host.get_username().to_owned(),
                    host.get_database().map(str::to_owned),
                    host.get_application_name().map(str::to_owned),
                    format!("{:?}", host.get_ssl_mode()),
                )
            })
            .collect();
        let expect = |host: &str, port| {
            (
                host.to_owned(),
                port,
                "keygate".to_owned(),
                Some("keygate".to_owned()),
                Some("kg".to_owned()),
                "Disable".to_owned(),
            )
        };
        assert_eq!(
            found,
            vec![
                expect("db1", 5433),
                expect("db2", 5432),
                expect("[::1]", 5434)
            ]
        );
        assert_eq!(parsed.describe(), "db1:5433,db2:5432,[::1]:5434");
    }

    #[test]
    fn the_session_targets_are_libpqs_that_can_write() {
        for (attrs, target) in [
            ("any", Target::Any),
            ("read-write", Target::ReadWrite),
            ("primary", Target::Primary),
        ] {
            let url = format!("postgres://h1,h2/db?target_session_attrs={attrs}");
            assert_eq!(Hosts::parse(&url).unwrap().target, target);
        }
        // libpq's default.
        assert_eq!(
            Hosts::parse("postgres://h1:1,h2:2/db").unwrap().target,
            Target::Any
        );
        assert_eq!(
            hosts("postgres://h1:1,h2:2/db"),
            [("h1".into(), 1), ("h2".into(), 2)]
        );
        // One host with a target is checked too.
        let one = Hosts::parse("postgres://h1/db?target_session_attrs=primary").unwrap();
        assert!(one.choose());
    }

    #[test]
    fn a_single_host_url_is_sqlxs_own() {
        let url = "postgres://keygate@db:6543/keygate?sslmode=require";
        let parsed = Hosts::parse(url).unwrap();
        assert!(!parsed.choose());
        assert_eq!(
            format!("{:?}", parsed.first()),
            format!("{:?}", PgConnectOptions::from_str(url).unwrap())
        );
    }

    #[test]
    fn refusals_name_the_variable_and_never_the_password() {
        for (url, says) in [
            (
                "postgres://u:hunter2@h1,h2/db?target_session_attrs=read-only",
                "target_session_attrs=read-only is not supported",
            ),
            (
                "postgres://u:hunter2@h1,h2/db?target_session_attrs=standby",
                "give read-write, primary or any",
            ),
            (
                "postgres://u:hunter2@h1,,h2/db",
                "a host in the list is empty",
            ),
            ("postgres://u:hunter2@h1,h2:port/db", "host h2:port"),
        ] {
            let err = Hosts::parse(url).unwrap_err();
            assert!(err.starts_with("KEYGATE_DATABASE_URL"), "{err}");
            assert!(err.contains(says), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn connections_opened_before_a_loss_are_not_handed_out() {
        let parsed = Hosts::parse("postgres://h1,h2/db").unwrap();
        assert!(parsed.still_current(Duration::from_secs(3600)));
        parsed.lost();
        assert!(!parsed.still_current(Duration::from_secs(3600)));
        std::thread::sleep(Duration::from_millis(20));
        assert!(parsed.still_current(Duration::from_millis(10)));
    }
}

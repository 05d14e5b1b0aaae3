//! The one error type of keygate. Handlers, extractors and storage return it; each API family
//! renders it in its own dialect (`http::dialect`). Messages never carry a secret nor echo input.

use std::borrow::Cow;
use std::fmt;

use axum::http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body cannot be read at all: not UTF-8, or cut short.
    #[error("{0}")]
    MalformedBody(String),
    /// The body is not JSON: the character where its syntax breaks, and what was expected
    /// there in the words of Python's `json` module, which FastAPI's clients are shown.
    #[error("invalid JSON body: {reason} at character {at}")]
    InvalidJson { at: usize, reason: &'static str },
    /// Fields that are missing, of the wrong type, unknown, or that break a rule.
    #[error("{}", .0.first().map(ToString::to_string).unwrap_or_default())]
    Invalid(Vec<FieldError>),
    #[error("missing or invalid credentials")]
    Unauthenticated,
    /// The credentials were right, but the server-issued nonce they answer has expired: the
    /// client retries with a fresh one without asking its user again.
    #[error("the nonce has expired; retry with the fresh one")]
    StaleNonce,
    #[error("the API key's role does not allow this")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A resource the client named does not exist, told in its family's words (Agentex's
    /// "Item with name 'x' does not exist."); what it names is an identifier, never a secret.
    #[error("{0}")]
    NoSuchItem(String),
    #[error("resource already exists")]
    AlreadyExists,
    /// The resource is not in a state that allows the request (e.g. rotating a revoked key).
    #[error("{0}")]
    Conflict(&'static str),
    /// The first request sent with this `Idempotency-Key` is still running.
    #[error("a request with this Idempotency-Key is still in progress; retry later")]
    IdempotencyKeyInUse,
    /// This `Idempotency-Key` was first sent with another request (method, path or body).
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("the method is not allowed on this route")]
    MethodNotAllowed,
    #[error("the request took longer than {0} s")]
    Timeout(u64),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("too many failed attempts, retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Concurrent changes kept colliding (deadlock, serialization failure, locked database)
    /// after bounded retries.
    #[error("the resource is busy with concurrent changes; retry")]
    Busy,
    #[error("the database is unavailable")]
    Unavailable,
    /// A refusal that a family's clients tell apart by the family's own code (Ops Manager's
    /// `NOT_IN_GROUP`, `GROUP_NOT_FOUND`, …), where no other variant does: the status, the code,
    /// and words that never repeat input.
    #[error("{message}")]
    Coded {
        status: StatusCode,
        code: &'static str,
        message: &'static str,
    },
    /// Anything unexpected; its detail is logged with the request id, never shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where a field of the request lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    Body,
    Path,
    Query,
    Header,
}

impl Location {
    pub const fn as_str(self) -> &'static str {
        match self {
            Location::Body => "body",
            Location::Path => "path",
            Location::Query => "query",
            Location::Header => "header",
        }
    }
}

/// One step of a field's path: an object key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Key(Cow<'static, str>),
    Index(usize),
}

/// Why a field was refused; each dialect maps it to its own vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Absent or null where required.
    Missing,
    /// Present with the wrong JSON type; `text` when what came was text, which FastAPI tells
    /// apart as a value it could not parse.
    WrongType { text: bool },
    /// A field the request does not have.
    Unknown,
    /// Present and well-typed, but breaking a rule (length, charset, enum value, time).
    Rule,
}

/// The words of a broken numeric bound, which every dialect's renderer reads back (FastAPI
/// names the bound: `greater_than_equal` with `{"ge": 1}`).
pub mod bound {
    pub const AT_LEAST: &str = "must be greater than or equal to ";
    pub const AT_MOST: &str = "must be less than or equal to ";
    /// A number with a fraction where an integer belongs.
    pub const FRACTION: &str = "expected an integer, got a number with a fractional part";

    pub fn at_least(bound: impl std::fmt::Display) -> String {
        format!("{AT_LEAST}{bound}")
    }

    pub fn at_most(bound: impl std::fmt::Display) -> String {
        format!("{AT_MOST}{bound}")
    }
}

/// A refused field: where, why, and a message in words that never repeats the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub location: Location,
    pub path: Vec<Segment>,
    pub violation: Violation,
    pub message: String,
    /// What was sent, where it cannot be a secret: it holds neither text nor a number (null,
    /// a boolean, or a list or empty object of those). FastAPI's clients read it; the other
    /// dialects ignore it.
    pub input: Option<serde_json::Value>,
}

impl FieldError {
    /// The dotted path, e.g. `name` or `connection_names.2`; empty for the whole body.
    pub fn dotted_path(&self) -> String {
        let parts: Vec<String> = self
            .path
            .iter()
            .map(|segment| match segment {
                Segment::Key(key) => key.to_string(),
                Segment::Index(index) => index.to_string(),
            })
            .collect();
        parts.join(".")
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.dotted_path();
        if path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{path}: {}", self.message)
        }
    }
}

impl Error {
    fn field(
        location: Location,
        field: &'static str,
        violation: Violation,
        message: String,
    ) -> Error {
        Error::Invalid(vec![FieldError {
            location,
            path: vec![Segment::Key(Cow::Borrowed(field))],
            violation,
            message,
            input: None,
        }])
    }

    /// A body field that breaks a rule.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Error {
        Error::field(Location::Body, field, Violation::Rule, message.into())
    }

    /// A request header whose value breaks a rule.
    pub fn invalid_header(name: &'static str, message: impl Into<String>) -> Error {
        Error::field(Location::Header, name, Violation::Rule, message.into())
    }

    /// A query parameter that breaks a rule.
    pub fn invalid_query(param: &'static str, message: impl Into<String>) -> Error {
        Error::field(Location::Query, param, Violation::Rule, message.into())
    }

    /// A path parameter that cannot be what it names.
    pub fn invalid_path(param: &'static str, message: impl Into<String>) -> Error {
        Error::field(Location::Path, param, Violation::Rule, message.into())
    }

    /// A required body field that is absent (or null).
    pub fn required<T>(field: &'static str, value: Option<T>) -> Result<T, Error> {
        value.ok_or_else(|| {
            Error::field(
                Location::Body,
                field,
                Violation::Missing,
                "missing required field".into(),
            )
        })
    }

    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::Internal(source.into())
    }

    /// keygate's own statuses: a request that cannot be read (missing or mistyped fields) is
    /// 400; one that can be read but breaks a rule is 422.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::MalformedBody(_) | Error::InvalidJson { .. } => StatusCode::BAD_REQUEST,
            Error::Invalid(errors) => {
                if errors.iter().all(|e| e.violation == Violation::Rule) {
                    StatusCode::UNPROCESSABLE_ENTITY
                } else {
                    StatusCode::BAD_REQUEST
                }
            }
            Error::Unauthenticated | Error::StaleNonce => StatusCode::UNAUTHORIZED,
            Error::Coded { status, .. } => *status,
            Error::Forbidden => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::NoSuchItem(_) => StatusCode::NOT_FOUND,
            Error::AlreadyExists | Error::Conflict(_) | Error::IdempotencyKeyInUse => {
                StatusCode::CONFLICT
            }
            Error::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Busy | Error::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable machine-readable code for the native dialect.
    pub fn code(&self) -> &'static str {
        match self {
            Error::MalformedBody(_) | Error::InvalidJson { .. } => "malformed_body",
            Error::Invalid(_) if self.status() == StatusCode::BAD_REQUEST => "bad_request",
            Error::Invalid(_) => "invalid",
            Error::Unauthenticated => "unauthenticated",
            Error::StaleNonce => "stale_nonce",
            Error::Coded { status, .. } => match status.as_u16() {
                401 => "unauthenticated",
                403 => "forbidden",
                404 => "not_found",
                409 => "conflict",
                _ => "bad_request",
            },
            Error::Forbidden => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::NoSuchItem(_) => "not_found",
            Error::AlreadyExists | Error::Conflict(_) => "conflict",
            Error::IdempotencyKeyInUse => "idempotency_key_in_use",
            Error::IdempotencyKeyReused => "idempotency_key_reused",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::Timeout(_) => "timeout",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::RateLimited { .. } => "rate_limited",
            Error::Busy => "busy",
            Error::Unavailable => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// Whether retrying the same transaction may succeed: a deadlock, a serialization failure
    /// or a locked SQLite database.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Busy)
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Error {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => Error::AlreadyExists,
            sqlx::Error::Database(db) if is_contention(db.code().as_deref()) => Error::Busy,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Error::Unavailable
            }
            sqlx::Error::Database(db) if is_server_going(db.code().as_deref()) => {
                Error::Unavailable
            }
            _ => Error::internal(err),
        }
    }
}

/// A Postgres server that cannot take the statement now, as during a failover: read-only
/// (`25006`, a standby or a primary being demoted), shutting down or starting (`57P01`–`57P03`),
/// or a connection exception (class `08`).
fn is_server_going(code: Option<&str>) -> bool {
    matches!(code, Some("25006" | "57P01" | "57P02" | "57P03"))
        || code.is_some_and(|code| code.starts_with("08"))
}

/// Postgres `40P01` deadlock and `40001` serialization failure; SQLite `SQLITE_BUSY` (5) and
/// `SQLITE_LOCKED` (6) with their extended codes.
fn is_contention(code: Option<&str>) -> bool {
    match code {
        Some("40P01" | "40001") => true,
        Some(code) => code.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6)),
        None => false,
    }
}

/// An error and its chain of causes on one line, for a terminal or a log (many errors' own
/// message is only the outermost, e.g. "error sending request").
pub fn with_causes(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_are_400_and_broken_rules_422() {
        assert_eq!(
            Error::required::<()>("name", None).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            Error::invalid("name", "too long").status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            Error::invalid("name", "too long").to_string(),
            "name: too long"
        );
    }

    #[test]
    fn contention_codes_of_both_databases_are_transient() {
        for code in ["40P01", "40001", "5", "517", "6", "262"] {
            assert!(is_contention(Some(code)), "{code}");
        }
        for code in ["23505", "2067", "19", "42P01"] {
            assert!(!is_contention(Some(code)), "{code}");
        }
    }
}

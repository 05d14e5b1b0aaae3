//! Extractors whose rejections are [`Error`]s with the refused fields named, so they render in
//! the route's dialect. Text Postgres cannot store (a NUL character) is refused here, at the
//! edge, so both databases see the same input.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::json_syntax;
use crate::error::{Error, FieldError, Location, Segment, Violation};

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

const NUL_MESSAGE: &str = "must not contain NUL characters";

/// A JSON body. An empty body reads as `{}`, so a missing body is reported as missing fields.
/// Every refused field is reported with its path and why; serde's wording is kept but quoted
/// input is cut out of it: a secret pasted into the wrong field must not come back in an error.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        parse_body(&read_body(request, state).await?).map(Json)
    }
}

/// The whole body, within the body limit.
pub async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, Error> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge(BODY_LIMIT)
            } else {
                Error::MalformedBody("could not read the request body".into())
            }
        })
}

/// For `#[serde(default, deserialize_with = "not_null")]`: a field that may be absent but is
/// never `null`, which `Option` alone would read as absent.
pub fn not_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// For `#[serde(deserialize_with = "free_map")]`: a JSON object whose keys are the client's own
/// (kinds of secret, header names), read as the map `M`. A value that cannot be read is refused
/// naming the object, never the key, which may be anything the client pasted, a secret included.
pub fn free_map<'de, D, M, V>(deserializer: D) -> Result<M, D::Error>
where
    D: Deserializer<'de>,
    M: FromIterator<(String, V)>,
    V: DeserializeOwned,
{
    serde_json::Map::deserialize(deserializer)?
        .into_iter()
        .map(|(key, value)| {
            serde_json::from_value(value)
                .map(|value| (key, value))
                .map_err(serde::de::Error::custom)
        })
        .collect()
}

/// [`free_map`] for `#[serde(default, deserialize_with = "some_free_map")]`: may be absent,
/// never `null`.
pub fn some_free_map<'de, D, M, V>(deserializer: D) -> Result<Option<M>, D::Error>
where
    D: Deserializer<'de>,
    M: FromIterator<(String, V)>,
    V: DeserializeOwned,
{
    free_map(deserializer).map(Some)
}

/// Reads `bytes` as JSON, then as `T`.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let body: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    // Most bodies are read straight into `T`, as the `Value` pass below would read them, with
    // no tree of values built and walked on the way (a verification's body, read with every
    // request, costs a third less). A body that pass would rewrite or refuse, or that does not
    // read, takes it, and it says what is wrong.
    if reads_as_written(body)
        && let Ok(parsed) = serde_json::from_slice(body)
    {
        return Ok(parsed);
    }
    parse_through_value(body)
}

/// Reads `body` as a JSON value, refuses NUL text in it, then reads it as `T`.
fn parse_through_value<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let value = read_json(body)?;
    refuse_nul(&value)?;
    parse_value(value)
}

/// Whether reading `body` straight into a type gives what the `Value` pass gives: no number
/// written with a fraction or an exponent (which [`as_integers`] may rewrite) and no `\u0000`
/// escape (which [`refuse_nul`] refuses). A raw NUL cannot be in valid JSON at all.
fn reads_as_written(body: &[u8]) -> bool {
    let mut in_string = false;
    let mut at = 0;
    while let Some(&byte) = body.get(at) {
        match byte {
            b'\\' if in_string => {
                if body[at + 1..].starts_with(b"u0000") {
                    return false;
                }
                // The escaped character is never the string's end.
                at += 1;
            }
            b'"' => in_string = !in_string,
            // Outside strings a dot is a number's, and so is an `e` after a digit.
            b'.' if !in_string => return false,
            b'e' | b'E' if !in_string && at > 0 && body[at - 1].is_ascii_digit() => return false,
            _ => {}
        }
        at += 1;
    }
    true
}

/// Reads `bytes` as a JSON value; JSON that does not parse is refused where its syntax breaks.
pub fn read_json(bytes: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(bytes).map_err(|err| {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Error::MalformedBody("the request body is not UTF-8 text".into());
        };
        let (at, reason) = json_syntax::locate(text).unwrap_or_else(|| {
            // Only nesting too deep for the reader, or a lone surrogate escape, come here.
            (char_offset(text, err.line(), err.column()), "Invalid JSON")
        });
        Error::InvalidJson { at, reason }
    })
}

/// The character offset of a 1-based line and byte column.
fn char_offset(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let mut end = (line_start + column.saturating_sub(1)).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].chars().count()
}

/// Reads a JSON value, already refused if it holds NUL ([`refuse_nul`]), as `T`.
pub fn parse_value<T: DeserializeOwned>(mut value: Value) -> Result<T, Error> {
    as_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|err| Error::Invalid(vec![field_error(&err)]))
}

/// Refuses a body with text Postgres cannot store, whatever else is wrong with it.
pub fn refuse_nul(value: &Value) -> Result<(), Error> {
    if has_nul(value) {
        return Err(Error::Invalid(vec![FieldError {
            location: Location::Body,
            path: Vec::new(),
            violation: Violation::Rule,
            message: format!("text {NUL_MESSAGE}"),
            input: None,
        }]));
    }
    Ok(())
}

/// Writes each number without a fraction (`5.0`) as the integer it is: JSON Schema's `integer`,
/// which the OpenAPI document promises, admits both, while serde reads only `5` as an integer.
fn as_integers(value: &mut Value) {
    match value {
        Value::Number(number) => {
            if let Some(float) = number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && !number.is_i64() && !number.is_u64())
            {
                let integer = if float < 0.0 {
                    (float >= i64::MIN as f64).then(|| (float as i64).into())
                } else {
                    (float < u64::MAX as f64).then(|| (float as u64).into())
                };
                if let Some(integer) = integer {
                    *number = integer;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(as_integers),
        Value::Object(fields) => fields.values_mut().for_each(as_integers),
        _ => {}
    }
}

/// Whether any text of the body, value or key, holds a NUL character. The refusal names no
/// path: a path could repeat a key the client made up, which may be a pasted secret.
fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(fields) => fields
            .iter()
            .any(|(key, item)| key.contains('\0') || has_nul(item)),
        _ => false,
    }
}

/// A serde error as a refused field: its path, and the kind of mistake read off serde's
/// message. Every dialect's words come from here, so the message keeps only what serde
/// expected (a field, a type, a list of values), never the input.
fn field_error<E: std::fmt::Display>(err: &serde_path_to_error::Error<E>) -> FieldError {
    let mut path: Vec<Segment> = err
        .path()
        .iter()
        .filter_map(|segment| match segment {
            serde_path_to_error::Segment::Map { key } => {
                Some(Segment::Key(Cow::Owned(key.clone())))
            }
            serde_path_to_error::Segment::Seq { index } => Some(Segment::Index(*index)),
            _ => None,
        })
        .collect();
    let message = err.inner().to_string();
    let (violation, message) = if let Some(field) = backticked(&message, "missing field `") {
        path.push(Segment::Key(Cow::Owned(field.to_owned())));
        (Violation::Missing, "missing required field".to_owned())
    } else if message.starts_with("unknown field") {
        // The path ends with the unknown name, which is input and is not repeated.
        path.pop();
        (Violation::Unknown, without_quoted_input(&message))
    } else if let Some(given) = message.strip_prefix("invalid type: ") {
        let text = given.starts_with("string ");
        (Violation::WrongType { text }, expectation(given))
    } else if let Some(given) = message.strip_prefix("invalid value: ") {
        (Violation::Rule, expectation(given))
    } else {
        (Violation::Rule, without_quoted_input(&message))
    };
    FieldError {
        location: Location::Body,
        path,
        violation,
        message,
        input: None,
    }
}

/// What serde expected, from the rest of its "invalid type: <given>, expected <what>" (or
/// "invalid value: …"): `<given>` is the input itself (integer `5`, string "…"), so only
/// "expected <what>" is kept. The expectation comes last and is serde's own words, so the
/// last separator is the one that ends the input.
fn expectation(given: &str) -> String {
    match given.rsplit_once(", expected ") {
        Some((_, expected)) => format!("expected {expected}"),
        None => "not a value this field takes".to_owned(),
    }
}

/// The text between `opening` and the next backtick.
fn backticked<'a>(message: &'a str, opening: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(opening)?;
    rest.split_once('`').map(|(inside, _)| inside)
}

/// Cuts client input out of a serde message: every `"…"` span, and the echoed name in
/// "unknown variant `x`" and "unknown field `x`". Field names serde expects stay.
fn without_quoted_input(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    for echo in ["unknown variant `", "unknown field `"] {
        if let Some(start) = out.find(echo).map(|at| at + echo.len())
            && let Some(len) = out[start..].find('`')
        {
            out.replace_range(start..start + len, "…");
        }
    }
    out
}

/// Path parameters, percent-decoded. A parameter that is not UTF-8 or holds a NUL character is
/// refused with its name, in the route's dialect, before any handler or query sees it.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let refused = |message: &str| {
            Error::Invalid(vec![FieldError {
                location: Location::Path,
                path: Vec::new(),
                violation: Violation::Rule,
                message: message.to_owned(),
                input: None,
            }])
        };
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| refused("path parameters must be UTF-8"))?;
        for (name, value) in &params {
            if value.contains('\0') {
                return Err(Error::Invalid(vec![FieldError {
                    location: Location::Path,
                    path: vec![Segment::Key(Cow::Owned(name.to_owned()))],
                    violation: Violation::Rule,
                    message: format!("it {NUL_MESSAGE}"),
                    input: None,
                }]));
            }
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|_| refused("the path parameters cannot be read"))
    }
}

/// Query-string parameters, percent-decoded. Text with a NUL character is refused without
/// naming a parameter (a made-up name may be a pasted secret); a parameter that cannot be read
/// is refused like a body field, under `query`. Unknown parameters are ignored, as browsers
/// and proxies add their own.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let query = parts.uri.query().unwrap_or_default().as_bytes();
        let pairs = url::form_urlencoded::parse(query);
        if pairs
            .clone()
            .any(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(Error::Invalid(vec![FieldError {
                location: Location::Query,
                path: Vec::new(),
                violation: Violation::Rule,
                message: format!("text {NUL_MESSAGE}"),
                input: None,
            }]));
        }
        serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(pairs))
            .map(Query)
            .map_err(|err| {
                let mut field = field_error(&err);
                field.location = Location::Query;
                Error::Invalid(vec![field])
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_read_straight_reads_as_the_value_pass_reads_it() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Body {
            key: String,
            count: Option<u32>,
            extra: Option<Value>,
            flag: Option<bool>,
        }
        for body in [
            r#"{"key": "k", "count": 5, "flag": true, "extra": false}"#,
            r#"{"key": "k", "count": 5.0}"#,
            r#"{"key": "k", "count": 5e0}"#,
            r#"{"key": "k", "extra": {"n": 5.0, "m": [1E2, -0.0]}}"#,
            r#"{"key": "a\u0000b"}"#,
            r#"{"key": "a\\u0000b", "extra": "x\"y.e1"}"#,
            r#"{"key": "k", "key": "again"}"#,
            r#"{"key": 5}"#,
            r#"{"key": "k"} trailing"#,
        ] {
            let straight = parse_body::<Body>(body.as_bytes()).map_err(|e| e.to_string());
            let through_value =
                parse_through_value::<Body>(body.as_bytes()).map_err(|e| e.to_string());
            assert_eq!(straight, through_value, "{body}");
        }
        assert!(reads_as_written(br#"{"key": "k", "flag": true, "n": -12}"#));
        for rewritten in [
            &br#"{"n": 5.0}"#[..],
            br#"{"n": 1e3}"#,
            br#"{"k": "\u0000"}"#,
        ] {
            assert!(!reads_as_written(rewritten));
        }
    }

    #[test]
    fn serde_messages_lose_the_input_they_echo() {
        let cases = [
            (
                "invalid type: string \"kgk_secret\", expected u64 at line 1",
                "invalid type: string \"…\", expected u64 at line 1",
            ),
            (
                "unknown variant `kgk_secret`, expected one of `admin`, `member`",
                "unknown variant `…`, expected one of `admin`, `member`",
            ),
            (
                "unknown field `kgk_secret`, expected `name`",
                "unknown field `…`, expected `name`",
            ),
            (
                "missing field `name` at line 1 column 2",
                "missing field `name` at line 1 column 2",
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(without_quoted_input(message), expected);
        }
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read only through Debug
    struct Body {
        name: String,
        tags: Option<Vec<String>>,
        count: Option<u32>,
    }

    fn refused(body: &str) -> FieldError {
        match parse_body::<Body>(body.as_bytes()) {
            Err(Error::Invalid(mut fields)) => fields.remove(0),
            other => panic!("expected a refused field, got {other:?}"),
        }
    }

    #[test]
    fn refused_fields_carry_their_path_and_reason() {
        let missing = refused("{}");
        assert_eq!(
            (missing.dotted_path(), missing.violation),
            ("name".into(), Violation::Missing)
        );
        let mistyped = refused(r#"{"name": "a", "count": "kgk_secret"}"#);
        assert_eq!(
            (mistyped.dotted_path(), mistyped.violation),
            ("count".into(), Violation::WrongType { text: true })
        );
        assert_eq!(mistyped.message, "expected u32");
        let unknown = refused(r#"{"name": "a", "kgk_secret": 1}"#);
        assert_eq!(unknown.violation, Violation::Unknown);
        assert!(!unknown.to_string().contains("kgk_secret"), "{unknown}");
        let nested = refused(r#"{"name": "a", "tags": ["ok", 5]}"#);
        assert_eq!(nested.dotted_path(), "tags.1");
    }

    #[test]
    fn nul_characters_are_refused_wherever_they_are() {
        for body in [
            r#"{"name": "a\u0000b"}"#,
            r#"{"name": "a", "tags": ["x", "\u0000"]}"#,
            r#"{"name": "a", "kgk_made_up\u0000": 1}"#,
        ] {
            let nul = refused(body);
            assert_eq!(
                nul.dotted_path(),
                "",
                "no path, so no made-up key is repeated"
            );
            assert_eq!(nul.violation, Violation::Rule);
        }
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)] // read only through Debug
    struct Params {
        limit: Option<u32>,
        role: Option<crate::domain::org::Role>,
    }

    async fn query(uri: &str) -> Result<Params, Error> {
        let (mut parts, ()) = axum::http::Request::get(uri).body(()).unwrap().into_parts();
        Query::<Params>::from_request_parts(&mut parts, &())
            .await
            .map(|Query(params)| params)
    }

    #[tokio::test]
    async fn query_parameters_are_refused_under_query() {
        assert!(query("/x?limit=5&role=admin&utm_source=mail").await.is_ok());
        for (uri, path) in [
            ("/x?limit=many", "limit"),
            ("/x?role=kgk_secret", "role"),
            ("/x?a%00=1", ""),
        ] {
            match query(uri).await {
                Err(Error::Invalid(fields)) => {
                    assert_eq!(fields[0].location, Location::Query, "{uri}");
                    assert_eq!(fields[0].dotted_path(), path, "{uri}");
                    assert!(!fields[0].message.contains("kgk_secret"), "{uri}");
                }
                other => panic!("{uri}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_refused_where_it_breaks() {
        assert!(matches!(
            parse_body::<Body>(b"{\"name\": "),
            Err(Error::InvalidJson {
                at: 9,
                reason: "Expecting value"
            })
        ));
        assert!(matches!(
            parse_body::<Body>(b"{\"name\": \"\xff\"}"),
            Err(Error::MalformedBody(_))
        ));
        // Deeper than the reader goes: told where the reader stopped.
        let deep = "[".repeat(200);
        match parse_body::<Body>(deep.as_bytes()) {
            Err(Error::InvalidJson { at, reason }) => {
                assert_eq!((at, reason), (127, "Invalid JSON"))
            }
            other => panic!("{other:?}"),
        }
    }
}

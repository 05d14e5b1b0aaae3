//! Error dialects: the one [`Error`] type rendered in the shape each API family's clients expect.
//!
//! Handlers and extractors return `Error`; its response carries an [`ErrorReport`] extension and a
//! native body. Each family's middleware re-renders every error response of its routes in the
//! family's shape ([`Dialect::rerender`]), so extractor rejections (bad JSON, missing
//! credentials, oversized bodies) and the router's own answers (405) come out in the right
//! dialect too.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{Error, FieldError, Location, Segment, Violation, bound};
use serde_json::{Value, json};

/// What every dialect needs to render an error; never holds a secret or an internal detail.
#[derive(Clone, Debug)]
pub struct ErrorReport {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The refused fields of a validation error, each with its path and reason.
    pub fields: Vec<FieldError>,
    /// The family's own code, for an [`Error::Coded`] refusal.
    pub family_code: Option<&'static str>,
    /// Where a body's JSON syntax breaks, and what was expected there.
    pub json_syntax: Option<(usize, &'static str)>,
}

impl ErrorReport {
    fn of(error: &Error) -> ErrorReport {
        ErrorReport {
            status: error.status(),
            code: error.code(),
            message: error.to_string(),
            fields: match error {
                Error::Invalid(fields) => fields.clone(),
                _ => Vec::new(),
            },
            family_code: match error {
                Error::Coded { code, .. } => Some(code),
                _ => None,
            },
            json_syntax: match error {
                Error::InvalidJson { at, reason } => Some((*at, *reason)),
                _ => None,
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// keygate's own routes: `{"code": "...", "message": "...", "errors": [...]}`.
    Native,
    /// hoop's gateway API: `{"message": "..."}`.
    Hoop,
    /// Ops Manager's public API: `{"detail", "error", "errorCode", "parameters", "reason"}`,
    /// and `?pretty=true` / `?envelope=true` on every answer.
    OpsManager,
    /// FastAPI's (Agentex): validation errors are 422 `{"detail": [{"loc", "msg", "type"}]}`
    /// in pydantic's words, every other error `{"detail": "..."}`.
    FastApi,
}

/// keygate's native error body.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NativeError {
    /// Stable machine-readable code, e.g. `not_found`.
    pub code: String,
    pub message: String,
    /// For validation errors: each refused field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<NativeFieldError>,
}

/// One refused field of a request.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NativeFieldError {
    /// `body`, `path`, `query` or `header`.
    pub location: &'static str,
    /// The field's dotted path, e.g. `name` or `connection_names.2`.
    pub field: String,
    /// `missing`, `wrong_type`, `unknown` or `invalid`.
    pub reason: &'static str,
    pub message: String,
}

impl From<&FieldError> for NativeFieldError {
    fn from(error: &FieldError) -> NativeFieldError {
        NativeFieldError {
            location: error.location.as_str(),
            field: error.dotted_path(),
            reason: match error.violation {
                Violation::Missing => "missing",
                Violation::WrongType { .. } => "wrong_type",
                Violation::Unknown => "unknown",
                Violation::Rule => "invalid",
            },
            message: error.message.clone(),
        }
    }
}

/// hoop's error body.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HoopError {
    #[schema(example = "the error description")]
    pub message: String,
}

/// Ops Manager's error body.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OpsManagerError {
    #[schema(example = "No project with this ID exists.")]
    pub detail: String,
    /// The HTTP status.
    #[schema(example = 404)]
    pub error: u16,
    #[serde(rename = "errorCode")]
    #[schema(example = "GROUP_NOT_FOUND")]
    pub error_code: &'static str,
    /// The names of the fields the error is about; never a submitted value.
    pub parameters: Vec<String>,
    /// The status's reason phrase.
    #[schema(example = "Not Found")]
    pub reason: &'static str,
}

/// Ops Manager's status and `errorCode` for an error: a family code when the error has one,
/// else the nearest of Ops Manager's own. Ops Manager answers 400 to every invalid body and 401
/// to every refused caller, whether unknown or not allowed.
fn ops_manager_code(report: &ErrorReport) -> (StatusCode, &'static str) {
    if let Some(code) = report.family_code {
        return (report.status, code);
    }
    match report.code {
        "malformed_body" => (StatusCode::BAD_REQUEST, "INVALID_JSON"),
        "bad_request" | "invalid" => {
            let missing = report
                .fields
                .iter()
                .any(|field| field.violation == Violation::Missing);
            let code = if missing {
                "MISSING_ATTRIBUTE"
            } else {
                "INVALID_ATTRIBUTE"
            };
            (StatusCode::BAD_REQUEST, code)
        }
        "unauthenticated" | "stale_nonce" | "forbidden" => {
            (StatusCode::UNAUTHORIZED, "USER_UNAUTHORIZED")
        }
        "not_found" => (StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND"),
        "conflict" => (StatusCode::CONFLICT, "CONFLICT"),
        "idempotency_key_in_use" => (StatusCode::CONFLICT, "IDEMPOTENCY_KEY_IN_USE"),
        "idempotency_key_reused" => (StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED"),
        "method_not_allowed" => (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
        "timeout" => (StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT"),
        "payload_too_large" => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
        "rate_limited" => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
        "busy" | "unavailable" => (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "UNEXPECTED_ERROR"),
    }
}

/// FastAPI's body for every error but a validation error.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FastApiError {
    #[schema(example = "Item with name 'edge-1' does not exist.")]
    pub detail: String,
}

/// FastAPI's validation error body.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = HTTPValidationError)]
pub struct FastApiValidationError {
    pub detail: Vec<FastApiFieldError>,
}

/// One refused field, as pydantic reports it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ValidationError)]
pub struct FastApiFieldError {
    /// Where the field is: `body`, `query`, `path` or `header`, then its path.
    #[schema(inline, example = json!(["body", "name"]))]
    pub loc: Vec<FastApiLoc>,
    #[schema(example = "Field required")]
    pub msg: String,
    /// pydantic's error type, e.g. `missing`, `string_type`, `enum`, `value_error`.
    #[serde(rename = "type")]
    #[schema(example = "missing")]
    pub kind: &'static str,
    /// What was sent, only where it holds neither text nor a number (null, booleans, and lists
    /// or empty objects of those): anything else could be a secret pasted into the wrong field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Value)]
    pub input: Option<Value>,
    /// The rule's parameters: the values an enum takes, a bound, a JSON syntax error.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object, example = json!({"expected": "'github' or 'slack'"}))]
    pub ctx: Option<Value>,
}

/// A step of a refused field's location: a name, or an index in a list.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FastApiLoc {
    Name(String),
    Index(usize),
}

impl From<&FieldError> for FastApiFieldError {
    fn from(error: &FieldError) -> FastApiFieldError {
        let mut loc = vec![FastApiLoc::Name(error.location.as_str().into())];
        loc.extend(error.path.iter().map(|segment| match segment {
            Segment::Key(key) => FastApiLoc::Name(key.to_string()),
            Segment::Index(index) => FastApiLoc::Index(*index),
        }));
        let Pydantic { kind, msg, ctx } = pydantic_error(error);
        FastApiFieldError {
            loc,
            msg,
            kind,
            input: error.input.clone(),
            ctx,
        }
    }
}

/// What pydantic v2 says of a refused field: its error type, message and context.
struct Pydantic {
    kind: &'static str,
    msg: String,
    ctx: Option<Value>,
}

impl Pydantic {
    fn of(kind: &'static str, msg: &str) -> Pydantic {
        Pydantic {
            kind,
            msg: msg.to_owned(),
            ctx: None,
        }
    }
}

/// pydantic v2's type and message for a refused field. Mistyped fields and unknown enum values
/// are told apart by the words of serde's messages, which the extractors keep
/// ("expected a string", "unknown variant `…`, expected one of `a`, `b`"), and broken bounds by
/// the words of [`bound`].
fn pydantic_error(error: &FieldError) -> Pydantic {
    let message = error.message.as_str();
    let expected = message
        .rsplit_once("expected ")
        .map_or("", |(_, expected)| expected);
    match error.violation {
        Violation::Missing => Pydantic::of("missing", "Field required"),
        Violation::Unknown => Pydantic::of("extra_forbidden", "Extra inputs are not permitted"),
        Violation::Rule if message.starts_with("unknown variant") => {
            let values: Vec<String> = expected
                .split('`')
                .skip(1)
                .step_by(2)
                .map(|value| format!("'{value}'"))
                .collect();
            let listed = match values.split_last() {
                Some((last, [])) => last.clone(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => String::new(),
            };
            Pydantic {
                kind: "enum",
                msg: format!("Input should be {listed}"),
                ctx: Some(json!({ "expected": listed })),
            }
        }
        Violation::Rule if let Some((kind, name, words, limit)) = broken_bound(message) => {
            Pydantic {
                kind,
                msg: format!("Input should be {words} {limit}"),
                ctx: Some(json!({ name: limit })),
            }
        }
        Violation::WrongType { .. } if expected.starts_with("a string") => {
            Pydantic::of("string_type", "Input should be a valid string")
        }
        Violation::WrongType { .. } if message == bound::FRACTION => Pydantic::of(
            "int_from_float",
            "Input should be a valid integer, got a number with a fractional part",
        ),
        Violation::WrongType { text } if is_integer(expected) => {
            // Text where an integer belongs, as every query parameter is, is a parsing failure.
            if text || error.location != Location::Body {
                Pydantic::of(
                    "int_parsing",
                    "Input should be a valid integer, unable to parse string as an integer",
                )
            } else {
                Pydantic::of("int_type", "Input should be a valid integer")
            }
        }
        Violation::WrongType { .. } if expected.starts_with("a boolean") => {
            Pydantic::of("bool_type", "Input should be a valid boolean")
        }
        Violation::WrongType { .. } if expected.starts_with("a sequence") => {
            Pydantic::of("list_type", "Input should be a valid list")
        }
        Violation::WrongType { .. } if expected.starts_with("a map") => {
            Pydantic::of("dict_type", "Input should be a valid dictionary")
        }
        // A body that is not an object: serde reads an array as the struct's fields in order.
        Violation::WrongType { .. } | Violation::Rule if expected.starts_with("struct") => {
            Pydantic::of(
                "model_attributes_type",
                "Input should be a valid dictionary or object to extract fields from",
            )
        }
        Violation::WrongType { .. } | Violation::Rule => {
            Pydantic::of("value_error", &format!("Value error, {message}"))
        }
    }
}

/// pydantic's error type, its `ctx` name, its words and the bound, for a message in
/// [`bound`]'s words.
fn broken_bound(message: &str) -> Option<(&'static str, &'static str, &'static str, i64)> {
    [
        (
            bound::AT_LEAST,
            "greater_than_equal",
            "ge",
            "greater than or equal to",
        ),
        (
            bound::AT_MOST,
            "less_than_equal",
            "le",
            "less than or equal to",
        ),
    ]
    .into_iter()
    .find_map(|(ours, kind, name, words)| {
        let limit = message.strip_prefix(ours)?.parse().ok()?;
        Some((kind, name, words, limit))
    })
}

/// Whether serde's expected type is an integer (`u32`, `i64`, "an integer").
fn is_integer(expected: &str) -> bool {
    expected.starts_with("an integer")
        || matches!(
            expected.split_whitespace().next(),
            Some("u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize")
        )
}

impl Dialect {
    /// The API family this dialect speaks for, as metrics label it.
    pub const fn family(self) -> &'static str {
        match self {
            Dialect::Native => "keygate",
            Dialect::Hoop => "hoop",
            Dialect::OpsManager => "ops_manager",
            Dialect::FastApi => "agentex",
        }
    }

    /// The OpenAPI schema of this dialect's error body.
    pub fn schema_name(self) -> &'static str {
        match self {
            Dialect::Native => "NativeError",
            Dialect::Hoop => "HoopError",
            Dialect::OpsManager => "OpsManagerError",
            Dialect::FastApi => "FastApiError",
        }
    }

    /// The last step of every answer of the family, given the request's query string: Ops
    /// Manager's `pretty` and `envelope` options; other dialects answer as they are.
    pub async fn finish(self, query: Option<&str>, response: Response) -> Response {
        match self {
            Dialect::OpsManager => super::ops_manager::format::finish(query, response).await,
            Dialect::Native | Dialect::Hoop | Dialect::FastApi => response,
        }
    }

    fn render(self, report: &ErrorReport) -> Response {
        let body = match self {
            Dialect::Native => axum::Json(NativeError {
                code: report.code.into(),
                message: report.message.clone(),
                errors: report.fields.iter().map(NativeFieldError::from).collect(),
            })
            .into_response(),
            Dialect::Hoop => axum::Json(HoopError {
                message: report.message.clone(),
            })
            .into_response(),
            Dialect::OpsManager => {
                let (status, error_code) = ops_manager_code(report);
                let body = axum::Json(OpsManagerError {
                    detail: report.message.clone(),
                    error: status.as_u16(),
                    error_code,
                    parameters: report
                        .fields
                        .iter()
                        .map(FieldError::dotted_path)
                        .filter(|path| !path.is_empty())
                        .collect(),
                    reason: status.canonical_reason().unwrap_or("Error"),
                });
                return (status, body).into_response();
            }
            // FastAPI answers JSON it cannot decode like any validation failure, with 422, where
            // the syntax breaks and Python's words for what was expected there.
            Dialect::FastApi if let Some((at, reason)) = report.json_syntax => {
                let detail = vec![FastApiFieldError {
                    loc: vec![
                        FastApiLoc::Name(Location::Body.as_str().into()),
                        FastApiLoc::Index(at),
                    ],
                    msg: "JSON decode error".into(),
                    kind: "json_invalid",
                    input: Some(json!({})),
                    ctx: Some(json!({ "error": reason })),
                }];
                let body = axum::Json(FastApiValidationError { detail });
                return (StatusCode::UNPROCESSABLE_ENTITY, body).into_response();
            }
            Dialect::FastApi if !report.fields.is_empty() => {
                let detail = report.fields.iter().map(FastApiFieldError::from).collect();
                let body = axum::Json(FastApiValidationError { detail });
                return (StatusCode::UNPROCESSABLE_ENTITY, body).into_response();
            }
            Dialect::FastApi => axum::Json(FastApiError {
                detail: report.message.clone(),
            })
            .into_response(),
        };
        (report.status, body).into_response()
    }

    /// Renders an error response in this dialect; the router's own error answers (405, 404),
    /// which carry no report, get one from their status. Successes pass unchanged.
    pub fn rerender(self, response: Response) -> Response {
        let report = match response.extensions().get::<ErrorReport>() {
            Some(report) => report.clone(),
            None if response.status().is_client_error() || response.status().is_server_error() => {
                ErrorReport::of(&router_error(response.status()))
            }
            None => return response,
        };
        let mut rendered = self.render(&report);
        // Headers set for the error (WWW-Authenticate, Retry-After, Allow) survive re-rendering.
        for name in [header::WWW_AUTHENTICATE, header::RETRY_AFTER, header::ALLOW] {
            if let Some(value) = response.headers().get(&name) {
                rendered.headers_mut().insert(name, value.clone());
            }
        }
        rendered.extensions_mut().insert(report);
        rendered
    }
}

/// The error a router-made status stands for.
fn router_error(status: StatusCode) -> Error {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => Error::MethodNotAllowed,
        StatusCode::NOT_FOUND => Error::NotFound("route"),
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge(super::extract::BODY_LIMIT),
        status if status.is_server_error() => {
            Error::internal(format!("the router answered {status}"))
        }
        _ => Error::MalformedBody("the request could not be read".into()),
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Internal(source) = &self {
            // The request span adds the request id; the client sees only "internal error".
            tracing::error!(error = %source, "request failed");
        }
        let report = ErrorReport::of(&self);
        let mut response = Dialect::Native.render(&report);
        // The WWW-Authenticate challenge of a 401 is the serving family's, set by its middleware.
        match self {
            Error::RateLimited { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            Error::Busy | Error::IdempotencyKeyInUse => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response.extensions_mut().insert(report);
        response
    }
}

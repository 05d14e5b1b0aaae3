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

use crate::error::{Error, FieldError, Violation};

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
    /// `body`, `path` or `query`.
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
                Violation::WrongType => "wrong_type",
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
        "method_not_allowed" => (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
        "timeout" => (StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT"),
        "payload_too_large" => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
        "rate_limited" => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
        "busy" | "unavailable" => (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "UNEXPECTED_ERROR"),
    }
}

impl Dialect {
    /// The OpenAPI schema of this dialect's error body.
    pub fn schema_name(self) -> &'static str {
        match self {
            Dialect::Native => "NativeError",
            Dialect::Hoop => "HoopError",
            Dialect::OpsManager => "OpsManagerError",
        }
    }

    /// The last step of every answer of the family, given the request's query string: Ops
    /// Manager's `pretty` and `envelope` options; other dialects answer as they are.
    pub async fn finish(self, query: Option<&str>, response: Response) -> Response {
        match self {
            Dialect::OpsManager => super::ops_manager::format::finish(query, response).await,
            Dialect::Native | Dialect::Hoop => response,
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
            Error::Busy => {
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

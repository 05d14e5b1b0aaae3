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
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// keygate's own routes: `{"code": "...", "message": "...", "errors": [...]}`.
    Native,
    /// hoop's gateway API: `{"message": "..."}`.
    Hoop,
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

impl Dialect {
    /// The OpenAPI schema of this dialect's error body.
    pub fn schema_name(self) -> &'static str {
        match self {
            Dialect::Native => "NativeError",
            Dialect::Hoop => "HoopError",
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

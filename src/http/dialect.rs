//! Error dialects: the one [`Error`] type rendered in the shape each API family's clients expect.
//!
//! Handlers and extractors return `Error`; its response carries an [`ErrorReport`] extension and a
//! native body. A family's router is wrapped in a middleware that re-renders the body in
//! that family's shape (see [`render_errors`]), so extractor rejections (bad JSON, missing credentials, oversized bodies)
//! come out in the right dialect too.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;

/// What every dialect needs to render an error; never holds a secret or an internal detail.
#[derive(Clone, Debug)]
pub struct ErrorReport {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// keygate's own routes: `{"code": "...", "message": "..."}`.
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
}

/// hoop's error body.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HoopError {
    #[schema(example = "the error description")]
    pub message: String,
}

impl Dialect {
    fn render(self, report: &ErrorReport) -> Response {
        let body = match self {
            Dialect::Native => axum::Json(NativeError {
                code: report.code.into(),
                message: report.message.clone(),
            })
            .into_response(),
            Dialect::Hoop => axum::Json(HoopError {
                message: report.message.clone(),
            })
            .into_response(),
        };
        (report.status, body).into_response()
    }

    fn rerender(self, response: Response) -> Response {
        let Some(report) = response.extensions().get::<ErrorReport>().cloned() else {
            return response;
        };
        let mut rendered = self.render(&report);
        // Headers set for the error (WWW-Authenticate, Retry-After) survive the re-rendering.
        for name in [header::WWW_AUTHENTICATE, header::RETRY_AFTER] {
            if let Some(value) = response.headers().get(&name) {
                rendered.headers_mut().insert(name, value.clone());
            }
        }
        rendered.extensions_mut().insert(report);
        rendered
    }
}

/// Middleware, applied per API family with `from_fn_with_state(dialect, render_errors)`:
/// renders every error of the wrapped routes in that family's dialect.
pub async fn render_errors(
    State(dialect): State<Dialect>,
    request: Request,
    next: Next,
) -> Response {
    dialect.rerender(next.run(request).await)
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Internal(source) = &self {
            // The request span adds the request id; the client sees only "internal error".
            tracing::error!(error = %source, "request failed");
        }
        let report = ErrorReport {
            status: self.status(),
            code: self.code(),
            message: self.to_string(),
        };
        let mut response = Dialect::Native.render(&report);
        match self {
            Error::Unauthenticated => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"keygate\""),
                );
            }
            Error::RateLimited { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        response.extensions_mut().insert(report);
        response
    }
}

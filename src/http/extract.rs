//! Extractors whose rejections are [`Error`]s, so they render in the route's dialect.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::AppState;
use crate::error::Error;
use crate::orgs::Role;

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON body. An empty body reads as `{}`, so a missing body is reported as missing fields.
/// serde's messages are kept but quoted input is cut out of them: a secret pasted into the wrong
/// field must not come back in an error.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    Error::PayloadTooLarge(BODY_LIMIT)
                } else {
                    Error::BadRequest("could not read the request body".into())
                }
            })?;
        let body: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(body).map(Json).map_err(|err| {
            Error::BadRequest(format!(
                "invalid JSON body: {}",
                without_quoted_input(&err.to_string())
            ))
        })
    }
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

/// The authenticated caller: an API key of an organization, with its role.
#[derive(Clone, Debug)]
pub struct Caller {
    pub org_id: Uuid,
    pub api_key_id: Uuid,
    pub role: Role,
    /// An admin of the operator organization (`default`).
    pub operator: bool,
}

impl Caller {
    pub fn require_admin(&self) -> Result<(), Error> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }

    /// Admins and members may use what they are granted; auditors only read.
    pub fn require_user(&self) -> Result<(), Error> {
        if self.role == Role::Auditor {
            Err(Error::Forbidden)
        } else {
            Ok(())
        }
    }

    /// Records a change made by this caller on the `keygate::audit` log target: who, what, on
    /// which resource. Never a secret.
    pub fn audit(&self, action: &'static str, resource_id: Uuid) {
        tracing::info!(
            target: "keygate::audit",
            action,
            resource_id = %resource_id,
            org_id = %self.org_id,
            by_api_key = %self.api_key_id,
        );
    }

    pub fn require_operator(&self) -> Result<(), Error> {
        if self.operator {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let client = super::client::client_address(parts, &state.trusted_proxies)
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        state.auth_limiter.check(&client)?;
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(Error::Unauthenticated)?;
        let caller = authenticate(state, token).await?;
        if caller.is_none() {
            state.auth_limiter.failed(&client);
        }
        caller.ok_or(Error::Unauthenticated)
    }
}

/// Resolves a bearer token to a caller of its organization, with its role.
async fn authenticate(state: &AppState, token: &str) -> Result<Option<Caller>, Error> {
    let caller = state.verifier.authenticate_api_key(token).await?;
    Ok(caller.map(|(org_id, api_key_id, role)| Caller {
        org_id,
        api_key_id,
        role,
        operator: org_id == state.operator_org_id && role == Role::Admin,
    }))
}

#[cfg(test)]
mod tests {
    use super::without_quoted_input;

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
}

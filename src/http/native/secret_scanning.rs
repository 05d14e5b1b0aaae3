//! `POST /secret-scanning/github`: GitHub secret scanning's partner alerts. GitHub sends the
//! tokens matching keygate's patterns that it found in public places, signed with one of its
//! keys instead of any API key; each of keygate's working secrets among them stops working at
//! once (or, in an organization whose leak policy is `notify`, is recorded and shown), and
//! GitHub is told which were live ones.

use axum::extract::{Request, State};
use serde::{Deserialize, Serialize};

use crate::domain::leak::{Leak, LeakOutcome};
use crate::error::Error;
use crate::http::AppState;
use crate::http::auth::{client_address, refused, request_id};
use crate::http::dialect::NativeError;
use crate::http::extract::{parse_body, read_body};
use crate::secrets::PlainSecret;

/// The header naming the key GitHub signed with.
const KEY_IDENTIFIER: &str = "github-public-key-identifier";
/// The header holding the base64 ASN.1 DER ECDSA P-256 / SHA-256 signature of the raw body.
const SIGNATURE: &str = "github-public-key-signature";

/// A token GitHub found.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ReportedToken {
    /// The token as found.
    #[schema(example = "kgk_…")]
    pub token: String,
    /// The pattern's name, as registered with GitHub.
    #[serde(rename = "type")]
    #[schema(example = "keygate_api_key")]
    pub token_type: String,
    /// Where it was found.
    #[schema(example = "https://github.com/octo/repo/blob/abc123/.env#L3")]
    pub url: Option<String>,
    /// What GitHub scanned: `content`, `commit`, `pull_request_title`, `issue_comment`, …
    #[schema(example = "content")]
    pub source: Option<String>,
}

/// Whether a reported token was a working keygate secret.
#[derive(Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    TruePositive,
    /// Unknown, already revoked or expired, or not a keygate secret at all.
    FalsePositive,
}

/// GitHub's feedback for one reported token.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenFeedback {
    /// The token GitHub sent, returned to GitHub as its feedback contract asks.
    pub token_raw: String,
    pub token_type: String,
    pub label: Label,
}

/// Acts on GitHub's report of keygate secrets found in public places (no API key: the body
/// must be signed with one of GitHub's secret scanning keys, `KEYGATE_GITHUB_SCANNING_KEYS`;
/// a request without a valid signature is refused like a wrong credential). Reporting the same
/// token again changes nothing.
#[utoipa::path(
    post,
    path = "/secret-scanning/github",
    tag = "Secret scanning",
    request_body = Vec<ReportedToken>,
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "The id of the GitHub key that signed the body"),
        ("Github-Public-Key-Signature" = String, Header, description = "Base64 ASN.1 DER ECDSA P-256 / SHA-256 signature of the raw body"),
    ),
    responses(
        (status = 200, body = Vec<TokenFeedback>, description = "Feedback for each reported token"),
        (status = 401, body = NativeError, description = "Unsigned, mis-signed, or signed with a key GitHub does not list"),
        (status = 422, body = NativeError),
        (status = 429, body = NativeError, description = "Too many refused requests from the address; see Retry-After"),
        (status = 503, body = NativeError, description = "The database is unavailable or busy; retry"),
    )
)]
pub async fn github(
    State(state): State<AppState>,
    request: Request,
) -> Result<axum::Json<Vec<TokenFeedback>>, Error> {
    let (parts, body) = request.into_parts();
    let body = read_body(Request::from_parts(parts.clone(), body), &state).await?;
    let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let signed = state.scanning_keys.as_ref().is_some_and(|keys| {
        keys.verify(header(KEY_IDENTIFIER), header(SIGNATURE), &body)
            .is_ok()
    });
    if !signed {
        return Err(refused(&parts, &state));
    }
    let reported: Vec<ReportedToken> = parse_body(&body)?;
    let request_id = request_id(&parts);
    let client = client_address(&parts, &state);
    let mut feedback = Vec::with_capacity(reported.len());
    for token in reported {
        let leak = PlainSecret::parse(&token.token).ok().and_then(|plain| {
            Leak::new(
                &plain,
                token.url.as_deref(),
                token.source.as_deref(),
                request_id.clone(),
                client,
            )
        });
        let outcome = match &leak {
            Some(leak) => state.store.report_leak(leak).await?,
            None => LeakOutcome::Unknown,
        };
        if let LeakOutcome::Acted {
            kind,
            action,
            change,
        } = &outcome
        {
            state.metrics.leaked(*kind, *action);
            change.log();
        }
        feedback.push(TokenFeedback {
            label: if outcome.is_live() {
                Label::TruePositive
            } else {
                Label::FalsePositive
            },
            token_raw: token.token,
            token_type: token.token_type,
        });
    }
    Ok(axum::Json(feedback))
}

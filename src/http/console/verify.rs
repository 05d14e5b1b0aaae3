//! The verification tester: a pasted secret, and what `POST /verify` answers about it. The
//! secret is never shown back.

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Chrome, Console, Form, Session, page};

#[derive(Template)]
#[template(path = "verify.html", config = "src/http/console/askama.toml")]
struct Verify {
    chrome: Chrome,
    answer: Option<Verdict>,
    error: Option<String>,
}

/// What the API answered.
struct Verdict {
    valid: bool,
    code: String,
    kind: String,
    /// The whole answer, pretty-printed.
    json: String,
}

pub(super) async fn form(Extension(session): Extension<Session>) -> Response {
    page(
        StatusCode::OK,
        &Verify {
            chrome: session.chrome("verify"),
            answer: None,
            error: None,
        },
    )
}

#[derive(Deserialize)]
pub(super) struct VerifyForm {
    key: String,
    #[serde(default)]
    connection: String,
}

pub(super) async fn verify(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Form(form): Form<VerifyForm>,
) -> Response {
    let mut request = json!({ "key": form.key.trim() });
    if !form.connection.trim().is_empty() {
        request["connection"] = json!(form.connection.trim());
    }
    let answer = console
        .api(&session, Method::POST, "/verify", Some(request))
        .await;
    let (status, answer, error) = match answer.json::<Value>() {
        Ok(body) => {
            let text = |field: &str| body[field].as_str().unwrap_or("—").to_owned();
            let verdict = Verdict {
                valid: body["valid"].as_bool().unwrap_or(false),
                code: text("code"),
                kind: text("kind"),
                json: serde_json::to_string_pretty(&body).unwrap_or_default(),
            };
            (StatusCode::OK, Some(verdict), None)
        }
        Err(err) => (err.status, None, Some(err.message)),
    };
    page(
        status,
        &Verify {
            chrome: session.chrome("verify"),
            answer,
            error,
        },
    )
}

//! Requests to the server: bearer authentication, an `Idempotency-Key` on every create and
//! rotate, bounded retries, and the walk through a list's pages in each API family's shape.
//!
//! Retries cannot duplicate: a change carries the invocation's idempotency key on every attempt,
//! so when a creation's answer was lost on the way, the retry gets the stored answer (the same
//! secret) rather than a second secret or a 409.

use std::time::Duration;

use reqwest::header::{HeaderMap, LINK, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;
use zeroize::Zeroizing;

use super::{ClientArgs, Exit};
use crate::error::with_causes;

/// Longest wait between two attempts, whatever a Retry-After asks (keygate's own are at most
/// a minute: its failure limits refill per minute).
const MAX_WAIT: Duration = Duration::from_secs(60);
/// The first backoff; each retry doubles it, up to 8 s.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// One request: method, path segments under the server URL, query and JSON body.
pub struct Call {
    pub method: Method,
    pub segments: Vec<String>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
}

impl Call {
    /// A request to the path made of `segments`; each is percent-encoded as one segment, so a
    /// name cannot reach another route.
    pub fn new<S: Into<String>>(method: Method, segments: impl IntoIterator<Item = S>) -> Call {
        Call {
            method,
            segments: segments.into_iter().map(Into::into).collect(),
            query: Vec::new(),
            body: None,
        }
    }

    pub fn body(mut self, body: Value) -> Call {
        self.body = Some(body);
        self
    }

    /// Adds a query parameter when it has a value.
    pub fn query(mut self, name: &'static str, value: Option<impl ToString>) -> Call {
        if let Some(value) = value {
            self.query.push((name, value.to_string()));
        }
        self
    }
}

/// How a list answers, page by page, in its family's shape.
#[derive(Clone, Copy)]
pub enum Paging {
    /// keygate's own lists: `{items, next_cursor}`, `limit` + `cursor` (at most 1000 a page).
    Cursor,
    /// hoop lists and Ops Manager agent keys: a bare array, the next page in `Link: rel="next"`.
    LinkHeader,
    /// Ops Manager documents: `{results, totalCount, links}`, `pageNum` + `itemsPerPage` (≤ 500).
    Documents,
    /// Agentex: a bare array, `limit` + `page_number` from 1.
    PageNumber,
}

impl Paging {
    fn max_page(self) -> usize {
        match self {
            Paging::Cursor | Paging::LinkHeader => 1000,
            Paging::Documents => 500,
            Paging::PageNumber => 100,
        }
    }
}

/// A successful answer.
pub struct Reply {
    pub headers: HeaderMap,
    pub body: Value,
}

/// Why a command failed, and the exit code that says so.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Usage(String),
    /// The server answered an error. `after_lost_answer`: an earlier attempt of the same
    /// request may have reached the server, its answer lost.
    #[error("{message} (HTTP {status})")]
    Status {
        exit: Exit,
        status: StatusCode,
        message: String,
        after_lost_answer: bool,
    },
    #[error("cannot reach the server: {0}")]
    Network(String),
    #[error("unexpected answer: {0}")]
    Unreadable(String),
    #[error("cannot write the output: {0}")]
    Output(String),
}

impl Failure {
    pub fn exit(&self) -> Exit {
        match self {
            Failure::Usage(_) => Exit::Usage,
            Failure::Status { exit, .. } => *exit,
            Failure::Network(_) => Exit::Unavailable,
            Failure::Unreadable(_) | Failure::Output(_) => Exit::Refused,
        }
    }
}

/// The exit code of an error status.
fn exit_for(status: StatusCode) -> Exit {
    match status {
        StatusCode::NOT_FOUND => Exit::NotFound,
        StatusCode::CONFLICT => Exit::Conflict,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Exit::Unauthorized,
        StatusCode::TOO_MANY_REQUESTS => Exit::RateLimited,
        status if status.is_server_error() => Exit::Unavailable,
        _ => Exit::Refused,
    }
}

pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Zeroizing<String>,
    retries: u32,
    idempotency_key: String,
}

/// What a command without an API key is told, before it sends a request the server would refuse.
const NO_TOKEN: &str = "no token: set KEYGATE_TOKEN, or pass --token-file (or --token, which \
     shows in process listings)";

/// `url` as messages name it: without credentials, if it held any.
fn shown(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

impl Client {
    /// A client as `args` say, or why it cannot be one and the exit code that says so.
    pub fn new(args: &ClientArgs) -> Result<Client, (Exit, String)> {
        let usage = |message: String| (Exit::Usage, message);
        let token = match (&args.token_file, &args.token) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path).map_err(|err| {
                    usage(format!(
                        "cannot read the token file {}: {err}",
                        path.display()
                    ))
                })?;
                Some(Zeroizing::new(text.trim().to_owned()))
            }
            (None, token) => token.clone().map(Zeroizing::new),
        };
        // Without a key every request would be refused: say so before sending one.
        let token = token.ok_or((Exit::Unauthorized, NO_TOKEN.to_owned()))?;
        if token.is_empty() {
            return Err(usage("the API key is empty".into()));
        }
        if !matches!(args.url.scheme(), "http" | "https") {
            return Err(usage(format!(
                "--url must be http:// or https://, not {}",
                args.url
            )));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("keygate-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|err| usage(format!("cannot set up the HTTP client: {err}")))?;
        Ok(Client {
            http,
            base: args.url.clone(),
            token,
            retries: args.retries,
            idempotency_key: args
                .idempotency_key
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        })
    }

    fn url(&self, call: &Call) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(&call.segments);
        }
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        url
    }

    /// Sends `call`, retrying what may succeed later.
    pub async fn send(&self, call: &Call) -> Result<Reply, Failure> {
        self.send_to(self.url(call), call).await
    }

    async fn send_to(&self, url: Url, call: &Call) -> Result<Reply, Failure> {
        let mut after_lost_answer = false;
        let mut attempt = 0;
        loop {
            let mut request = self.http.request(call.method.clone(), url.clone());
            request = request.bearer_auth(self.token.as_str());
            // Every change carries the key; the server honours it where a retry could
            // otherwise duplicate (creates and rotates).
            if call.method != Method::GET {
                request = request.header("Idempotency-Key", &self.idempotency_key);
            }
            if let Some(body) = &call.body {
                request = request.json(body);
            }
            let retries_left = attempt < self.retries;
            attempt += 1;
            let wait = match request.send().await {
                Err(err) => {
                    let err = err.without_url();
                    let failed =
                        format!("cannot reach {}: {}", shown(&self.base), with_causes(&err));
                    if !retries_left {
                        return Err(Failure::Network(failed));
                    }
                    after_lost_answer = true;
                    eprintln!("keygate: {failed}; retrying");
                    backoff(attempt)
                }
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let text = match response.text().await {
                        Ok(text) => text,
                        Err(err) if retries_left => {
                            after_lost_answer = true;
                            eprintln!("keygate: the answer was cut off ({err}); retrying");
                            tokio::time::sleep(backoff(attempt)).await;
                            continue;
                        }
                        Err(err) => return Err(Failure::Network(with_causes(&err))),
                    };
                    if status.is_success() {
                        let body = if text.trim().is_empty() {
                            Value::Null
                        } else {
                            serde_json::from_str(&text)
                                .map_err(|err| Failure::Unreadable(err.to_string()))?
                        };
                        return Ok(Reply { headers, body });
                    }
                    let retry_after = retry_after(&headers);
                    // A 409 with Retry-After: the same Idempotency-Key is still being served.
                    let transient = status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::SERVICE_UNAVAILABLE
                        || (status == StatusCode::CONFLICT && retry_after.is_some());
                    if !(transient && retries_left) {
                        return Err(Failure::Status {
                            exit: exit_for(status),
                            status,
                            message: error_message(&text, status),
                            after_lost_answer,
                        });
                    }
                    let wait = retry_after
                        .unwrap_or_else(|| backoff(attempt))
                        .min(MAX_WAIT);
                    eprintln!(
                        "keygate: the server answered {status}; retrying in {:.1} s",
                        wait.as_secs_f64()
                    );
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Every item of a list, page after page, up to `limit`.
    pub async fn list(
        &self,
        mut call: Call,
        paging: Paging,
        limit: Option<usize>,
        page_size: Option<usize>,
    ) -> Result<Vec<Value>, Failure> {
        let page_size = page_size
            .or(limit)
            .unwrap_or(usize::MAX)
            .min(paging.max_page());
        let size_parameter = match paging {
            Paging::Documents => "itemsPerPage",
            Paging::Cursor | Paging::LinkHeader | Paging::PageNumber => "limit",
        };
        call = call.query(size_parameter, Some(page_size));
        let mut url = self.url(&call);
        let mut page_number = 1;
        let mut items = Vec::new();
        loop {
            let reply = self.send_to(url.clone(), &call).await?;
            let (page, next) = match paging {
                Paging::Cursor => {
                    let next = reply.body["next_cursor"]
                        .as_str()
                        .map(|cursor| with_parameter(&url, "cursor", cursor));
                    (reply.body["items"].clone(), next)
                }
                Paging::LinkHeader => {
                    let next = next_link(&reply.headers).map(|href| next_page(&url, &href));
                    (reply.body, next.transpose()?)
                }
                Paging::Documents => {
                    let next = reply.body["links"].as_array().and_then(|links| {
                        links
                            .iter()
                            .find(|link| link["rel"] == "next")
                            .and_then(|link| link["href"].as_str())
                            .map(|href| next_page(&url, href))
                    });
                    (reply.body["results"].clone(), next.transpose()?)
                }
                Paging::PageNumber => {
                    page_number += 1;
                    let full = reply.body.as_array().map(Vec::len) == Some(page_size);
                    let next =
                        full.then(|| with_parameter(&url, "page_number", &page_number.to_string()));
                    (reply.body, next)
                }
            };
            let Value::Array(page) = page else {
                return Err(Failure::Unreadable("a list page is not an array".into()));
            };
            let empty = page.is_empty();
            items.extend(page);
            if let Some(limit) = limit {
                if items.len() >= limit {
                    items.truncate(limit);
                    return Ok(items);
                }
            }
            match next {
                Some(next) if !empty => url = next,
                _ => return Ok(items),
            }
        }
    }
}

/// The next page of the list at `current`: `current` with the query of the server's link. Only
/// the query is taken, since the server knows neither the host nor a path prefix a proxy in
/// front of it adds (`--url https://gw.example/keygate`).
fn next_page(current: &Url, href: &str) -> Result<Url, Failure> {
    let link = current
        .join(href)
        .map_err(|err| Failure::Unreadable(format!("a page link: {err}")))?;
    let mut next = current.clone();
    next.set_query(link.query());
    Ok(next)
}

/// `url` with `name` set to `value`, replacing an earlier value.
fn with_parameter(url: &Url, name: &str, value: &str) -> Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != name)
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    let mut next = url.clone();
    next.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(name, value);
    next
}

/// The target of `Link: <…>; rel="next"`.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(LINK)?.to_str().ok()?;
    link.split(',').find_map(|entry| {
        let (target, params) = entry.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|param| param.trim().trim_start_matches("rel=").trim_matches('"') == "next");
        is_next.then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// 250 ms, 500 ms, 1 s, … up to 8 s, with up to a quarter more at random so that clients
/// retrying together spread out.
fn backoff(attempt: u32) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(6))
        .min(MAX_BACKOFF);
    base + base.mul_f64(rand::random::<f64>() / 4.0)
}

/// The error's words in whichever dialect the server used: `message` (keygate, hoop), `detail`
/// as text (Ops Manager) or as a list of field errors (Agentex), with field errors appended.
fn error_message(text: &str, status: StatusCode) -> String {
    let fallback = || status.canonical_reason().unwrap_or("error").to_lowercase();
    let Ok(body) = serde_json::from_str::<Value>(text) else {
        return fallback();
    };
    let mut message = match (&body["message"], &body["detail"]) {
        (Value::String(message), _) | (_, Value::String(message)) => message.clone(),
        (_, Value::Array(details)) => details
            .iter()
            .map(|detail| field_error(&detail["loc"], &detail["msg"]))
            .collect::<Vec<_>>()
            .join("; "),
        _ => fallback(),
    };
    if let Some(errors) = body["errors"].as_array() {
        for error in errors {
            message.push_str("; ");
            message.push_str(&field_error(&error["path"], &error["message"]));
        }
    }
    message
}

fn field_error(location: &Value, message: &Value) -> String {
    let location = match location {
        Value::Array(parts) => parts
            .iter()
            .map(|part| match part {
                Value::String(part) => part.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("."),
        Value::String(location) => location.clone(),
        _ => String::new(),
    };
    let message = message.as_str().unwrap_or("invalid");
    if location.is_empty() {
        message.to_owned()
    } else {
        format!("{location}: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_next_link() {
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            "</agents?limit=2&cursor=YQ>; rel=\"next\"".parse().unwrap(),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("/agents?limit=2&cursor=YQ")
        );
        headers.insert(LINK, "</agents?limit=2>; rel=\"prev\"".parse().unwrap());
        assert_eq!(next_link(&headers), None);
    }

    #[test]
    fn the_next_page_keeps_the_path_a_proxy_prefixes() {
        let current = Url::parse("https://gw.example/keygate/agents?limit=2").unwrap();
        let next = next_page(&current, "/agents?limit=2&cursor=YQ").unwrap();
        assert_eq!(
            next.as_str(),
            "https://gw.example/keygate/agents?limit=2&cursor=YQ"
        );
        let absolute = "http://10.0.0.7:8009/groups?pageNum=2&itemsPerPage=1";
        let current = Url::parse("https://gw.example/keygate/groups?itemsPerPage=1").unwrap();
        assert_eq!(
            next_page(&current, absolute).unwrap().as_str(),
            "https://gw.example/keygate/groups?pageNum=2&itemsPerPage=1"
        );
    }

    #[test]
    fn reads_every_dialect_s_error() {
        let status = StatusCode::BAD_REQUEST;
        assert_eq!(
            error_message(r#"{"message":"name is taken"}"#, status),
            "name is taken"
        );
        assert_eq!(
            error_message(
                r#"{"detail":"No group with ID x exists.","errorCode":"GROUP_NOT_FOUND"}"#,
                status
            ),
            "No group with ID x exists."
        );
        assert_eq!(
            error_message(
                r#"{"detail":[{"loc":["body","name"],"msg":"Field required","type":"missing"}]}"#,
                status
            ),
            "body.name: Field required"
        );
        assert_eq!(
            error_message(
                r#"{"code":"invalid","message":"invalid request","errors":[{"path":"name","message":"too long"}]}"#,
                status
            ),
            "invalid request; name: too long"
        );
        assert_eq!(
            error_message("<html>", StatusCode::BAD_GATEWAY),
            "bad gateway"
        );
    }

    #[test]
    fn backs_off_exponentially_up_to_a_bound() {
        assert!(backoff(1) >= FIRST_BACKOFF && backoff(1) <= FIRST_BACKOFF * 5 / 4);
        assert!(backoff(3) >= FIRST_BACKOFF * 4);
        assert!(backoff(30) <= MAX_BACKOFF * 5 / 4);
    }
}

//! `Idempotency-Key` on the routes that create or rotate, with the IETF httpapi draft's
//! semantics (as Stripe has them): a caller that lost the answer to a create sends the same
//! request with the same key again and gets the original answer, secret included.
//!
//! The first request with a key claims it (the primary key of `idempotency_keys` arbitrates
//! concurrent retries) and runs. Its handler builds its answer as an [`Answer`] from what its
//! change returned, and the write transaction that makes the change stores that answer sealed
//! under the server key, bound to the (caller, key, request) row: the change and its answer
//! commit together, so whatever ends the request after the commit (a dropped connection, the
//! request timeout, a failure after the commit, a crash), a retry gets the answer, secret
//! included. A retry within the window replays it; the same key with another request (method,
//! path or body) is 422; a retry while the first still runs is 409. A request that committed
//! nothing releases its claim (its change rolled back with it), so a retry is judged afresh; one
//! whose server died lapses after [`IdempotencyPolicy::lease`].

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::AppState;
use super::auth::{Authenticated, authenticate};
use super::extract::read_body;
use crate::error::Error;
use crate::storage::Store;
use crate::storage::idempotency::{AnswerSlot, ClaimOutcome, IdempotencyClaim};

/// The request header naming an idempotency key.
pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
/// Marks a replayed answer, as Stripe does.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// The documented header name, as clients write it.
const HEADER_NAME: &str = "Idempotency-Key";
const MAX_KEY_LENGTH: usize = 255;

/// How long answers are kept, and how long a running request holds its key.
#[derive(Clone, Copy, Debug)]
pub struct IdempotencyPolicy {
    /// How long an answer is replayed, then purged.
    pub window: Duration,
    /// How long a claim outlives the start of its request before it counts as abandoned: longer
    /// than any request may take, so that only a dead server's claim lapses.
    pub lease: Duration,
}

/// `routes`, each honouring `Idempotency-Key`, documented as a parameter of its operations
/// (the family adds the 409 and 422 in its dialect). The routes must create or rotate, by POST.
pub fn honoured(routes: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let mut routes = routes.route_layer(axum::middleware::from_fn(honour));
    let parameter = ParameterBuilder::new()
        .name(HEADER_NAME)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Makes a retry safe: the same request with the same key from the same caller within \
             the replay window (24 h) answers the original response again, secret included. \
             1 to 255 printable ASCII characters; a UUID is a good choice.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_KEY_LENGTH)),
        ))
        .build();
    for item in routes.get_openapi_mut().paths.paths.values_mut() {
        if let Some(operation) = &mut item.post {
            operation
                .parameters
                .get_or_insert_with(Vec::new)
                .push(parameter.clone().into());
        }
    }
    routes
}

/// Deletes the answers whose window has ended, once per window (at most hourly): until then a
/// claim already treats them as absent.
pub fn spawn_purger(store: Arc<dyn Store>, window: Duration) -> tokio::task::JoinHandle<()> {
    let period = window.min(Duration::from_secs(3600));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match store.purge_idempotency_keys(chrono::Utc::now()).await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "purged expired idempotency keys"),
                Err(err) => {
                    tracing::warn!(error = %err, "could not purge expired idempotency keys")
                }
            }
        }
    })
}

/// Whether an operation honours `Idempotency-Key` (for documenting its 409 and 422).
pub fn is_honoured(operation: &utoipa::openapi::path::Operation) -> bool {
    operation.parameters.iter().flatten().any(|parameter| {
        matches!(parameter, utoipa::openapi::RefOr::T(p)
            if p.name == HEADER_NAME && p.parameter_in == ParameterIn::Header)
    })
}

async fn honour(Extension(state): Extension<AppState>, request: Request, next: Next) -> Response {
    replay_or_run(state, request, next)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn replay_or_run(state: AppState, request: Request, next: Next) -> Result<Response, Error> {
    // Every honoured route creates or rotates by POST; another method on its path is another
    // operation, or the router's 405, and must not be claimed under the POST's key.
    let Some(value) = request
        .headers()
        .get(HEADER)
        .filter(|_| request.method() == Method::POST)
    else {
        return Ok(next.run(request).await);
    };
    let key = parse_key(value)?;
    let (mut parts, body) = request.into_parts();
    let principal = authenticate(&parts, &state).await?;
    let body = read_body(Request::from_parts(parts.clone(), body), &()).await?;
    let now = chrono::Utc::now();
    let claim = IdempotencyClaim {
        principal_id: principal.id(),
        request_digest: request_digest(&parts.method, parts.uri.path(), &body),
        claim_id: Uuid::new_v4(),
        now,
        expires_at: now + state.idempotency.window,
        locked_until: now + state.idempotency.lease,
        key,
    };
    let associated = claim.associated_data();
    let outcome = state.store.claim_idempotency_key(&claim).await?;
    let counted = match &outcome {
        ClaimOutcome::Mismatch => "reused",
        ClaimOutcome::InProgress => "in_progress",
        ClaimOutcome::Completed(_) => "replayed",
        ClaimOutcome::Claimed => "claimed",
    };
    state.metrics.idempotency_key(counted);
    match outcome {
        ClaimOutcome::Mismatch => Err(Error::IdempotencyKeyReused),
        ClaimOutcome::InProgress => Err(Error::IdempotencyKeyInUse),
        ClaimOutcome::Completed(sealed) => {
            let plain = state.server_key.open(&sealed, &associated).ok_or_else(|| {
                Error::internal("a stored idempotent response does not open under the server key")
            })?;
            StoredResponse::decode(&plain).map(StoredResponse::replay)
        }
        ClaimOutcome::Claimed => {
            let slot = AnswerSlot::new(claim);
            let held = HeldClaim {
                store: state.store.clone(),
                slot: Some(slot.clone()),
            };
            parts.extensions.insert(Authenticated(principal));
            let request = Request::from_parts(parts, Body::from(body));
            let response = slot.clone().serve(next.run(request)).await;
            // A stored answer ended the claim with it; dropping `held` then leaves it be.
            if !slot.stored() {
                if response.status().is_success() {
                    tracing::error!(
                        "an idempotent route answered without keeping its answer; a retry runs again"
                    );
                }
                held.release().await;
            }
            Ok(response)
        }
    }
}

/// Builds an answer from what a change returned.
type Build<T> = Arc<dyn Fn(&T) -> Result<StoredResponse, Error> + Send + Sync>;

/// A route's answer, built from what its change returned. When the request carries an
/// idempotency key it is built inside the change's write transaction, which stores it sealed;
/// otherwise once the change is made. Create it right before the storage call that makes the
/// change, whose result type is `T`.
pub struct Answer<T> {
    build: Build<T>,
    slot: Option<Arc<AnswerSlot>>,
    /// The answer built and stored by the change's transaction.
    built: Arc<Mutex<Option<StoredResponse>>>,
}

impl<T: Any> Answer<T> {
    /// `status` with `build`'s body as JSON.
    pub fn json<R: Serialize>(
        state: &AppState,
        status: StatusCode,
        build: impl Fn(&T) -> Result<R, Error> + Send + Sync + 'static,
    ) -> Answer<T> {
        Answer::new(state, move |done: &T| {
            StoredResponse::json(status, &build(done)?)
        })
    }

    /// `status` with `body` as JSON: an answer known before the change is made.
    pub fn ready<R: Serialize>(
        state: &AppState,
        status: StatusCode,
        body: &R,
    ) -> Result<Answer<T>, Error> {
        let answer = StoredResponse::json(status, body)?;
        Ok(Answer::new(state, move |_: &T| Ok(answer.clone())))
    }

    fn new(
        state: &AppState,
        build: impl Fn(&T) -> Result<StoredResponse, Error> + Send + Sync + 'static,
    ) -> Answer<T> {
        let build: Build<T> = Arc::new(build);
        let built = Arc::new(Mutex::new(None));
        let slot = AnswerSlot::current();
        if let Some(slot) = &slot {
            let (build, built) = (build.clone(), built.clone());
            let server_key = state.server_key.clone();
            let associated = slot.claim().associated_data();
            slot.expect_answer(Box::new(move |done: &dyn Any| {
                let stored = build(done.downcast_ref::<T>()?);
                Some(stored.map(|stored| {
                    let sealed = server_key.seal(&stored.encode(), &associated);
                    *built.lock().expect("answer lock") = Some(stored);
                    sealed
                }))
            }));
        }
        Answer { build, slot, built }
    }

    /// The answer to send once the change returned `done`: the one its transaction stored, if
    /// it did.
    pub fn respond(self, done: &T) -> Result<Response, Error> {
        let stored = self.slot.as_ref().is_some_and(|slot| slot.stored());
        let built = stored
            .then(|| self.built.lock().expect("answer lock").take())
            .flatten();
        let answer = match built {
            Some(answer) => answer,
            None => (self.build)(done)?,
        };
        Ok(answer.into_response())
    }
}

/// 1 to 255 printable ASCII characters (so no NUL, which Postgres cannot store).
fn parse_key(value: &HeaderValue) -> Result<String, Error> {
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_LENGTH {
        return Err(Error::invalid_header(
            HEADER_NAME,
            "must be 1 to 255 characters long",
        ));
    }
    if !bytes.iter().all(|byte| (b' '..=b'~').contains(byte)) {
        return Err(Error::invalid_header(
            HEADER_NAME,
            "must be printable ASCII characters",
        ));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// What makes a retry the same request: method, path (the compatibility base path stripped,
/// the query only formats the answer) and body, separated so that no two requests collide.
fn request_digest(method: &axum::http::Method, path: &str, body: &[u8]) -> [u8; 32] {
    let mut digest = Sha256::new();
    for part in [method.as_str().as_bytes(), path.as_bytes()] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part);
    }
    digest.update(body);
    digest.finalize().into()
}

/// A claim held by the running request. Dropped unfinished (a timeout or a disconnect drops
/// the request), it is released in the background so that a retry can run — unless a committed
/// transaction stored the answer, which a retry then gets.
struct HeldClaim {
    store: Arc<dyn Store>,
    slot: Option<Arc<AnswerSlot>>,
}

impl HeldClaim {
    async fn release(mut self) {
        if let Some(slot) = self.slot.take() {
            release(self.store.as_ref(), slot.claim()).await;
        }
    }
}

impl Drop for HeldClaim {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take().filter(|slot| !slot.stored()) {
            let store = self.store.clone();
            tokio::spawn(async move { release(store.as_ref(), slot.claim()).await });
        }
    }
}

async fn release(store: &dyn Store, claim: &IdempotencyClaim) {
    let released = store
        .release_idempotency_key(claim.principal_id, &claim.key, claim.claim_id)
        .await;
    if let Err(err) = released {
        tracing::warn!(error = %err, "could not release an idempotency key; it lapses with its lease");
    }
}

/// The parts of an answer a replay repeats: status, content type and body.
#[derive(Clone)]
pub struct StoredResponse {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

impl StoredResponse {
    /// status (2 bytes) ‖ content-type length (2 bytes) ‖ content type ‖ body. Zeroized after
    /// sealing: the body may hold a secret.
    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let content_type = self
            .content_type
            .as_ref()
            .map_or(&[][..], HeaderValue::as_bytes);
        let mut bytes = Vec::with_capacity(4 + content_type.len() + self.body.len());
        bytes.extend_from_slice(&self.status.as_u16().to_be_bytes());
        bytes.extend_from_slice(&(content_type.len() as u16).to_be_bytes());
        bytes.extend_from_slice(content_type);
        bytes.extend_from_slice(&self.body);
        Zeroizing::new(bytes)
    }

    fn decode(bytes: &[u8]) -> Result<StoredResponse, Error> {
        let corrupt = || Error::internal("a stored idempotent response is malformed");
        let (status, rest) = bytes.split_first_chunk::<2>().ok_or_else(corrupt)?;
        let (length, rest) = rest.split_first_chunk::<2>().ok_or_else(corrupt)?;
        let length = usize::from(u16::from_be_bytes(*length));
        let (content_type, body) = rest.split_at_checked(length).ok_or_else(corrupt)?;
        Ok(StoredResponse {
            status: StatusCode::from_u16(u16::from_be_bytes(*status)).map_err(|_| corrupt())?,
            content_type: (!content_type.is_empty())
                .then(|| HeaderValue::from_bytes(content_type))
                .transpose()
                .map_err(|_| corrupt())?,
            body: Bytes::copy_from_slice(body),
        })
    }

    /// `body` as JSON, as `axum::Json` writes it.
    fn json<R: Serialize>(status: StatusCode, body: &R) -> Result<StoredResponse, Error> {
        Ok(StoredResponse {
            status,
            content_type: Some(HeaderValue::from_static("application/json")),
            body: Bytes::from(serde_json::to_vec(body).map_err(Error::internal)?),
        })
    }

    fn replay(self) -> Response {
        let mut response = self.into_response();
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
        response
    }
}

impl IntoResponse for StoredResponse {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        match self.content_type {
            Some(content_type) => headers.insert(header::CONTENT_TYPE, content_type),
            None => headers.remove(header::CONTENT_TYPE),
        };
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_1_to_255_printable_ascii_characters() {
        for good in [
            "a",
            "0b5f3c1e-4d2a-4c7e-9f1a-2b3c4d5e6f70",
            &"k".repeat(255),
            "a b~",
        ] {
            assert!(
                parse_key(&HeaderValue::from_str(good).unwrap()).is_ok(),
                "{good}"
            );
        }
        let too_long = "k".repeat(256);
        let bad: [&[u8]; 4] = [b"", too_long.as_bytes(), "é".as_bytes(), b"a\tb"];
        for bad in bad {
            let value = HeaderValue::from_bytes(bad).unwrap();
            assert_eq!(
                parse_key(&value).unwrap_err().status(),
                StatusCode::UNPROCESSABLE_ENTITY
            );
        }
    }

    #[test]
    fn requests_differing_in_method_path_or_body_differ() {
        let post = axum::http::Method::POST;
        let digest = request_digest(&post, "/agents", b"{}");
        assert_eq!(digest, request_digest(&post, "/agents", b"{}"));
        assert_ne!(
            digest,
            request_digest(&axum::http::Method::PUT, "/agents", b"{}")
        );
        assert_ne!(digest, request_digest(&post, "/agents/", b"{}"));
        assert_ne!(digest, request_digest(&post, "/agents{", b"}"));
    }

    #[test]
    fn stored_responses_survive_encoding() {
        let stored = StoredResponse {
            status: StatusCode::CREATED,
            content_type: Some(HeaderValue::from_static("application/json")),
            body: Bytes::from_static(b"{\"token\":\"x\"}"),
        };
        let decoded = StoredResponse::decode(&stored.encode()).unwrap();
        assert_eq!(decoded.status, StatusCode::CREATED);
        assert_eq!(decoded.content_type, stored.content_type);
        assert_eq!(decoded.body, stored.body);
        assert!(StoredResponse::decode(&[0, 201, 0, 9]).is_err());
    }
}

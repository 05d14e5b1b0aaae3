//! OpenTelemetry traces: with the standard `OTEL_EXPORTER_OTLP_ENDPOINT` set, keygate sends its
//! spans over OTLP/HTTP to the collector it names, in the trace its caller's `traceparent`
//! names, and every log line of the request carries that trace's id; without it, nothing is set
//! up for traces, and the log lines still carry the caller's trace id.
//!
//! keygate runs as its own process here, as an operator runs it: a process has one tracing
//! subscriber, and the test servers share the suite's. It serves the database of a test server
//! (same data directory, so the same server key), with a cache of its own, empty: the verified
//! secret is read from the database.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{
    BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, minted_secrets_in, on_both_backends,
};

on_both_backends!(
    a_verify_requests_spans_reach_the_collector_in_the_callers_trace,
    without_an_endpoint_nothing_is_exported_and_logs_still_carry_the_callers_trace_id,
);

/// What the collector received: each span with its resource's `service.name`.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// A small OTLP/HTTP receiver: `POST /v1/traces`, protobuf, as a collector's port 4318 takes it.
struct Collector {
    endpoint: String,
    received: Received,
    server: tokio::task::JoinHandle<()>,
}

impl Collector {
    async fn start() -> Collector {
        let received = Received::default();
        let sink = received.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| {
                let sink = sink.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut sink = sink.lock().unwrap();
                    for resource_spans in request.resource_spans {
                        let service = resource_spans
                            .resource
                            .iter()
                            .flat_map(|resource| &resource.attributes)
                            .find(|kv| kv.key == "service.name")
                            .map(text)
                            .unwrap_or_default();
                        for scope in resource_spans.scope_spans {
                            sink.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
                        }
                    }
                    (
                        [("content-type", "application/x-protobuf")],
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Collector {
            endpoint,
            received,
            server,
        }
    }

    /// The spans received in trace `trace_id`, by name.
    fn trace(&self, trace_id: &[u8]) -> HashMap<String, Vec<Span>> {
        let mut spans: HashMap<String, Vec<Span>> = HashMap::new();
        for (_, span) in self.received.lock().unwrap().iter() {
            if span.trace_id == trace_id {
                spans
                    .entry(span.name.clone())
                    .or_default()
                    .push(span.clone());
            }
        }
        spans
    }

    /// The `request` span of the request `request_id`.
    fn request(&self, request_id: &str) -> Span {
        let received = self.received.lock().unwrap();
        let mut found = received.iter().map(|(_, span)| span).filter(|span| {
            span.name == "request" && attribute(span, "request_id").as_deref() == Some(request_id)
        });
        let span = found.next().expect("the request's span").clone();
        assert!(found.next().is_none());
        span
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An attribute's value as text.
fn text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|value| value.value.as_ref()) {
        Some(Any::StringValue(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key == key).map(text)
}

/// A keygate process serving `app`'s database, with `env` on top of a clean environment.
struct Keygate {
    child: Child,
    base: String,
    stdout: std::thread::JoinHandle<Vec<String>>,
}

impl Keygate {
    fn start(app: &TestApp, env: &[(&str, &str)]) -> Keygate {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keygate"));
        for (name, _) in std::env::vars()
            .filter(|(name, _)| name.starts_with("KEYGATE_") || name.starts_with("OTEL_"))
        {
            command.env_remove(name);
        }
        let mut child = command
            .env("KEYGATE_DATA_DIR", &app.config.data_dir)
            .env("KEYGATE_DATABASE_URL", app.config.database_url())
            .env("KEYGATE_LISTEN", "127.0.0.1:0")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (listening, address) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let stdout = std::thread::spawn(move || {
            let port = regex::Regex::new(r"127\.0\.0\.1:(\d+)").unwrap();
            let mut lines = Vec::new();
            for line in stdout.lines() {
                let line = line.unwrap();
                if line.contains("keygate listening") {
                    let _ = listening.send(port.captures(&line).unwrap()[0].to_owned());
                }
                lines.push(line);
            }
            lines
        });
        match address.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => Keygate {
                child,
                base: format!("http://{address}"),
                stdout,
            },
            Err(_) => {
                let _ = child.kill();
                let output = child.wait_with_output().unwrap();
                panic!(
                    "keygate did not start: {}\n{}",
                    String::from_utf8_lossy(&output.stderr),
                    stdout.join().unwrap().join("\n")
                );
            }
        }
    }

    /// Whether the span exporter's thread runs in the process (Linux names its threads).
    fn exporter_thread_runs(&self) -> bool {
        let tasks = format!("/proc/{}/task", self.child.id());
        std::fs::read_dir(tasks).unwrap().any(|task| {
            std::fs::read_to_string(task.unwrap().path().join("comm"))
                .is_ok_and(|name| name.starts_with("OpenTelemetry"))
        })
    }

    /// `POST /verify` of `key` as `token`, in the trace `traceparent` names if any: the
    /// request id.
    async fn verify(&self, token: &str, key: &str, traceparent: Option<&str>) -> String {
        let mut request = reqwest::Client::new()
            .post(format!("{}/verify", self.base))
            .bearer_auth(token)
            .json(&json!({ "key": key }));
        if let Some(traceparent) = traceparent {
            request = request
                .header("traceparent", traceparent)
                .header("tracestate", "vendor=opaque");
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let verdict: serde_json::Value = response.json().await.unwrap();
        assert_eq!(verdict["code"], "valid", "{verdict}");
        request_id
    }

    /// Stops it as SIGTERM does (the batch exporter flushes on the way out): its log lines.
    fn stop(mut self) -> Vec<String> {
        let signalled = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(signalled.success());
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert!(status.success(), "{status}: {stderr}");
        assert_eq!(stderr, "", "nothing went wrong");
        self.stdout.join().unwrap()
    }
}

/// A W3C `traceparent` of a new sampled trace: (header, trace id, parent span id).
fn traceparent() -> (String, String, String) {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    (format!("00-{trace_id}-{parent}-01"), trace_id, parent)
}

/// Every line of the request `request_id` holds its trace id, those logged inside its inner
/// spans too; there are such lines.
fn assert_logged_with_trace_id(lines: &[String], request_id: &str, trace_id: &str, format: &str) {
    let of_request: Vec<&String> = lines.iter().filter(|l| l.contains(request_id)).collect();
    assert!(of_request.len() >= 2, "{format}: {}", lines.join("\n"));
    for line in &of_request {
        assert!(line.contains(trace_id), "{format}: no trace id in {line}");
    }
    let inner = match format {
        "json" => r#"{"name":"store"}"#,
        _ => ":verify:store:",
    };
    assert!(
        of_request.iter().any(|line| line.contains(inner)),
        "{format}: no line from inside the store span: {}",
        lines.join("\n")
    );
}

/// A `POST /verify` with an API key and a secret the instance has not cached, sent with a
/// `traceparent`: its spans arrive at the collector (flushed at shutdown) in the caller's trace,
/// as `request` (child of the caller's span) → `authenticate` and `verify`, each with the
/// `store` read it made; its log lines carry the trace id, in both log formats; and no secret
/// is in any span.
async fn a_verify_requests_spans_reach_the_collector_in_the_callers_trace(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("traced").await;
    let member = app.create_api_key("member").await;
    let collector = Collector::start().await;
    for format in ["human", "json"] {
        let keygate = Keygate::start(
            &app,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint),
                ("KEYGATE_LOG", "debug"),
                ("KEYGATE_LOG_FORMAT", format),
            ],
        );
        assert!(keygate.exporter_thread_runs());
        let (header, trace_id, parent) = traceparent();
        let request_id = keygate.verify(&member, &dsn, Some(&header)).await;
        // Without a traceparent: a trace of its own, whose id the logs say too.
        let untraced = keygate.verify(&member, &dsn, None).await;
        let lines = keygate.stop();

        let spans = collector.trace(&hex::decode(&trace_id).unwrap());
        let names: Vec<&String> = spans.keys().collect();
        let one = |name: &str| match spans.get(name).map(Vec::as_slice) {
            Some([span]) => span.clone(),
            _ => panic!("{format}: not one {name} span in {names:?}"),
        };
        let request = one("request");
        let (authenticate, verify) = (one("authenticate"), one("verify"));
        assert_eq!(hex::encode(&request.parent_span_id), parent, "{format}");
        assert_eq!(authenticate.parent_span_id, request.span_id, "{format}");
        assert_eq!(verify.parent_span_id, request.span_id, "{format}");
        assert!(authenticate.end_time_unix_nano <= verify.start_time_unix_nano);
        // The caller's API key and the verified secret: each read from the database once.
        let stores = &spans["store"];
        assert_eq!(stores.len(), 2, "{format}: {stores:?}");
        for parent in [&authenticate, &verify] {
            let under = stores.iter().filter(|s| s.parent_span_id == parent.span_id);
            assert_eq!(
                under.count(),
                1,
                "{format}: a store span under {}",
                parent.name
            );
        }
        assert_eq!(attribute(&request, "method").as_deref(), Some("POST"));
        assert_eq!(attribute(&request, "path").as_deref(), Some("/verify"));
        assert_eq!(attribute(&request, "request_id"), Some(request_id.clone()));
        assert_eq!(attribute(&request, "trace_id"), Some(trace_id.clone()));
        assert_eq!(request.trace_state, "vendor=opaque");
        assert_logged_with_trace_id(&lines, &request_id, &trace_id, format);

        let own = collector.request(&untraced);
        assert!(own.parent_span_id.is_empty(), "{format}: a root span");
        let own_trace_id = hex::encode(&own.trace_id);
        assert_ne!(own_trace_id, trace_id);
        assert_eq!(attribute(&own, "trace_id"), Some(own_trace_id.clone()));
        let mut of_untraced = lines.iter().filter(|line| line.contains(&untraced));
        assert!(of_untraced.clone().count() >= 2, "{format}");
        assert!(
            of_untraced.all(|line| line.contains(&own_trace_id)),
            "{format}"
        );
        assert!(minted_secrets_in(&lines.join("\n")).is_empty(), "{format}");
    }

    let received = collector.received.lock().unwrap();
    assert!(received.iter().all(|(service, _)| service == "keygate"));
    let everything = format!("{:?}", received.iter().map(|(_, s)| s).collect::<Vec<_>>());
    assert!(
        minted_secrets_in(&everything).is_empty(),
        "a secret was exported"
    );
    let key = dsn.rsplit_once(':').unwrap().1.split('@').next().unwrap();
    for secret in [dsn.as_str(), key, member.as_str(), ADMIN] {
        assert!(!everything.contains(secret), "a secret was exported");
    }
}

/// No endpoint variable: no exporter thread, no protocol check (a gRPC protocol set for other
/// programs is not refused), and the log lines of a request still carry its caller's trace id.
async fn without_an_endpoint_nothing_is_exported_and_logs_still_carry_the_callers_trace_id(
    backend: Backend,
) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("untraced").await;
    let member = app.create_api_key("member").await;
    let keygate = Keygate::start(
        &app,
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "elsewhere"),
            ("KEYGATE_LOG", "debug"),
        ],
    );
    assert!(!keygate.exporter_thread_runs());
    let (header, trace_id, _) = traceparent();
    let request_id = keygate.verify(&member, &dsn, Some(&header)).await;
    let lines = keygate.stop();
    assert_logged_with_trace_id(&lines, &request_id, &trace_id, "human");
}

/// A protocol keygate does not speak is refused at start-up, by name, rather than exporting
/// nothing.
#[test]
fn an_unsupported_otlp_protocol_is_refused_at_start_up() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_keygate"));
    for (name, _) in std::env::vars()
        .filter(|(name, _)| name.starts_with("KEYGATE_") || name.starts_with("OTEL_"))
    {
        command.env_remove(name);
    }
    let output = command
        .env("KEYGATE_DATA_DIR", data_dir.path())
        .env("KEYGATE_LISTEN", "127.0.0.1:0")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(
            "keygate: OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\" is not supported: keygate exports \
             traces over OTLP/HTTP with protobuf; set it to http/protobuf"
        ),
        "{stderr}"
    );
    // Refused before anything was set up.
    assert!(!data_dir.path().join("secret-key").exists());
}

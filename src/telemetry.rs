//! Logging and traces. Logs: human-readable by default, JSON on request; the filter comes from
//! the configuration, and colour only when a person is watching the stream the logs go to.
//! Traces: OpenTelemetry spans sent over OTLP/HTTP (protobuf) when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` names a collector;
//! otherwise nothing is set up for them at all. Every request carries a trace id in its log
//! lines either way: its caller's (W3C `traceparent`) or a new one.

use std::ffi::OsStr;
use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TraceId, TracerProvider};
use opentelemetry_http::{Bytes, HeaderExtractor, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{OTEL_EXPORTER_OTLP_TIMEOUT_DEFAULT, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::resource::{
    EnvResourceDetector, ResourceDetector, SdkProvidedResourceDetector, TelemetryResourceDetector,
};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracerProvider};
use tracing::field::{Field, Visit};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{Config, LogFormat};

/// The stream logs are written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogOutput {
    /// The server's choice: its standard output is its log.
    Stdout,
    /// For commands whose standard output is their result, e.g. a key to capture.
    Stderr,
}

/// Whether a command exports traces: the server does when the environment names a collector;
/// a one-shot command has no requests to trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traces {
    FromEnvironment,
    Off,
}

/// What must be finished before the process exits: the spans still queued for export.
#[must_use = "call shutdown() before exiting, or the last spans are lost"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued and stops the exporter. It waits on the exporter's
    /// thread, which sends through the runtime: called from async code, it runs on a blocking
    /// thread so that the runtime stays free to send.
    pub async fn shutdown(self) {
        let Some(provider) = self.traces else {
            return;
        };
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(err)) = flushed {
            tracing::warn!(error = %err, "could not export the last spans");
        }
    }
}

pub fn init(
    config: &Config,
    output: LogOutput,
    traces: Traces,
) -> Result<Telemetry, crate::StartupError> {
    let filter = EnvFilter::try_new(&config.log).map_err(|e| {
        format!(
            "KEYGATE_LOG (--log) {:?} is not a log filter ({e}); e.g. info or \
                 keygate=debug,tower_http=info",
            config.log
        )
    })?;
    let (writer, is_terminal) = match output {
        LogOutput::Stdout => (
            BoxMakeWriter::new(std::io::stdout),
            std::io::stdout().is_terminal(),
        ),
        LogOutput::Stderr => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
    };
    let ansi = use_colour(
        config.log_format,
        is_terminal,
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let logs = match config.log_format {
        LogFormat::Human if ansi => logs.boxed(),
        LogFormat::Human => logs.fmt_fields(PlainFields).boxed(),
        // The whole span list, not only the innermost span: the request's fields (request id,
        // trace id) belong to its outermost span.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    };
    let (provider, exporting) = match traces {
        Traces::FromEnvironment => match export_to(&OsEnvironment)? {
            Some(exporter) => {
                let provider = tracer_provider(exporter)?;
                let layer = spans_layer(&provider);
                (Some(provider), Some(layer))
            }
            None => (None, None),
        },
        Traces::Off => (None, None),
    };
    EXPORTING.store(exporting.is_some(), Relaxed);
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(exporting)
        .try_init()?;
    Ok(Telemetry { traces: provider })
}

/// keygate's own spans, whatever the log filter lets through: a span's level says how much it
/// costs when nobody listens, not whether a collector wants it. Events stay in the logs.
fn spans_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("keygate"))
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            meta.is_span() && meta.target().starts_with("keygate")
        }))
}

/// The environment the standard `OTEL_` variables are read from.
trait Environment {
    /// The variable's value; unset and empty are the same, as the specification says.
    fn get(&self, name: &str) -> Option<String>;
}

struct OsEnvironment;

impl Environment for OsEnvironment {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }
}

/// The one protocol keygate exports with.
const HTTP_PROTOBUF: &str = "http/protobuf";

/// Where spans go and how long an export may take, when they are exported at all: only when an
/// endpoint variable is set, and neither `OTEL_SDK_DISABLED=true` nor
/// `OTEL_TRACES_EXPORTER=none` says otherwise. What keygate cannot honour is refused, not
/// ignored: a collector that silently receives nothing is worse than a server that does not start.
fn export_to(env: &dyn Environment) -> Result<Option<Duration>, crate::StartupError> {
    let endpoint_set = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        || env.get("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
    let disabled = env
        .get("OTEL_SDK_DISABLED")
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"));
    match env.get("OTEL_TRACES_EXPORTER").as_deref().map(str::trim) {
        Some("none") => return Ok(None),
        None | Some("otlp") => {}
        Some(other) if endpoint_set && !disabled => {
            return Err(format!(
                "OTEL_TRACES_EXPORTER={other:?} is not supported: keygate exports traces over \
                 OTLP only (otlp, or none to turn them off)"
            )
            .into());
        }
        Some(_) => {}
    }
    if !endpoint_set || disabled {
        return Ok(None);
    }
    for variable in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(protocol) = env.get(variable) {
            if !protocol.trim().eq_ignore_ascii_case(HTTP_PROTOBUF) {
                return Err(format!(
                    "{variable}={protocol:?} is not supported: keygate exports traces over \
                     OTLP/HTTP with protobuf; set it to {HTTP_PROTOBUF} (or unset it) and point \
                     the endpoint at the collector's HTTP port, e.g. http://collector:4318"
                )
                .into());
            }
            // The signal's own variable wins over the general one.
            break;
        }
    }
    // The SDK reads these too, but gives the value only to the HTTP clients it builds itself.
    let timeout = [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .into_iter()
    .find_map(|variable| env.get(variable)?.trim().parse().ok())
    .map_or(OTEL_EXPORTER_OTLP_TIMEOUT_DEFAULT, Duration::from_millis);
    Ok(Some(timeout))
}

/// A tracer provider exporting in batches, from a thread of its own, over OTLP/HTTP; the SDK
/// reads the endpoint, headers, sampler, batch and resource variables itself.
fn tracer_provider(timeout: Duration) -> Result<SdkTracerProvider, crate::StartupError> {
    let client = OnRuntime {
        client: reqwest::Client::builder().timeout(timeout).build()?,
        runtime: tokio::runtime::Handle::try_current()
            .map_err(|_| "traces are exported through the server's runtime: none is running")?,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_timeout(timeout)
        .build()
        .map_err(|e| format!("cannot export traces: {e}"))?;
    // `service.name` is keygate unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES names it.
    let mut detectors: Vec<Box<dyn ResourceDetector>> = vec![
        Box::new(TelemetryResourceDetector),
        Box::new(EnvResourceDetector::new()),
    ];
    if OsEnvironment.get("OTEL_SERVICE_NAME").is_some() {
        detectors.push(Box::new(SdkProvidedResourceDetector));
    }
    let resource = opentelemetry_sdk::Resource::builder_empty()
        .with_service_name("keygate")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_detectors(&detectors)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Sends the exporter's requests with keygate's own HTTP client (rustls, the system's roots) on
/// the server's runtime. The batch exporter runs on a thread of its own, outside any runtime,
/// and the client needs one; the exporter only waits for the answer.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let request = reqwest::Request::try_from(request)?;
        self.runtime
            .spawn(async move {
                let response = client.execute(request).await?;
                let mut answer = Response::builder().status(response.status());
                if let Some(headers) = answer.headers_mut() {
                    headers.extend(response.headers().clone());
                }
                Ok(answer.body(response.bytes().await?)?)
            })
            .await?
    }
}

/// Whether spans are exported: set once, by [`init`], before any request is served.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// A request's span, made by `make` with the trace id it starts with, and part of the trace its
/// caller's W3C `traceparent` (and `tracestate`) names, or of a new trace. Its `trace_id` field
/// is the trace's id: every log line of the request carries it. With traces exported, the id is
/// that of the spans sent, known only once the span has joined its parent; without, it is the
/// caller's when it sent a valid one, else a new random one, and the span is made with it: a
/// field recorded at creation is formatted once, where one recorded later costs the log layer
/// a second pass over the span.
pub fn request_span(
    headers: &HeaderMap,
    make: impl FnOnce(Option<TraceId>) -> tracing::Span,
) -> tracing::Span {
    if !EXPORTING.load(Relaxed) {
        let trace_id = callers_trace_id(headers)
            .unwrap_or_else(|| RandomIdGenerator::default().new_trace_id());
        return make(Some(trace_id));
    }
    let span = make(None);
    if span.is_disabled() {
        return span;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if span.set_parent(parent).is_ok() {
        let trace_id = span.context().span().span_context().trace_id();
        span.record("trace_id", tracing::field::display(trace_id));
    }
    span
}

/// The trace id of a valid `traceparent` header.
fn callers_trace_id(headers: &HeaderMap) -> Option<TraceId> {
    if !headers.contains_key("traceparent") {
        return None;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let trace_id = parent.span().span_context().trace_id();
    (trace_id != TraceId::INVALID).then_some(trace_id)
}

/// The human log format's fields, `name=value` separated by spaces, written as
/// tracing-subscriber's default writes them without colour but without its styling machinery:
/// the log layer formats the request span's fields for every request, logged or not, and the
/// default spent as much on painting each name in no style as on the rest of the field. The
/// message and errors, whose escaping of terminal control sequences matters, are still written
/// by the default.
struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = PlainVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'writer> {
    writer: Writer<'writer>,
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// One field written by the default visitor, which pads it as it would have.
    fn by_default(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
        self.is_empty = false;
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.by_default(|visitor| visitor.record_str(field, value));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_ok() {
            self.by_default(|visitor| visitor.record_error(field, value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        // `log.` fields are the metadata of records from the `log` crate, written elsewhere.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        if name == "message" {
            return self.by_default(|visitor| visitor.record_debug(field, value));
        }
        let separator = if self.is_empty { "" } else { " " };
        self.is_empty = false;
        self.result = write!(self.writer, "{separator}{name}={value:?}");
    }
}

/// Escape codes only help a terminal; in a file or a pipe they are noise. A non-empty
/// `NO_COLOR` turns them off everywhere (<https://no-color.org>).
fn use_colour(format: LogFormat, is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    format == LogFormat::Human && is_terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn colour_only_for_human_logs_on_a_terminal_without_no_color() {
        assert!(use_colour(LogFormat::Human, true, None));
        assert!(use_colour(LogFormat::Human, true, Some(OsStr::new(""))));
        assert!(!use_colour(LogFormat::Human, false, None));
        assert!(!use_colour(LogFormat::Human, true, Some(OsStr::new("1"))));
        assert!(!use_colour(LogFormat::Json, true, None));
        assert!(!use_colour(LogFormat::Json, false, None));
    }

    impl Environment for HashMap<&str, &str> {
        fn get(&self, name: &str) -> Option<String> {
            self.get(name)
                .filter(|value| !value.is_empty())
                .map(|value| (*value).to_owned())
        }
    }

    fn decide(vars: &[(&'static str, &'static str)]) -> Result<Option<Duration>, String> {
        export_to(&vars.iter().copied().collect::<HashMap<_, _>>()).map_err(|e| e.to_string())
    }

    #[test]
    fn traces_are_exported_only_when_an_endpoint_is_named() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        let traces_endpoint = (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://collector:4318/v1/traces",
        );
        assert_eq!(decide(&[]), Ok(None));
        assert_eq!(decide(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")]), Ok(None));
        // Without an endpoint nothing is read, so nothing can be refused.
        assert_eq!(decide(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]), Ok(None));
        assert_eq!(decide(&[("OTEL_TRACES_EXPORTER", "zipkin")]), Ok(None));
        let on = Ok(Some(OTEL_EXPORTER_OTLP_TIMEOUT_DEFAULT));
        assert_eq!(decide(&[endpoint]), on);
        assert_eq!(decide(&[traces_endpoint]), on);
        assert_eq!(
            decide(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]),
            on
        );
        assert_eq!(decide(&[endpoint, ("OTEL_TRACES_EXPORTER", "otlp")]), on);
        assert_eq!(
            decide(&[endpoint, ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")]),
            Ok(Some(Duration::from_millis(2500)))
        );
        assert_eq!(
            decide(&[
                endpoint,
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "700"),
            ]),
            Ok(Some(Duration::from_millis(700)))
        );
        for off in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert_eq!(decide(&[endpoint, off]), Ok(None), "{off:?}");
        }
    }

    #[test]
    fn a_protocol_or_exporter_keygate_cannot_honour_is_refused_by_name() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
        for (variable, value) in [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_TRACES_EXPORTER", "zipkin"),
        ] {
            let refusal = decide(&[endpoint, (variable, value)]).unwrap_err();
            assert!(
                refusal.starts_with(&format!("{variable}=\"{value}\" is not supported")),
                "{refusal}"
            );
        }
        // The signal's own variable wins over the general one, either way.
        assert!(
            decide(&[
                endpoint,
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ])
            .is_ok()
        );
        assert!(
            decide(&[
                endpoint,
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ])
            .is_err()
        );
    }

    #[test]
    fn a_requests_trace_id_is_its_callers_or_a_new_one() {
        use tracing_subscriber::layer::SubscriberExt;
        let recorded = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = recorded.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || Sink(sink.clone())),
        );
        tracing::subscriber::with_default(subscriber, || {
            let mut headers = HeaderMap::new();
            for traceparent in [
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                // Not a traceparent: a new trace.
                Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
                None,
            ] {
                match traceparent {
                    Some(value) => headers.insert("traceparent", value.parse().unwrap()),
                    None => headers.remove("traceparent"),
                };
                let span = request_span(&headers, |trace_id| {
                    tracing::info_span!("request", trace_id = trace_id.map(tracing::field::display))
                });
                span.in_scope(|| tracing::info!("inside"));
            }
        });
        let lines = recorded.lock().unwrap().concat();
        let ids: Vec<&str> = lines
            .lines()
            .map(|line| {
                let at = line.find("trace_id=").expect("a trace id") + "trace_id=".len();
                &line[at..at + 32]
            })
            .collect();
        assert_eq!(ids.len(), 3, "{lines}");
        assert_eq!(ids[0], "4bf92f3577b34da6a3ce929d0e0e4736");
        for new in &ids[1..] {
            assert!(
                new.bytes().all(|b| b.is_ascii_hexdigit()) && *new != "0".repeat(32),
                "{lines}"
            );
        }
        assert_ne!(ids[1], ids[2]);
    }

    #[test]
    fn plain_fields_are_written_as_the_default_writes_them_without_colour() {
        use tracing_subscriber::layer::SubscriberExt;

        #[derive(Debug, thiserror::Error)]
        #[error("could not \u{1b}[31mwrite")]
        struct Failed(#[source] std::io::Error);

        fn logged(plain: bool) -> String {
            let recorded = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
            let sink = recorded.clone();
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .without_time()
                .with_writer(move || Sink(sink.clone()));
            let layer = match plain {
                true => layer.fmt_fields(PlainFields).boxed(),
                false => layer.boxed(),
            };
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
                let span = tracing::info_span!(
                    "request",
                    method = %"GET",
                    request_id = "a \"quoted\" id",
                    r#type = 3,
                    trace_id = tracing::field::Empty,
                );
                span.record("trace_id", tracing::field::display("4bf92f35"));
                span.in_scope(|| {
                    tracing::info!(count = 2, name = "x\u{1b}[31m", "escaped \u{1b}[31m text");
                    let failed = Failed(std::io::Error::other("disk \u{1b}[0m full"));
                    tracing::error!(error = &failed as &dyn std::error::Error, "failed");
                    tracing::warn!(message = "explicit", ok = true);
                    tracing::info!("");
                });
            });
            recorded.lock().unwrap().concat()
        }
        let plain = logged(true);
        assert!(
            plain.contains("request_id=\"a \\\"quoted\\\" id\""),
            "{plain}"
        );
        assert!(plain.contains("error.sources=[disk"), "{plain}");
        assert_eq!(plain, logged(false));
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(buf).into_owned());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

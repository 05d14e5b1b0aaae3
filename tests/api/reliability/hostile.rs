//! Hostile clients over raw connections: oversized and endless bodies, deeply nested JSON,
//! headers trickled byte by byte, invalid UTF-8, huge headers and path tricks. Each gets a clean
//! 4xx or a closed connection, within a bound, and the server keeps answering everyone else.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use super::figures;
use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp, on_both_backends};

on_both_backends!(hostile_requests_get_a_clean_4xx_or_a_closed_connection);

/// Longer than any answer may take: past it the server is stuck.
const STUCK: Duration = Duration::from_secs(10);

/// What a raw exchange ended in.
#[derive(Debug, PartialEq)]
enum Outcome {
    Status(u16),
    Closed,
}

/// Sends `head` and `body` on a fresh connection and reads the answer's status line, or sees
/// the connection closed without one. Panics when the server neither answers nor closes.
async fn exchange(app: &TestApp, head: &[u8], body: &[u8]) -> Outcome {
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    // The server may answer and close before it has read everything: later writes may fail.
    let _ = stream.write_all(head).await;
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let read = timeout(STUCK, stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the server neither answered nor closed the connection"
    );
    status_of(&answer)
}

fn status_of(answer: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(answer);
    match text.strip_prefix("HTTP/1.1 ") {
        Some(rest) => Outcome::Status(rest[..3].parse().unwrap()),
        None => Outcome::Closed,
    }
}

fn request(method: &str, path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: keygate\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes()
}

/// Headers sent a few bytes at a time, never finished: the connection is closed once the
/// request timeout has passed. Returns how long that took.
async fn trickled_headers(app: &TestApp) -> Duration {
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    loop {
        assert!(
            started.elapsed() < STUCK,
            "a trickling client held its connection"
        );
        if stream.write_all(b"X-Slow: a\r\n").await.is_err() {
            return started.elapsed();
        }
        match timeout(Duration::from_millis(200), stream.read(&mut byte)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {
                // Whatever the server said (408), it closes next.
                let mut rest = Vec::new();
                let _ = timeout(STUCK, stream.read_to_end(&mut rest)).await;
                return started.elapsed();
            }
            Err(_) => {}
        }
    }
}

async fn hostile_requests_get_a_clean_4xx_or_a_closed_connection(backend: Backend) {
    let app = TestApp::start_with(backend, |config| config.request_timeout_secs = 1).await;
    let deep_array = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
    let big_header = format!("X-Big: {}\r\n", "a".repeat(1 << 20));
    let many_headers: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
    let long_segment = format!("/agents/{}", "a".repeat(100_000));
    let oversized = vec![b'a'; 1 << 20];
    let mut cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("oversized body", request("POST", "/agents", "", &oversized), oversized.clone()),
        ("deeply nested array", request("POST", "/agents", "", deep_array.as_bytes()), deep_array.clone().into_bytes()),
        ("deeply nested object", request("POST", "/verify", "", deep_object.as_bytes()), deep_object.clone().into_bytes()),
        ("invalid UTF-8 in the body", request("POST", "/agents", "", b"{\"name\": \"\xff\xfe\"}"), b"{\"name\": \"\xff\xfe\"}".to_vec()),
        ("invalid UTF-8 in a header", [b"GET /agents HTTP/1.1\r\nHost: k\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n".as_slice()].concat(), Vec::new()),
        ("invalid UTF-8 in the path", b"GET /agents/\xff\xfe HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n".to_vec(), Vec::new()),
        ("a 1 MiB header", request("GET", "/agents", &big_header, b""), Vec::new()),
        ("500 headers", request("GET", "/agents", &many_headers, b""), Vec::new()),
        ("a 100,000-character id", request("GET", &long_segment, "", b""), Vec::new()),
        ("a body longer than announced", request("POST", "/agents", "", b"{}"), b"{\"name\": \"overlong\"} and more".to_vec()),
        ("a chunked endless body", b"POST /agents HTTP/1.1\r\nHost: k\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec(), b"10000\r\n".iter().copied().chain(std::iter::repeat_n(b'a', 0x10000)).chain(*b"\r\n").cycle().take(1 << 20).collect()),
        ("a request line of garbage", b"\x00\x01\x02 / HTTP/9.9\r\n\r\n".to_vec(), Vec::new()),
    ];
    let path_tricks = [
        "/agents/..%2F..%2Fapikeys",
        "/agents/../apikeys",
        "/agents/%2e%2e",
        "/agents/%252e%252e%252f",
        "/agents/a%2Fb",
        "//agents",
        "/groups/..%2F..%2Forgs/agentapikeys",
        "/groups/000000000000000000000000/agentapikeys/..%2F..%2F",
        "/machineidentities/x/credentials/%00/rotate",
        "/agent_api_keys/name/%C0%AF",
        "/agents/%ZZ",
    ];
    for path in path_tricks {
        cases.push(("a path trick", request("GET", path, "", b""), Vec::new()));
    }
    let mut closed = 0;
    for (what, head, body) in &cases {
        match exchange(&app, head, body).await {
            Outcome::Status(status) => assert!(
                (400..500).contains(&status),
                "{what}: answered {status}, not a clean 4xx"
            ),
            Outcome::Closed => closed += 1,
        }
    }
    let held = trickled_headers(&app).await;
    assert!(
        held >= Duration::from_millis(900),
        "closed after {held:?}, before the timeout"
    );

    // Everyone else is still served, at once.
    let (status, _) = app.get("/agents", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    let created = app.create_agent("after-the-storm").await;
    assert!(created.contains("after-the-storm"));
    figures(
        "hostile clients",
        backend,
        format_args!(
            "attacks={} clean_4xx={} closed_connections={closed} slow_header_closed_after_ms={} \
             crashes=0 stuck=0",
            cases.len() + 1,
            cases.len() - closed,
            held.as_millis()
        ),
    );
}

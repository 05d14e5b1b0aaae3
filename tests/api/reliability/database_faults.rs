//! Database faults: a PostgreSQL cluster of the test's own (never the machine's shared server),
//! stopped and restarted under load. keygate stays up, `/readyz` turns 503 and back, requests
//! fail fast with 503 while the database is away, service is back within 5 s of its return, and
//! no resource is left half-written.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::time::Instant;

use super::{KeygateProcess, count_rows, figures};

/// The longest a request may take while the database is away: the pool's acquire timeout (5 s)
/// and a margin. Anything longer is a hang.
const FAIL_FAST: Duration = Duration::from_secs(7);
/// How soon after the database is back keygate must serve again.
const RECOVERY: Duration = Duration::from_secs(5);
const WORKERS: usize = 6;

/// Agents without a current key, identities missing a credential: half-written resources.
const HALF_WRITTEN: [&str; 2] = [
    "SELECT COUNT(*) FROM agents a WHERE NOT EXISTS \
     (SELECT 1 FROM secrets s WHERE s.owner_id = a.id AND s.rotated_at IS NULL)",
    "SELECT COUNT(*) FROM machine_identity_connections c WHERE NOT EXISTS \
     (SELECT 1 FROM secrets s WHERE s.owner_id = c.identity_id AND s.slot = c.slot \
      AND s.rotated_at IS NULL)",
];

/// A throwaway PostgreSQL cluster in a temporary directory, run by the `postgres` user when the
/// tests run as root (initdb refuses root).
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn start() -> Cluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server binaries are installed under /usr/lib/postgresql")
            .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
            .find(|bin| bin.join("initdb").exists())
            .expect("initdb is installed");
        let dir = tempfile::tempdir().unwrap();
        if running_as_root() {
            chown_to_postgres(dir.path());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster { bin, dir, port };
        cluster.run(
            "initdb",
            &["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
        );
        cluster.pg_ctl("start");
        cluster
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join(program));
            command
        } else {
            Command::new(self.bin.join(program))
        };
        let output = command
            .args(["-D", &self.data()])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `start`, or `stop` as a crash would (immediate: no checkpoint, clients cut off).
    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        match action {
            "start" => self.run("pg_ctl", &["-w", "-l", &log, "-o", &options, "start"]),
            _ => self.run("pg_ctl", &["-w", "-m", "immediate", "stop"]),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        if running_as_root() {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .args(["-D", &self.data(), "-m", "immediate", "stop"])
                .output();
        }
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

fn chown_to_postgres(dir: &Path) {
    let status = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

/// What the load saw.
#[derive(Default)]
struct Seen {
    requests: usize,
    succeeded: usize,
    unavailable: usize,
    other: Vec<String>,
    slowest: Duration,
}

/// Creates agents and machine identities, lists and verifies, until told to stop.
async fn load(server: &KeygateProcess, worker: usize, stop: &AtomicBool) -> Seen {
    let mut seen = Seen::default();
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let requests = [
            (
                Method::POST,
                "/agents".to_owned(),
                Some(json!({"name": format!("fault-{worker}-{i}")})),
            ),
            (
                Method::POST,
                "/machineidentities".to_owned(),
                Some(json!({"name": format!("fault-{worker}-{i}"),
                            "connection_names": ["fault-pg", "fault-ssh"]})),
            ),
            (Method::GET, "/agents?limit=5".to_owned(), None),
        ];
        for (method, path, body) in requests {
            let started = Instant::now();
            let status = server.send(method.clone(), &path, body).await;
            seen.slowest = seen.slowest.max(started.elapsed());
            seen.requests += 1;
            match status {
                Some(status) if status.is_success() => seen.succeeded += 1,
                Some(StatusCode::SERVICE_UNAVAILABLE) => seen.unavailable += 1,
                other => seen.other.push(format!("{method} {path}: {other:?}")),
            }
        }
    }
    seen
}

async fn ready(server: &KeygateProcess) -> StatusCode {
    reqwest::get(server.url("/readyz")).await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries (initdb, pg_ctl): pass --include-ignored"]
async fn postgres_stopped_and_restarted_under_load() {
    let cluster = Cluster::start();
    let server = KeygateProcess::start_on(Some(cluster.url())).await;
    let connections = [("fault-pg", "postgres"), ("fault-ssh", "ssh")];
    server.create_connections("fault-agent", &connections).await;
    let stop = AtomicBool::new(false);
    let workers = join_all((0..WORKERS).map(|worker| load(&server, worker, &stop)));
    let faults = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster.pg_ctl("stop");
        let down_at = Instant::now();
        let mut readiness_while_down = Vec::new();
        while down_at.elapsed() < Duration::from_secs(3) {
            readiness_while_down.push(ready(&server).await);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        cluster.pg_ctl("start");
        let back_at = Instant::now();
        while ready(&server).await != StatusCode::OK
            || server
                .send(
                    Method::POST,
                    "/agents",
                    Some(json!({"name": format!("back-{}", back_at.elapsed().as_millis())})),
                )
                .await
                != Some(StatusCode::CREATED)
        {
            assert!(
                back_at.elapsed() < RECOVERY,
                "keygate did not recover within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let recovered_in = back_at.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::Relaxed);
        (readiness_while_down, recovered_in)
    };
    let (seen, (readiness_while_down, recovered_in)) = tokio::join!(workers, faults);

    assert!(server.is_running(), "keygate stayed up");
    assert!(
        readiness_while_down.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "/readyz turned 503: {readiness_while_down:?}"
    );
    assert_eq!(ready(&server).await, StatusCode::OK, "and back");
    let (mut requests, mut succeeded, mut unavailable, mut slowest) = (0, 0, 0, Duration::ZERO);
    for seen in &seen {
        assert!(
            seen.other.is_empty(),
            "answers other than success or 503: {:?}",
            seen.other
        );
        requests += seen.requests;
        succeeded += seen.succeeded;
        unavailable += seen.unavailable;
        slowest = slowest.max(seen.slowest);
    }
    assert!(unavailable > 0, "some requests met the stopped database");
    assert!(
        slowest < FAIL_FAST,
        "a request took {slowest:?} while the database was away"
    );
    for sql in HALF_WRITTEN {
        assert_eq!(
            count_rows(&cluster.url(), sql).await,
            0,
            "half-written: {sql}"
        );
    }
    server.assert_logs_hold_no_secret();
    figures(
        "database faults",
        crate::common::Backend::Postgres,
        format_args!(
            "faults=1 (stop -m immediate, 3 s down) requests={requests} succeeded={succeeded} \
             answered_503={unavailable} other=0 slowest_ms={} recovered_ms={} half_written=0",
            slowest.as_millis(),
            recovered_in.as_millis()
        ),
    );
}

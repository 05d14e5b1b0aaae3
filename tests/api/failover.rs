//! A failover of a highly available Postgres under two keygate instances: a pg_auto_failover
//! formation (a monitor, a primary and a synchronous standby on loopback ports, in a temporary
//! directory, run as the `postgres` user since Postgres refuses root), the instances on the
//! multi-host URL the formation prints, and clients creating, rotating, revoking and verifying
//! agent keys through both while the primary is switched over (`pg_autoctl perform failover`)
//! and then killed (SIGKILL to its keeper and its Postgres).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use sqlx::Connection;

use crate::common::{BOOTSTRAP_TOKEN as ADMIN, Backend, TestApp};

const PG_AUTOCTL: &str = "/usr/bin/pg_autoctl";
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Writes acknowledged before a failover are all there after it, a revoked key never verifies
/// `valid` once its revocation was acknowledged (on the other instance, once the notification's
/// delivery window has passed), the only 5xx is 503, and writes resume on both instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs pg_auto_failover (postgresql-15-auto-failover) and root to run it as postgres: pass --include-ignored"]
async fn a_failover_loses_nothing_acknowledged() {
    if !Path::new(PG_AUTOCTL).exists() {
        eprintln!(
            "\n!!! SKIPPED: {PG_AUTOCTL} is missing; install postgresql-15-auto-failover \
             to run the failover test !!!\n"
        );
        return;
    }
    let formation = Formation::start().await;
    let url = formation.uri();
    // The clients check ended keys on purpose: no limit on failed verifications.
    let first = TestApp::start_with(Backend::Sqlite, |config| {
        config.database_url = Some(url.clone());
        config.verify_failures_per_minute = u32::MAX;
    })
    .await;
    let second = TestApp::start_with(Backend::Sqlite, |config| {
        config.database_url = Some(url.clone());
        config.data_dir = first.config.data_dir.clone();
        config.verify_failures_per_minute = u32::MAX;
    })
    .await;
    let instances = Arc::new([first, second]);

    let switched = run_through(&instances, "perform failover", || formation.switch_over()).await;
    formation.wait_stable().await;
    let killed = run_through(&instances, "SIGKILL of the primary", || {
        formation.kill_primary()
    })
    .await;
    for (case, (recovery, promoted)) in [("perform failover", switched), ("SIGKILL", killed)] {
        // What keygate itself adds: from the new primary's promotion to writes through it.
        for (i, (resumed, _)) in recovery.iter().enumerate() {
            let after_promotion = resumed.saturating_sub(promoted);
            assert!(
                after_promotion < Duration::from_secs(10),
                "{case}: instance {i} wrote again {after_promotion:?} after the promotion"
            );
        }
        eprintln!(
            "failover figures: {case}: the new primary promoted at {:.1} s; first successful \
             write after the failover began: {}",
            promoted.as_secs_f64(),
            recovery
                .iter()
                .enumerate()
                .map(|(i, (resumed, outage))| format!(
                    "instance {i} at {:.1} s (writes refused for {:.1} s)",
                    resumed.as_secs_f64(),
                    outage.as_secs_f64()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// What the clients were told, to be checked against what the database kept.
#[derive(Default)]
struct Ledger {
    /// Agent name → its current key, for agents whose every write was acknowledged.
    live: HashMap<String, String>,
    /// Keys whose end (rotation or deletion) was acknowledged: by which instance, and when.
    ended: Vec<(String, usize, Instant)>,
    /// Agent names whose deletion was acknowledged.
    deleted: Vec<String>,
    /// Writes answered, per instance: (sent, answered, succeeded).
    writes: Vec<(usize, Instant, Instant, bool)>,
    /// Answers that broke a rule, in words.
    violations: Vec<String>,
    /// Answers a `valid` for an ended key gave on the other instance within the window in
    /// which its notification may still be on its way.
    valid_in_delivery_window: u32,
    answered_503: u32,
}

/// How long another instance may still answer from its cache after a change was acknowledged
/// (the notification's delivery, measured at under 50 ms).
const DELIVERY_WINDOW: Duration = Duration::from_secs(1);

/// Runs clients against both instances while `failover` happens, until both have written
/// again for a while; checks the ledger against the database. Returns, per instance, when
/// writes resumed for good after the failover began and for how long they were refused.
async fn run_through<F: std::future::Future<Output = Instant>>(
    instances: &Arc<[TestApp; 2]>,
    case: &str,
    failover: impl FnOnce() -> F,
) -> (Vec<(Duration, Duration)>, Duration) {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let instances = instances.clone();
            let ledger = ledger.clone();
            let stop = stop.clone();
            let case = case.replace(' ', "-");
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    step(
                        &instances,
                        &ledger,
                        &format!("{case}-{client}-{n}"),
                        client + n,
                    )
                    .await;
                }
            })
        })
        .collect();
    // Load before the failover, so that there is something to lose.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let began = Instant::now();
    let promoted = failover().await.duration_since(began);
    let deadline = began + Duration::from_secs(60);
    let recovered = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !clients.iter().any(tokio::task::JoinHandle::is_finished),
            "{case}: a client stopped (its panic is above)"
        );
        let recovery = recovery(&ledger.lock().unwrap(), began);
        if let Some(recovery) = recovery.iter().copied().collect::<Option<Vec<_>>>() {
            // Writes have been going through on both for 3 s.
            if recovery
                .iter()
                .all(|(resumed, _)| began + *resumed + Duration::from_secs(3) < Instant::now())
            {
                break recovery;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{case}: writes had not resumed on both instances 60 s after the failover"
        );
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    assert!(
        ledger.violations.is_empty(),
        "{case}: {:#?}",
        ledger.violations
    );
    // Every acknowledged write is in the database: each live agent's last key verifies
    // valid, each ended key is refused, each deleted agent is gone — on both instances.
    let mut lost = Vec::new();
    for app in instances.iter() {
        for (name, key) in &ledger.live {
            let code = app.verify(ADMIN, key).await.1["code"].clone();
            if code != "valid" {
                lost.push(format!("{name}'s current key is {code}"));
            }
        }
        for (key, _, _) in &ledger.ended {
            let code = app.verify(ADMIN, key).await.1["code"].clone();
            if code == "valid" {
                lost.push(format!("an ended key of {} is valid", &key[..20]));
            }
        }
        for name in &ledger.deleted {
            let (status, _) = app.get(&format!("/agents/{name}"), ADMIN).await;
            if status != StatusCode::NOT_FOUND {
                lost.push(format!("deleted {name} answers {status}"));
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{case}: acknowledged writes lost: {lost:#?}"
    );
    eprintln!(
        "failover {case}: {} writes acknowledged, {} agents live, {} keys ended, {} answers 503, \
         {} `valid` for an ended key on the other instance within {DELIVERY_WINDOW:?} of the \
         acknowledgement, 0 lost",
        ledger.writes.iter().filter(|write| write.3).count(),
        ledger.live.len(),
        ledger.ended.len(),
        ledger.answered_503,
        ledger.valid_in_delivery_window,
    );
    assert!(
        ledger.writes.iter().any(|write| !write.3),
        "{case}: no write was ever refused: the failover was not seen"
    );
    (recovered, promoted)
}

/// Per instance, once writes have resumed: when the first write of the last unbroken run of
/// successes was sent, after `began`, and how long writes were refused before it.
fn recovery(ledger: &Ledger, began: Instant) -> Vec<Option<(Duration, Duration)>> {
    (0..2)
        .map(|instance| {
            let mut writes: Vec<_> = ledger
                .writes
                .iter()
                .filter(|write| write.0 == instance && write.1 >= began)
                .collect();
            writes.sort_by_key(|write| write.1);
            let last_failure = writes.iter().rposition(|write| !write.3);
            let first_failure = writes.iter().position(|write| !write.3);
            match (first_failure, last_failure) {
                (Some(first), Some(last)) => writes
                    .get(last + 1)
                    .map(|resumed| (resumed.2 - began, resumed.2 - writes[first].1)),
                // Never refused: writes went on at once.
                _ => writes
                    .first()
                    .map(|write| (write.2 - began, Duration::ZERO)),
            }
        })
        .collect()
}

/// One client's round: create an agent through one instance, verify it through both, rotate
/// it, verify the old key (never `valid` once the rotation was acknowledged), and delete every
/// third one.
async fn step(instances: &[TestApp; 2], ledger: &Mutex<Ledger>, name: &str, turn: usize) {
    let (a, b) = (turn % 2, (turn + 1) % 2);
    let Some(created) = write(instances, ledger, a, "/agents", json!({ "name": name })).await
    else {
        return;
    };
    let key = created["token"].as_str().unwrap().to_owned();
    ledger.lock().unwrap().live.insert(name.into(), key.clone());
    for instance in [a, b] {
        check(instances, ledger, instance, &key).await;
    }
    let path = format!("/agents/{name}/rotate");
    let Some(rotated) = write(instances, ledger, b, &path, json!({})).await else {
        // Whether the rotation happened is unknown: the agent is left out of the checks.
        ledger.lock().unwrap().live.remove(name);
        return;
    };
    let new_key = rotated["token"].as_str().unwrap().to_owned();
    {
        let mut ledger = ledger.lock().unwrap();
        ledger.live.insert(name.into(), new_key);
        ledger.ended.push((key.clone(), b, Instant::now()));
    }
    for instance in [a, b] {
        check(instances, ledger, instance, &key).await;
    }
    if turn % 3 == 0 {
        let sent = Instant::now();
        let (status, _) = instances[a].delete(&format!("/agents/{name}"), ADMIN).await;
        let mut ledger = ledger.lock().unwrap();
        ledger
            .writes
            .push((a, sent, Instant::now(), status.is_success()));
        note_status(&mut ledger, status, "DELETE /agents");
        let current = ledger.live.remove(name).unwrap();
        if status.is_success() {
            ledger.deleted.push(name.into());
            ledger.ended.push((current, a, Instant::now()));
        }
    }
}

/// A POST through `instance`: its body when acknowledged.
async fn write(
    instances: &[TestApp; 2],
    ledger: &Mutex<Ledger>,
    instance: usize,
    path: &str,
    body: serde_json::Value,
) -> Option<serde_json::Value> {
    let sent = Instant::now();
    let (status, body) = instances[instance].post(path, ADMIN, body).await;
    let mut ledger = ledger.lock().unwrap();
    ledger
        .writes
        .push((instance, sent, Instant::now(), status.is_success()));
    note_status(&mut ledger, status, path);
    status.is_success().then_some(body)
}

fn note_status(ledger: &mut Ledger, status: StatusCode, what: &str) {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        ledger.answered_503 += 1;
    } else if status.is_server_error() || status.is_client_error() {
        ledger.violations.push(format!("{what} answered {status}"));
    }
}

/// Verifies `key` through `instance`; a `valid` answer for a key whose end was acknowledged
/// before the request was sent breaks the rule.
async fn check(instances: &[TestApp; 2], ledger: &Mutex<Ledger>, instance: usize, key: &str) {
    let sent = Instant::now();
    let (status, body) = instances[instance].verify(ADMIN, key).await;
    let mut ledger = ledger.lock().unwrap();
    note_status(&mut ledger, status, "POST /verify");
    if body["code"] != "valid" {
        return;
    }
    let ended = ledger
        .ended
        .iter()
        .find(|(ended, _, _)| ended == key)
        .map(|(_, by, at)| (*by, *at));
    if let Some((by, at)) = ended {
        if at < sent && (by == instance || at + DELIVERY_WINDOW < sent) {
            ledger.violations.push(format!(
                "an ended key verified valid on instance {instance} {:?} after instance {by} \
                 acknowledged its end",
                sent - at
            ));
        } else if at < sent {
            ledger.valid_in_delivery_window += 1;
        }
    }
}

/// A pg_auto_failover formation on loopback ports in a temporary directory: its processes are
/// killed (by process group) and the directory removed on drop.
struct Formation {
    dir: tempfile::TempDir,
    monitor_port: u16,
    nodes: Vec<(u16, Child)>,
    monitor: Child,
}

impl Formation {
    async fn start() -> Formation {
        let dir = tempfile::tempdir().unwrap();
        chown_postgres(dir.path());
        let [monitor_port, first, second] = free_ports();
        let monitor = pg_autoctl(dir.path(), "monitor")
            .args(["create", "monitor", "--pgdata"])
            .arg(dir.path().join("monitor"))
            .args(["--pgport", &monitor_port.to_string()])
            .args([
                "--hostname",
                "127.0.0.1",
                "--auth",
                "trust",
                "--no-ssl",
                "--run",
            ])
            .spawn()
            .unwrap();
        let mut formation = Formation {
            dir,
            monitor_port,
            nodes: Vec::new(),
            monitor,
        };
        let started = Instant::now();
        formation
            .until("the monitor is up", |monitor| {
                Box::pin(async move {
                    sqlx::query_scalar::<_, i64>(
                        "SELECT count(*) FROM pg_extension WHERE extname = 'pgautofailover'",
                    )
                    .fetch_one(monitor)
                    .await
                    .is_ok_and(|n| n == 1)
                })
            })
            .await;
        // The monitor's health checks and its wait for a lost primary to demote itself,
        // tightened from tens of seconds to a few so that a dead primary is replaced within
        // the test's time.
        let mut monitor = formation.monitor_connection().await.unwrap();
        for (setting, value) in [
            ("health_check_period", 1000),
            ("health_check_timeout", 1000),
            ("health_check_max_retries", 1),
            ("health_check_retry_delay", 500),
            ("node_considered_unhealthy_timeout", 3000),
            // How long the monitor gives a lost primary to demote itself before it promotes
            // the standby (30 s by default): a lost primary's keeper demotes it on its own
            // after its network partition timeout, so the standby must not be promoted first.
            ("primary_demote_timeout", 5000),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "ALTER SYSTEM SET pgautofailover.{setting} = {value}"
            )))
            .execute(&mut monitor)
            .await
            .unwrap();
        }
        sqlx::raw_sql("SELECT pg_reload_conf()")
            .execute(&mut monitor)
            .await
            .unwrap();
        formation.add_node(first, "single").await;
        formation.add_node(second, "secondary").await;
        formation.wait_stable().await;
        eprintln!(
            "failover: formation of 2 nodes ready in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        formation
    }

    async fn add_node(&mut self, port: u16, state: &'static str) {
        let name = format!("node{}", self.nodes.len() + 1);
        let monitor = format!(
            "postgres://autoctl_node@127.0.0.1:{}/pg_auto_failover?sslmode=disable",
            self.monitor_port
        );
        let child = pg_autoctl(self.dir.path(), &name)
            .args(["create", "postgres", "--pgdata"])
            .arg(self.dir.path().join(&name))
            .args(["--pgport", &port.to_string(), "--hostname", "127.0.0.1"])
            .args(["--monitor", &monitor, "--dbname", "keygate"])
            .args(["--auth", "trust", "--no-ssl", "--run"])
            .spawn()
            .unwrap();
        self.nodes.push((port, child));
        let primary = self.nodes[0].0;
        self.until(state, move |monitor| {
            Box::pin(async move {
                // A base backup waits for a checkpoint spread over minutes; asking for one
                // at once ends that wait.
                if let Ok(mut primary) = sqlx::PgConnection::connect(&format!(
                    "postgres://postgres@127.0.0.1:{primary}/postgres?sslmode=disable"
                ))
                .await
                {
                    let _ = sqlx::raw_sql("CHECKPOINT").execute(&mut primary).await;
                }
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM pgautofailover.node
                     WHERE nodeport = $1 AND reportedstate::text = $2",
                )
                .bind(i32::from(port))
                .bind(state)
                .fetch_one(monitor)
                .await
                .is_ok_and(|n| n == 1)
            })
        })
        .await;
    }

    /// Until a primary and a secondary are each where the monitor wants them.
    async fn wait_stable(&self) {
        self.until("a primary and a secondary", |monitor| {
            Box::pin(async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM pgautofailover.node
                     WHERE reportedstate = goalstate
                       AND goalstate::text IN ('primary', 'secondary')",
                )
                .fetch_one(monitor)
                .await
                .is_ok_and(|n| n == 2)
            })
        })
        .await;
    }

    /// The formation's URL as `pg_autoctl show uri` prints it, with the user keygate connects
    /// as (the printed form names none).
    fn uri(&self) -> String {
        let out = pg_autoctl(self.dir.path(), "show-uri")
            .args(["show", "uri", "--formation", "default", "--pgdata"])
            .arg(self.dir.path().join("monitor"))
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        let uri = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(
            uri.contains(",127.0.0.1:") && uri.contains("target_session_attrs=read-write"),
            "{uri}"
        );
        eprintln!("failover: the formation's URL: {uri}");
        uri.replacen("postgres://", "postgres://postgres@", 1)
    }

    /// Switches the primary over; returns when `pg_autoctl` says it is done (the new primary
    /// promoted).
    async fn switch_over(&self) -> Instant {
        let out = pg_autoctl(self.dir.path(), "perform-failover")
            .args(["perform", "failover", "--pgdata"])
            .arg(self.dir.path().join("monitor"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Instant::now()
    }

    /// SIGKILL to the primary's keeper and Postgres, as a machine lost would leave them;
    /// returns when the monitor has promoted the standby (it reports itself primary, alone or
    /// waiting for a standby).
    async fn kill_primary(&self) -> Instant {
        let mut monitor = self.monitor_connection().await.unwrap();
        let port: i32 = sqlx::query_scalar(
            "SELECT nodeport FROM pgautofailover.node WHERE reportedstate = 'primary'",
        )
        .fetch_one(&mut monitor)
        .await
        .unwrap();
        let (_, child) = self
            .nodes
            .iter()
            .find(|(node, _)| i32::from(*node) == port)
            .unwrap();
        kill_group(child.id());
        self.until("a new primary", |monitor| {
            Box::pin(async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM pgautofailover.node
                     WHERE nodeport <> $1
                       AND reportedstate::text IN ('primary', 'wait_primary', 'single')",
                )
                .bind(port)
                .fetch_one(monitor)
                .await
                .is_ok_and(|n| n == 1)
            })
        })
        .await;
        Instant::now()
    }

    async fn monitor_connection(&self) -> Result<sqlx::PgConnection, sqlx::Error> {
        sqlx::PgConnection::connect(&format!(
            "postgres://postgres@127.0.0.1:{}/pg_auto_failover?sslmode=disable",
            self.monitor_port
        ))
        .await
    }

    /// Polls the monitor until `ready` holds, for at most 3 minutes (a formation on a busy
    /// 2-core machine takes up to a minute).
    async fn until(
        &self,
        what: &str,
        ready: impl for<'c> Fn(
            &'c mut sqlx::PgConnection,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'c>>,
    ) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Ok(mut monitor) = self.monitor_connection().await
                && ready(&mut monitor).await
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pg_auto_failover: not {what} after 3 minutes; logs in {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for Formation {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            kill_group(child.id());
            let _ = child.wait();
        }
        kill_group(self.monitor.id());
        let _ = self.monitor.wait();
    }
}

/// `pg_autoctl` as the `postgres` user, in a process group of its own (with the Postgres it
/// starts), its configuration under `dir` and its output in `dir/<log>.log`.
fn pg_autoctl(dir: &Path, log: &str) -> Command {
    use std::os::unix::process::CommandExt;
    let log = std::fs::File::create(dir.join(format!("{log}.log"))).unwrap();
    let mut command = Command::new("runuser");
    command
        .args(["-u", "postgres", "--", "env"])
        .arg(format!("PATH={PG_BIN}:/usr/bin:/bin"))
        .arg(format!("XDG_CONFIG_HOME={}", dir.join("config").display()))
        .arg(format!("XDG_DATA_HOME={}", dir.join("data").display()))
        .arg(PG_AUTOCTL)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0);
    command
}

/// SIGKILL to every process of the group `leader` leads (pg_autoctl and its Postgres; the
/// Postgres backends end on their postmaster's death).
fn kill_group(leader: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{leader}")])
        .status();
}

fn chown_postgres(dir: &Path) {
    let status = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

fn free_ports() -> [u16; 3] {
    let listeners: Vec<_> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

//! The database's own rate for the work keygate asks of it, the denominator of two benchmark
//! ratios: a point lookup of a secret by its digest (what a verification that misses the cache
//! reads), and a single-row insert committed on its own (what creating a key writes, once).
//! Opened as keygate opens the database (a pool of the same size; on SQLite, WAL and the same
//! busy timeout), driven by `concurrency` tasks for `seconds`. Prints operations per second.
//! Used by `bench/run.sh`.
//!
//! `cargo run --release --example db_baseline -- <database URL> lookup <digest hex> <concurrency> <seconds>`
//! `cargo run --release --example db_baseline -- <database URL> insert - <concurrency> <seconds>`

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

/// keygate's default `KEYGATE_DATABASE_MAX_CONNECTIONS`.
const POOL_SIZE: u32 = 16;
const LOOKUP: &str = "SELECT id, expires_at, revoked_at FROM secrets WHERE hash = $1";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, mode, digest, concurrency, seconds] = args.as_slice() else {
        eprintln!(
            "usage: db_baseline <database URL> lookup|insert <digest hex or -> <concurrency> <seconds>"
        );
        std::process::exit(2);
    };
    let concurrency: usize = concurrency.parse().expect("concurrency");
    let duration = Duration::from_secs(seconds.parse().expect("seconds"));
    let digest = match mode.as_str() {
        "lookup" => hex::decode(digest).expect("the digest in hex"),
        _ => Vec::new(),
    };
    // The same loop for both databases, over each one's pool.
    macro_rules! run {
        ($pool:expr, $id_type:literal, $time_type:literal) => {{
            let pool = $pool;
            if mode == "insert" {
                let table = format!(
                    "CREATE TABLE IF NOT EXISTS bench_inserts
                     (id {} PRIMARY KEY, name TEXT NOT NULL, created_at {} NOT NULL)",
                    $id_type, $time_type
                );
                sqlx::query(sqlx::AssertSqlSafe(table))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            let done = Arc::new(AtomicU64::new(0));
            let deadline = Instant::now() + duration;
            let tasks: Vec<_> = (0..concurrency)
                .map(|task| {
                    let (pool, done, digest, mode) =
                        (pool.clone(), done.clone(), digest.clone(), mode.clone());
                    tokio::spawn(async move {
                        let mut n = 0u64;
                        while Instant::now() < deadline {
                            if mode == "lookup" {
                                sqlx::query(LOOKUP)
                                    .bind(&digest)
                                    .fetch_optional(&pool)
                                    .await
                                    .unwrap();
                            } else {
                                sqlx::query(
                                    "INSERT INTO bench_inserts (id, name, created_at) VALUES ($1, $2, $3)",
                                )
                                .bind(uuid::Uuid::now_v7())
                                .bind(format!("bench-{task}-{n}"))
                                .bind(chrono::Utc::now())
                                .execute(&pool)
                                .await
                                .unwrap();
                            }
                            n += 1;
                        }
                        done.fetch_add(n, Ordering::Relaxed);
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            if mode == "insert" {
                sqlx::query("DROP TABLE bench_inserts")
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            done.load(Ordering::Relaxed)
        }};
    }
    let operations = if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)
            .unwrap()
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options)
            .await
            .unwrap();
        run!(pool, "BLOB", "TEXT")
    } else {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .test_before_acquire(false)
            .connect(url)
            .await
            .unwrap();
        run!(pool, "uuid", "timestamptz")
    };
    println!("{:.0}", operations as f64 / duration.as_secs_f64());
}

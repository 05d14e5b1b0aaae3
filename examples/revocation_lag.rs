//! Measures how long a revocation through one keygate instance takes to be refused by another
//! sharing its Postgres database: for each round, creates an agent through the first, warms the
//! second's cache with it, deletes it through the first, and polls the second until it answers
//! `not_found`. Prints the median and the maximum lag. Used by `bench/run.sh`.
//!
//! `cargo run --release --example revocation_lag -- <first base URL> <second base URL> <admin key> [rounds]`

use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, first, second, token, rest @ ..] = args.as_slice() else {
        eprintln!("usage: revocation_lag <first base URL> <second base URL> <admin key> [rounds]");
        std::process::exit(2);
    };
    let rounds: usize = rest.first().map_or(100, |n| n.parse().expect("rounds"));
    let client = reqwest::Client::new();
    let verify = |key: String| {
        let request = client
            .post(format!("{second}/verify"))
            .bearer_auth(token)
            .json(&json!({"key": key}));
        async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            body["code"].as_str().unwrap_or_default().to_owned()
        }
    };
    let mut lags = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let name = format!("lag-{round}-{}", std::process::id());
        let created: Value = client
            .post(format!("{first}/agents"))
            .bearer_auth(token)
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let dsn = created["token"].as_str().expect("agent created").to_owned();
        for _ in 0..2 {
            assert_eq!(verify(dsn.clone()).await, "valid");
        }
        let deleted = client
            .delete(format!("{first}/agents/{name}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(deleted.status().is_success());
        let committed = Instant::now();
        while verify(dsn.clone()).await != "not_found" {
            assert!(
                committed.elapsed() < Duration::from_secs(10),
                "never refused"
            );
        }
        lags.push(committed.elapsed());
    }
    lags.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "revocation lag over {rounds} rounds: median {:.2} ms, max {:.2} ms",
        ms(lags[lags.len() / 2]),
        ms(lags[lags.len() - 1])
    );
}

//! Crash safety: the real binary, killed with SIGKILL in the middle of a stream of
//! machine-identity creations and rotations, restarts on the same database with every identity
//! whole (a credential for each of its connections) and no credential without its identity;
//! every creation it acknowledged is there.

use std::time::Duration;

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{KeygateProcess, count_rows, figures};
use crate::common::{Backend, on_both_backends};

on_both_backends!(kill_9_during_creations_and_rotations_leaves_no_partial_identity);

const CRASHES: usize = 3;
const WORKERS: usize = 4;
const CONNECTIONS: [(&str, &str); 3] = [
    ("crash-pg", "postgres"),
    ("crash-ssh", "ssh"),
    ("crash-mysql", "mysql"),
];

/// Identities whose connection lacks its current credential.
const INCOMPLETE: &str = "SELECT COUNT(*) FROM machine_identity_connections c WHERE NOT EXISTS \
     (SELECT 1 FROM secrets s WHERE s.owner_id = c.identity_id AND s.slot = c.slot \
      AND s.rotated_at IS NULL)";
/// Current machine credentials of no identity's connection.
const ORPHANED: &str = "SELECT COUNT(*) FROM secrets s WHERE s.kind = 'machine_credential' \
     AND s.rotated_at IS NULL AND NOT EXISTS (SELECT 1 FROM machine_identity_connections c \
     WHERE c.identity_id = s.owner_id AND c.slot = s.slot)";

/// Creates identities and rotates their credentials until the server stops answering; returns
/// the names of the identities whose creation was acknowledged, and the rotations acknowledged.
async fn stream(server: &KeygateProcess, worker: usize, crash: usize) -> (Vec<String>, usize) {
    let (mut created, mut rotated) = (Vec::new(), 0);
    for i in 0.. {
        let name = format!("crash-{crash}-{worker}-{i}");
        let body = json!({"name": name, "connection_names": CONNECTIONS.map(|(name, _)| name)});
        match server
            .send(Method::POST, "/machineidentities", Some(body))
            .await
        {
            Some(StatusCode::CREATED) => created.push(name.clone()),
            Some(status) => panic!("creating {name}: {status}"),
            None => break,
        }
        let path = format!(
            "/machineidentities/{name}/credentials/{}/rotate",
            CONNECTIONS[i % 3].0
        );
        match server.send(Method::POST, &path, Some(json!({}))).await {
            Some(StatusCode::CREATED) => rotated += 1,
            Some(status) => panic!("rotating {path}: {status}"),
            None => break,
        }
    }
    (created, rotated)
}

async fn kill_9_during_creations_and_rotations_leaves_no_partial_identity(backend: Backend) {
    let mut server = KeygateProcess::start(backend).await;
    server.create_connections("crash-agent", &CONNECTIONS).await;
    let (mut acknowledged, mut rotations) = (Vec::new(), 0);
    for crash in 0..CRASHES {
        let workers = join_all((0..WORKERS).map(|worker| stream(&server, worker, crash)));
        let killer = async {
            tokio::time::sleep(Duration::from_millis(700 + 300 * crash as u64)).await;
            server.kill();
        };
        let (streams, ()) = tokio::join!(workers, killer);
        for (created, rotated) in streams {
            acknowledged.extend(created);
            rotations += rotated;
        }
        server.restart().await;
    }

    let (status, identities) = server.get("/machineidentities?limit=1000").await;
    assert_eq!(status, StatusCode::OK);
    let identities = identities.as_array().unwrap();
    for identity in identities {
        assert_eq!(
            identity["credentials"].as_array().unwrap().len(),
            CONNECTIONS.len(),
            "every identity has a credential for each connection: {identity}"
        );
    }
    for name in &acknowledged {
        assert!(
            identities.iter().any(|identity| identity["name"] == *name),
            "{name} was acknowledged, so it survived the crash"
        );
    }
    let url = server.database_url();
    assert_eq!(
        count_rows(&url, INCOMPLETE).await,
        0,
        "no identity lost a credential"
    );
    assert_eq!(
        count_rows(&url, ORPHANED).await,
        0,
        "no credential is orphaned"
    );
    server.assert_logs_hold_no_secret();
    figures(
        "crash safety",
        backend,
        format_args!(
            "kills={CRASHES} creations_acknowledged={} rotations_acknowledged={rotations} \
             identities_after={} incomplete=0 orphaned=0 lost_acknowledged=0",
            acknowledged.len(),
            identities.len()
        ),
    );
}

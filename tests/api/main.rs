//! keygate's behaviour, spoken over HTTP to the real server, on SQLite and Postgres.

mod common;

mod agentex;
mod agents;
mod api_keys;
mod audit;
mod cache;
mod cli;
mod connections;
mod console;
mod cors;
mod docs;
mod expiry;
mod failover;
mod idempotency;
mod input;
mod lifecycle;
mod logs;
mod machine_identities;
mod metrics;
mod ops_manager;
mod orgs;
mod pagination;
mod reliability;
mod scan;
mod secret_scanning;
mod server;
mod server_key;
mod storage;
mod traces;
mod usage;
mod verify;

//! keygate's behaviour, spoken over HTTP to the real server, on SQLite and Postgres.

mod common;

mod agentex;
mod agents;
mod api_keys;
mod input;
mod lifecycle;
mod logs;
mod orgs;
mod server;
mod storage;
mod verify;

//! The domain on the ground floor: what organizations, API keys, agents and stored secrets are,
//! and the rules their names and lifecycles follow. Storage, verification and the HTTP layer
//! build on these types; they depend only on the error type and the secret machinery.

pub mod agent;
pub mod agentex;
pub mod audit;
pub mod connections;
pub mod machine_credential;
pub mod machine_identities;
pub mod ops_manager;
pub mod org;
pub mod page;
pub mod policy;
pub mod secret;

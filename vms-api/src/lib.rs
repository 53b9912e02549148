//! The central control plane: registry, directory, users, tokens, audit.

pub mod authz;
pub mod config;
pub mod pki;
pub mod store;
pub mod users;

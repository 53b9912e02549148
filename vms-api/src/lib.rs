//! The central control plane: registry, directory, users, tokens, audit.

pub mod audit;
pub mod config;
pub mod pki;
pub mod store;

//! The central control plane: registry, directory, users, tokens, audit.

pub mod catalog;
pub mod config;
pub mod pki;
pub mod registry;
pub mod store;

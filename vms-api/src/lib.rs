//! The central control plane: registry of recorders, the national camera directory,
//! federated queries, users and roles, media tokens and audit. It holds no video.

pub mod api;
pub mod audit;
pub mod authz;
pub mod catalog;
pub mod channel;
pub mod config;
pub mod federation;
pub mod pki;
pub mod regions;
pub mod registry;
pub mod service;
pub mod store;
pub mod users;

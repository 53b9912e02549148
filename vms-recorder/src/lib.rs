//! The regional recorder: ingest from cameras, the crash-safe archive, and its HTTP API.

pub mod api;
pub mod archive;
pub mod audit;
pub mod auth;
pub mod cameras;
pub mod catalog;
pub mod checks;
pub mod clock;
pub mod config;
pub mod conformance;
pub mod evidence;
pub mod holds;
pub mod ingest;
pub mod journal;
pub mod link;
pub mod media;
pub mod recording;
pub mod service;
pub mod supervisor;

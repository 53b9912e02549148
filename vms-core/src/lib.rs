//! Shared domain types of the network: errors, ids, region codes and the region tree, registry
//! numbers, time and time quality, the reasons a recording can have a gap, media tokens and the
//! audit chain. Plain Rust; no server framework, no other crate of ours.

pub mod audit;
pub mod error;
pub mod gap;
pub mod hex;
pub mod id;
pub mod keyfile;
pub mod region;
pub mod registry;
pub mod text;
pub mod time;
pub mod token;
pub mod wire;

pub use error::{Error, ErrorKind, IoResultExt, ResultExt};

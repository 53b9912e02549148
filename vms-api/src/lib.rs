//! The central control plane: registry, directory, users, tokens, audit.

pub mod regions;

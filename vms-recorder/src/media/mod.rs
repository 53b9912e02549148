//! Media that the recorder computes on demand from its archive.

pub mod decode;

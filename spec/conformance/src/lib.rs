//! The library half of `vms-conformance`: the OpenAPI validation of answers, which our own
//! drift check (`tests/tests/openapi/`) shares with the suite.

pub mod openapi;

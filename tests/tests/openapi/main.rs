//! The OpenAPI documents of `spec/openapi/` against the code, so that CI fails when the two
//! drift apart. Every document gets the same checks:
//!
//! - **The document itself:** every `$ref` resolves (into it or a sibling document), every
//!   operation is complete, and every example is valid; plus each API's own extensions
//!   (`x-token-purposes` of the recorder, `x-permission` of central against the role table of
//!   `spec/central-roles.md`, `x-served-by` of the channel).
//! - **Declared routes:** a small scanner reads the `.route("…", get(…).post(…))` calls of the
//!   code (no Rust parsing beyond tokens); their (method, path) pairs must be exactly the
//!   document's operations:
//!   - `recorder.yaml` — `vms-recorder/src`;
//!   - `central.yaml` — `vms-api/src/api/` (the client API);
//!   - `channel.yaml` — its central paths: `vms-api/src/api.rs` (the enrolment router); its
//!     recorder paths must be among the recorder's routes (and in `recorder.yaml`).
//! - **Served routes:** a real server answers every documented operation with something other
//!   than its router's fallback (`404 not_found "no such endpoint"`) or `405`, and answers
//!   every undocumented method of a documented path with one of those.
//! - **Responses:** every operation is driven without a token (401), with the administrator's
//!   (a valid session, for central), and with invalid requests. Each answer's status must be
//!   documented for its operation, its documented headers present, its media type the
//!   documented one, and its body valid against the documented schema. Request bodies are
//!   checked against the request schemas too: the valid ones must be valid there, and the ones
//!   the server refuses must be invalid there.
//!
//! Failures are collected and reported together, one line each.

use std::path::{Path, PathBuf};

mod central;
mod document;
mod probe;
mod recorder;
mod scan;
mod spec;

use spec::Spec;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

#[test]
fn the_recorder_document_is_consistent() {
    document::assert_consistent(&Spec::load("recorder.yaml"), &recorder::operation_rules);
}

#[test]
fn the_central_document_is_consistent() {
    let roles = central::RoleTable::load();
    document::assert_consistent(&Spec::load("central.yaml"), &|spec, name, op, _| {
        roles.operation_rules(spec, name, op)
    });
}

#[test]
fn the_channel_document_is_consistent() {
    document::assert_consistent(
        &Spec::load("channel.yaml"),
        &document::served_by_rule(&["central", "recorder"]),
    );
}

/// The routes the recorder's source declares are exactly the recorder document's operations.
#[test]
fn recorder_routes_match_the_document() {
    document::assert_routes_match(&Spec::load("recorder.yaml"), None, "vms-recorder/src");
}

/// The routes of central's client API are exactly the central document's operations.
#[test]
fn central_routes_match_the_document() {
    document::assert_routes_match(&Spec::load("central.yaml"), None, "vms-api/src/api");
}

/// Central's enrolment router serves exactly the channel document's central paths; the
/// recorder serves its recorder paths, and documents them itself too.
#[test]
fn channel_routes_match_the_documents() {
    let channel = Spec::load("channel.yaml");
    document::assert_routes_match(&channel, Some("central"), "vms-api/src/api.rs");
    document::assert_routes_declared(&channel, "recorder", "vms-recorder/src");
    let recorder = Spec::load("recorder.yaml").operations();
    let undocumented: Vec<String> = channel
        .operations_of(Some("recorder"))
        .into_iter()
        .filter(|op| !recorder.contains(op))
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert!(
        undocumented.is_empty(),
        "recorder.yaml lacks the channel's recorder operations {undocumented:?}"
    );
}

//! Schemathesis, a property-based tester of HTTP APIs that we did not write (PyPI, installed
//! into `.venv/` by `deploy/setup.sh`), against a live central and a live recorder: requests
//! generated from every operation of `spec/openapi/central.yaml` and
//! `spec/openapi/recorder.yaml` (examples, boundary and invalid values, random fuzzing), with
//! the administrator's credentials. No answer may be a server error, and every answer must be
//! as the document says: a documented status, content type and headers, and a body valid
//! against its schema.
//!
//! The seed is fixed, so that a failure reproduces; the number of cases per operation is
//! bounded, so that each run takes about a minute or less.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vms_tests::central::{CentralDirs, RemoteCentral};
use vms_tests::recorder::{ADMIN_TOKEN, RecorderDirs, RemoteRecorder};

/// Where `deploy/setup.sh` installs schemathesis, relative to the workspace root.
const SCHEMATHESIS: &str = ".venv/bin/st";
/// Generated cases per operation and phase.
const MAX_EXAMPLES: &str = "100";
const SEED: &str = "20261126";
/// What every answer is checked for.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// Runs schemathesis on `document` against the server at `base`, with `token`, leaving out
/// the operations `excluded` (by operation id); panics with its report if it finds anything.
fn schemathesis(document: &str, base: &str, token: &str, excluded: &[&str]) {
    let root = workspace_root();
    let st = root.join(SCHEMATHESIS);
    assert!(
        st.exists(),
        "{} is missing: run deploy/setup.sh, which installs schemathesis",
        st.display()
    );
    // Its working files (crash records, example database) go to a directory of their own,
    // where no schemathesis.toml of the repository applies.
    let scratch = tempfile::tempdir().expect("a temp dir");
    let mut command = Command::new(&st);
    command
        .current_dir(scratch.path())
        .arg("run")
        .arg(root.join(document))
        .arg("--no-color")
        .args(["--url", base])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", SEED])
        .args(["--generation-database", "none"])
        .args(["--request-timeout", "30"]);
    for id in excluded {
        command.args(["--exclude-operation-id", id]);
    }
    let out = command.output().expect("schemathesis runs");
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}");
    assert!(
        out.status.success(),
        "schemathesis found answers that break {document} ({}):\n{report}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Central's client API. Logging out would end the session the run uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_wrong_with_central() {
    let dirs = CentralDirs::new("");
    let central = RemoteCentral::start(&dirs).expect("central starts");
    let token = central
        .login("admin", &dirs.admin_password)
        .await
        .expect("the administrator logs in");
    let base = central.url("");
    tokio::task::spawn_blocking(move || {
        schemathesis("spec/openapi/central.yaml", &base, &token, &["logout"])
    })
    .await
    .expect("the run completes");
    central
        .process
        .terminate(Duration::from_secs(20))
        .expect("central stops");
}

/// The recorder's API. The event stream never ends, so it is left out (the drift test reads
/// it). So are adding and changing cameras: generated camera URLs would make the recorder dial
/// hosts other than this machine's loopback (the drift test covers both operations with
/// cameras on 127.0.0.1).
#[test]
fn schemathesis_finds_nothing_wrong_with_the_recorder() {
    let dirs = RecorderDirs::new("");
    let log = dirs.config.with_file_name("recorder.log");
    let recorder = RemoteRecorder::start_logged(&dirs, "error", &log).expect("the recorder starts");
    schemathesis(
        "spec/openapi/recorder.yaml",
        &recorder.url(""),
        ADMIN_TOKEN,
        &["channelEvents", "addCamera", "updateCamera"],
    );
    recorder
        .process
        .terminate(Duration::from_secs(20))
        .expect("the recorder stops");
}

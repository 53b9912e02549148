//! End-to-end tests of the audit log: a log written by the library, checked by the real
//! `vms-recorder audit-verify` binary and by an independent shell implementation of the
//! spec's chain rule (sed and sha256sum).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use serde_json::{Map, json};
use vms_recorder::audit::{AUDIT_FILE, Action, Audit};
use vms_recorder::clock::RealClocks;
use vms_tests::process::workspace_binary;

/// `vms-recorder audit-verify` with `args`: the exit code and standard output.
fn audit_verify(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(workspace_binary("vms-recorder"))
        .arg("audit-verify")
        .args(args)
        .output()
        .expect("vms-recorder runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// spec/audit-log.md's rule, in shell: each line's hash is the SHA-256 of the line with its
/// final `,"hash":"…"` member removed, and each `prev` is the hash of the line before.
const SHELL_VERIFIER: &str = r#"
prev=0000000000000000000000000000000000000000000000000000000000000000
n=0
while IFS= read -r line; do
  n=$((n + 1))
  hash=$(printf '%s' "$line" | sed -n 's/.*,"hash":"\([0-9a-f]\{64\}\)"}$/\1/p')
  body=$(printf '%s' "$line" | sed 's/,"hash":"[0-9a-f]\{64\}"}$/}/')
  got=$(printf '%s' "$body" | sha256sum | cut -d' ' -f1)
  [ -n "$hash" ] && [ "$got" = "$hash" ] || { echo "line $n: bad hash"; exit 1; }
  link=$(printf '%s' "$body" | sed -n 's/.*"prev":"\([0-9a-f]\{64\}\)"}$/\1/p')
  [ "$link" = "$prev" ] || { echo "line $n: bad prev"; exit 1; }
  prev=$hash
done < "$1"
echo "$n $prev"
"#;

fn shell_verify(log: &Path) -> (bool, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(SHELL_VERIFIER)
        .arg("sh")
        .arg(log)
        .output()
        .expect("sh runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

#[test]
fn audit_log_verifies_and_tampering_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let audit = Audit::open(d, Arc::new(RealClocks)).expect("open");
    let camera = Some("01JD7Q0000000000000000000C".parse().expect("camera id"));
    let detail = |v: serde_json::Value| match v {
        serde_json::Value::Object(m) => m,
        _ => Map::new(),
    };
    audit
        .append("local-admin", Action::CameraAdded, camera, Map::new())
        .expect("append");
    audit
        .append(
            "investigator \"K\" \u{41a}\u{430}\u{437}",
            Action::EvidenceExport,
            camera,
            detail(json!({"case": "2026-017", "prev": "x", "note": "a,\"hash\":\"y\"}"})),
        )
        .expect("append");
    let last = audit
        .append("local-admin", Action::HoldPlaced, camera, Map::new())
        .expect("append");
    let head = audit.head();
    assert_eq!((head.seq, head.hash.as_str()), (3, last.hash.as_str()));
    let log = d.join(AUDIT_FILE);

    let (ok, shell) = shell_verify(&log);
    assert!(ok, "{shell}");
    assert_eq!(shell, format!("3 {}", head.hash));

    let data_dir = d.to_str().expect("UTF-8 path");
    let (code, out) = audit_verify(&["--data-dir", data_dir]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("VERIFIED: "), "{out}");
    assert!(
        out.contains(&format!("3 records, chain intact, head {head}")),
        "{out}"
    );
    let checkpoint = head.to_string();
    let (code, out) = audit_verify(&["--data-dir", data_dir, "--checkpoint", &checkpoint]);
    assert_eq!(code, Some(0), "{out}");

    // One edited record: both verifiers fail, ours naming the line.
    let text = std::fs::read_to_string(&log).expect("log");
    let edited = text.replacen("hold_placed", "hold_released", 1);
    assert_ne!(edited, text);
    let tampered = d.join("tampered.log");
    std::fs::write(&tampered, &edited).expect("write");
    let path = tampered.to_str().expect("UTF-8 path");
    let (code, out) = audit_verify(&["--log", path]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with(&format!(
            "FAILED: {path}: line 3 (seq 3): its hash does not match"
        )),
        "{out}"
    );
    assert!(!shell_verify(&tampered).0);

    // The newest record removed: consistent alone, caught by the checkpoint.
    let shorter: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(&tampered, shorter).expect("write");
    let (code, out) = audit_verify(&["--log", path]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = audit_verify(&["--log", path, "--checkpoint", &checkpoint]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("the log ends at seq 2: records were removed"),
        "{out}"
    );

    let (code, out) = audit_verify(&["--log", "/nonexistent/audit.log"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with("FAILED: opening /nonexistent/audit.log: "),
        "{out}"
    );
}

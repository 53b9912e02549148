//! End-to-end tests of evidence packages: a package built by the library from real files (random
//! bytes and an MP4 made by ffmpeg), checked by the real `vms-recorder verify` binary and by
//! tools we did not write: GNU tar, `sha256sum -c` and `openssl pkeyutl -verify`; and a package
//! a real recorder exports with a certificate from a national root, whose chain both
//! `vms-recorder verify --trusted-root` and `openssl verify` check.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ED25519, SanType, SubjectPublicKeyInfo, date_time_ymd,
};
use vms_core::gap::EndReason;
use vms_core::time::{Time90k, TimeQuality};
use vms_core::wire::{self, EvidenceManifest};
use vms_recorder::evidence::{
    CameraInfo, ExportInfo, GapInfo, PackageWriter, SigningKey, package_len,
};
use vms_tests::process::workspace_binary;
use vms_tests::recorder::{RecorderDirs, RemoteRecorder, camera_toml, eventually, now, sim};

fn t(s: &str) -> Time90k {
    Time90k::parse_rfc3339(s).expect("RFC 3339")
}

fn info() -> ExportInfo {
    ExportInfo {
        recorder: "01JD7Q0000000000000000000R".parse().expect("recorder id"),
        camera: CameraInfo {
            id: "01JD7Q0000000000000000000C".parse().expect("camera id"),
            name: "Gate 1".into(),
            region: "751110000".parse().expect("region"),
            code: None,
        },
        stream: "main".into(),
        requested: (t("2026-11-26T12:00:00Z"), t("2026-11-26T12:05:00Z")),
        delivered: (t("2026-11-26T12:00:00Z"), t("2026-11-26T12:04:58Z")),
        gaps: vec![GapInfo {
            start: t("2026-11-26T12:02:00Z"),
            end: t("2026-11-26T12:02:09Z"),
            reason: EndReason::Stall,
        }],
        time_quality: TimeQuality {
            recorder_synced: true,
            recorder_error_ms: Some(8),
            camera_offset_ms: Some(1200),
        },
        operator: "investigator.nurlanova".into(),
        case: "2026-017".into(),
        reason: "hit and run, Abay Ave".into(),
        exported: t("2026-11-27T08:00:00Z"),
    }
}

/// The two media files: 3 MiB of random bytes and a 2 s H.264 MP4 from ffmpeg.
fn media(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let random = dir.join("random.bin");
    let mut bytes = vec![0u8; 3 << 20];
    rand::rng().fill_bytes(&mut bytes);
    std::fs::write(&random, &bytes).expect("write random.bin");
    let clip = dir.join("clip.mp4");
    run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i"])
            .arg("testsrc=size=320x240:rate=15")
            .args(["-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
            .arg(&clip),
    );
    vec![("random.bin", random), ("clip.mp4", clip)]
}

/// The signing key of a recorder whose data directory is `dir`.
fn key_in(dir: &Path) -> SigningKey {
    std::fs::create_dir_all(dir).expect("data dir");
    SigningKey::load_or_create(dir).expect("signing key")
}

/// Builds a package with the library, streaming each file from disk; its length is the one
/// `package_len` announced before.
fn build(path: &Path, key: &SigningKey, files: &[(&str, PathBuf)]) {
    let out = std::fs::File::create(path).expect("create package");
    let mut w = PackageWriter::new(std::io::BufWriter::new(out), info(), key).expect("info");
    let mut plan = Vec::new();
    for (name, file) in files {
        let f = std::fs::File::open(file).expect("open media");
        let len = f.metadata().expect("stat media").len();
        plan.push((*name, len));
        w.add_media(name, f, len).expect("add media");
    }
    w.finish().expect("finish package");
    let announced = package_len(&info(), key, &plan).expect("package length");
    let written = std::fs::metadata(path).expect("stat package").len();
    assert_eq!(written, announced);
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `vms-recorder verify`: the exit code and standard output.
fn verify(package: &Path, trusted_key: Option<&Path>) -> (Option<i32>, String) {
    let options: Vec<&OsStr> = match trusted_key {
        Some(k) => vec!["--trusted-key".as_ref(), k.as_ref()],
        None => Vec::new(),
    };
    verify_with(package, &options)
}

/// `vms-recorder verify` with `options`: the exit code and standard output.
fn verify_with(package: &Path, options: &[&OsStr]) -> (Option<i32>, String) {
    let mut cmd = Command::new(workspace_binary("vms-recorder"));
    cmd.arg("verify").arg(package).args(options);
    let out = run(&mut cmd);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn assert_verified(package: &Path, trusted_key: Option<&Path>) -> String {
    let (code, out) = verify(package, trusted_key);
    assert_eq!(code, Some(0), "{}: {out}", package.display());
    assert!(
        out.starts_with(
            "VERIFIED: 2 files, case 2026-017, camera Gate 1 (01JD7Q0000000000000000000C"
        ),
        "{out}"
    );
    out
}

/// Fails cleanly (exit 1, not a panic's 101) with a reason containing `want`.
fn assert_failed(package: &Path, trusted_key: Option<&Path>, want: &str) {
    let (code, out) = verify(package, trusted_key);
    assert_eq!(code, Some(1), "{}: {out}", package.display());
    assert!(out.starts_with("FAILED: "), "{out}");
    assert!(out.contains(want), "wanted {want:?} in {out}");
}

/// Where each entry's data starts, from GNU tar's own listing (`-R` gives header blocks).
fn data_offsets(package: &Path) -> Vec<(String, u64)> {
    let listing = run_ok(Command::new("tar").arg("-tvRf").arg(package));
    listing
        .lines()
        .filter(|l| !l.contains("** Block of NULs **"))
        .map(|l| {
            let block: u64 = l
                .strip_prefix("block ")
                .and_then(|r| r.split(':').next())
                .and_then(|b| b.trim().parse().ok())
                .unwrap_or_else(|| panic!("unexpected tar listing line {l:?}"));
            let name = l.split_whitespace().last().expect("name").to_owned();
            (name, (block + 1) * 512)
        })
        .collect()
}

#[test]
fn packages_verify_with_our_verifier_and_standard_tools() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let files = media(d);
    let key = key_in(&d.join("recorder"));
    let package = d.join("evidence.tar");
    build(&package, &key, &files);

    let out = assert_verified(&package, None);
    assert!(out.contains("NOT checked against a trusted key"), "{out}");

    // GNU tar reads it, in the specified order, and extracts the very same bytes.
    let offsets = data_offsets(&package);
    let names: Vec<&str> = offsets.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "media/random.bin",
            "media/clip.mp4",
            "SHA256SUMS",
            "manifest.json",
            "manifest.sig",
            "recorder-key.pem"
        ]
    );
    let x = d.join("extracted");
    std::fs::create_dir(&x).expect("mkdir");
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&package)
            .arg("-C")
            .arg(&x),
    );
    for (name, original) in &files {
        let extracted = std::fs::read(x.join("media").join(name)).expect("extracted media");
        assert!(
            extracted == std::fs::read(original).expect("original"),
            "{name}"
        );
    }

    // The manual checks of spec/evidence-package.md, with the real tools.
    let sums = run_ok(
        Command::new("sha256sum")
            .args(["-c", "SHA256SUMS"])
            .current_dir(&x),
    );
    assert_eq!(sums, "media/random.bin: OK\nmedia/clip.mp4: OK\n");
    let openssl_verify = |dir: &Path| {
        run(Command::new("openssl")
            .args([
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "recorder-key.pem",
                "-rawin",
            ])
            .args(["-in", "manifest.json", "-sigfile", "manifest.sig"])
            .current_dir(dir))
    };
    let ok = openssl_verify(&x);
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        "Signature Verified Successfully\n"
    );
    let fingerprint = run_ok(
        Command::new("sh")
            .args([
                "-c",
                "openssl pkey -pubin -in recorder-key.pem -outform DER | sha256sum",
            ])
            .current_dir(&x),
    );
    let manifest: EvidenceManifest =
        serde_json::from_slice(&std::fs::read(x.join("manifest.json")).expect("manifest"))
            .expect("manifest parses");
    assert_eq!(
        fingerprint,
        format!("{}  -\n", manifest.recorder_key_sha256)
    );
    assert_eq!(manifest.recorder_key_sha256, key.public_key().fingerprint());
    // The same tools refuse altered files: the checks above can fail.
    let mut altered = std::fs::read(x.join("manifest.json")).expect("manifest");
    altered[10] ^= 1;
    std::fs::write(x.join("manifest.json"), &altered).expect("write");
    assert!(!openssl_verify(&x).status.success());
    let mut clip = std::fs::read(x.join("media/clip.mp4")).expect("clip");
    clip[100] ^= 1;
    std::fs::write(x.join("media/clip.mp4"), &clip).expect("write");
    let bad = run(Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&x));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stdout).contains("media/clip.mp4: FAILED"));

    // Repacked by GNU tar from the untouched files, the package still verifies.
    let y = d.join("again");
    std::fs::create_dir(&y).expect("mkdir");
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&package)
            .arg("-C")
            .arg(&y),
    );
    let repacked = d.join("repacked.tar");
    run_ok(
        Command::new("tar")
            .args(["--format=ustar", "-cf"])
            .arg(&repacked)
            .arg("-C")
            .arg(&y)
            .args(&names),
    );
    assert_verified(&repacked, None);

    // One flipped byte in any file fails, naming the file.
    let bytes = std::fs::read(&package).expect("package");
    for (name, offset) in &offsets {
        if name == "recorder-key.pem" {
            continue;
        }
        let mut flipped = bytes.clone();
        flipped[*offset as usize + 20] ^= 0x40;
        let path = d.join("flipped.tar");
        std::fs::write(&path, &flipped).expect("write");
        assert_failed(&path, None, name);
    }
}

#[test]
fn a_package_signed_by_another_key_fails_against_the_trusted_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let files = media(d);
    let ours = key_in(&d.join("ours"));
    let theirs = key_in(&d.join("theirs"));
    let trusted = d.join("trusted.pem");
    std::fs::write(&trusted, ours.public_key().pem()).expect("write key");

    let genuine = d.join("genuine.tar");
    build(&genuine, &ours, &files);
    let out = assert_verified(&genuine, Some(&trusted));
    assert!(out.contains("the trusted key given"), "{out}");

    let forged = d.join("resigned.tar");
    build(&forged, &theirs, &files);
    assert_verified(&forged, None);
    assert_failed(
        &forged,
        Some(&trusted),
        "recorder-key.pem: not the trusted key",
    );
}

#[test]
fn hostile_archives_fail_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let files = media(d);
    let key = key_in(&d.join("recorder"));
    let package = d.join("evidence.tar");
    build(&package, &key, &files);
    let bytes = std::fs::read(&package).expect("package");

    // GNU tar keeps a "../" member name when told to (-P).
    let inner = d.join("inner");
    std::fs::create_dir(&inner).expect("mkdir");
    std::fs::write(d.join("x"), b"escape").expect("write");
    let escape = d.join("escape.tar");
    run_ok(
        Command::new("tar")
            .args(["--format=ustar", "-P", "-cf"])
            .arg(&escape)
            .arg("../x")
            .current_dir(&inner),
    );
    assert_failed(
        &escape,
        None,
        "entry \"../x\" at byte 0: path with a \"..\" component",
    );

    let link = d.join("link.tar");
    std::os::unix::fs::symlink("/etc/passwd", inner.join("evil")).expect("symlink");
    run_ok(
        Command::new("tar")
            .args(["--format=ustar", "-cf"])
            .arg(&link)
            .arg("evil")
            .current_dir(&inner),
    );
    assert_failed(&link, None, "symbolic link to \"/etc/passwd\"");

    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "half.tar",
            bytes[..bytes.len() / 2].to_vec(),
            "truncated archive",
        ),
        (
            "no-end.tar",
            bytes[..bytes.len() - 1024].to_vec(),
            "without the end-of-archive marker",
        ),
        ("empty.tar", Vec::new(), "without the end-of-archive marker"),
        (
            "garbage.tar",
            {
                let mut g = vec![0u8; 100_000];
                rand::rng().fill_bytes(&mut g);
                g
            },
            "byte 0",
        ),
    ];
    for (name, content, want) in cases {
        let path = d.join(name);
        std::fs::write(&path, content).expect("write");
        assert_failed(&path, None, want);
    }
    assert_failed(&d.join("missing.tar"), None, "cannot open");
}

/// A national root as central's `vms-api/src/pki.rs` makes it: an Ed25519 key and a
/// self-signed CA certificate (path length 0, keyCertSign and cRLSign).
struct Root {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// The subject names of `pki.rs`.
fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "vms national network");
    dn.push(DnType::CommonName, cn);
    dn
}

fn this_year() -> i32 {
    i32::from(jiff::Zoned::now().year())
}

fn national_root() -> Root {
    let key = KeyPair::generate_for(&PKCS_ED25519).expect("root key");
    let mut p = CertificateParams::default();
    p.distinguished_name = dn("vms national root");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = date_time_ymd(this_year() - 1, 1, 1);
    p.not_after = date_time_ymd(this_year() + 20, 1, 1);
    let pem = p.self_signed(&key).expect("root certificate").pem();
    Root {
        pem,
        issuer: Issuer::new(p, key),
    }
}

/// The recorder's certificate as central issues it at enrolment (`pki.rs`): subject CN and a
/// `urn:vms:recorder:` URI name the recorder, digitalSignature, clientAuth, about 825 days.
fn certify(root: &Root, recorder: &str, key_pem: &str) -> String {
    let spki = SubjectPublicKeyInfo::from_pem(key_pem).expect("recorder key");
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(recorder);
    p.subject_alt_names = vec![SanType::URI(
        format!("urn:vms:recorder:{recorder}")
            .try_into()
            .expect("URI"),
    )];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let mut serial: [u8; 16] = rand::random();
    serial[0] = serial[0] & 0x7f | 0x01; // positive, of the full length, as pki.rs makes it
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    p.use_authority_key_identifier_extension = true;
    p.not_before = date_time_ymd(this_year() - 1, 1, 1);
    p.not_after = date_time_ymd(this_year() + 1, 4, 5);
    p.signed_by(&spki, &root.issuer)
        .expect("recorder certificate")
        .pem()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_package_chains_to_the_national_root() {
    let sim = sim(
        "[[camera]]\nname = \"c\"\n[[camera.streams]]\nwidth = 320\nheight = 180\nfps = 15\n\
         gop_frames = 15\n",
    );
    let dirs = RecorderDirs::new(&camera_toml("c", &[("main", sim.url("c", "main", None))]));
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();

    // At its first start the recorder makes its key. Central would certify it at enrolment;
    // here a root of the test's own does, and the certificate goes where enrolment puts it.
    let rec = RemoteRecorder::start(&dirs).expect("recorder starts");
    let recorder = rec.ready.recorder.clone();
    let key: wire::EvidenceKey = rec.get("/api/v1/evidence/key").await.expect("key");
    assert_eq!(key.certificate_pem, None);
    rec.process
        .terminate(Duration::from_secs(20))
        .expect("recorder stops");
    let root = national_root();
    let certificate = certify(&root, &recorder, &key.public_key_pem);
    std::fs::write(dirs.data.join("evidence-cert.pem"), &certificate).expect("certificate");

    let rec = RemoteRecorder::start(&dirs).expect("recorder restarts");
    let again: wire::EvidenceKey = rec.get("/api/v1/evidence/key").await.expect("key");
    assert_eq!(again.public_key_pem, key.public_key_pem);
    assert_eq!(again.certificate_pem.as_deref(), Some(certificate.as_str()));
    let camera = rec.cameras().await.expect("cameras").cameras[0].id.clone();
    let from = now();
    let (start, end) = eventually(Duration::from_secs(30), || async {
        let l = rec
            .recordings(&camera, "main", &from.to_rfc3339(), &now().to_rfc3339())
            .await
            .ok()?;
        let frames: u64 = l.ranges.iter().map(|r| r.frames).sum();
        let (first, last) = (l.ranges.first()?, l.ranges.last()?);
        (frames >= 45).then(|| (first.start.clone(), last.end.clone()))
    })
    .await
    .expect("footage after the restart");
    let r = rec
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/cameras/{camera}/evidence"),
        )
        .json(
            &serde_json::json!({"stream": "main", "start": start, "end": end,
            "case": "KZ-2026-0107", "reason": "collision at the crossing",
            "operator": "Inspector Sarsenbayeva"}),
        )
        .send()
        .await
        .expect("evidence export");
    assert_eq!(r.status(), 200);
    let package = d.join("evidence.tar");
    std::fs::write(&package, r.bytes().await.expect("package")).expect("write package");

    let root_file = d.join("root.pem");
    std::fs::write(&root_file, &root.pem).expect("write root");
    // Another central's root: the same name, another key.
    let other_file = d.join("other-root.pem");
    std::fs::write(&other_file, national_root().pem).expect("write root");
    let key_file = d.join("trusted-key.pem");
    std::fs::write(&key_file, &key.public_key_pem).expect("write key");

    // GNU tar extracts it, and OpenSSL reads the certificate: its serial and its key.
    let x = d.join("extracted");
    std::fs::create_dir(&x).expect("mkdir");
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&package)
            .arg("-C")
            .arg(&x),
    );
    assert_eq!(
        std::fs::read_to_string(x.join("certificate.pem")).expect("certificate.pem"),
        certificate
    );
    let serial = run_ok(
        Command::new("openssl")
            .args(["x509", "-in", "certificate.pem", "-serial", "-noout"])
            .current_dir(&x),
    );
    let serial = serial
        .trim()
        .strip_prefix("serial=")
        .unwrap_or_else(|| panic!("openssl's serial line {serial:?}"))
        .to_owned();

    // Our verifier: the right root passes, naming the recorder and the certificate.
    let root_arg = ["--trusted-root".as_ref(), root_file.as_os_str()];
    let (code, out) = verify_with(&package, &root_arg);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("VERIFIED: "), "{out}");
    assert!(
        out.contains(&format!(
            "certified for recorder {recorder} by a trusted root"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "certificate.pem: recorder {recorder}, serial {serial}, valid "
        )),
        "{out}"
    );
    assert!(!out.contains("NOT checked"), "{out}");
    // Combined with the recorder's key, and among several roots.
    let (code, out) = verify_with(
        &package,
        &[
            "--trusted-key".as_ref(),
            key_file.as_os_str(),
            "--trusted-root".as_ref(),
            other_file.as_os_str(),
            "--trusted-root".as_ref(),
            root_file.as_os_str(),
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("the trusted key given, certified for recorder"),
        "{out}"
    );
    // Another root fails; a recorder's certificate is no root.
    let (code, out) = verify_with(
        &package,
        &["--trusted-root".as_ref(), other_file.as_os_str()],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with(
            "FAILED: certificate.pem: signature: does not verify with the key of the \
             trusted root"
        ),
        "{out}"
    );
    let (code, out) = verify_with(
        &package,
        &[
            "--trusted-root".as_ref(),
            x.join("certificate.pem").as_os_str(),
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("FAILED: --trusted-root "), "{out}");
    assert!(out.contains("certificate.pem: not self-signed"), "{out}");
    // Without a trusted key or root, the package is only self-consistent.
    let (code, out) = verify(&package, None);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("the package is only self-consistent"), "{out}");
    assert!(
        out.contains("certificate.pem: present, its chain NOT checked"),
        "{out}"
    );

    // OpenSSL agrees: the chain to the root, and the certificate's key is the package's.
    let openssl_verify = |root: &Path| {
        run(Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(root)
            .arg("certificate.pem")
            .current_dir(&x))
    };
    let ok = openssl_verify(&root_file);
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "certificate.pem: OK\n");
    assert!(!openssl_verify(&other_file).status.success());
    // At the export time too, as our verifier checks it.
    let manifest: EvidenceManifest =
        serde_json::from_slice(&std::fs::read(x.join("manifest.json")).expect("manifest"))
            .expect("manifest parses");
    assert_eq!(manifest.recorder, recorder);
    let exported = Time90k::parse_rfc3339(&manifest.exported).expect("exported");
    let at = (exported.unix_nanos() / 1_000_000_000).to_string();
    let ok = run(Command::new("openssl")
        .args(["verify", "-attime", &at, "-CAfile"])
        .arg(&root_file)
        .arg("certificate.pem")
        .current_dir(&x));
    assert!(ok.status.success(), "{ok:?}");
    // The commands of spec/evidence-package.md: the certified key is the package's (diff says
    // nothing), and the certificate names the recorder.
    let diff = run_ok(
        Command::new("sh")
            .args([
                "-c",
                "openssl x509 -in certificate.pem -pubkey -noout | diff - recorder-key.pem",
            ])
            .current_dir(&x),
    );
    assert_eq!(diff, "");
    let names = run_ok(
        Command::new("openssl")
            .args(["x509", "-in", "certificate.pem", "-noout", "-subject"])
            .args(["-ext", "subjectAltName"])
            .current_dir(&x),
    );
    assert!(
        names.contains(&format!("CN = {recorder}"))
            && names.contains(&format!("URI:urn:vms:recorder:{recorder}")),
        "{names}"
    );
    // The check can fail: another recorder's key differs.
    std::fs::write(
        x.join("recorder-key.pem"),
        key_in(&d.join("other")).public_key().pem(),
    )
    .expect("write key");
    let differs = run(Command::new("sh")
        .args([
            "-c",
            "openssl x509 -in certificate.pem -pubkey -noout | diff - recorder-key.pem",
        ])
        .current_dir(&x));
    assert!(!differs.status.success());
}

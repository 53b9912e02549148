//! Verifying an evidence package offline: its tar layout, the signature over the manifest,
//! the key's fingerprint and trust (a trusted key, a certificate chain to a trusted root, or
//! both), and the size and SHA-256 of every file. It streams the package once, hashing media
//! as they pass, holds only the small entries in memory (each under a cap checked before it
//! is read), and fails with a reason that names the file.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use sha2::{Digest, Sha256};
use vms_core::time::Time90k;
use vms_core::wire::{EVIDENCE_FORMAT, EvidenceManifest};
use vms_core::{Error, bail, err};

use super::chain::{Certified, TrustedRoot, check_chain};
use super::key::{MAX_CERTIFICATE_BYTES, PublicKey, check_certificate_pem};
use super::package::{
    CERTIFICATE, MANIFEST, MAX_MANIFEST_BYTES, MAX_MEDIA_FILES, MEDIA_DIR, PUBLIC_KEY, SIGNATURE,
    SUMS, check_media_name,
};
use super::tar::{Entry, TarReader};

/// What the package's own key is checked against. The default is nothing: the package then
/// proves that it is intact and signed by the key it carries, not whose key that is. The two
/// checks may be combined, and both must then pass.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// The package's key must be this one (a recorder's key obtained out of band).
    pub key: Option<PublicKey>,
    /// When not empty, the package must carry `certificate.pem`, issued for its key and its
    /// recorder by one of these roots and valid, as the root is, at the export time.
    pub roots: Vec<TrustedRoot>,
}

/// What became of the package's `certificate.pem`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertificateStatus {
    /// The package carries none.
    Absent,
    /// It is one PEM `CERTIFICATE` block; its chain was not checked (no trusted root given).
    Unchecked,
    /// It chains to a trusted root.
    Certified(Certified),
}

/// A package that verified, and what it says.
#[derive(Clone, Debug)]
pub struct Verified {
    pub manifest: EvidenceManifest,
    /// Media files (`media/*`) checked.
    pub media_files: usize,
    /// The package's key was the trusted key given.
    pub trusted_key: bool,
    pub certificate: CertificateStatus,
}

/// The most bytes of the small entries besides the manifest.
const MAX_SUMS_BYTES: u64 = 1 << 20;
const MAX_KEY_BYTES: u64 = 4096;
const SIGNATURE_BYTES: u64 = 64;

/// What a package entry is, by its name.
enum Kind {
    Media,
    Small(&'static str, u64),
}

fn classify(e: &Entry) -> Result<Kind, Error> {
    if let Some(name) = e.name.strip_prefix(MEDIA_DIR) {
        check_media_name(name).map_err(|why| {
            err!(
                DataLoss,
                "entry {:?} at byte {}: {}",
                e.name,
                e.offset,
                why.msg()
            )
        })?;
        return Ok(Kind::Media);
    }
    Ok(match e.name.as_str() {
        SUMS => Kind::Small(SUMS, MAX_SUMS_BYTES),
        MANIFEST => Kind::Small(MANIFEST, MAX_MANIFEST_BYTES as u64),
        SIGNATURE => Kind::Small(SIGNATURE, SIGNATURE_BYTES),
        PUBLIC_KEY => Kind::Small(PUBLIC_KEY, MAX_KEY_BYTES),
        CERTIFICATE => Kind::Small(CERTIFICATE, MAX_CERTIFICATE_BYTES as u64),
        _ => bail!(
            DataLoss,
            "unexpected entry {:?} at byte {}: a package holds only media/<name>, {SUMS}, \
             {MANIFEST}, {SIGNATURE}, {PUBLIC_KEY} and {CERTIFICATE}",
            e.name,
            e.offset
        ),
    })
}

/// Reads an entry's data through `each`, naming the entry if the archive ends inside it.
fn stream<R: Read>(
    tar: &mut TarReader<R>,
    name: &str,
    each: &mut dyn FnMut(&[u8]),
) -> Result<(), Error> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tar.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => each(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => bail!(DataLoss, "{name}: {e}"),
        }
    }
}

/// Verifies the package read from `package`. Every failure names the file at fault.
pub fn verify_package(package: impl Read, trust: &Trust) -> Result<Verified, Error> {
    let mut tar = TarReader::new(package);
    // media path -> (size, SHA-256)
    let mut media: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut small: BTreeMap<&'static str, Vec<u8>> = BTreeMap::new();
    while let Some(entry) = tar.next_entry()? {
        let duplicate = || err!(DataLoss, "{}: twice in the package", entry.name);
        match classify(&entry)? {
            Kind::Media => {
                if media.contains_key(&entry.name) {
                    return Err(duplicate());
                }
                if media.len() >= MAX_MEDIA_FILES {
                    bail!(
                        DataLoss,
                        "{}: more than the {MAX_MEDIA_FILES} media files a package may hold",
                        entry.name
                    );
                }
                let mut hash = Sha256::new();
                stream(&mut tar, &entry.name, &mut |b| hash.update(b))?;
                let sha = format!("{:x}", hash.finalize());
                media.insert(entry.name.clone(), (entry.size, sha));
            }
            Kind::Small(name, max) => {
                if small.contains_key(name) {
                    return Err(duplicate());
                }
                if entry.size > max {
                    bail!(
                        DataLoss,
                        "{name}: {} bytes, more than the {max} it may have",
                        entry.size
                    );
                }
                let mut data = Vec::with_capacity(entry.size as usize);
                stream(&mut tar, name, &mut |b| data.extend_from_slice(b))?;
                small.insert(name, data);
            }
        }
    }
    let take = |small: &mut BTreeMap<&str, Vec<u8>>, name: &str| {
        small
            .remove(name)
            .ok_or_else(|| err!(DataLoss, "{name}: missing from the package"))
    };
    let manifest_bytes = take(&mut small, MANIFEST)?;
    let signature = take(&mut small, SIGNATURE)?;
    let key_pem = take(&mut small, PUBLIC_KEY)?;
    let key = std::str::from_utf8(&key_pem)
        .map_err(|_| err!(DataLoss, "{PUBLIC_KEY}: not UTF-8 text"))
        .and_then(PublicKey::from_pem)
        .map_err(|e| err!(DataLoss, "{PUBLIC_KEY}: {}", e.msg()))?;
    if signature.len() as u64 != SIGNATURE_BYTES {
        bail!(
            DataLoss,
            "{SIGNATURE}: {} bytes, an Ed25519 signature has 64",
            signature.len()
        );
    }
    key.verify(&manifest_bytes, &signature).map_err(|_| {
        err!(
            DataLoss,
            "{SIGNATURE}: the signature over {MANIFEST} does not verify with the key in \
             {PUBLIC_KEY}: {MANIFEST} or {SIGNATURE} was altered"
        )
    })?;
    let manifest: EvidenceManifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| err!(DataLoss, "{MANIFEST}: not a valid manifest: {e}"))?;
    if manifest.format != EVIDENCE_FORMAT {
        bail!(
            DataLoss,
            "{MANIFEST}: format {:?}; this verifier reads {EVIDENCE_FORMAT:?}",
            manifest.format
        );
    }
    if manifest.recorder_key_sha256 != key.fingerprint() {
        bail!(
            DataLoss,
            "{PUBLIC_KEY}: its fingerprint {} is not the {:?} the manifest names",
            key.fingerprint(),
            manifest.recorder_key_sha256
        );
    }
    if let Some(trusted) = &trust.key
        && *trusted != key
    {
        bail!(
            PermissionDenied,
            "{PUBLIC_KEY}: not the trusted key: the package was signed by key {}, the trusted \
             key is {}",
            key.fingerprint(),
            trusted.fingerprint()
        );
    }
    let sums = small.remove(SUMS);
    check_files(&manifest, &media, sums.as_deref())?;
    let certificate = match small.remove(CERTIFICATE) {
        None if trust.roots.is_empty() => CertificateStatus::Absent,
        None => bail!(
            PermissionDenied,
            "{CERTIFICATE}: missing from the package: a trusted root vouches for a package's \
             key only through the certificate it issued for that key"
        ),
        Some(cert) if trust.roots.is_empty() => {
            check_certificate_pem(&cert)
                .map_err(|e| err!(DataLoss, "{CERTIFICATE}: {}", e.msg()))?;
            CertificateStatus::Unchecked
        }
        Some(cert) => {
            let exported = Time90k::parse_rfc3339(&manifest.exported).map_err(|e| {
                err!(
                    DataLoss,
                    "{MANIFEST}: exported {:?} is not an RFC 3339 time: {}",
                    manifest.exported,
                    e.msg()
                )
            })?;
            let certified = check_chain(&cert, &trust.roots, &key, &manifest.recorder, exported)?;
            CertificateStatus::Certified(certified)
        }
    };
    Ok(Verified {
        media_files: media.len(),
        manifest,
        trusted_key: trust.key.is_some(),
        certificate,
    })
}

/// Every file the manifest lists is in the package with its size and SHA-256, and nothing
/// else is; `SHA256SUMS` lists exactly the media files and digests of the manifest.
fn check_files(
    manifest: &EvidenceManifest,
    media: &BTreeMap<String, (u64, String)>,
    sums: Option<&[u8]>,
) -> Result<(), Error> {
    let sums_digest = sums.map(|s| (s.len() as u64, format!("{:x}", Sha256::digest(s))));
    let mut listed = BTreeMap::new();
    let mut expected_sums = String::new();
    for f in &manifest.files {
        let actual = if f.path == SUMS {
            sums_digest.as_ref()
        } else {
            let name = f.path.strip_prefix(MEDIA_DIR).ok_or_else(|| {
                err!(
                    DataLoss,
                    "{MANIFEST}: lists {:?}, not a file of a package",
                    f.path
                )
            })?;
            check_media_name(name).map_err(|e| err!(DataLoss, "{MANIFEST}: {}", e.msg()))?;
            expected_sums.push_str(&format!("{}  {}\n", f.sha256, f.path));
            media.get(&f.path)
        };
        if listed.insert(f.path.as_str(), ()).is_some() {
            bail!(DataLoss, "{MANIFEST}: lists {} twice", f.path);
        }
        let Some((size, sha)) = actual else {
            bail!(
                DataLoss,
                "{}: listed in the manifest but missing from the package",
                f.path
            );
        };
        if *size != f.size_bytes {
            bail!(
                DataLoss,
                "{}: {size} bytes, the manifest says {}",
                f.path,
                f.size_bytes
            );
        }
        if *sha != f.sha256 {
            bail!(
                DataLoss,
                "{}: SHA-256 {sha} does not match the manifest's {}",
                f.path,
                f.sha256
            );
        }
    }
    if let Some(extra) = media.keys().find(|p| !listed.contains_key(p.as_str())) {
        bail!(
            DataLoss,
            "{extra}: in the package but not listed in the manifest"
        );
    }
    if !listed.contains_key(SUMS) {
        bail!(DataLoss, "{MANIFEST}: does not list {SUMS}");
    }
    if media.is_empty() {
        bail!(DataLoss, "{MANIFEST}: lists no media file");
    }
    if sums.is_some_and(|s| s != expected_sums.as_bytes()) {
        bail!(
            DataLoss,
            "{SUMS}: does not list exactly the media files and digests of the manifest"
        );
    }
    Ok(())
}

/// Text of the manifest as the verdict prints it. Whoever holds a key can sign any manifest,
/// so control characters and bidirectional overrides are escaped: a hostile one cannot forge a
/// verdict line, move the cursor or reorder what the reader sees.
fn shown(s: &str) -> String {
    s.chars()
        .map(|c| {
            let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if c.is_control() || bidi {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl fmt::Display for Verified {
    /// The verdict's details: the first line is the summary, then one line per aspect.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.manifest;
        writeln!(
            f,
            "{} {}, case {}, camera {} ({}, region {}), stream {}, {} to {}",
            self.media_files,
            if self.media_files == 1 {
                "file"
            } else {
                "files"
            },
            shown(&m.case),
            shown(&m.camera.name),
            shown(&m.camera.id),
            shown(&m.camera.region),
            shown(&m.stream),
            shown(&m.delivered.start),
            shown(&m.delivered.end)
        )?;
        writeln!(
            f,
            "  exported {} by {} from recorder {}: {}",
            shown(&m.exported),
            shown(&m.operator),
            shown(&m.recorder),
            shown(&m.reason)
        )?;
        let gap_ms = m
            .gaps
            .iter()
            .fold(0i64, |sum, g| sum.saturating_add(g.duration_ms));
        writeln!(
            f,
            "  requested {} to {}; {} {}, {:.1} s without footage",
            shown(&m.requested.start),
            shown(&m.requested.end),
            m.gaps.len(),
            if m.gaps.len() == 1 { "gap" } else { "gaps" },
            gap_ms as f64 / 1000.0
        )?;
        let tq = &m.time_quality;
        let error = tq
            .recorder_error_ms
            .map_or(String::new(), |e| format!(", error ≤ {e} ms"));
        let offset = tq
            .camera_offset_ms
            .map_or("unknown".to_owned(), |o| format!("{o} ms"));
        writeln!(
            f,
            "  time: recorder clock {}{error}; camera clock offset {offset}",
            if tq.recorder_synced {
                "synchronised"
            } else {
                "NOT synchronised"
            }
        )?;
        let certified = match &self.certificate {
            CertificateStatus::Certified(c) => Some(c),
            CertificateStatus::Absent | CertificateStatus::Unchecked => None,
        };
        let trust = match (self.trusted_key, certified) {
            (false, None) => "the key the package carries, NOT checked against a trusted key or \
                              root (--trusted-key, --trusted-root): the package is only \
                              self-consistent"
                .to_owned(),
            (true, None) => "the trusted key given".to_owned(),
            (false, Some(c)) => format!(
                "certified for recorder {} by a trusted root",
                shown(&c.recorder)
            ),
            (true, Some(c)) => format!(
                "the trusted key given, certified for recorder {} by a trusted root",
                shown(&c.recorder)
            ),
        };
        write!(f, "  signed by key {}: {trust}", m.recorder_key_sha256)?;
        match &self.certificate {
            CertificateStatus::Absent => {}
            CertificateStatus::Unchecked => write!(
                f,
                "\n  {CERTIFICATE}: present, its chain NOT checked (no --trusted-root)"
            )?,
            CertificateStatus::Certified(c) => write!(
                f,
                "\n  {CERTIFICATE}: recorder {}, serial {}, valid {} to {}, in force at the \
                 export time; issued by the trusted root {} (SHA-256 {})",
                shown(&c.recorder),
                c.serial,
                c.not_before,
                c.not_after,
                shown(&c.root),
                c.root_fingerprint
            )?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::key::SigningKey;
    use super::super::package::PackageWriter;
    use super::super::package::tests::info;
    use super::super::tar::TarWriter;
    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        key: SigningKey,
        bytes: Vec<u8>,
    }

    fn package(media: &[(&str, &[u8])]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(dir.path()).unwrap();
        let mut w = PackageWriter::new(Vec::new(), info(), &key).unwrap();
        for (name, data) in media {
            w.add_media(name, *data, data.len() as u64).unwrap();
        }
        let (bytes, _) = w.finish().unwrap();
        Fixture {
            _dir: dir,
            key,
            bytes,
        }
    }

    /// The entries of an archive, in order, with their data.
    fn entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut r = TarReader::new(bytes);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            let mut d = Vec::new();
            r.read_to_end(&mut d).unwrap();
            out.push((e.name, d));
        }
        out
    }

    fn rebuild(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut w = TarWriter::new(Vec::new());
        for (name, d) in entries {
            w.append(name, d.len() as u64, 0, &mut &d[..], &mut |_| {})
                .unwrap();
        }
        w.finish().unwrap()
    }

    fn failure(bytes: &[u8], trust: &Trust) -> String {
        verify_package(bytes, trust).unwrap_err().to_string()
    }

    #[test]
    fn layout_order_and_round_trip() {
        let f = package(&[("b.mp4", b"video bytes"), ("a.bin", &[0u8; 1000])]);
        let names: Vec<String> = entries(&f.bytes).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "media/b.mp4",
                "media/a.bin",
                "SHA256SUMS",
                "manifest.json",
                "manifest.sig",
                "recorder-key.pem"
            ]
        );
        let all = entries(&f.bytes);
        // Digests computed with sha256sum.
        assert_eq!(
            String::from_utf8(all[2].1.clone()).unwrap(),
            "96b050b919f3fca2fc8b6923537136a197ad13c583beb1438d1a12ccbc999c42  media/b.mp4\n\
             541b3e9daa09b20bf85fa273e5cbd3e80185aa4ec298e765db87742b70138a53  media/a.bin\n"
        );
        assert_eq!(all[5].1, f.key.public_key().pem().as_bytes());
        let v = verify_package(&f.bytes[..], &Trust::default()).unwrap();
        assert_eq!(
            (v.media_files, v.trusted_key, &v.certificate),
            (2, false, &CertificateStatus::Absent)
        );
        assert_eq!(v.manifest.files.len(), 3);
        let trusted = Trust {
            key: Some(f.key.public_key().clone()),
            roots: Vec::new(),
        };
        assert!(verify_package(&f.bytes[..], &trusted).unwrap().trusted_key);
        let text = v.to_string();
        assert!(
            text.starts_with("2 files, case 2026-001, camera Gate 1, Abay Ave"),
            "{text}"
        );
        assert!(text.contains("NOT checked against a trusted key"), "{text}");
    }

    #[test]
    fn every_alteration_fails_naming_the_file() {
        let f = package(&[("a.bin", b"first file"), ("b.bin", b"second file")]);
        let original = entries(&f.bytes);
        let trust = Trust::default();
        let edit = |i: usize, change: &dyn Fn(&mut Vec<u8>)| {
            let mut e = original.clone();
            change(&mut e[i].1);
            failure(&rebuild(&e), &trust)
        };
        for (i, want) in [
            (0, "media/a.bin: SHA-256"),
            (1, "media/b.bin: SHA-256"),
            (2, "SHA256SUMS: SHA-256"),
            (
                3,
                "manifest.sig: the signature over manifest.json does not verify",
            ),
            (
                4,
                "manifest.sig: the signature over manifest.json does not verify",
            ),
        ] {
            let e = edit(i, &|d| d[3] ^= 1);
            assert!(e.starts_with(want), "entry {i}: {e}");
        }
        let e = edit(0, &|d| d.push(b'x'));
        assert!(
            e.starts_with("media/a.bin: 11 bytes, the manifest says 10"),
            "{e}"
        );
        let e = edit(4, &|d| d.truncate(63));
        assert!(e.starts_with("manifest.sig: 63 bytes"), "{e}");
        let e = edit(5, &|d| d.clear());
        assert!(
            e.starts_with("recorder-key.pem: not an Ed25519 public key"),
            "{e}"
        );

        for (i, name) in original.iter().map(|(n, _)| n).enumerate() {
            let mut e = original.clone();
            e.remove(i);
            let text = failure(&rebuild(&e), &trust);
            assert!(
                text.starts_with(&format!("{name}: ")),
                "without {name}: {text}"
            );
        }
        let mut e = original.clone();
        e.insert(2, ("media/c.bin".into(), b"planted".to_vec()));
        assert!(failure(&rebuild(&e), &trust).starts_with("media/c.bin: in the package but not"));
        let mut e = original.clone();
        e.push(original[0].clone());
        assert!(failure(&rebuild(&e), &trust).starts_with("media/a.bin: twice"));
        let mut e = original.clone();
        e.push(("notes.txt".into(), b"x".to_vec()));
        assert!(failure(&rebuild(&e), &trust).starts_with("unexpected entry \"notes.txt\""));
        let mut e = original.clone();
        e[0].0 = "media/A.bin".into();
        let text = failure(&rebuild(&e), &trust);
        assert!(text.starts_with("entry \"media/A.bin\""), "{text}");
    }

    #[test]
    fn another_key_verifies_alone_but_not_against_the_trusted_one() {
        let f = package(&[("a.bin", b"x")]);
        let g = package(&[("a.bin", b"x")]);
        let trusted = Trust {
            key: Some(f.key.public_key().clone()),
            roots: Vec::new(),
        };
        verify_package(&g.bytes[..], &Trust::default()).unwrap();
        let e = failure(&g.bytes, &trusted);
        assert!(
            e.starts_with("recorder-key.pem: not the trusted key"),
            "{e}"
        );
        assert!(e.contains(g.key.public_key().fingerprint()), "{e}");

        // A key swapped in without re-signing: the signature fails first.
        let mut e = entries(&f.bytes);
        e[4].1 = g.key.public_key().pem().as_bytes().to_vec();
        assert!(failure(&rebuild(&e), &Trust::default()).starts_with("manifest.sig:"));
    }

    #[test]
    fn a_certificate_rides_along_unchecked() {
        let dir = tempfile::tempdir().unwrap();
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        std::fs::write(dir.path().join(super::super::key::CERTIFICATE_FILE), cert).unwrap();
        let key = SigningKey::load_or_create(dir.path()).unwrap();
        let mut w = PackageWriter::new(Vec::new(), info(), &key).unwrap();
        w.add_media("a.bin", &b"x"[..], 1).unwrap();
        let (bytes, _) = w.finish().unwrap();
        let all = entries(&bytes);
        assert_eq!(
            all.last().unwrap(),
            &("certificate.pem".to_owned(), cert.as_bytes().to_vec())
        );
        let v = verify_package(&bytes[..], &Trust::default()).unwrap();
        assert_eq!(v.certificate, CertificateStatus::Unchecked);
        assert!(
            v.to_string()
                .contains("certificate.pem: present, its chain NOT checked")
        );
        let mut e = all.clone();
        e.last_mut().unwrap().1 = b"garbage".to_vec();
        assert!(failure(&rebuild(&e), &Trust::default()).starts_with("certificate.pem:"));
    }

    /// A small deterministic generator, so a failure reproduces.
    fn xorshift(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn random_damage_never_panics_and_never_verifies_changed_content() {
        let f = package(&[("a.bin", b"first file"), ("b.bin", &[9u8; 700])]);
        // The bytes whose change must fail verification: every entry's data. (The padding
        // after each entry's data and the zeros after the end marker are ignored by design;
        // a changed header field breaks the header checksum.)
        let mut data_ranges = Vec::new();
        let mut r = TarReader::new(&f.bytes[..]);
        while let Some(e) = r.next_entry().unwrap() {
            data_ranges.push(e.offset + 512..e.offset + 512 + e.size);
        }
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for round in 0..600 {
            let mut bytes = f.bytes.clone();
            let kind = xorshift(&mut seed) % 3;
            let mut changed_data = false;
            match kind {
                0 => {
                    for _ in 0..=xorshift(&mut seed) % 4 {
                        let at = (xorshift(&mut seed) % bytes.len() as u64) as usize;
                        let old = bytes[at];
                        bytes[at] ^= (xorshift(&mut seed) % 255 + 1) as u8;
                        changed_data |= bytes[at] != old
                            && data_ranges.iter().any(|d| d.contains(&(at as u64)));
                    }
                }
                1 => {
                    let at = (xorshift(&mut seed) % bytes.len() as u64) as usize;
                    bytes.truncate(at);
                    changed_data = true;
                }
                _ => {
                    // A byte inserted before the end of the last entry's data shifts it or a
                    // header; one inserted after it only lengthens padding or the zero tail.
                    let at = (xorshift(&mut seed) % bytes.len() as u64) as usize;
                    bytes.insert(at, (xorshift(&mut seed) % 256) as u8);
                    changed_data = data_ranges.last().is_some_and(|d| (at as u64) < d.end);
                }
            }
            let verdict = verify_package(&bytes[..], &Trust::default());
            if changed_data {
                assert!(
                    verdict.is_err(),
                    "round {round}: damage of kind {kind} verified"
                );
            }
        }
    }

    #[test]
    fn too_many_media_entries_are_refused_while_reading() {
        let many: Vec<(String, Vec<u8>)> = (0..=MAX_MEDIA_FILES)
            .map(|i| (format!("media/f{i}"), Vec::new()))
            .collect();
        let text = failure(&rebuild(&many), &Trust::default());
        assert!(
            text.starts_with("media/f1000: more than the 1000 media files"),
            "{text}"
        );
    }

    #[test]
    fn manifest_text_cannot_forge_verdict_lines() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(dir.path()).unwrap();
        let mut m = info();
        // Validation refuses control characters; a hostile signer does not validate.
        m.case = "x".into();
        let mut w = PackageWriter::new(Vec::new(), m, &key).unwrap();
        w.add_media("a.bin", &b"x"[..], 1).unwrap();
        let (_, mut manifest) = w.finish().unwrap();
        manifest.case = "1\nVERIFIED: \u{1b}[2J\u{202e}gnp.exe".into();
        let v = Verified {
            manifest,
            media_files: 1,
            trusted_key: false,
            certificate: CertificateStatus::Absent,
        };
        let text = v.to_string();
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(
            text.contains("case 1\\u{a}VERIFIED: \\u{1b}[2J\\u{202e}gnp.exe,"),
            "{text}"
        );
    }

    #[test]
    fn oversized_small_entries_are_refused_before_reading() {
        let f = package(&[("a.bin", b"x")]);
        let mut e = entries(&f.bytes);
        e[3].1 = vec![0u8; 65];
        let text = failure(&rebuild(&e), &Trust::default());
        assert!(
            text.starts_with("manifest.sig: 65 bytes, more than the 64"),
            "{text}"
        );
        // A header that claims a 1 GiB manifest, and no data: refused by its size, not found
        // truncated while reading.
        let mut header = Capped(Vec::new());
        let mut w = TarWriter::new(&mut header);
        let mut zeros = std::io::repeat(0);
        assert!(
            w.append("manifest.json", 1 << 30, 0, &mut zeros, &mut |_| {})
                .is_err()
        );
        let text = failure(&header.0, &Trust::default());
        assert!(
            text.starts_with("manifest.json: 1073741824 bytes, more than"),
            "{text}"
        );
    }

    /// An output that takes one tar header and then fails.
    struct Capped(Vec<u8>);

    impl std::io::Write for Capped {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let room = 512 - self.0.len();
            if room == 0 {
                return Err(std::io::Error::other("full"));
            }
            let n = b.len().min(room);
            self.0.extend_from_slice(&b[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

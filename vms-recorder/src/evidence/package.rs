//! Writing an evidence package: the media files streamed into the tar and hashed on the way,
//! then `SHA256SUMS`, the manifest that lists them all, its signature, the public key and the
//! certificate when there is one, in that fixed order.

use std::io::{Read, Write};

use sha2::{Digest, Sha256};
use vms_core::gap::EndReason;
use vms_core::id::{CameraId, RecorderId};
use vms_core::region::RegionCode;
use vms_core::text::check_text;
use vms_core::time::{Time90k, TimeQuality};
use vms_core::wire::{self, EVIDENCE_FORMAT, EvidenceManifest, SPEC_VERSION};
use vms_core::{Error, bail, err};

use super::key::SigningKey;
use super::tar::{self, TarWriter};
use crate::archive::layout::check_stream_name;
use crate::service::leaves_gap;

/// Entry names of a package besides its media.
pub const SUMS: &str = "SHA256SUMS";
pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.sig";
pub const PUBLIC_KEY: &str = "recorder-key.pem";
pub const CERTIFICATE: &str = "certificate.pem";
/// The directory of the media files inside a package.
pub const MEDIA_DIR: &str = "media/";

/// The most media files one package holds.
pub const MAX_MEDIA_FILES: usize = 1000;
/// The largest manifest a package may carry (a long export of a flaky camera has many gaps).
pub const MAX_MANIFEST_BYTES: usize = 16 << 20;

/// Checks a media file name: `[a-z0-9._-]{1,64}`, and neither `.` nor containing `..`.
pub fn check_media_name(name: &str) -> Result<(), Error> {
    let charset = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if name.is_empty() || name.len() > 64 || !charset || name == "." || name.contains("..") {
        bail!(
            InvalidArgument,
            "media file name {name:?} must match [a-z0-9._-]{{1,64}}, not be \".\" and not contain \"..\""
        );
    }
    Ok(())
}

/// The camera as the manifest names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraInfo {
    pub id: CameraId,
    pub name: String,
    pub region: RegionCode,
    /// The registry number, if assigned.
    pub code: Option<String>,
}

/// A stretch of the delivered range without footage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GapInfo {
    pub start: Time90k,
    pub end: Time90k,
    pub reason: EndReason,
}

/// Everything the manifest says besides the files: what the HTTP layer knows when an export
/// starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportInfo {
    pub recorder: RecorderId,
    pub camera: CameraInfo,
    pub stream: String,
    pub requested: (Time90k, Time90k),
    /// From the first frame delivered to the end of the last.
    pub delivered: (Time90k, Time90k),
    pub gaps: Vec<GapInfo>,
    /// The worst over the footage delivered: synced only if every segment was, the largest
    /// error, the camera offset of the largest magnitude.
    pub time_quality: TimeQuality,
    pub operator: String,
    pub case: String,
    pub reason: String,
    pub exported: Time90k,
}

impl ExportInfo {
    /// Checks every field, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        check_text("camera name", &self.camera.name, 256)?;
        if let Some(code) = &self.camera.code {
            check_text("camera code", code, 64)?;
        }
        check_stream_name(&self.stream).map_err(|e| e.context("stream"))?;
        check_text("operator", &self.operator, 128)?;
        check_text("case", &self.case, 128)?;
        check_text("reason", &self.reason, 1024)?;
        for (field, (start, end)) in [("requested", self.requested), ("delivered", self.delivered)]
        {
            if start >= end {
                bail!(
                    InvalidArgument,
                    "{field}: end {end} is not after start {start}"
                );
            }
        }
        for (i, g) in self.gaps.iter().enumerate() {
            if g.start >= g.end {
                bail!(
                    InvalidArgument,
                    "gaps[{i}]: end {} is not after start {}",
                    g.end,
                    g.start
                );
            }
            if !leaves_gap(g.reason) {
                bail!(
                    InvalidArgument,
                    "gaps[{i}]: {} is not a reason for a gap (recording continues after it)",
                    g.reason
                );
            }
        }
        Ok(())
    }

    fn manifest(&self, files: Vec<wire::EvidenceFile>, key_sha256: &str) -> EvidenceManifest {
        let range = |(start, end): (Time90k, Time90k)| wire::UtcRange {
            start: start.to_rfc3339(),
            end: end.to_rfc3339(),
        };
        EvidenceManifest {
            format: EVIDENCE_FORMAT.to_owned(),
            spec_version: SPEC_VERSION.to_owned(),
            recorder: self.recorder.to_string(),
            camera: wire::EvidenceCamera {
                id: self.camera.id.to_string(),
                name: self.camera.name.clone(),
                region: self.camera.region.to_string(),
                code: self.camera.code.clone(),
            },
            stream: self.stream.clone(),
            requested: range(self.requested),
            delivered: range(self.delivered),
            gaps: self
                .gaps
                .iter()
                .map(|g| wire::Gap {
                    start: g.start.to_rfc3339(),
                    end: g.end.to_rfc3339(),
                    duration_ms: (g.end - g.start).as_millis(),
                    reason: g.reason.as_str().to_owned(),
                })
                .collect(),
            time_quality: wire::TimeQuality {
                recorder_synced: self.time_quality.recorder_synced,
                recorder_error_ms: self.time_quality.recorder_error_ms,
                camera_offset_ms: self.time_quality.camera_offset_ms,
            },
            files,
            operator: self.operator.clone(),
            case: self.case.clone(),
            reason: self.reason.clone(),
            exported: self.exported.to_rfc3339(),
            recorder_key_sha256: key_sha256.to_owned(),
        }
    }
}

/// The manifest's bytes: JSON indented by two spaces, members in the order of
/// [`EvidenceManifest`], and a final newline. These exact bytes are signed.
pub fn manifest_bytes(manifest: &EvidenceManifest) -> Result<Vec<u8>, Error> {
    let mut bytes = serde_json::to_vec_pretty(manifest)
        .map_err(|e| err!(Internal, "serialising the manifest: {e}"))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Streams an evidence package into `out`: [`PackageWriter::add_media`] for each export file,
/// then [`PackageWriter::finish`]. Nothing is buffered but one chunk at a time, so a
/// multi-hour export needs no temporary file. Blocking: run it on a blocking thread.
pub struct PackageWriter<'k, W: Write> {
    tar: TarWriter<W>,
    info: ExportInfo,
    key: &'k SigningKey,
    mtime: u64,
    /// Media written so far: name, size, SHA-256.
    media: Vec<(String, u64, String)>,
    /// Set once a write failed half-way: the archive is then unusable.
    broken: bool,
}

impl<'k, W: Write> PackageWriter<'k, W> {
    /// Checks `info` before anything is written, so a bad request fails before any byte is.
    pub fn new(out: W, info: ExportInfo, key: &'k SigningKey) -> Result<Self, Error> {
        info.validate()?;
        let mtime = u64::try_from(info.exported.unix_nanos() / 1_000_000_000).unwrap_or(0);
        Ok(PackageWriter {
            tar: TarWriter::new(out),
            info,
            key,
            mtime,
            media: Vec::new(),
            broken: false,
        })
    }

    /// Streams one media file of exactly `len` bytes into the package as `media/<name>`,
    /// hashing it on the way. A name that is invalid or already used is refused before
    /// anything is written; a source that yields another length than `len`, or any I/O
    /// error, leaves the package unusable (and every later call fails).
    pub fn add_media(&mut self, name: &str, mut data: impl Read, len: u64) -> Result<(), Error> {
        self.check_usable()?;
        check_media_name(name)?;
        if self.media.iter().any(|(n, _, _)| n == name) {
            bail!(
                InvalidArgument,
                "media file {name:?} is already in the package"
            );
        }
        if self.media.len() >= MAX_MEDIA_FILES {
            bail!(
                InvalidArgument,
                "a package holds at most {MAX_MEDIA_FILES} media files"
            );
        }
        let path = format!("{MEDIA_DIR}{name}");
        let mut hash = Sha256::new();
        self.broken = true;
        self.tar
            .append(&path, len, self.mtime, &mut data, &mut |chunk| {
                hash.update(chunk)
            })?;
        self.broken = false;
        self.media
            .push((name.to_owned(), len, format!("{:x}", hash.finalize())));
        Ok(())
    }

    fn check_usable(&self) -> Result<(), Error> {
        if self.broken {
            bail!(
                FailedPrecondition,
                "the package is unusable: an earlier write to it failed"
            );
        }
        Ok(())
    }

    fn append_small(&mut self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        self.broken = true;
        self.tar.append(
            name,
            bytes.len() as u64,
            self.mtime,
            &mut &bytes[..],
            &mut |_| {},
        )?;
        self.broken = false;
        Ok(())
    }

    /// Writes `SHA256SUMS`, the manifest, its signature, the public key and the certificate
    /// (when the key has one), ends the archive, and returns the output and the manifest.
    pub fn finish(mut self) -> Result<(W, EvidenceManifest), Error> {
        self.check_usable()?;
        if self.media.is_empty() {
            bail!(InvalidArgument, "a package needs at least one media file");
        }
        let key = self.key;
        let (sums, manifest, bytes) = contents(&self.info, key, &self.media)?;
        self.append_small(SUMS, sums.as_bytes())?;
        let signature = key.sign(&bytes);
        self.append_small(MANIFEST, &bytes)?;
        self.append_small(SIGNATURE, &signature)?;
        self.append_small(PUBLIC_KEY, key.public_key().pem().as_bytes())?;
        if let Some(cert) = key.certificate() {
            self.append_small(CERTIFICATE, cert.as_bytes())?;
        }
        Ok((self.tar.finish()?, manifest))
    }
}

/// `SHA256SUMS`, the manifest and its bytes, for media given as (name, size, SHA-256).
fn contents(
    info: &ExportInfo,
    key: &SigningKey,
    media: &[(String, u64, String)],
) -> Result<(String, EvidenceManifest, Vec<u8>), Error> {
    let sums: String = media
        .iter()
        .map(|(name, _, sha)| format!("{sha}  {MEDIA_DIR}{name}\n"))
        .collect();
    let mut files: Vec<wire::EvidenceFile> = media
        .iter()
        .map(|(name, size, sha)| wire::EvidenceFile {
            path: format!("{MEDIA_DIR}{name}"),
            size_bytes: *size,
            sha256: sha.clone(),
        })
        .collect();
    files.push(wire::EvidenceFile {
        path: SUMS.to_owned(),
        size_bytes: sums.len() as u64,
        sha256: format!("{:x}", Sha256::digest(sums.as_bytes())),
    });
    let manifest = info.manifest(files, key.public_key().fingerprint());
    let bytes = manifest_bytes(&manifest)?;
    if bytes.len() > MAX_MANIFEST_BYTES {
        bail!(
            InvalidArgument,
            "the manifest would have {} bytes, more than {MAX_MANIFEST_BYTES}: export fewer gaps or files per package",
            bytes.len()
        );
    }
    Ok((sums, manifest, bytes))
}

/// The exact length in bytes of the package that [`PackageWriter`] writes for `info`, `key` and
/// media files of these names and sizes, in this order: known before any media is read, for a
/// `Content-Length`. Every digest has a fixed length, so the manifest's length is known too.
pub fn package_len(
    info: &ExportInfo,
    key: &SigningKey,
    media: &[(&str, u64)],
) -> Result<u64, Error> {
    info.validate()?;
    if media.is_empty() || media.len() > MAX_MEDIA_FILES {
        bail!(
            InvalidArgument,
            "a package holds 1 to {MAX_MEDIA_FILES} media files"
        );
    }
    let mut planned: Vec<(String, u64, String)> = Vec::with_capacity(media.len());
    let mut len = 0u64;
    for &(name, size) in media {
        check_media_name(name)?;
        if planned.iter().any(|(n, _, _)| n == name) {
            bail!(InvalidArgument, "media file {name:?} is listed twice");
        }
        planned.push((name.to_owned(), size, "0".repeat(64)));
        len = len.saturating_add(tar::entry_len(size));
    }
    let (sums, _, manifest) = contents(info, key, &planned)?;
    let mut small = vec![sums.len(), manifest.len(), 64, key.public_key().pem().len()];
    small.extend(key.certificate().map(|c| c.len()));
    let small_len: u64 = small.iter().map(|&n| tar::entry_len(n as u64)).sum();
    Ok(len.saturating_add(small_len).saturating_add(tar::END_LEN))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn info() -> ExportInfo {
        let t = |s| Time90k::parse_rfc3339(s).unwrap();
        ExportInfo {
            recorder: "01JD0000000000000000000001".parse().unwrap(),
            camera: CameraInfo {
                id: "01JD0000000000000000000002".parse().unwrap(),
                name: "Gate 1, Abay Ave".into(),
                region: "751110000".parse().unwrap(),
                code: Some("75111000013100000001".into()),
            },
            stream: "main".into(),
            requested: (t("2026-11-26T12:00:00Z"), t("2026-11-26T12:10:00Z")),
            delivered: (t("2026-11-26T12:00:00Z"), t("2026-11-26T12:09:59.5Z")),
            gaps: vec![GapInfo {
                start: t("2026-11-26T12:03:00Z"),
                end: t("2026-11-26T12:03:12.5Z"),
                reason: EndReason::Disconnect,
            }],
            time_quality: TimeQuality {
                recorder_synced: true,
                recorder_error_ms: Some(12),
                camera_offset_ms: Some(-340),
            },
            operator: "investigator.aliyev".into(),
            case: "2026-001".into(),
            reason: "robbery at gate 1".into(),
            exported: t("2026-11-27T09:30:00Z"),
        }
    }

    #[test]
    fn manifest_canonical_form() {
        let files = vec![wire::EvidenceFile {
            path: "media/a.mp4".into(),
            size_bytes: 3,
            sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
        }];
        let m = info().manifest(files, "ab".repeat(32).as_str());
        let want = r#"{
  "format": "vms-evidence/1",
  "spec_version": "1.0",
  "recorder": "01JD0000000000000000000001",
  "camera": {
    "id": "01JD0000000000000000000002",
    "name": "Gate 1, Abay Ave",
    "region": "751110000",
    "code": "75111000013100000001"
  },
  "stream": "main",
  "requested": {
    "start": "2026-11-26T12:00:00Z",
    "end": "2026-11-26T12:10:00Z"
  },
  "delivered": {
    "start": "2026-11-26T12:00:00Z",
    "end": "2026-11-26T12:09:59.5Z"
  },
  "gaps": [
    {
      "start": "2026-11-26T12:03:00Z",
      "end": "2026-11-26T12:03:12.5Z",
      "duration_ms": 12500,
      "reason": "disconnect"
    }
  ],
  "time_quality": {
    "recorder_synced": true,
    "recorder_error_ms": 12,
    "camera_offset_ms": -340
  },
  "files": [
    {
      "path": "media/a.mp4",
      "size_bytes": 3,
      "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    }
  ],
  "operator": "investigator.aliyev",
  "case": "2026-001",
  "reason": "robbery at gate 1",
  "exported": "2026-11-27T09:30:00Z",
  "recorder_key_sha256": "abababababababababababababababababababababababababababababababab"
}
"#;
        let bytes = manifest_bytes(&m).unwrap();
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), want);
        let back: EvidenceManifest = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn length_is_known_in_advance() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(dir.path()).unwrap();
        let big = vec![7u8; 5000];
        for media in [
            vec![("a.bin", &b""[..])],
            vec![("clip-1.mp4", &big[..]), ("b", &b"x"[..])],
            vec![("c", &big[..512]), ("d", &big[..511]), ("e", &big[..513])],
        ] {
            let plan: Vec<(&str, u64)> = media.iter().map(|(n, d)| (*n, d.len() as u64)).collect();
            let want = package_len(&info(), &key, &plan).unwrap();
            let mut w = PackageWriter::new(Vec::new(), info(), &key).unwrap();
            for (name, data) in &media {
                w.add_media(name, *data, data.len() as u64).unwrap();
            }
            let (bytes, _) = w.finish().unwrap();
            assert_eq!(bytes.len() as u64, want, "{plan:?}");
        }
        assert!(package_len(&info(), &key, &[]).is_err());
        assert!(package_len(&info(), &key, &[("a", 1), ("a", 2)]).is_err());
        assert!(package_len(&info(), &key, &[("../a", 1)]).is_err());
    }

    #[test]
    fn names_and_fields_are_checked() {
        for ok in ["a", "clip-0001.mp4", "x_y.z", &"a".repeat(64), ".hidden"] {
            check_media_name(ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "a..b",
            "A.mp4",
            "a/b",
            "a b",
            &"a".repeat(65),
            "é",
        ] {
            let e = check_media_name(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        let mut i = info();
        i.case = String::new();
        assert!(i.validate().unwrap_err().to_string().starts_with("case:"));
        let mut i = info();
        i.reason = "a\nb".into();
        assert!(i.validate().unwrap_err().to_string().starts_with("reason:"));
        let mut i = info();
        i.delivered.1 = i.delivered.0;
        assert!(
            i.validate()
                .unwrap_err()
                .to_string()
                .starts_with("delivered:")
        );
        let mut i = info();
        i.gaps[0].end = i.gaps[0].start;
        assert!(
            i.validate()
                .unwrap_err()
                .to_string()
                .starts_with("gaps[0]:")
        );
        let mut i = info();
        i.stream = "../x".into();
        assert!(i.validate().unwrap_err().to_string().starts_with("stream:"));
    }

    #[test]
    fn writer_refuses_duplicates_and_poisons_on_a_short_source() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(dir.path()).unwrap();
        let mut w = PackageWriter::new(Vec::new(), info(), &key).unwrap();
        w.add_media("a.bin", &b"abc"[..], 3).unwrap();
        let e = w.add_media("a.bin", &b"abc"[..], 3).unwrap_err();
        assert!(e.to_string().contains("already"), "{e}");
        let e = w.add_media("../a", &b"abc"[..], 3).unwrap_err();
        assert_eq!(e.kind(), vms_core::ErrorKind::InvalidArgument);
        // Those refusals wrote nothing: the package can still be finished.
        let (_, manifest) = w.finish().unwrap();
        assert_eq!(manifest.files.len(), 2);

        let mut w = PackageWriter::new(Vec::new(), info(), &key).unwrap();
        let e = w.add_media("b.bin", &b"ab"[..], 3).unwrap_err();
        assert!(e.to_string().contains("b.bin"), "{e}");
        let e = w.finish().err().unwrap();
        assert!(e.to_string().contains("unusable"), "{e}");

        let w = PackageWriter::new(Vec::new(), info(), &key).unwrap();
        assert!(w.finish().is_err(), "no media");
        let mut bad = info();
        bad.operator = String::new();
        assert!(PackageWriter::new(Vec::new(), bad, &key).is_err());
    }
}

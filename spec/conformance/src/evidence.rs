//! The checks of an evidence package (spec/evidence-package.md): its layout, its digests, its
//! signature and key, and its manifest against the export that was asked for.

use std::collections::BTreeSet;

use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::tar::Entry;

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// The entries after the media, in the order a writer writes them.
const TAIL: [&str; 4] = [
    "SHA256SUMS",
    "manifest.json",
    "manifest.sig",
    "recorder-key.pem",
];
const CERTIFICATE: &str = "certificate.pem";

/// An unpacked package.
pub struct Package<'a> {
    pub data: &'a [u8],
    pub entries: Vec<Entry>,
}

impl Package<'_> {
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .map(|e| &self.data[e.data.clone()])
    }

    fn need(&self, name: &str) -> Result<&[u8], String> {
        self.file(name)
            .ok_or_else(|| format!("the package has no {name}"))
    }

    pub fn manifest(&self) -> Result<Value, String> {
        serde_json::from_slice(self.need("manifest.json")?)
            .map_err(|e| format!("manifest.json is not JSON: {e}"))
    }
}

fn media_name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name != "."
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// The layout: media first (1 to 1000, well named), then `SHA256SUMS`, `manifest.json`,
/// `manifest.sig`, `recorder-key.pem` and optionally `certificate.pem`; each once; no others.
pub fn check_layout(p: &Package) -> Result<String, String> {
    let names: Vec<&str> = p.entries.iter().map(|e| e.name.as_str()).collect();
    let mut seen = BTreeSet::new();
    for n in &names {
        if !seen.insert(*n) {
            return Err(format!("{n} appears twice"));
        }
    }
    let media = names.iter().take_while(|n| n.starts_with("media/")).count();
    if !(1..=1000).contains(&media) {
        return Err(format!(
            "{media} media entries first, not 1 to 1000: {names:?}"
        ));
    }
    for n in &names[..media] {
        if !media_name_ok(&n["media/".len()..]) {
            return Err(format!("{n}: not media/[a-z0-9._-]{{1,64}} without `..`"));
        }
    }
    let rest = &names[media..];
    let ok = rest.len() >= TAIL.len()
        && rest[..TAIL.len()] == TAIL
        && (rest.len() == TAIL.len() || (rest.len() == TAIL.len() + 1 && rest[4] == CERTIFICATE));
    if !ok {
        return Err(format!(
            "after the media come {rest:?}, not {TAIL:?} and an optional {CERTIFICATE}"
        ));
    }
    Ok(format!(
        "ustar with {media} media file(s), then {}",
        rest.join(", ")
    ))
}

/// `SHA256SUMS` lists the media of the manifest's `files` in order with their digests, and
/// every file of `files` is in the package with that size and SHA-256.
pub fn check_sums(p: &Package) -> Result<String, String> {
    let manifest = p.manifest()?;
    let files = manifest["files"]
        .as_array()
        .ok_or("the manifest has no files array")?;
    let mut listed = Vec::new();
    for f in files {
        let (Some(path), Some(size), Some(sha)) = (
            f["path"].as_str(),
            f["size_bytes"].as_u64(),
            f["sha256"].as_str(),
        ) else {
            return Err(format!(
                "a files entry without path, size_bytes or sha256: {f}"
            ));
        };
        let data = p
            .file(path)
            .ok_or_else(|| format!("{path}: listed in the manifest, not in the package"))?;
        if data.len() as u64 != size {
            return Err(format!(
                "{path}: {} bytes, the manifest says {size}",
                data.len()
            ));
        }
        let actual = hex(&Sha256::digest(data));
        if actual != sha {
            return Err(format!("{path}: SHA-256 {actual}, the manifest says {sha}"));
        }
        listed.push(path);
    }
    let media: Vec<&str> = p
        .entries
        .iter()
        .map(|e| e.name.as_str())
        .filter(|n| n.starts_with("media/"))
        .collect();
    let listed_media: Vec<&str> = listed
        .iter()
        .copied()
        .filter(|n| n.starts_with("media/"))
        .collect();
    if listed_media != media
        || listed.last() != Some(&"SHA256SUMS")
        || listed.len() != media.len() + 1
    {
        return Err(format!(
            "the manifest's files {listed:?} are not the media {media:?} then SHA256SUMS"
        ));
    }
    let sums = std::str::from_utf8(p.need("SHA256SUMS")?)
        .map_err(|_| "SHA256SUMS is not UTF-8".to_owned())?;
    let expected: String = files
        .iter()
        .filter(|f| f["path"].as_str().is_some_and(|n| n.starts_with("media/")))
        .map(|f| {
            format!(
                "{}  {}\n",
                f["sha256"].as_str().unwrap_or_default(),
                f["path"].as_str().unwrap_or_default()
            )
        })
        .collect();
    if sums != expected {
        return Err(format!(
            "SHA256SUMS is {sums:?}, not the sha256sum lines of the media: {expected:?}"
        ));
    }
    Ok(format!(
        "SHA256SUMS and the manifest's {} files match the package",
        files.len()
    ))
}

/// The DER of a `PUBLIC KEY` PEM that holds an Ed25519 SPKI, and the key.
pub fn spki(pem: &[u8]) -> Result<(Vec<u8>, VerifyingKey), String> {
    let text = std::str::from_utf8(pem).map_err(|_| "the PEM is not UTF-8".to_owned())?;
    let body = text
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")
        .and_then(|t| t.strip_suffix("-----END PUBLIC KEY-----"))
        .ok_or("not one PEM block labelled PUBLIC KEY")?;
    let b64: String = body.split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("the PEM body is not base64: {e}"))?;
    let key: [u8; 32] = der
        .strip_prefix(&ED25519_SPKI_PREFIX[..])
        .and_then(|k| k.try_into().ok())
        .ok_or("not an Ed25519 SubjectPublicKeyInfo (RFC 8410)")?;
    let key = VerifyingKey::from_bytes(&key).map_err(|e| format!("not an Ed25519 key: {e}"))?;
    if key.is_weak() {
        return Err("a small-order Ed25519 key".into());
    }
    Ok((der, key))
}

/// `manifest.sig` is a strict Ed25519 signature of the exact bytes of `manifest.json` by the
/// key of `recorder-key.pem`, whose fingerprint is the manifest's `recorder_key_sha256`.
pub fn check_signature(p: &Package) -> Result<String, String> {
    let (der, key) =
        spki(p.need("recorder-key.pem")?).map_err(|e| format!("recorder-key.pem: {e}"))?;
    let sig: [u8; 64] = p
        .need("manifest.sig")?
        .try_into()
        .map_err(|_| "manifest.sig is not 64 bytes".to_owned())?;
    let manifest = p.need("manifest.json")?;
    key.verify_strict(manifest, &Signature::from_bytes(&sig))
        .map_err(|_| {
            "manifest.sig does not verify over manifest.json with the key of recorder-key.pem"
                .to_owned()
        })?;
    let fingerprint = hex(&Sha256::digest(&der));
    let m = p.manifest()?;
    if m["recorder_key_sha256"] != fingerprint.as_str() {
        return Err(format!(
            "recorder_key_sha256 {} is not the key's fingerprint {fingerprint}",
            m["recorder_key_sha256"]
        ));
    }
    Ok(format!(
        "Ed25519 signature verifies with the package's key {fingerprint}"
    ))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::tests::archive;
    use ed25519_dalek::{Signer, SigningKey};

    /// A package of one media file, with `edit` applied to its parts before they are packed:
    /// (manifest bytes, SHA256SUMS, entry order).
    fn package(edit: impl FnOnce(&mut Vec<u8>, &mut String, &mut Vec<&str>)) -> Vec<u8> {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let der = [&ED25519_SPKI_PREFIX[..], key.verifying_key().as_bytes()].concat();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        let media = b"not really an mp4".as_slice();
        let media_sha = hex(&Sha256::digest(media));
        let mut sums = format!("{media_sha}  media/clip-0001.mp4\n");
        let manifest = serde_json::json!({
            "format": "vms-evidence/1",
            "recorder_key_sha256": hex(&Sha256::digest(&der)),
            "files": [
                {"path": "media/clip-0001.mp4", "size_bytes": media.len(), "sha256": media_sha},
                {"path": "SHA256SUMS", "size_bytes": sums.len(),
                 "sha256": hex(&Sha256::digest(sums.as_bytes()))},
            ],
        });
        let mut manifest = serde_json::to_vec_pretty(&manifest).expect("JSON");
        let sig = key.sign(&manifest).to_bytes();
        let mut order = vec![
            "media/clip-0001.mp4",
            "SHA256SUMS",
            "manifest.json",
            "manifest.sig",
            "recorder-key.pem",
        ];
        edit(&mut manifest, &mut sums, &mut order);
        let entries: Vec<(&str, Vec<u8>)> = order
            .iter()
            .map(|name| {
                let data = match *name {
                    "media/clip-0001.mp4" => media.to_vec(),
                    "SHA256SUMS" => sums.as_bytes().to_vec(),
                    "manifest.json" => manifest.clone(),
                    "manifest.sig" => sig.to_vec(),
                    _ => pem.as_bytes().to_vec(),
                };
                (*name, data)
            })
            .collect();
        let refs: Vec<(&str, &[u8], u8)> = entries
            .iter()
            .map(|(n, d)| (*n, d.as_slice(), b'0'))
            .collect();
        archive(&refs)
    }

    fn checks(bytes: &[u8]) -> [Result<String, String>; 3] {
        let p = Package {
            data: bytes,
            entries: crate::tar::entries(bytes).expect("a ustar archive"),
        };
        [check_layout(&p), check_sums(&p), check_signature(&p)]
    }

    #[test]
    fn a_signed_package_passes() {
        for r in checks(&package(|_, _, _| {})) {
            r.expect("passes");
        }
    }

    #[test]
    fn each_fault_fails_its_check() {
        // One byte of the manifest changed after signing: `vms-evidence/1` becomes `/0`.
        let flip = |m: &mut Vec<u8>| {
            let at = m.windows(14).position(|w| w == b"vms-evidence/1");
            m[at.expect("the format") + 13] ^= 0x01;
        };
        let [layout, sums, sig] = checks(&package(|m, _, _| flip(m)));
        assert!(layout.is_ok() && sums.is_ok(), "{layout:?} {sums:?}");
        assert!(sig.is_err_and(|e| e.contains("does not verify")));
        // SHA256SUMS that does not match the media.
        let [_, sums, _] = checks(&package(|_, s, _| *s = s.replace('a', "b")));
        assert!(sums.is_err());
        // The entries out of order, or one twice.
        let [layout, _, _] = checks(&package(|_, _, o| o.swap(2, 3)));
        assert!(layout.is_err_and(|e| e.contains("not [")));
        let [layout, _, _] = checks(&package(|_, _, o| o.push("SHA256SUMS")));
        assert!(layout.is_err_and(|e| e.contains("twice")));
    }
}

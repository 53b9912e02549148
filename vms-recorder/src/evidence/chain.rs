//! The certificate chain of a package's key (`spec/evidence-package.md`, "Trust:
//! certificates"): trusted roots, each checked to be a self-signed Ed25519 CA, and
//! `certificate.pem` checked against them: issuer, Ed25519 signature, validity at the export
//! time, the certified key and the recorder it names. Certificates are parsed with `x509-cert`
//! and must be canonical DER, so the signed part re-encoded is the one that was signed.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use vms_core::time::Time90k;
use vms_core::{Error, IoResultExt, bail, err};
use x509_cert::Certificate;
use x509_cert::certificate::Version;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::oid::db::{rfc4519, rfc5280, rfc8410};
use x509_cert::der::{Decode, Encode, Tag, Tagged};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectAltName};
use x509_cert::name::Name;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use super::key::{MAX_CERTIFICATE_BYTES, PublicKey, check_certificate_pem};
use super::package::{CERTIFICATE, PUBLIC_KEY};

/// The prefix of the URI name that names a recorder in its certificate.
pub const RECORDER_URN: &str = "urn:vms:recorder:";

/// The extensions these checks understand; any other one marked critical is refused
/// (RFC 5280, 4.2).
const KNOWN_EXTENSIONS: [ObjectIdentifier; 6] = [
    rfc5280::ID_CE_BASIC_CONSTRAINTS,
    rfc5280::ID_CE_KEY_USAGE,
    rfc5280::ID_CE_EXT_KEY_USAGE,
    rfc5280::ID_CE_SUBJECT_ALT_NAME,
    rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
    rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
];

/// A root certificate the verifier was told to trust, checked to be a self-signed Ed25519 CA.
#[derive(Clone, Debug)]
pub struct TrustedRoot {
    cert: Certificate,
    key: VerifyingKey,
    fingerprint: String,
}

impl TrustedRoot {
    /// Reads a root certificate file (one PEM `CERTIFICATE` block) and checks it; errors name
    /// the file.
    pub fn load(path: &Path) -> Result<TrustedRoot, Error> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| {
                f.take(MAX_CERTIFICATE_BYTES as u64 + 1)
                    .read_to_end(&mut bytes)
            })
            .io_context(|| format!("reading {}", path.display()))?;
        TrustedRoot::from_pem(&bytes).map_err(|e| e.context(path.display()))
    }

    /// Parses a root certificate and checks that it is an X.509 v3 certificate in DER of an
    /// Ed25519 key, self-issued and self-signed, whose basic constraints make it a CA and whose
    /// key usage, if given, includes `keyCertSign`. Its validity is checked against the time of
    /// each package it verifies.
    pub fn from_pem(pem: &[u8]) -> Result<TrustedRoot, Error> {
        let (cert, der) = parse(pem).map_err(|e| err!(InvalidArgument, "{}", e.msg()))?;
        let tbs = &cert.tbs_certificate;
        let key = ed25519_key(&tbs.subject_public_key_info)
            .map_err(|e| err!(InvalidArgument, "its key: {}", e.msg()))?;
        if tbs.issuer != tbs.subject {
            bail!(
                InvalidArgument,
                "not self-signed: issued by {:?}, its subject is {:?}",
                tbs.issuer.to_string(),
                tbs.subject.to_string()
            );
        }
        let signature = signature_of(&cert).map_err(|e| err!(InvalidArgument, "{}", e.msg()))?;
        key.verify_strict(&signature.tbs, &signature.signature)
            .map_err(|_| {
                err!(
                    InvalidArgument,
                    "not self-signed: its signature does not verify with its own key"
                )
            })?;
        let constraints = extension::<BasicConstraints>(&cert, "basicConstraints")
            .map_err(|e| err!(InvalidArgument, "{}", e.msg()))?;
        if !constraints.is_some_and(|c| c.ca) {
            bail!(
                InvalidArgument,
                "not a CA certificate: its basicConstraints do not say cA=true"
            );
        }
        let usage = extension::<KeyUsage>(&cert, "keyUsage")
            .map_err(|e| err!(InvalidArgument, "{}", e.msg()))?;
        if usage.is_some_and(|u| !u.key_cert_sign()) {
            bail!(
                InvalidArgument,
                "not a CA certificate: its keyUsage lacks keyCertSign"
            );
        }
        Ok(TrustedRoot {
            cert,
            key,
            fingerprint: format!("{:x}", Sha256::digest(&der)),
        })
    }

    /// The root's subject name (RFC 4514 form).
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// The root fingerprint of `spec/central.md`: lower-case hex SHA-256 of the
    /// certificate's DER, as `openssl x509 -in ROOT.pem -outform DER | sha256sum` prints it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// What a certificate that chains to a trusted root says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certified {
    /// The recorder the certificate names (the manifest's `recorder`).
    pub recorder: String,
    /// The certificate's serial number, upper-case hex as `openssl x509 -serial` prints it.
    pub serial: String,
    /// Its validity, RFC 3339.
    pub not_before: String,
    pub not_after: String,
    /// The subject and fingerprint of the root it chains to.
    pub root: String,
    pub root_fingerprint: String,
}

/// Checks that `pem` (the package's `certificate.pem`) is a certificate issued by one of
/// `roots` for `key` (the key that signed the manifest) and `recorder` (the manifest's
/// `recorder`), and that it and its root were valid at `exported`. The checks run in the order
/// of `spec/evidence-package.md`; the first that fails is reported, naming the check.
pub fn check_chain(
    pem: &[u8],
    roots: &[TrustedRoot],
    key: &PublicKey,
    recorder: &str,
    exported: Time90k,
) -> Result<Certified, Error> {
    let (cert, _) = parse(pem).map_err(|e| e.context(CERTIFICATE))?;
    let tbs = &cert.tbs_certificate;

    // Issuer, then signature: a root whose subject is the issuer and whose key signed it.
    let issuers: Vec<&TrustedRoot> = roots
        .iter()
        .filter(|r| r.cert.tbs_certificate.subject == tbs.issuer)
        .collect();
    if issuers.is_empty() {
        let trusted: Vec<String> = roots.iter().map(TrustedRoot::subject).collect();
        bail!(
            PermissionDenied,
            "{CERTIFICATE}: issuer: issued by {:?}, which is not the subject of a trusted root \
             (the trusted roots are {trusted:?})",
            tbs.issuer.to_string()
        );
    }
    let signature = signature_of(&cert).map_err(|e| e.context(CERTIFICATE))?;
    let Some(root) = issuers.into_iter().find(|r| {
        r.key
            .verify_strict(&signature.tbs, &signature.signature)
            .is_ok()
    }) else {
        bail!(
            PermissionDenied,
            "{CERTIFICATE}: signature: does not verify with the key of the trusted root {:?}: \
             the certificate was not issued by that root",
            tbs.issuer.to_string()
        );
    };

    // Validity at the export time, of the certificate and of its root.
    valid_at(&cert, exported).map_err(|e| e.context(CERTIFICATE))?;
    valid_at(&root.cert, exported).map_err(|e| {
        e.context(format!(
            "{CERTIFICATE}: its trusted root {:?}",
            root.subject()
        ))
    })?;

    // The key it certifies is the one that signed the manifest.
    let certified = tbs
        .subject_public_key_info
        .to_der()
        .map_err(|e| err!(DataLoss, "{CERTIFICATE}: encoding its key: {e}"))?;
    if certified != key.spki_der() {
        bail!(
            PermissionDenied,
            "{CERTIFICATE}: key: certifies the key with fingerprint {:x}, not the key in \
             {PUBLIC_KEY} ({}) that signed the manifest",
            Sha256::digest(&certified),
            key.fingerprint()
        );
    }

    // It names the recorder of the manifest, by common name and URI.
    let cn = common_name(&tbs.subject).map_err(|e| e.context(CERTIFICATE))?;
    if cn != recorder {
        bail!(
            PermissionDenied,
            "{CERTIFICATE}: recorder: its subject CN is {cn:?}, the manifest's recorder is \
             {recorder:?}"
        );
    }
    let uris = recorder_uris(&cert).map_err(|e| e.context(format!("{CERTIFICATE}: recorder")))?;
    let want = format!("{RECORDER_URN}{recorder}");
    if uris != [want.clone()] {
        bail!(
            PermissionDenied,
            "{CERTIFICATE}: recorder: its {RECORDER_URN} URI names are {uris:?}, not exactly \
             {want:?}"
        );
    }

    // A recorder's certificate: not a CA, and usable for signatures.
    let constraints = extension::<BasicConstraints>(&cert, "basicConstraints")
        .map_err(|e| e.context(CERTIFICATE))?;
    if constraints.is_some_and(|c| c.ca) {
        bail!(
            PermissionDenied,
            "{CERTIFICATE}: profile: a CA certificate, not a recorder's"
        );
    }
    let usage = extension::<KeyUsage>(&cert, "keyUsage").map_err(|e| e.context(CERTIFICATE))?;
    if usage.is_some_and(|u| !u.digital_signature()) {
        bail!(
            PermissionDenied,
            "{CERTIFICATE}: profile: its keyUsage lacks digitalSignature"
        );
    }

    Ok(Certified {
        recorder: cn,
        serial: serial_hex(tbs.serial_number.as_bytes()),
        not_before: tbs.validity.not_before.to_string(),
        not_after: tbs.validity.not_after.to_string(),
        root: root.subject(),
        root_fingerprint: root.fingerprint.clone(),
    })
}

/// Parses one PEM `CERTIFICATE` block as an X.509 v3 certificate in canonical DER with at
/// most one of each extension and no critical extension these checks do not understand.
/// Returns it and its DER.
fn parse(pem: &[u8]) -> Result<(Certificate, Vec<u8>), Error> {
    let der = check_certificate_pem(pem).map_err(|e| err!(DataLoss, "{}", e.msg()))?;
    let cert =
        Certificate::from_der(&der).map_err(|e| err!(DataLoss, "not an X.509 certificate: {e}"))?;
    // DER is canonical: one encoding per value. Bytes that decode but re-encode differently
    // are not DER, and the signed part re-encoded would not be the bytes that were signed.
    if cert.to_der().ok().as_deref() != Some(&der[..]) {
        bail!(
            DataLoss,
            "not an X.509 certificate in DER: it does not re-encode to the same bytes"
        );
    }
    let tbs = &cert.tbs_certificate;
    if tbs.version != Version::V3 {
        bail!(DataLoss, "X.509 {:?}, not V3", tbs.version);
    }
    let mut seen = BTreeSet::new();
    for e in tbs.extensions.as_deref().unwrap_or(&[]) {
        if !seen.insert(e.extn_id) {
            bail!(DataLoss, "extension {} appears twice", e.extn_id);
        }
        if e.critical && !KNOWN_EXTENSIONS.contains(&e.extn_id) {
            bail!(
                DataLoss,
                "extension {} is critical and not understood by this verifier",
                e.extn_id
            );
        }
    }
    Ok((cert, der))
}

/// The Ed25519 key (RFC 8410) of a SubjectPublicKeyInfo; small-order keys are refused.
fn ed25519_key(spki: &SubjectPublicKeyInfoOwned) -> Result<VerifyingKey, Error> {
    if spki.algorithm.oid != rfc8410::ID_ED_25519 || spki.algorithm.parameters.is_some() {
        bail!(
            DataLoss,
            "algorithm {}, not Ed25519 ({})",
            spki.algorithm.oid,
            rfc8410::ID_ED_25519
        );
    }
    let bytes: [u8; 32] = spki
        .subject_public_key
        .as_bytes()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| err!(DataLoss, "not the 32 bytes of an Ed25519 key"))?;
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| err!(DataLoss, "not a point of the Ed25519 curve"))?;
    if key.is_weak() {
        bail!(DataLoss, "a weak (small-order) Ed25519 key");
    }
    Ok(key)
}

/// The signed part of a certificate and its Ed25519 signature.
struct Signed {
    tbs: Vec<u8>,
    signature: Signature,
}

/// The certificate's signature, which must be Ed25519 (OID 1.3.101.112, no parameters) both
/// outside and inside the signed part, and the bytes it signs.
fn signature_of(cert: &Certificate) -> Result<Signed, Error> {
    let alg = &cert.signature_algorithm;
    if alg.oid != rfc8410::ID_ED_25519 || alg.parameters.is_some() {
        bail!(
            DataLoss,
            "signature: algorithm {}, not Ed25519 ({})",
            alg.oid,
            rfc8410::ID_ED_25519
        );
    }
    if cert.tbs_certificate.signature != *alg {
        bail!(
            DataLoss,
            "signature: the algorithm in the signed part differs from the outer one"
        );
    }
    let signature = cert
        .signature
        .as_bytes()
        .and_then(|b| Signature::from_slice(b).ok())
        .ok_or_else(|| {
            err!(
                DataLoss,
                "signature: not the 64 bytes of an Ed25519 signature"
            )
        })?;
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(|e| err!(DataLoss, "signature: encoding the signed part: {e}"))?;
    Ok(Signed { tbs, signature })
}

/// `at` lies within the certificate's validity, both ends included (RFC 5280, 4.1.2.5).
fn valid_at(cert: &Certificate, at: Time90k) -> Result<(), Error> {
    let v = &cert.tbs_certificate.validity;
    let nanos = |t: x509_cert::time::Time| {
        i128::try_from(t.to_unix_duration().as_nanos()).unwrap_or(i128::MAX)
    };
    let (from, to) = (v.not_before.to_string(), v.not_after.to_string());
    if at.unix_nanos() < nanos(v.not_before) {
        bail!(
            PermissionDenied,
            "validity: not yet valid at the export time {}: valid from {from} to {to}",
            at.to_rfc3339()
        );
    }
    if at.unix_nanos() > nanos(v.not_after) {
        bail!(
            PermissionDenied,
            "validity: expired before the export time {}: valid from {from} to {to}",
            at.to_rfc3339()
        );
    }
    Ok(())
}

/// The one common name of a subject.
fn common_name(name: &Name) -> Result<String, Error> {
    let mut names = name
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == rfc4519::CN);
    let (Some(cn), None) = (names.next(), names.next()) else {
        bail!(
            PermissionDenied,
            "recorder: its subject {:?} does not have exactly one CN",
            name.to_string()
        );
    };
    if !matches!(
        cn.value.tag(),
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String
    ) {
        bail!(
            DataLoss,
            "recorder: its subject CN is a {}, not a string",
            cn.value.tag()
        );
    }
    std::str::from_utf8(cn.value.value())
        .map(str::to_owned)
        .map_err(|_| err!(DataLoss, "recorder: its subject CN is not UTF-8"))
}

/// The certificate's `urn:vms:recorder:` URI names (subjectAltName).
fn recorder_uris(cert: &Certificate) -> Result<Vec<String>, Error> {
    let names = extension::<SubjectAltName>(cert, "subjectAltName")?.map_or(Vec::new(), |s| s.0);
    Ok(names
        .into_iter()
        .filter_map(|n| match n {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
            _ => None,
        })
        .filter(|u| u.starts_with(RECORDER_URN))
        .collect())
}

/// A certificate extension, decoded; `None` when absent.
fn extension<'a, T: Decode<'a> + x509_cert::der::oid::AssociatedOid>(
    cert: &'a Certificate,
    what: &str,
) -> Result<Option<T>, Error> {
    cert.tbs_certificate
        .get::<T>()
        .map(|e| e.map(|(_, v)| v))
        .map_err(|e| err!(DataLoss, "its {what} extension does not parse: {e}"))
}

/// A serial number as `openssl x509 -serial` prints it: upper-case hex without the leading
/// zero bytes of its DER INTEGER.
fn serial_hex(bytes: &[u8]) -> String {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    bytes[start..].iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints as Constraints, CertificateParams, CustomExtension, DistinguishedName,
        DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ED25519,
        SanType, SerialNumber, SubjectPublicKeyInfo, date_time_ymd,
    };

    use super::super::key::SigningKey;
    use super::super::package::PackageWriter;
    use super::super::package::tests::info;
    use super::super::verify::{CertificateStatus, Trust, verify_package};
    use super::*;

    /// The manifest's recorder in `package::tests::info`; it was exported 2026-11-27T09:30Z.
    const RECORDER: &str = "01JD0000000000000000000001";

    /// The subject names of vms-api's `pki.rs`.
    fn name(cn: &str) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "vms national network");
        dn.push(DnType::CommonName, cn);
        dn
    }

    struct Root {
        pem: String,
        der: Vec<u8>,
        issuer: Issuer<'static, KeyPair>,
    }

    /// A root as `pki.rs` makes it (CA, path length 0, keyCertSign and cRLSign), valid
    /// 2020–2040, with `edit` applied.
    fn root_with(cn: &str, edit: impl FnOnce(&mut CertificateParams)) -> Root {
        let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name = name(cn);
        p.is_ca = IsCa::Ca(Constraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.serial_number = Some(SerialNumber::from_slice(&[0x11; 16]));
        p.not_before = date_time_ymd(2020, 1, 1);
        p.not_after = date_time_ymd(2040, 1, 1);
        edit(&mut p);
        let cert = p.self_signed(&key).unwrap();
        Root {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            issuer: Issuer::new(p, key),
        }
    }

    fn national_root() -> Root {
        root_with("vms national root", |_| {})
    }

    fn trusted(root: &Root) -> TrustedRoot {
        TrustedRoot::from_pem(root.pem.as_bytes()).unwrap()
    }

    /// A recorder certificate as `pki.rs` issues it for `key_pem` and `RECORDER`: CN and URI
    /// name, digitalSignature, clientAuth, 825 days from 2026-01-01; with `edit` applied.
    fn leaf_with(root: &Root, key_pem: &str, edit: impl FnOnce(&mut CertificateParams)) -> String {
        let spki = SubjectPublicKeyInfo::from_pem(key_pem).unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name = name(RECORDER);
        p.subject_alt_names = vec![SanType::URI(
            format!("{RECORDER_URN}{RECORDER}").try_into().unwrap(),
        )];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.serial_number = Some(SerialNumber::from_slice(&[
            0x4a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
            0x0e, 0x0f,
        ]));
        p.use_authority_key_identifier_extension = true;
        p.not_before = date_time_ymd(2026, 1, 1);
        p.not_after = date_time_ymd(2028, 4, 5);
        edit(&mut p);
        p.signed_by(&spki, &root.issuer).unwrap().pem()
    }

    /// A recorder's data directory and key, and its packages.
    struct Recorder {
        dir: tempfile::TempDir,
        key: SigningKey,
    }

    fn recorder() -> Recorder {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(dir.path()).unwrap();
        Recorder { dir, key }
    }

    impl Recorder {
        fn key_pem(&self) -> &str {
            self.key.public_key().pem()
        }

        /// A package signed by this recorder carrying `certificate` as `certificate.pem`.
        fn package(&self, certificate: Option<&str>) -> Vec<u8> {
            if let Some(pem) = certificate {
                self.key.set_certificate(self.dir.path(), pem).unwrap();
            }
            let mut w = PackageWriter::new(Vec::new(), info(), &self.key).unwrap();
            w.add_media("a.bin", &b"footage"[..], 7).unwrap();
            w.finish().unwrap().0
        }
    }

    fn roots(roots: &[&Root]) -> Trust {
        Trust {
            key: None,
            roots: roots.iter().map(|r| trusted(r)).collect(),
        }
    }

    fn failure(package: &[u8], trust: &Trust) -> String {
        verify_package(package, trust).unwrap_err().to_string()
    }

    #[test]
    fn a_certificate_from_the_trusted_root_verifies() {
        let root = national_root();
        let rec = recorder();
        let package = rec.package(Some(&leaf_with(&root, rec.key_pem(), |_| {})));
        let v = verify_package(&package[..], &roots(&[&root])).unwrap();
        let fingerprint = format!("{:x}", Sha256::digest(&root.der));
        let want = Certified {
            recorder: RECORDER.into(),
            serial: "4A0102030405060708090A0B0C0D0E0F".into(),
            not_before: "2026-01-01T00:00:00Z".into(),
            not_after: "2028-04-05T00:00:00Z".into(),
            root: "CN=vms national root,O=vms national network".into(),
            root_fingerprint: fingerprint.clone(),
        };
        assert_eq!(v.certificate, CertificateStatus::Certified(want));
        assert!(!v.trusted_key);
        let text = v.to_string();
        assert!(
            text.contains(&format!(
                ": certified for recorder {RECORDER} by a trusted root\n  certificate.pem: \
                 recorder {RECORDER}, serial 4A0102030405060708090A0B0C0D0E0F, valid \
                 2026-01-01T00:00:00Z to 2028-04-05T00:00:00Z, in force at the export time; \
                 issued by the trusted root CN=vms national root,O=vms national network \
                 (SHA-256 {fingerprint})"
            )),
            "{text}"
        );
        assert!(!text.contains("NOT checked"), "{text}");

        // Among other roots, and together with the trusted key.
        let other = root_with("another root", |_| {});
        let both = Trust {
            key: Some(rec.key.public_key().clone()),
            roots: vec![trusted(&other), trusted(&root)],
        };
        let v = verify_package(&package[..], &both).unwrap();
        assert!(v.trusted_key);
        assert!(
            v.to_string()
                .contains("the trusted key given, certified for recorder"),
            "{v}"
        );
        // Both must pass: the right root does not excuse another key.
        let stranger = recorder();
        let wrong_key = Trust {
            key: Some(stranger.key.public_key().clone()),
            roots: vec![trusted(&root)],
        };
        assert!(failure(&package, &wrong_key).starts_with("recorder-key.pem: not the trusted key"));
    }

    #[test]
    fn each_broken_link_fails_naming_its_check() {
        let root = national_root();
        let trust = roots(&[&root]);
        let rec = recorder();
        let key = rec.key_pem().to_owned();
        let fails = |cert: &str, want: &str| {
            let text = failure(&rec.package(Some(cert)), &trust);
            assert!(text.starts_with(want), "wanted {want:?}, got {text}");
            text
        };

        // Another central's root: the same name (pki.rs always uses it), another key.
        let twin = national_root();
        fails(
            &leaf_with(&twin, &key, |_| {}),
            "certificate.pem: signature: does not verify with the key of the trusted root \
             \"CN=vms national root,O=vms national network\"",
        );
        let elsewhere = root_with("another root", |_| {});
        fails(
            &leaf_with(&elsewhere, &key, |_| {}),
            "certificate.pem: issuer: issued by \"CN=another root,O=vms national network\", \
             which is not the subject of a trusted root",
        );

        // Validity at the export time (2026-11-27T09:30:00Z), whatever the time is now.
        fails(
            &leaf_with(&root, &key, |p| p.not_after = date_time_ymd(2026, 11, 27)),
            "certificate.pem: validity: expired before the export time 2026-11-27T09:30:00Z: \
             valid from 2026-01-01T00:00:00Z to 2026-11-27T00:00:00Z",
        );
        fails(
            &leaf_with(&root, &key, |p| p.not_before = date_time_ymd(2026, 11, 28)),
            "certificate.pem: validity: not yet valid at the export time",
        );
        let old_root = root_with("vms national root", |p| {
            p.not_after = date_time_ymd(2026, 6, 1);
        });
        let text = failure(
            &rec.package(Some(&leaf_with(&old_root, &key, |_| {}))),
            &roots(&[&old_root]),
        );
        assert!(
            text.starts_with(
                "certificate.pem: its trusted root \"CN=vms national root,O=vms national \
                 network\": validity: expired before the export time"
            ),
            "{text}"
        );

        // Another key, another recorder.
        let stranger = recorder();
        let text = fails(
            &leaf_with(&root, stranger.key_pem(), |_| {}),
            "certificate.pem: key: certifies the key with fingerprint",
        );
        assert!(
            text.contains(stranger.key.public_key().fingerprint()),
            "{text}"
        );
        assert!(text.contains(rec.key.public_key().fingerprint()), "{text}");
        fails(
            &leaf_with(&root, &key, |p| {
                p.distinguished_name = name("01JD0000000000000000000009")
            }),
            "certificate.pem: recorder: its subject CN is \"01JD0000000000000000000009\", the \
             manifest's recorder is \"01JD0000000000000000000001\"",
        );
        fails(
            &leaf_with(&root, &key, |p| {
                p.subject_alt_names = vec![SanType::URI(
                    "urn:vms:recorder:01JD0000000000000000000009"
                        .try_into()
                        .unwrap(),
                )];
            }),
            "certificate.pem: recorder: its urn:vms:recorder: URI names are \
             [\"urn:vms:recorder:01JD0000000000000000000009\"]",
        );
        fails(
            &leaf_with(&root, &key, |p| p.subject_alt_names.clear()),
            "certificate.pem: recorder: its urn:vms:recorder: URI names are []",
        );

        // Not a recorder's certificate, or one this verifier cannot understand.
        fails(
            &leaf_with(&root, &key, |p| {
                p.is_ca = IsCa::Ca(Constraints::Unconstrained)
            }),
            "certificate.pem: profile: a CA certificate",
        );
        fails(
            &leaf_with(&root, &key, |p| {
                p.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
            }),
            "certificate.pem: profile: its keyUsage lacks digitalSignature",
        );
        fails(
            &leaf_with(&root, &key, |p| {
                let mut e = CustomExtension::from_oid_content(&[1, 2, 3, 4], vec![5, 0]);
                e.set_criticality(true);
                p.custom_extensions = vec![e];
            }),
            "certificate.pem: extension 1.2.3.4 is critical and not understood",
        );

        // Not a certificate at all.
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        fails(garbage, "certificate.pem: not an X.509 certificate");
    }

    #[test]
    fn without_a_certificate_a_trusted_root_fails_the_package() {
        let root = national_root();
        let rec = recorder();
        let package = rec.package(None);
        let v = verify_package(&package[..], &Trust::default()).unwrap();
        assert_eq!(v.certificate, CertificateStatus::Absent);
        assert!(
            v.to_string()
                .contains("the package is only self-consistent"),
            "{v}"
        );
        let text = failure(&package, &roots(&[&root]));
        assert!(
            text.starts_with("certificate.pem: missing from the package"),
            "{text}"
        );
    }

    #[test]
    fn a_garbage_certificate_entry_fails_under_a_trusted_root() {
        let root = national_root();
        let rec = recorder();
        let cert = leaf_with(&root, rec.key_pem(), |_| {});
        let package = rec.package(Some(&cert));
        // The entry replaced after the fact: it is not covered by the signature.
        let garbage =
            b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n";
        let swapped = replace_last_entry(&package, garbage);
        let text = failure(&swapped, &roots(&[&root]));
        assert!(
            text.starts_with("certificate.pem: not a PEM certificate"),
            "{text}"
        );
        let swapped = replace_last_entry(&package, b"\x00\xff binary");
        let text = failure(&swapped, &roots(&[&root]));
        assert!(
            text.starts_with("certificate.pem: not a PEM certificate"),
            "{text}"
        );
    }

    /// The package with its last entry's data replaced.
    fn replace_last_entry(package: &[u8], data: &[u8]) -> Vec<u8> {
        use super::super::tar::{TarReader, TarWriter};
        let mut r = TarReader::new(package);
        let mut entries = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            let mut d = Vec::new();
            r.read_to_end(&mut d).unwrap();
            entries.push((e.name, d));
        }
        entries.last_mut().unwrap().1 = data.to_vec();
        let mut w = TarWriter::new(Vec::new());
        for (name, d) in &entries {
            w.append(name, d.len() as u64, 0, &mut &d[..], &mut |_| {})
                .unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn roots_must_be_self_signed_ed25519_cas() {
        let good = national_root();
        let t = trusted(&good);
        assert_eq!(t.subject(), "CN=vms national root,O=vms national network");
        assert_eq!(t.fingerprint(), format!("{:x}", Sha256::digest(&good.der)));

        let not_ca = root_with("vms national root", |p| {
            p.is_ca = IsCa::ExplicitNoCa;
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        });
        let e = TrustedRoot::from_pem(not_ca.pem.as_bytes()).unwrap_err();
        assert_eq!(e.kind(), vms_core::ErrorKind::InvalidArgument);
        assert_eq!(
            e.to_string(),
            "not a CA certificate: its basicConstraints do not say cA=true"
        );
        let no_constraints = root_with("vms national root", |p| p.is_ca = IsCa::NoCa);
        let e = TrustedRoot::from_pem(no_constraints.pem.as_bytes()).unwrap_err();
        assert!(e.to_string().starts_with("not a CA certificate"), "{e}");
        let no_cert_sign = root_with("vms national root", |p| {
            p.key_usages = vec![KeyUsagePurpose::CrlSign];
        });
        let e = TrustedRoot::from_pem(no_cert_sign.pem.as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "not a CA certificate: its keyUsage lacks keyCertSign"
        );

        // A recorder's certificate given as a root: issued by another.
        let rec = recorder();
        let leaf = leaf_with(&good, rec.key_pem(), |_| {});
        let e = TrustedRoot::from_pem(leaf.as_bytes()).unwrap_err();
        assert!(
            e.to_string().starts_with("not self-signed: issued by"),
            "{e}"
        );

        // A root whose own signature is broken.
        let mut der = good.der.clone();
        let last = der.len() - 1;
        der[last] ^= 1;
        let pem = x509_cert::der::pem::encode_string(
            "CERTIFICATE",
            x509_cert::der::pem::LineEnding::LF,
            &der,
        )
        .unwrap();
        let e = TrustedRoot::from_pem(pem.as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "not self-signed: its signature does not verify with its own key"
        );

        // Not Ed25519.
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::default();
        p.is_ca = IsCa::Ca(Constraints::Unconstrained);
        let e = TrustedRoot::from_pem(p.self_signed(&key).unwrap().pem().as_bytes()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("its key: algorithm 1.2.840.10045.2.1, not Ed25519"),
            "{e}"
        );

        // Not a certificate, and a file that is not there or too big.
        assert!(TrustedRoot::from_pem(b"garbage").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.pem");
        let e = TrustedRoot::load(&path).unwrap_err();
        assert!(e.to_string().contains("root.pem"), "{e}");
        std::fs::write(&path, vec![b'A'; MAX_CERTIFICATE_BYTES + 10]).unwrap();
        let e = TrustedRoot::load(&path).unwrap_err();
        assert!(e.to_string().contains("more than the 65536"), "{e}");
        std::fs::write(&path, &good.pem).unwrap();
        assert_eq!(
            TrustedRoot::load(&path).unwrap().fingerprint(),
            t.fingerprint()
        );
    }

    #[test]
    fn non_der_encodings_old_versions_and_weak_keys_are_refused() {
        let root = national_root();
        let rec = recorder();
        let pem = leaf_with(&root, rec.key_pem(), |_| {});
        let der = check_certificate_pem(pem.as_bytes()).unwrap();
        // The version, `[0] { INTEGER 2 }`, made v1 stated explicitly: BER allows a DEFAULT
        // value to be encoded, DER does not.
        let at = der
            .windows(5)
            .position(|w| w == [0xa0, 0x03, 0x02, 0x01, 0x02])
            .unwrap();
        let mut ber = der.clone();
        ber[at + 4] = 0;
        let pem = x509_cert::der::pem::encode_string(
            "CERTIFICATE",
            x509_cert::der::pem::LineEnding::LF,
            &ber,
        )
        .unwrap();
        let e = check_chain(
            pem.as_bytes(),
            &[trusted(&root)],
            rec.key.public_key(),
            RECORDER,
            Time90k::parse_rfc3339("2026-11-27T09:30:00Z").unwrap(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "certificate.pem: not an X.509 certificate in DER: it does not re-encode to the same \
             bytes"
        );

        // The same field saying v2: DER, but no certificate of ours.
        ber[at + 4] = 1;
        let pem = x509_cert::der::pem::encode_string(
            "CERTIFICATE",
            x509_cert::der::pem::LineEnding::LF,
            &ber,
        )
        .unwrap();
        let e = check_chain(
            pem.as_bytes(),
            &[trusted(&root)],
            rec.key.public_key(),
            RECORDER,
            Time90k::parse_rfc3339("2026-11-27T09:30:00Z").unwrap(),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "certificate.pem: X.509 V2, not V3");

        // A root whose key is the identity point, of small order: refused before its
        // signature is looked at.
        let mut weak = root.der.clone();
        let key = trusted(&root).key.to_bytes();
        let at = weak.windows(32).position(|w| w == key).unwrap();
        weak[at..at + 32].copy_from_slice(&[0; 32]);
        weak[at] = 1;
        let pem = x509_cert::der::pem::encode_string(
            "CERTIFICATE",
            x509_cert::der::pem::LineEnding::LF,
            &weak,
        )
        .unwrap();
        let e = TrustedRoot::from_pem(pem.as_bytes()).unwrap_err();
        assert_eq!(e.to_string(), "its key: a weak (small-order) Ed25519 key");
    }

    /// A small deterministic generator, so a failure reproduces.
    fn xorshift(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn random_damage_never_panics_and_never_verifies() {
        let root = national_root();
        let roots = [trusted(&root)];
        let rec = recorder();
        let pem = leaf_with(&root, rec.key_pem(), |_| {});
        let der = check_certificate_pem(pem.as_bytes()).unwrap();
        let at = Time90k::parse_rfc3339("2026-11-27T09:30:00Z").unwrap();
        let check = |der: &[u8]| {
            let pem = x509_cert::der::pem::encode_string(
                "CERTIFICATE",
                x509_cert::der::pem::LineEnding::LF,
                der,
            )
            .unwrap();
            check_chain(pem.as_bytes(), &roots, rec.key.public_key(), RECORDER, at)
        };
        check(&der).unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for round in 0..2000 {
            let mut bytes = der.clone();
            match xorshift(&mut seed) % 3 {
                0 => {
                    for _ in 0..=xorshift(&mut seed) % 3 {
                        let i = (xorshift(&mut seed) % bytes.len() as u64) as usize;
                        bytes[i] ^= (xorshift(&mut seed) % 255 + 1) as u8;
                    }
                }
                1 => bytes.truncate((xorshift(&mut seed) % bytes.len() as u64) as usize),
                _ => {
                    let i = (xorshift(&mut seed) % bytes.len() as u64) as usize;
                    bytes.insert(i, (xorshift(&mut seed) % 256) as u8);
                }
            }
            if bytes != der {
                assert!(
                    check(&bytes).is_err(),
                    "round {round}: damaged certificate verified"
                );
            }
        }
    }
}

//! The recorder's evidence-signing key: an Ed25519 key made at first start and kept in the data
//! directory (PKCS#8 PEM, mode 0600), its public half as SPKI PEM with a SHA-256 fingerprint,
//! and the optional certificate from central that chains it to the national root.

use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePublicKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, VerifyingKey};
use sha2::{Digest, Sha256};
use vms_core::{Error, IoResultExt, bail, err};

use rustls::pki_types as rustls_pki_der;
use vms_core::keyfile::{load_or_create_ed25519, write_atomically};

/// The private key's file in the data directory.
pub const KEY_FILE: &str = "evidence-key.pem";
/// The certificate central issues for the key at enrolment, in the data directory. Until
/// central certifies recorder keys it does not exist, and the key stands alone.
pub const CERTIFICATE_FILE: &str = "evidence-cert.pem";
/// The most bytes a certificate file may have.
pub const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// An Ed25519 public key, as it travels in a package: SPKI PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    der: Vec<u8>,
    pem: String,
    fingerprint: String,
}

impl PublicKey {
    fn new(key: VerifyingKey) -> Result<PublicKey, Error> {
        let der = key
            .to_public_key_der()
            .map_err(|e| err!(Internal, "encoding the public key: {e}"))?;
        let pem = key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| err!(Internal, "encoding the public key: {e}"))?;
        Ok(PublicKey {
            key,
            fingerprint: format!("{:x}", Sha256::digest(der.as_bytes())),
            der: der.into_vec(),
            pem,
        })
    }

    /// Parses an SPKI PEM (`-----BEGIN PUBLIC KEY-----`) holding an Ed25519 key. Keys of small
    /// order, under which forged signatures verify, are refused.
    pub fn from_pem(pem: &str) -> Result<PublicKey, Error> {
        let key = VerifyingKey::from_public_key_pem(pem).map_err(|e| {
            err!(
                InvalidArgument,
                "not an Ed25519 public key in SPKI PEM form: {e}"
            )
        })?;
        if key.is_weak() {
            bail!(InvalidArgument, "a weak (small-order) Ed25519 public key");
        }
        PublicKey::new(key)
    }

    /// SPKI PEM, `\n` line endings: what `recorder-key.pem` holds.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The SubjectPublicKeyInfo's DER encoding (44 bytes for Ed25519).
    pub fn spki_der(&self) -> &[u8] {
        &self.der
    }

    /// Lower-case hex SHA-256 of the SPKI DER encoding: the same as
    /// `openssl pkey -pubin -in KEY.pem -outform DER | sha256sum`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Checks an Ed25519 signature (RFC 8032, strict: non-canonical signatures fail).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        let sig = Signature::from_slice(signature).map_err(|_| {
            err!(
                InvalidArgument,
                "{} bytes, an Ed25519 signature has 64",
                signature.len()
            )
        })?;
        self.key
            .verify_strict(message, &sig)
            .map_err(|_| err!(DataLoss, "the signature does not verify"))
    }
}

/// The recorder's evidence-signing key.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    public: PublicKey,
    certificate: std::sync::RwLock<Option<String>>,
}

impl SigningKey {
    /// Loads `{data_dir}/evidence-key.pem`, or makes a new key there when there is none.
    /// A key file that will not parse is an error, never a reason to make a new key: that
    /// would silently change the recorder's identity. So is a key file that others than its
    /// owner may read. Loads the certificate beside it, if there is one.
    pub fn load_or_create(data_dir: &Path) -> Result<SigningKey, Error> {
        let path = data_dir.join(KEY_FILE);
        let (key, created) = load_or_create_ed25519(&path)?;
        if created {
            tracing::info!(path = %path.display(), "made a new evidence-signing key");
        }
        let public = PublicKey::new(key.verifying_key())?;
        let certificate = load_certificate(&data_dir.join(CERTIFICATE_FILE))?;
        Ok(SigningKey {
            key,
            public,
            certificate: std::sync::RwLock::new(certificate),
        })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The PEM certificate central issued for this key, once it does.
    pub fn certificate(&self) -> Option<String> {
        self.certificate.read().expect("certificate lock").clone()
    }

    /// Keeps the certificate central issued for this key (in `data_dir`) and uses it from now
    /// on. Blocking.
    pub fn set_certificate(&self, data_dir: &Path, pem: &str) -> Result<(), Error> {
        check_certificate_pem(pem.as_bytes())?;
        write_atomically(&data_dir.join(CERTIFICATE_FILE), pem.as_bytes())?;
        *self.certificate.write().expect("certificate lock") = Some(pem.to_owned());
        Ok(())
    }

    /// The private key as PKCS#8 DER, for TLS client authentication.
    pub fn pkcs8_der(&self) -> Result<rustls_pki_der::PrivatePkcs8KeyDer<'static>, Error> {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let der = self
            .key
            .to_pkcs8_der()
            .map_err(|e| err!(Internal, "encoding the key: {e}"))?;
        Ok(rustls_pki_der::PrivatePkcs8KeyDer::from(
            der.as_bytes().to_vec(),
        ))
    }

    /// A raw 64-byte Ed25519 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// The certificate file, if present: one PEM `CERTIFICATE` block.
fn load_certificate(path: &Path) -> Result<Option<String>, Error> {
    let pem = match std::fs::read_to_string(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).io_context(|| format!("reading {}", path.display())),
    };
    check_certificate_pem(pem.as_bytes()).map_err(|e| e.context(path.display()))?;
    Ok(Some(pem))
}

/// Checks that `bytes` are one PEM block labelled `CERTIFICATE` (RFC 7468) and returns the
/// bytes it holds; what it certifies is not checked here.
pub fn check_certificate_pem(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    if bytes.len() > MAX_CERTIFICATE_BYTES {
        bail!(
            InvalidArgument,
            "{} bytes, more than the {MAX_CERTIFICATE_BYTES} a certificate may have",
            bytes.len()
        );
    }
    let (label, der) =
        pem::decode_vec(bytes).map_err(|e| err!(InvalidArgument, "not a PEM certificate: {e}"))?;
    if label != "CERTIFICATE" {
        bail!(
            InvalidArgument,
            "a PEM block labelled {label:?}, not CERTIFICATE"
        );
    }
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
        assert!(!dir.path().join("evidence-key.tmp").exists());

        let again = SigningKey::load_or_create(dir.path()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "not rewritten"
        );
        assert!(again.certificate().is_none());

        let pem = key.public_key().pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
        assert_eq!(&PublicKey::from_pem(pem).unwrap(), key.public_key());
        assert_eq!(key.public_key().fingerprint().len(), 64);

        let sig = key.sign(b"manifest");
        again.public_key().verify(b"manifest", &sig).unwrap();
        assert!(key.public_key().verify(b"manifesT", &sig).is_err());
        assert!(key.public_key().verify(b"manifest", &sig[..63]).is_err());
        let other = tempfile::tempdir().unwrap();
        let other = SigningKey::load_or_create(other.path()).unwrap();
        assert_ne!(other.public_key(), key.public_key());
        assert!(other.public_key().verify(b"manifest", &sig).is_err());
    }

    #[test]
    fn fingerprint_is_sha256_of_the_spki_der() {
        // RFC 8410's example key: the DER is the fixed 12-byte Ed25519 SPKI prefix and the 32
        // key bytes, and its SHA-256 was computed with `openssl pkey -pubin -outform DER | sha256sum`.
        let pem = "-----BEGIN PUBLIC KEY-----\n\
                   MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
                   -----END PUBLIC KEY-----\n";
        let key = PublicKey::from_pem(pem).unwrap();
        assert_eq!(key.pem(), pem);
        assert_eq!(
            key.fingerprint(),
            "a1e9156054e04fac899ae9f275132cdc07a5dbc4ea2c2ad3a1ffc6e0d253681f"
        );
    }

    #[test]
    fn refuses_unreadable_or_exposed_keys_and_bad_certificates() {
        let dir = tempfile::tempdir().unwrap();
        SigningKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SigningKey::load_or_create(dir.path()).err().unwrap();
        assert_eq!(e.kind(), vms_core::ErrorKind::FailedPrecondition);
        assert!(e.to_string().contains("0644"), "{e}");

        std::fs::write(&path, "not a key").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = SigningKey::load_or_create(dir.path()).err().unwrap();
        assert_eq!(e.kind(), vms_core::ErrorKind::DataLoss);
        assert!(e.to_string().contains(KEY_FILE), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join(CERTIFICATE_FILE);
        std::fs::write(
            &cert,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        let e = SigningKey::load_or_create(dir.path()).err().unwrap();
        assert!(e.to_string().contains(CERTIFICATE_FILE), "{e}");
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let key = SigningKey::load_or_create(dir.path()).unwrap();
        assert!(
            key.certificate()
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );

        assert!(PublicKey::from_pem("garbage").is_err());
        // The identity point: a small-order key.
        let weak = "-----BEGIN PUBLIC KEY-----\n\
                    MCowBQYDK2VwAyEAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\
                    -----END PUBLIC KEY-----\n";
        let e = PublicKey::from_pem(weak).unwrap_err();
        assert!(e.to_string().contains("weak"), "{e}");
    }
}

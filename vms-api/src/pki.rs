//! The national root of trust (spec/central.md, "Trust"): central's Ed25519 root key and its
//! self-signed CA certificate, kept in the data directory; the certificates it issues (the
//! channel port's TLS server certificate, made afresh at each start, and each enrolled
//! recorder's certificate, which serves as TLS client certificate and evidence-signing
//! certificate at once); and the TLS configuration of the channel port. The root key also
//! signs media tokens.

use std::path::Path;
use std::sync::Arc;

use ed25519_dalek::pkcs8::EncodePrivateKey;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ED25519, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use vms_core::id::RecorderId;
use vms_core::keyfile::{load_or_create_ed25519, write_atomically};
use vms_core::{Error, IoResultExt, err};

/// The root key's file in the data directory (PKCS#8 PEM, mode 0600).
pub const ROOT_KEY_FILE: &str = "root-key.pem";
/// The root certificate's file in the data directory.
pub const ROOT_CERT_FILE: &str = "root-cert.pem";
/// ALPN protocol of the recorder–central channel.
pub const ALPN_CHANNEL: &[u8] = b"vms-channel/1";
/// ALPN protocol of enrolment (plain HTTP/1.1 on the channel port).
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

const ROOT_VALIDITY_DAYS: i64 = 20 * 365;
const LEAF_VALIDITY_DAYS: i64 = 825;

fn pki_err(what: &str, e: impl std::fmt::Display) -> Error {
    err!(Internal, "{what}: {e}")
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // a positive INTEGER
    bytes[0] |= 0x01; // of the full length
    SerialNumber::from_slice(&bytes)
}

fn validity(params: &mut CertificateParams, days: i64) -> Result<(), Error> {
    let now = jiff::Timestamp::now().as_second();
    let at = |secs| {
        time::OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|e| err!(Internal, "certificate validity out of range: {e}"))
    };
    // An hour of slack before now, for peers whose clocks run a little behind.
    params.not_before = at(now - 3600)?;
    params.not_after = at(now + days * 86_400)?;
    Ok(())
}

/// The root of trust and what it vouches for.
pub struct Pki {
    root_key: ed25519_dalek::SigningKey,
    root_issuer: Issuer<'static, KeyPair>,
    root_cert_pem: String,
    root_cert_der: CertificateDer<'static>,
    server: Arc<rustls::ServerConfig>,
}

impl Pki {
    /// Loads the root key and certificate from `data_dir`, making them at first start, and
    /// issues the channel port's server certificate for `tls_names`.
    pub fn load_or_create(data_dir: &Path, tls_names: &[String]) -> Result<Pki, Error> {
        let (root_key, created) = load_or_create_ed25519(&data_dir.join(ROOT_KEY_FILE))?;
        if created {
            tracing::info!(dir = %data_dir.display(), "made a new national root key");
        }
        let key_pair = key_pair(&root_key)?;
        let cert_path = data_dir.join(ROOT_CERT_FILE);
        let root_cert_pem = match std::fs::read_to_string(&cert_path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pem = self_signed_root(&key_pair)?;
                write_atomically(&cert_path, pem.as_bytes())?;
                pem
            }
            Err(e) => return Err(e).io_context(|| format!("reading {}", cert_path.display())),
        };
        let root_cert_der =
            pem_to_der(&root_cert_pem).map_err(|e| e.context(cert_path.display()))?;
        let root_issuer = Issuer::from_ca_cert_der(&root_cert_der, key_pair).map_err(|e| {
            err!(
                DataLoss,
                "{}: not a CA certificate of the root key: {e}",
                cert_path.display()
            )
        })?;
        let server = Arc::new(server_config(&root_issuer, &root_cert_der, tls_names)?);
        Ok(Pki {
            root_key,
            root_issuer,
            root_cert_pem,
            root_cert_der,
            server,
        })
    }

    pub fn root_cert_pem(&self) -> &str {
        &self.root_cert_pem
    }

    /// Hex SHA-256 of the root certificate's DER: what an enrolment token pins.
    pub fn root_fingerprint(&self) -> String {
        vms_core::hex::sha256(&self.root_cert_der)
    }

    /// The key that signs media tokens.
    pub fn token_key(&self) -> &ed25519_dalek::SigningKey {
        &self.root_key
    }

    /// The media-token verification key, as recorders receive it.
    pub fn token_key_pem(&self) -> Result<vms_core::wire::TokenKeyPem, Error> {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        let public = self.root_key.verifying_key();
        let pem = public
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| pki_err("encoding the token key", e))?;
        Ok(vms_core::wire::TokenKeyPem {
            kid: vms_core::token::key_id(&public),
            public_key_pem: pem,
        })
    }

    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }

    /// Certifies a recorder's Ed25519 key (SPKI PEM) as its TLS client and evidence-signing
    /// certificate: subject CN and a `urn:vms:recorder:` URI name the recorder.
    pub fn certify_recorder(&self, id: RecorderId, spki_pem: &str) -> Result<String, Error> {
        let spki = SubjectPublicKeyInfo::from_pem(spki_pem)
            .map_err(|e| err!(InvalidArgument, "public_key_pem: not an SPKI PEM key: {e}"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&id.to_string());
        params.subject_alt_names = vec![SanType::URI(
            format!("urn:vms:recorder:{id}")
                .try_into()
                .map_err(|e| pki_err("recorder URI", e))?,
        )];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, LEAF_VALIDITY_DAYS)?;
        let cert = params
            .signed_by(&spki, &self.root_issuer)
            .map_err(|e| pki_err("issuing a recorder certificate", e))?;
        Ok(cert.pem())
    }
}

/// A fresh key and server certificate for the channel port; client certificates are
/// optional at the TLS layer (enrolment has none) and required by the channel itself.
fn server_config(
    root_issuer: &Issuer<'static, KeyPair>,
    root_cert_der: &CertificateDer<'static>,
    tls_names: &[String],
) -> Result<rustls::ServerConfig, Error> {
    {
        let key = KeyPair::generate_for(&PKCS_ED25519).map_err(|e| pki_err("server key", e))?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| pki_err("server certificate", e))?;
        params.subject_alt_names = tls_names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n
                    .as_str()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|e| err!(InvalidArgument, "tls_names: {n:?}: {e}")),
            })
            .collect::<Result<_, Error>>()?;
        params.distinguished_name = name("vms central channel");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, LEAF_VALIDITY_DAYS)?;
        let cert = params
            .signed_by(&key, root_issuer)
            .map_err(|e| pki_err("issuing the server certificate", e))?;
        let provider = provider();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(root_cert_der.clone())
            .map_err(|e| pki_err("root store", e))?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| pki_err("client verifier", e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| pki_err("TLS versions", e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![cert.der().clone(), root_cert_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(|e| pki_err("server certificate", e))?;
        config.alpn_protocols = vec![ALPN_CHANNEL.to_vec(), ALPN_HTTP1.to_vec()];
        Ok(config)
    }
}

/// The crypto provider of every TLS configuration here.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "vms national network");
    dn.push(DnType::CommonName, cn);
    dn
}

fn key_pair(key: &ed25519_dalek::SigningKey) -> Result<KeyPair, Error> {
    let der = key
        .to_pkcs8_der()
        .map_err(|e| pki_err("encoding the root key", e))?;
    KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(der.as_bytes()), &PKCS_ED25519)
        .map_err(|e| pki_err("loading the root key", e))
}

fn self_signed_root(key: &KeyPair) -> Result<String, Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name("vms national root");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(random_serial());
    validity(&mut params, ROOT_VALIDITY_DAYS)?;
    let cert = params
        .self_signed(key)
        .map_err(|e| pki_err("making the root certificate", e))?;
    Ok(cert.pem())
}

/// The DER of a PEM `CERTIFICATE` block.
pub fn pem_to_der(pem: &str) -> Result<CertificateDer<'static>, Error> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| err!(InvalidArgument, "not a PEM certificate: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePublicKey;

    #[test]
    fn root_persists_and_certifies_recorders_for_tls() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["127.0.0.1".to_owned()];
        let a = Pki::load_or_create(dir.path(), &names).unwrap();
        let b = Pki::load_or_create(dir.path(), &names).unwrap();
        assert_eq!(
            a.root_fingerprint(),
            b.root_fingerprint(),
            "the root is kept"
        );
        let recorder = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let spki = recorder
            .verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap();
        let id = RecorderId::generate();
        let pem = a.certify_recorder(id, &spki).unwrap();
        // rustls's own verifier accepts it as a client certificate under the root…
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pem_to_der(a.root_cert_pem()).unwrap()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        let leaf = pem_to_der(&pem).unwrap();
        verifier
            .verify_client_cert(&leaf, &[], rustls::pki_types::UnixTime::now())
            .unwrap();
        // …and refuses one from another root.
        let other = tempfile::tempdir().unwrap();
        let c = Pki::load_or_create(other.path(), &names).unwrap();
        let foreign = pem_to_der(&c.certify_recorder(id, &spki).unwrap()).unwrap();
        assert!(
            verifier
                .verify_client_cert(&foreign, &[], rustls::pki_types::UnixTime::now())
                .is_err()
        );
        assert!(a.certify_recorder(id, "not a key").is_err());
    }
}

//! The registry of recorders (spec/central.md, "Enrolment"): one-time enrolment tokens, the
//! enrolment itself (version negotiation, proof of key possession, the certificate central
//! issues), each recorder's lasting record, and its live state (channel up, last heartbeat,
//! status) which is never stored.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ed25519_dalek::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};
use vms_core::id::RecorderId;
use vms_core::region::RegionCode;
use vms_core::wire::{self, EnrolRequest, EnrolResponse, RecorderStatus};
use vms_core::{Error, bail, err};

use crate::pki::Pki;
use crate::store::{Store, Table};
use vms_core::hex::{self, constant_time_eq};

/// Major versions of the spec this build speaks, newest first.
pub const SPEC_VERSIONS: &[&str] = &["1.0"];
/// Prefix of an enrolment token's text.
const TOKEN_PREFIX: &str = "vmsenrol1";

/// A recorder as central keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecorderRecord {
    pub id: RecorderId,
    pub name: String,
    pub region: RegionCode,
    pub spec_version: String,
    pub public_key_pem: String,
    /// Hex SHA-256 of the DER of the certificate issued at enrolment: the channel's client
    /// certificate must be exactly this one.
    pub cert_sha256: String,
    pub public_url: Option<String>,
    pub enrolled: String,
}

/// A one-time enrolment token as stored: only its secret's hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TokenRecord {
    secret_sha256: String,
    region: RegionCode,
    expires_unix: i64,
    created_by: String,
}

/// What central knows of a recorder right now.
#[derive(Clone, Debug)]
pub struct Live {
    pub online: bool,
    pub last_heartbeat: Option<Instant>,
    pub status: RecorderStatus,
}

pub struct Registry {
    recorders: Table,
    certs: Table,
    tokens: Table,
    live: Mutex<HashMap<RecorderId, Live>>,
    store: Store,
}

/// A new enrolment token: its text (given once) and when it expires.
pub struct NewToken {
    pub token: String,
    pub expires: jiff::Timestamp,
}

impl Registry {
    pub fn open(store: &Store) -> Result<Registry, Error> {
        Ok(Registry {
            recorders: store.table("recorders")?,
            certs: store.table("recorder_certs")?,
            tokens: store.table("enrolment_tokens")?,
            live: Mutex::new(HashMap::new()),
            store: store.clone(),
        })
    }

    /// Makes a one-time token that enrols one recorder in `region` (or beneath it).
    pub fn create_token(
        &self,
        pki: &Pki,
        region: RegionCode,
        ttl: Duration,
        created_by: &str,
    ) -> Result<NewToken, Error> {
        let id = ulid::Ulid::new().to_string();
        let secret: [u8; 16] = rand::random();
        let secret = hex::encode(&secret);
        let expires = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(ttl.as_secs() as i64))
            .map_err(|e| err!(InvalidArgument, "ttl: {e}"))?;
        self.tokens.put(
            &id,
            &TokenRecord {
                secret_sha256: hex::sha256(secret.as_bytes()),
                region,
                expires_unix: expires.as_second(),
                created_by: created_by.to_owned(),
            },
        )?;
        self.store.flush()?;
        Ok(NewToken {
            token: format!("{TOKEN_PREFIX}.{id}.{secret}.{}", pki.root_fingerprint()),
            expires,
        })
    }

    /// Enrols a recorder: checks the token (consuming it), the versions, the region and the
    /// proof of possession; certifies the key; keeps the record. Blocking (store flush).
    pub fn enrol(
        &self,
        pki: &Pki,
        req: &EnrolRequest,
        heartbeat_interval: Duration,
    ) -> Result<(RecorderRecord, EnrolResponse), Error> {
        let refused = || err!(Unauthenticated, "the enrolment token is not valid");
        let mut parts = req.token.split('.');
        let (Some(TOKEN_PREFIX), Some(id), Some(secret), Some(_pin), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(refused());
        };
        let stored: TokenRecord = self.tokens.get(id)?.ok_or_else(refused)?;
        if !constant_time_eq(
            hex::sha256(secret.as_bytes()).as_bytes(),
            stored.secret_sha256.as_bytes(),
        ) {
            return Err(refused());
        }
        if stored.expires_unix <= jiff::Timestamp::now().as_second() {
            self.tokens.remove(id)?;
            bail!(Unauthenticated, "the enrolment token has expired");
        }
        let spec_version = negotiate(&req.spec_versions)?;
        let recorder: RecorderId = req
            .recorder
            .parse()
            .map_err(|e: Error| e.context("recorder"))?;
        let region: RegionCode = req.region.parse().map_err(|e: Error| e.context("region"))?;
        if !region.is_within(&stored.region) {
            bail!(
                PermissionDenied,
                "region {region} is outside the token's region {}",
                stored.region
            );
        }
        vms_core::text::check_text("name", &req.name, 128)?;
        if let Some(u) = &req.public_url {
            check_public_url(u)?;
        }
        let key =
            ed25519_dalek::VerifyingKey::from_public_key_pem(&req.public_key_pem).map_err(|e| {
                err!(
                    InvalidArgument,
                    "public_key_pem: not an Ed25519 SPKI PEM: {e}"
                )
            })?;
        let proof: [u8; 64] = hex::decode(&req.proof)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| err!(InvalidArgument, "proof: not 64 hex-encoded bytes"))?;
        key.verify_strict(
            &wire::enrol_proof_bytes(&req.token, &req.recorder, &req.public_key_pem),
            &ed25519_dalek::Signature::from_bytes(&proof),
        )
        .map_err(|_| err!(InvalidArgument, "proof: the signature does not verify"))?;
        // Everything checks: the token is spent now, by exactly one request.
        if self.tokens.take::<TokenRecord>(id)?.is_none() {
            return Err(refused());
        }
        let certificate_pem = pki.certify_recorder(recorder, &req.public_key_pem)?;
        let cert_sha256 = hex::sha256(&crate::pki::pem_to_der(&certificate_pem)?);
        if let Some(old) = self.get(recorder)? {
            self.certs.remove(&old.cert_sha256)?;
        }
        let record = RecorderRecord {
            id: recorder,
            name: req.name.clone(),
            region,
            spec_version: spec_version.clone(),
            public_key_pem: req.public_key_pem.clone(),
            cert_sha256: cert_sha256.clone(),
            public_url: req.public_url.clone(),
            enrolled: jiff::Timestamp::now().to_string(),
        };
        self.recorders.put(recorder.to_bytes(), &record)?;
        self.certs.put(&cert_sha256, &recorder)?;
        self.store.flush()?;
        let response = EnrolResponse {
            spec_version,
            recorder: recorder.to_string(),
            certificate_pem,
            root_certificate_pem: pki.root_cert_pem().to_owned(),
            token_keys: vec![pki.token_key_pem()?],
            heartbeat_interval_ms: heartbeat_interval.as_millis() as u64,
        };
        Ok((record, response))
    }

    pub fn get(&self, id: RecorderId) -> Result<Option<RecorderRecord>, Error> {
        self.recorders.get(id.to_bytes())
    }

    /// The recorder a channel's client certificate (its DER) belongs to, if it is the one
    /// central issued it last.
    pub fn by_certificate(&self, der: &[u8]) -> Result<Option<RecorderRecord>, Error> {
        match self.certs.get::<RecorderId>(hex::sha256(der))? {
            Some(id) => self.get(id),
            None => Ok(None),
        }
    }

    pub fn list(&self) -> Result<Vec<RecorderRecord>, Error> {
        self.recorders
            .scan::<RecorderRecord>([])
            .map(|r| r.map(|(_, v)| v))
            .collect()
    }

    pub fn live(&self, id: RecorderId) -> Live {
        self.live
            .lock()
            .expect("registry lock")
            .get(&id)
            .cloned()
            .unwrap_or(Live {
                online: false,
                last_heartbeat: None,
                status: RecorderStatus::default(),
            })
    }

    pub fn is_online(&self, id: RecorderId) -> bool {
        self.live
            .lock()
            .expect("registry lock")
            .get(&id)
            .is_some_and(|l| l.online)
    }

    /// A heartbeat arrived (or the channel came up, with `status` absent).
    pub fn heartbeat(&self, id: RecorderId, status: Option<RecorderStatus>) {
        let mut live = self.live.lock().expect("registry lock");
        let l = live.entry(id).or_insert(Live {
            online: true,
            last_heartbeat: None,
            status: RecorderStatus::default(),
        });
        if !l.online {
            tracing::info!(recorder = %id, "recorder online");
        }
        l.online = true;
        l.last_heartbeat = Some(Instant::now());
        if let Some(s) = status {
            l.status = s;
        }
    }

    pub fn set_offline(&self, id: RecorderId, why: &str) {
        if let Some(l) = self.live.lock().expect("registry lock").get_mut(&id)
            && l.online
        {
            tracing::warn!(recorder = %id, why, "recorder offline");
            l.online = false;
        }
    }

    /// Marks offline every recorder whose last heartbeat is older than `timeout`; returns
    /// them.
    pub fn expire(&self, timeout: Duration) -> Vec<RecorderId> {
        let now = Instant::now();
        let mut gone = Vec::new();
        for (id, l) in self.live.lock().expect("registry lock").iter_mut() {
            if l.online
                && l.last_heartbeat
                    .is_none_or(|t| now.duration_since(t) > timeout)
            {
                tracing::warn!(recorder = %id, "recorder offline: heartbeats missed");
                l.online = false;
                gone.push(*id);
            }
        }
        gone
    }
}

/// The newest spec version both sides speak (same major; the lower minor).
pub fn negotiate(theirs: &[String]) -> Result<String, Error> {
    for ours in SPEC_VERSIONS {
        let (major, minor) = split_version(ours).expect("our versions are well formed");
        let best = theirs
            .iter()
            .filter_map(|t| split_version(t))
            .filter(|&(m, _)| m == major)
            .map(|(_, n)| n.min(minor))
            .max();
        if let Some(n) = best {
            return Ok(format!("{major}.{n}"));
        }
    }
    Err(err!(
        FailedPrecondition,
        "spec_versions: none of {theirs:?} is spoken here (this central speaks {SPEC_VERSIONS:?})"
    ))
}

fn split_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn check_public_url(u: &str) -> Result<(), Error> {
    let url = url::Url::parse(u).map_err(|e| err!(InvalidArgument, "public_url: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        bail!(
            InvalidArgument,
            "public_url: must be an http(s) URL with a host"
        );
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!(InvalidArgument, "public_url: must not carry credentials");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer;
    use ed25519_dalek::pkcs8::EncodePublicKey;

    fn setup() -> (tempfile::TempDir, Pki, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &["127.0.0.1".to_owned()]).unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let reg = Registry::open(&store).unwrap();
        (dir, pki, reg)
    }

    fn request(token: &str, region: &str, key: &ed25519_dalek::SigningKey) -> EnrolRequest {
        let recorder = RecorderId::generate().to_string();
        let pem = key
            .verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap();
        let proof = key.sign(&wire::enrol_proof_bytes(token, &recorder, &pem));
        EnrolRequest {
            token: token.to_owned(),
            spec_versions: vec!["1.0".into(), "2.3".into()],
            recorder,
            name: "Almaty-1".into(),
            region: region.into(),
            public_key_pem: pem,
            proof: hex::encode(&proof.to_bytes()),
            public_url: None,
        }
    }

    #[test]
    fn a_token_enrols_once_within_its_region_with_proof() {
        let (_d, pki, reg) = setup();
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let hb = Duration::from_secs(5);
        let t = reg
            .create_token(
                &pki,
                "750000000".parse().unwrap(),
                Duration::from_secs(60),
                "t",
            )
            .unwrap();
        assert!(t.token.ends_with(&pki.root_fingerprint()));

        let outside = request(&t.token, "710000000", &key);
        assert_eq!(
            reg.enrol(&pki, &outside, hb).unwrap_err().kind(),
            vms_core::ErrorKind::PermissionDenied
        );
        let mut forged = request(&t.token, "751110000", &key);
        forged.proof = hex::encode(&[0; 64]);
        assert!(
            reg.enrol(&pki, &forged, hb).is_err(),
            "no proof, no enrolment"
        );
        let mut old = request(&t.token, "751110000", &key);
        old.spec_versions = vec!["0.9".into()];
        // (proof covers token, recorder and key only, so changing versions keeps it valid)
        assert_eq!(
            reg.enrol(&pki, &old, hb).unwrap_err().kind(),
            vms_core::ErrorKind::FailedPrecondition
        );

        let good = request(&t.token, "751110000", &key);
        let (record, resp) = reg.enrol(&pki, &good, hb).unwrap();
        assert_eq!(resp.spec_version, "1.0");
        assert_eq!(record.region.as_str(), "751110000");
        let der = crate::pki::pem_to_der(&resp.certificate_pem).unwrap();
        assert_eq!(reg.by_certificate(&der).unwrap().unwrap().id, record.id);

        let again = request(&t.token, "751110000", &key);
        assert_eq!(
            reg.enrol(&pki, &again, hb).unwrap_err().kind(),
            vms_core::ErrorKind::Unauthenticated,
            "one time only"
        );
        let mut wrong = t.token.clone();
        wrong.replace_range(40..41, if &wrong[40..41] == "a" { "b" } else { "a" });
        assert!(
            reg.enrol(&pki, &request(&wrong, "751110000", &key), hb)
                .is_err()
        );
    }

    #[test]
    fn versions_negotiate_to_the_common_minor() {
        assert_eq!(negotiate(&["1.3".into()]).unwrap(), "1.0");
        assert_eq!(negotiate(&["1.0".into(), "junk".into()]).unwrap(), "1.0");
        assert!(negotiate(&["2.0".into()]).is_err());
        assert!(negotiate(&[]).is_err());
    }
}

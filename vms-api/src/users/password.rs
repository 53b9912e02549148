//! Password hashing: argon2id with the OWASP parameters (19 MiB, 2 passes, 1 lane) and a
//! random 128-bit salt, stored as a PHC string; verification reads the parameters from the
//! stored string. Both cost tens of milliseconds of CPU, so the async wrappers run them on
//! `spawn_blocking`. A dummy hash with the same parameters lets an unknown username cost as
//! much as a known one.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;
use rand::distr::Alphanumeric;
use vms_core::{Error, bail, err};

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest accepted password, in characters.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Memory cost in KiB, passes and lanes: OWASP's first argon2id recommendation.
const OWASP_M_KIB: u32 = 19_456;
const OWASP_T: u32 = 2;
const OWASP_P: u32 = 1;

/// Checks a new password's length (it is never trimmed or normalised).
pub fn validate(password: &str) -> Result<(), Error> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        bail!(
            InvalidArgument,
            "password: {n} characters; it must have {MIN_PASSWORD_CHARS}..={MAX_PASSWORD_CHARS}"
        );
    }
    Ok(())
}

/// A random password of `len` ASCII letters and digits (about 5.95 bits each).
pub fn generate(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Hashes and verifies passwords with one set of argon2id parameters.
pub(crate) struct Hasher {
    params: Params,
    /// A hash of a random password: what an unknown username is verified against.
    pub(super) dummy: String,
    /// How many argon2 computations ran, so tests can tell that one did not.
    #[cfg(test)]
    pub(crate) runs: std::sync::atomic::AtomicU64,
}

impl Hasher {
    /// The production hasher. Blocking: computes the dummy hash once.
    pub(crate) fn owasp() -> Result<Hasher, Error> {
        let params = Params::new(OWASP_M_KIB, OWASP_T, OWASP_P, None)
            .map_err(|e| err!(Internal, "argon2 parameters: {e}"))?;
        Hasher::with_params(params)
    }

    /// A hasher with other parameters (tests use cheap ones). Blocking.
    pub(crate) fn with_params(params: Params) -> Result<Hasher, Error> {
        let mut h = Hasher {
            params,
            dummy: String::new(),
            #[cfg(test)]
            runs: Default::default(),
        };
        h.dummy = h.hash(&generate(MIN_PASSWORD_CHARS))?;
        Ok(h)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// The PHC string of `password` under a fresh random salt. Blocking.
    pub(crate) fn hash(&self, password: &str) -> Result<String, Error> {
        #[cfg(test)]
        self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .map_err(|e| err!(Internal, "encoding a salt: {e}"))?;
        let hash = self
            .argon2()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| err!(Internal, "hashing a password: {e}"))?;
        Ok(hash.to_string())
    }

    /// Whether `password` matches `phc`, or the dummy hash when there is none (then always
    /// false, at the same cost). Blocking.
    pub(crate) fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool, Error> {
        #[cfg(test)]
        self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let hash = PasswordHash::new(phc.unwrap_or(&self.dummy))
            .map_err(|e| err!(DataLoss, "a stored password hash does not parse: {e}"))?;
        match self.argon2().verify_password(password.as_bytes(), &hash) {
            Ok(()) => Ok(phc.is_some()),
            Err(argon2::password_hash::Error::Password) => Ok(false),
            Err(e) => Err(err!(Internal, "verifying a password: {e}")),
        }
    }

    /// [`Hasher::hash`] on a blocking thread.
    pub(crate) async fn hash_async(self: &Arc<Self>, password: &str) -> Result<String, Error> {
        let (h, password) = (self.clone(), password.to_owned());
        tokio::task::spawn_blocking(move || h.hash(&password))
            .await
            .map_err(|e| err!(Internal, "password hashing task: {e}"))?
    }

    /// [`Hasher::verify`] on a blocking thread.
    pub(crate) async fn verify_async(
        self: &Arc<Self>,
        password: &str,
        phc: Option<String>,
    ) -> Result<bool, Error> {
        let (h, password) = (self.clone(), password.to_owned());
        tokio::task::spawn_blocking(move || h.verify(&password, phc.as_deref()))
            .await
            .map_err(|e| err!(Internal, "password verification task: {e}"))?
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Cheap parameters for tests that are not about the hash itself.
    pub(crate) fn cheap() -> Hasher {
        Hasher::with_params(Params::new(8, 1, 1, None).unwrap()).unwrap()
    }

    #[test]
    fn salted_hashes_verify_and_the_dummy_never_matches() {
        let h = cheap();
        let phc = h.hash("something long enough").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert_ne!(phc, h.hash("something long enough").unwrap(), "salted");
        assert!(h.verify("something long enough", Some(&phc)).unwrap());
        assert!(!h.verify("something long enougH", Some(&phc)).unwrap());
        assert!(!h.verify("something long enough", None).unwrap());
        let e = h.verify("x", Some("not a PHC string")).unwrap_err();
        assert_eq!(e.kind(), vms_core::ErrorKind::DataLoss);
    }

    #[test]
    fn lengths_and_generation() {
        assert!(validate(&"a".repeat(11)).is_err());
        assert!(validate(&"a".repeat(12)).is_ok());
        assert!(validate(&"ж".repeat(256)).is_ok(), "characters, not bytes");
        assert!(validate(&"a".repeat(257)).is_err());
        let p = generate(24);
        assert_eq!(p.len(), 24);
        assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(p, generate(24));
    }
}

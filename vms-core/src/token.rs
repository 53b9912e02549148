//! Media tokens (`spec/media-token.md`, version 1): a JWT (RFC 7519) in JWS compact form
//! (RFC 7515), signed with EdDSA over Ed25519 (RFC 8037). Central issues one for a user, a
//! camera, a stream, a purpose and a media time range; a recorder verifies it offline against
//! central's public keys. Verification never panics and never echoes the token.

use std::fmt::{self, Write};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::id::{CameraId, RecorderId, UserId};
use crate::{Error, err};

/// The token format version this build issues and accepts (the `ver` claim).
pub const VERSION: u32 = 1;
/// Clock difference between issuer and recorder tolerated on `iat` and `exp`.
pub const MAX_SKEW_SECS: i64 = 30;
/// The longest `exp - iat` accepted.
pub const MAX_LIFETIME_SECS: i64 = 3600;
/// The longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// The `str` claim that grants every stream of the camera.
pub const ANY_STREAM: &str = "*";

const ALG: &str = "EdDSA";
const TYP: &str = "JWT";
const KID_PREFIX: &str = "ed25519-";
/// The DER of an Ed25519 SubjectPublicKeyInfo up to the 32 key bytes (RFC 8410 §4).
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// What a token lets its bearer do with the camera's footage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Watch live video; carries no range.
    Live,
    /// Play recorded footage back.
    Playback,
    /// Take a still image; a range is optional.
    Snapshot,
    /// Download an export of a range.
    Export,
    /// Make a signed evidence package of a range.
    Evidence,
    /// Place or lift an evidence hold on a range.
    Hold,
}

/// Whether a purpose's tokens carry a media time range.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeRule {
    Required,
    Forbidden,
    Optional,
}

impl Purpose {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Live => "live",
            Purpose::Playback => "playback",
            Purpose::Snapshot => "snapshot",
            Purpose::Export => "export",
            Purpose::Evidence => "evidence",
            Purpose::Hold => "hold",
        }
    }

    fn range_rule(self) -> RangeRule {
        match self {
            Purpose::Live => RangeRule::Forbidden,
            Purpose::Snapshot => RangeRule::Optional,
            Purpose::Playback | Purpose::Export | Purpose::Evidence | Purpose::Hold => {
                RangeRule::Required
            }
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The claims of a version-1 token. Times are NumericDate: seconds since 1970-01-01T00:00:00Z.
/// Unknown claims are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The token format version: [`VERSION`].
    pub ver: u32,
    /// Who issued it (informational: the signing key is what is trusted).
    pub iss: String,
    /// The recorder the token is for.
    pub aud: RecorderId,
    /// The user it was issued to.
    pub sub: UserId,
    /// The user's name, for the audit trail.
    pub name: String,
    /// The camera.
    pub cam: CameraId,
    /// The stream, or [`ANY_STREAM`] for every stream of the camera (the `str` claim).
    #[serde(rename = "str")]
    pub stream: String,
    /// What the bearer may do.
    pub pur: Purpose,
    /// Start of the media time range allowed; with `to`, or absent with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    /// End of the media time range allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
    /// When it was issued.
    pub iat: i64,
    /// When it expires.
    pub exp: i64,
    /// The token's id (a ULID), named in the audit trail.
    pub jti: String,
}

impl Claims {
    /// The media time range allowed, `[from, to]` in seconds; `None` when it has none.
    pub fn range(&self) -> Option<(i64, i64)> {
        self.from.zip(self.to)
    }
}

/// A public key that verifies tokens, with its key id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenKey {
    pub kid: String,
    pub key: VerifyingKey,
}

impl TokenKey {
    /// The key with its id derived by [`key_id`].
    pub fn new(key: VerifyingKey) -> TokenKey {
        TokenKey {
            kid: key_id(&key),
            key,
        }
    }
}

/// A key's id: `ed25519-` and the first 16 lower-case hex digits of the SHA-256 of its
/// SubjectPublicKeyInfo DER.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::new()
        .chain_update(SPKI_PREFIX)
        .chain_update(key.as_bytes())
        .finalize();
    let mut kid = String::from(KID_PREFIX);
    for b in &digest[..8] {
        let _ = write!(kid, "{b:02x}");
    }
    kid
}

/// The JOSE header as read; members other than these are ignored.
#[derive(Deserialize)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
    /// Critical extensions: none are understood, so any makes the token invalid.
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// The first member read from the claims, so that another version is named as such.
#[derive(Deserialize)]
struct Versioned {
    ver: u32,
}

/// Signs `claims` with `key`. Claims that a recorder would refuse whatever the time (another
/// version, a lifetime over [`MAX_LIFETIME_SECS`], an inconsistent range, a `jti` that is not a
/// ULID) are an `InvalidArgument` error, as is a token over [`MAX_TOKEN_BYTES`].
pub fn issue(key: &SigningKey, claims: &Claims) -> Result<String, Error> {
    check_version(claims.ver)
        .and_then(|()| check_jti(&claims.jti))
        .and_then(|()| check_shape(claims))
        .map_err(|m| err!(InvalidArgument, "media token claims: {m}"))?;
    let header = format!(
        r#"{{"alg":"{ALG}","typ":"{TYP}","kid":"{}"}}"#,
        key_id(&key.verifying_key())
    );
    let payload = serde_json::to_vec(claims)
        .map_err(|e| err!(Internal, source: e, "encoding media token claims"))?;
    let mut token = String::new();
    URL_SAFE_NO_PAD.encode_string(header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let signature = key.sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
    if token.len() > MAX_TOKEN_BYTES {
        return Err(err!(
            InvalidArgument,
            "media token of {} bytes, more than {MAX_TOKEN_BYTES}",
            token.len()
        ));
    }
    Ok(token)
}

/// Verifies a token for the recorder `audience` at `now` against `keys`, and returns its
/// claims. The checks run in the order of the spec: size, form, header, signature, claims,
/// version, audience, `iat`, `exp`, lifetime, range. Any failure is `Unauthenticated`, with a
/// message that names the check and never quotes the token.
pub fn verify(
    token: &str,
    keys: &[TokenKey],
    audience: RecorderId,
    now: jiff::Timestamp,
) -> Result<Claims, Error> {
    let fail = |what: &str| err!(Unauthenticated, "media token: {what}");
    if token.len() > MAX_TOKEN_BYTES {
        return Err(fail(&format!("longer than {MAX_TOKEN_BYTES} bytes")));
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(fail("not three dot-separated parts"));
    };
    let decode = |part: &str, name: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| fail(&format!("the {name} is not base64url without padding")))
    };
    let (header, payload, signature) = (
        decode(h64, "header")?,
        decode(p64, "payload")?,
        decode(s64, "signature")?,
    );

    let header: Header = serde_json::from_slice(&header)
        .map_err(|_| fail("the header is not a JSON object with alg, typ and kid"))?;
    if header.alg != ALG {
        return Err(fail("alg: only EdDSA is accepted"));
    }
    if header.typ != TYP {
        return Err(fail("typ: must be JWT"));
    }
    if header.crit.is_some() {
        return Err(fail("crit: no critical extension is supported"));
    }
    let key = keys
        .iter()
        .find(|k| k.kid == header.kid)
        .ok_or_else(|| fail("kid: no such key"))?;

    let signature =
        Signature::from_slice(&signature).map_err(|_| fail("the signature is not 64 bytes"))?;
    let signing_input = &token[..h64.len() + 1 + p64.len()];
    key.key
        .verify_strict(signing_input.as_bytes(), &signature)
        .map_err(|_| fail("the signature does not verify"))?;

    let Versioned { ver } = serde_json::from_slice(&payload)
        .map_err(|_| fail("the payload is not a JSON object with ver"))?;
    check_version(ver).map_err(|m| fail(&m))?;
    let claims: Claims = serde_json::from_slice(&payload)
        .map_err(|_| fail("the payload is not the JSON of version-1 claims"))?;
    check_jti(&claims.jti).map_err(|m| fail(&m))?;
    if claims.aud != audience {
        return Err(fail("aud: the token is for another recorder"));
    }
    let now = now.as_second();
    if claims.iat > now.saturating_add(MAX_SKEW_SECS) {
        return Err(fail("iat: issued in the future"));
    }
    if claims.exp <= now.saturating_sub(MAX_SKEW_SECS) {
        return Err(fail("exp: expired"));
    }
    check_shape(&claims).map_err(|m| fail(&m))?;
    Ok(claims)
}

fn check_version(ver: u32) -> Result<(), String> {
    if ver != VERSION {
        return Err(format!(
            "ver: version {ver} is not supported (only {VERSION})"
        ));
    }
    Ok(())
}

fn check_jti(jti: &str) -> Result<(), String> {
    match ulid::Ulid::from_string(jti) {
        Ok(u) if u.to_string() == jti => Ok(()),
        _ => Err("jti: not a canonical ULID".into()),
    }
}

/// The checks that do not depend on the time or the recorder: lifetime, then range.
fn check_shape(c: &Claims) -> Result<(), String> {
    let lifetime = i128::from(c.exp) - i128::from(c.iat);
    if lifetime <= 0 {
        return Err("exp: not after iat".into());
    }
    if lifetime > i128::from(MAX_LIFETIME_SECS) {
        return Err(format!(
            "exp: a lifetime over {MAX_LIFETIME_SECS} s is not accepted"
        ));
    }
    match (c.from, c.to, c.pur.range_rule()) {
        (Some(from), Some(to), _) if from > to => Err("from: after to".into()),
        (Some(_), None, _) | (None, Some(_), _) => Err("from and to: both or neither".into()),
        (None, None, RangeRule::Required) => {
            Err(format!("from and to: a {} token must carry a range", c.pur))
        }
        (Some(_), Some(_), RangeRule::Forbidden) => Err(format!(
            "from and to: a {} token must not carry a range",
            c.pur
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::pkcs8::EncodePublicKey;

    use super::*;
    use crate::ErrorKind;

    /// RFC 8032 §7.1, test 1: a published key, so never a real one.
    const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

    fn seed_key(hex: &str) -> SigningKey {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        SigningKey::from_bytes(&bytes.try_into().unwrap())
    }

    fn key() -> SigningKey {
        seed_key(RFC8032_SEED)
    }

    fn other_key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    const NOW: i64 = 1_795_694_400; // 2026-11-26T12:00:00Z

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(NOW).unwrap()
    }

    fn recorder() -> RecorderId {
        "01JDQ3ZK8F4T9V7W2X5Y6A1B3R".parse().unwrap()
    }

    fn claims() -> Claims {
        Claims {
            ver: 1,
            iss: "vms-central".into(),
            aud: recorder(),
            sub: "01JDQ40000000000000000000S".parse().unwrap(),
            name: "a.investigator".into(),
            cam: "01JDQ3ZK8F4T9V7W2X5Y6A1B3C".parse().unwrap(),
            stream: "main".into(),
            pur: Purpose::Playback,
            from: Some(NOW - 7200),
            to: Some(NOW - 3600),
            iat: NOW,
            exp: NOW + 300,
            jti: "01JDQ4A0000000000000000000".into(),
        }
    }

    fn keys() -> Vec<TokenKey> {
        vec![
            TokenKey::new(other_key().verifying_key()),
            TokenKey::new(key().verifying_key()),
        ]
    }

    fn check(token: &str) -> Result<Claims, Error> {
        verify(token, &keys(), recorder(), now())
    }

    /// Refused as unauthenticated, with `expected` in the message and the token not in it.
    fn refused(token: &str, expected: &str) {
        let e = check(token).expect_err(expected);
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
        assert!(e.to_string().contains(expected), "{e} lacks {expected:?}");
        assert!(token.len() < 8 || !e.to_string().contains(token), "{e}");
    }

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A token over arbitrary header and payload bytes, signed by `key`.
    fn sign_raw(key: &SigningKey, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = key.sign(input.as_bytes());
        format!("{input}.{}", b64(sig.to_bytes()))
    }

    fn header(key: &SigningKey) -> String {
        format!(
            r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#,
            key_id(&key.verifying_key())
        )
    }

    /// Claims issue() would refuse, signed all the same.
    fn forged(edit: impl FnOnce(&mut Claims)) -> String {
        let mut c = claims();
        edit(&mut c);
        sign_raw(&key(), &header(&key()), &serde_json::to_string(&c).unwrap())
    }

    fn issued(edit: impl FnOnce(&mut Claims)) -> String {
        let mut c = claims();
        edit(&mut c);
        issue(&key(), &c).unwrap()
    }

    #[test]
    fn round_trip() {
        let token = issue(&key(), &claims()).unwrap();
        assert_eq!(check(&token).unwrap(), claims());
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = URL_SAFE_NO_PAD.decode(parts[0]).unwrap();
        assert_eq!(
            String::from_utf8(header).unwrap(),
            format!(
                r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#,
                key_id(&key().verifying_key())
            )
        );
        // A live token has no range, and the members are absent rather than null.
        let live = issued(|c| {
            c.pur = Purpose::Live;
            (c.from, c.to) = (None, None);
        });
        let payload = URL_SAFE_NO_PAD
            .decode(live.split('.').nth(1).unwrap())
            .unwrap();
        let payload: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert!(payload.get("from").is_none() && payload.get("to").is_none());
        assert_eq!(payload["str"], "main");
        assert_eq!(payload["pur"], "live");
        assert_eq!(check(&live).unwrap().range(), None);
    }

    #[test]
    fn the_signature_is_plain_ed25519_over_the_first_two_parts() {
        let token = issue(&key(), &claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        // The signing input rebuilt from the decoded parts, re-encoded.
        let header = URL_SAFE_NO_PAD.decode(parts[0]).unwrap();
        let payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
        let input = format!("{}.{}", b64(&header), b64(&payload));
        let sig: [u8; 64] = URL_SAFE_NO_PAD
            .decode(parts[2])
            .unwrap()
            .try_into()
            .unwrap();
        let public =
            ed25519_dalek::VerifyingKey::from_bytes(&key().verifying_key().to_bytes()).unwrap();
        public
            .verify_strict(input.as_bytes(), &Signature::from_bytes(&sig))
            .unwrap();
        // Ed25519 is deterministic: the same input signs the same.
        assert_eq!(key().sign(input.as_bytes()).to_bytes(), sig);
        assert!(
            public
                .verify_strict(format!("{input}x").as_bytes(), &Signature::from_bytes(&sig))
                .is_err()
        );
    }

    #[test]
    fn key_id_hashes_the_spki_der() {
        let k = key().verifying_key();
        let der = k.to_public_key_der().unwrap();
        let digest = Sha256::digest(der.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(key_id(&k), format!("ed25519-{hex}"));
        assert_eq!(key_id(&k).len(), 8 + 16);
        assert_ne!(key_id(&k), key_id(&other_key().verifying_key()));
        assert_eq!(TokenKey::new(k).kid, key_id(&k));
    }

    #[test]
    fn expiry_and_issue_time_allow_the_skew_and_no_more() {
        // exp must be later than now - 30 s.
        check(&issued(|c| (c.iat, c.exp) = (NOW - 600, NOW - 29))).unwrap();
        refused(
            &issued(|c| (c.iat, c.exp) = (NOW - 600, NOW - 30)),
            "exp: expired",
        );
        refused(
            &issued(|c| (c.iat, c.exp) = (NOW - 600, NOW - 31)),
            "exp: expired",
        );
        // iat may be up to 30 s ahead.
        check(&issued(|c| (c.iat, c.exp) = (NOW + 30, NOW + 60))).unwrap();
        refused(
            &issued(|c| (c.iat, c.exp) = (NOW + 31, NOW + 60)),
            "iat: issued in the future",
        );
    }

    #[test]
    fn another_recorder_is_refused() {
        let other = RecorderId::generate();
        let token = issued(|c| c.aud = other);
        refused(&token, "aud: the token is for another recorder");
        // That recorder accepts the very same token.
        assert_eq!(verify(&token, &keys(), other, now()).unwrap().aud, other);
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let token = issue(&key(), &claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        // A payload for another camera, under the original signature.
        let mut c = claims();
        c.cam = CameraId::generate();
        let payload = b64(serde_json::to_vec(&c).unwrap());
        refused(
            &format!("{}.{payload}.{}", parts[0], parts[2]),
            "the signature does not verify",
        );
        // A signature with one bit flipped.
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[10] ^= 0x01;
        refused(
            &format!("{}.{}.{}", parts[0], parts[1], b64(&sig)),
            "the signature does not verify",
        );
        // A signature cut short.
        refused(
            &format!("{}.{}.{}", parts[0], parts[1], b64(&sig[..63])),
            "the signature is not 64 bytes",
        );
        // Signed by a key that is not the one the header names.
        let swapped = sign_raw(
            &other_key(),
            &header(&key()),
            &serde_json::to_string(&claims()).unwrap(),
        );
        refused(&swapped, "the signature does not verify");
    }

    #[test]
    fn only_eddsa_and_known_keys() {
        let payload = serde_json::to_string(&claims()).unwrap();
        let kid = key_id(&key().verifying_key());
        // alg none: an empty signature, as RFC 7519 §6 has it.
        let none = format!(
            "{}.{}.",
            b64(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#)),
            b64(&payload)
        );
        refused(&none, "alg: only EdDSA is accepted");
        // HS256, keyed with the public key's bytes: the classic confusion.
        for alg in ["HS256", "ES256", "RS256", "eddsa", "Ed25519"] {
            let h = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#);
            refused(
                &sign_raw(&key(), &h, &payload),
                "alg: only EdDSA is accepted",
            );
        }
        refused(
            &sign_raw(
                &key(),
                &format!(r#"{{"alg":"EdDSA","typ":"JOSE","kid":"{kid}"}}"#),
                &payload,
            ),
            "typ: must be JWT",
        );
        refused(
            &sign_raw(
                &key(),
                &format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}","crit":["exp"]}}"#),
                &payload,
            ),
            "crit",
        );
        refused(
            &sign_raw(&key(), r#"{"alg":"EdDSA","typ":"JWT"}"#, &payload),
            "the header is not a JSON object",
        );
        // A duplicate member is refused rather than read one way or the other.
        refused(
            &sign_raw(
                &key(),
                &format!(r#"{{"alg":"none","alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#),
                &payload,
            ),
            "the header is not a JSON object",
        );
        // A key nobody gave the recorder, and an empty key list.
        let stranger = SigningKey::from_bytes(&[9; 32]);
        refused(
            &sign_raw(&stranger, &header(&stranger), &payload),
            "kid: no such key",
        );
        let e = verify(&issue(&key(), &claims()).unwrap(), &[], recorder(), now()).unwrap_err();
        assert!(e.to_string().contains("kid: no such key"), "{e}");
    }

    #[test]
    fn size_and_garbage() {
        let token = issue(&key(), &claims()).unwrap();
        let padded = format!("{token}{}", "A".repeat(MAX_TOKEN_BYTES + 1 - token.len()));
        refused(&padded, "longer than 4096 bytes");
        for (bad, why) in [
            ("", "not three dot-separated parts"),
            ("abc", "not three dot-separated parts"),
            ("a.b", "not three dot-separated parts"),
            ("a.b.c.d", "not three dot-separated parts"),
            ("..", "the header is not a JSON object"),
            ("a.b.c", "the header is not base64url"),
            ("eyJ=.e30.AA", "the header is not base64url"),
            ("e30.e30.AA", "the header is not a JSON object"),
            ("W10.e30.", "the header is not a JSON object"),
            ("bnVsbA.e30.", "the header is not a JSON object"),
            ("e30.+/+/.AA", "the payload is not base64url"),
            ("e30.e30.é", "the signature is not base64url"),
            ("Bearer x.y.z", "the header is not base64url"),
        ] {
            refused(bad, why);
        }
        let parts: Vec<&str> = token.split('.').collect();
        // Padding is not base64url as JWS uses it.
        refused(
            &format!("{}.{}.{}==", parts[0], parts[1], parts[2]),
            "the signature is not base64url",
        );
        refused(
            &format!(" {token}"),
            "the header is not base64url without padding",
        );
    }

    #[test]
    fn claims_a_recorder_refuses_whatever_the_time() {
        for (edit, why) in [
            (
                Box::new(|c: &mut Claims| c.exp = c.iat + 3601) as Box<dyn Fn(&mut Claims)>,
                "exp: a lifetime over 3600 s is not accepted",
            ),
            (Box::new(|c| c.exp = c.iat), "exp: not after iat"),
            (
                Box::new(|c| (c.iat, c.exp) = (i64::MAX, i64::MAX)),
                "iat: issued in the future",
            ),
            (
                Box::new(|c| (c.iat, c.exp) = (i64::MIN, i64::MIN)),
                "exp: expired",
            ),
            (
                Box::new(|c| (c.iat, c.exp) = (NOW - 10, i64::MAX)),
                "exp: a lifetime over",
            ),
            (Box::new(|c| c.from = Some(NOW)), "from: after to"),
            (Box::new(|c| c.to = None), "from and to: both or neither"),
            (
                Box::new(|c| (c.from, c.to) = (None, None)),
                "a playback token must carry a range",
            ),
            (
                Box::new(|c| c.pur = Purpose::Live),
                "a live token must not carry a range",
            ),
            (Box::new(|c| c.ver = 2), "ver: version 2 is not supported"),
            (
                Box::new(|c| c.jti = "x".into()),
                "jti: not a canonical ULID",
            ),
        ] {
            let mut c = claims();
            edit(&mut c);
            // issue() refuses them up front...
            let e = issue(&key(), &c).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            // ...and so does verify(), when someone else signed them.
            refused(&forged(|x| *x = c.clone()), why);
        }
        // Every purpose with and without a range, as the spec's table has it.
        for (pur, with, without) in [
            (Purpose::Live, false, true),
            (Purpose::Playback, true, false),
            (Purpose::Snapshot, true, true),
            (Purpose::Export, true, false),
            (Purpose::Evidence, true, false),
            (Purpose::Hold, true, false),
        ] {
            let ranged = forged(|c| c.pur = pur);
            let bare = forged(|c| (c.pur, c.from, c.to) = (pur, None, None));
            assert_eq!(check(&ranged).is_ok(), with, "{pur} with a range");
            assert_eq!(check(&bare).is_ok(), without, "{pur} without one");
        }
        // An instant is a range, and unknown claims are ignored.
        check(&forged(|c| c.to = c.from)).unwrap();
        let mut extra = serde_json::to_value(claims()).unwrap();
        extra["scope"] = "everything".into();
        let token = sign_raw(&key(), &header(&key()), &extra.to_string());
        assert_eq!(check(&token).unwrap(), claims());
        // Wrong types and missing claims.
        for payload in [
            r#"{"ver":1}"#,
            r#"{"ver":"1"}"#,
            "[]",
            "null",
            r#"{"ver":1,"aud":5}"#,
        ] {
            let token = sign_raw(&key(), &header(&key()), payload);
            let e = check(&token).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unauthenticated);
            assert!(e.to_string().contains("the payload is not"), "{e}");
        }
        let token = sign_raw(&key(), &header(&key()), &{
            let mut v = serde_json::to_value(claims()).unwrap();
            v["pur"] = "admin".into();
            v.to_string()
        });
        refused(&token, "the payload is not the JSON of version-1 claims");
    }

    /// A small xorshift generator: the mutations are random but the same on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u8 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 24) as u8
        }
    }

    #[test]
    fn no_single_byte_change_verifies() {
        let token = issue(&key(), &claims()).unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut tried = 0;
        for at in 0..token.len() {
            let original = token.as_bytes()[at];
            // Near misses (one bit, a neighbouring character, the separators and padding) and
            // random bytes.
            let mut replacements = vec![
                original ^ 0x01,
                original ^ 0x20,
                original.wrapping_add(1),
                b'.',
                b'=',
                b'A',
                b'_',
                b'-',
                0,
                0xff,
            ];
            replacements.extend((0..6).map(|_| rng.next()));
            for r in replacements.into_iter().filter(|&r| r != original) {
                let mut bytes = token.clone().into_bytes();
                bytes[at] = r;
                // A token arrives as text: bytes that are not UTF-8 never reach verify().
                let Ok(mutated) = String::from_utf8(bytes) else {
                    continue;
                };
                let e = check(&mutated).expect_err(&format!("byte {at} changed to {r:#04x}"));
                assert_eq!(e.kind(), ErrorKind::Unauthenticated);
                assert!(!e.to_string().contains(&mutated));
                tried += 1;
            }
        }
        assert!(tried > token.len() * 8, "{tried} mutations");
    }

    /// The worked example of `spec/media-token.md`: its token is what issue() makes of its
    /// claims with its key, and its decoded header and payload are the token's.
    #[test]
    fn the_spec_example_is_a_real_token() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/media-token.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let block = |tag: &str| -> String {
            let start = doc
                .find(&format!("<!-- {tag} -->\n```"))
                .unwrap_or_else(|| panic!("no {tag} block"));
            let body = &doc[start..];
            let body = &body[body.find('\n').unwrap() + 1..];
            let body = &body[body.find('\n').unwrap() + 1..];
            body[..body.find("```").unwrap()].trim().to_owned()
        };
        let seed = block("example-seed");
        let token = block("example-token").replace('\n', "");
        let header: serde_json::Value = serde_json::from_str(&block("example-header")).unwrap();
        let payload: serde_json::Value = serde_json::from_str(&block("example-payload")).unwrap();
        let key = seed_key(&seed);
        let claims: Claims = serde_json::from_value(payload.clone()).unwrap();
        assert_eq!(issue(&key, &claims).unwrap(), token);
        let parts: Vec<&str> = token.split('.').collect();
        let decoded = |i: usize| -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[i]).unwrap()).unwrap()
        };
        assert_eq!(decoded(0), header);
        assert_eq!(decoded(1), payload);
        let at = jiff::Timestamp::from_second(claims.iat).unwrap();
        let keys = [TokenKey::new(key.verifying_key())];
        assert_eq!(verify(&token, &keys, claims.aud, at).unwrap(), claims);
        assert_eq!(header["kid"], keys[0].kid);
    }
}

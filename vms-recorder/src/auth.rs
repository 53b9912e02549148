//! Who is asking and what they may do (`spec/media-token.md`): the principal behind a request
//! (the local administrator's token, central's channel, or a user's media token), the one
//! authorisation check every handler calls, and the file that keeps central's token keys.

use std::ops::Range;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePublicKey, EncodePublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use vms_core::id::{CameraId, RecorderId};
use vms_core::time::{TIME_UNITS_PER_SEC, Time90k};
use vms_core::token::{self, ANY_STREAM, Claims, Purpose, TokenKey};
use vms_core::{Error, IoResultExt, bail, err};

use vms_core::keyfile::write_atomically;

/// Central's token keys, in the data directory.
pub const TOKEN_KEYS_FILE: &str = "central/token-keys.json";

/// Marks a request that arrived over the authenticated channel from central; the channel
/// inserts it as a request extension.
#[derive(Clone, Copy, Debug)]
pub struct ChannelPeer;

/// Who made a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Principal {
    /// The holder of the recorder's `admin_token`: full access, also while central is down.
    LocalAdmin,
    /// Central, over its channel: administration, listings and holds, but no media.
    Central,
    /// A user, with what their media token grants (boxed: the other variants are empty).
    User(Box<Claims>),
}

impl Principal {
    /// The audit record's `actor`: `local-admin`, `central` or `user:<sub>`.
    pub fn actor(&self) -> String {
        match self {
            Principal::LocalAdmin => "local-admin".into(),
            Principal::Central => "central".into(),
            Principal::User(c) => format!("user:{}", c.sub),
        }
    }

    /// Adds what the audit record says of the principal beyond its actor: a user's token id
    /// and name.
    pub fn audit_details(&self, details: &mut Map<String, Value>) {
        if let Principal::User(c) = self {
            details.insert("token".into(), c.jti.clone().into());
            details.insert("name".into(), c.name.clone().into());
        }
    }
}

/// What the credentials of a request make of it. `token` is the bearer or query token;
/// `channel` whether the request came over central's channel. A token decides when there is
/// one: a request central relays carries its user's token.
pub fn authenticate(
    token: Option<&str>,
    channel: bool,
    admin_token: &str,
    keys: &[TokenKey],
    recorder: RecorderId,
    now: jiff::Timestamp,
) -> Result<Principal, Error> {
    match token {
        Some(t) if vms_core::hex::constant_time_eq(t.as_bytes(), admin_token.as_bytes()) => {
            Ok(Principal::LocalAdmin)
        }
        Some(t) => token::verify(t, keys, recorder, now)
            .map(|c| Principal::User(Box::new(c)))
            .map_err(|e| e.context("invalid bearer token")),
        None if channel => Ok(Principal::Central),
        None => Err(err!(Unauthenticated, "a bearer token is required")),
    }
}

/// Administration: the local administrator and central only.
pub fn require_admin(who: &Principal) -> Result<(), Error> {
    match who {
        Principal::LocalAdmin | Principal::Central => Ok(()),
        Principal::User(_) => Err(err!(
            PermissionDenied,
            "administration needs the administrator token; a media token does not grant it"
        )),
    }
}

/// The media time a request asks for, as the token's range must cover it.
#[derive(Clone, Debug)]
pub enum Span {
    /// A range (or an instant, `t..t`) that must lie within the token's.
    Within(Range<Time90k>),
    /// A stored segment, which must overlap the token's range: a player fetches whole
    /// segments around the range's edges.
    Overlapping(Range<Time90k>),
    /// The latest footage, whatever its time: only a token without a range grants it.
    Latest,
}

/// Footage of a camera that a request asks for.
#[derive(Clone, Debug)]
pub struct Footage<'a> {
    pub camera: CameraId,
    pub stream: &'a str,
    /// The purposes that grant the request; any one does.
    pub purposes: &'a [Purpose],
    pub span: Span,
    /// Whether central may ask: for a listing or a hold, not for media.
    pub central: bool,
}

/// A token time (seconds) as a wall-clock instant.
fn instant(secs: i64) -> Time90k {
    Time90k(secs.saturating_mul(TIME_UNITS_PER_SEC))
}

/// The one authorisation check of a request for footage: `PermissionDenied`, naming the
/// claim that did not match, unless `who` may have it.
pub fn authorize(who: &Principal, want: &Footage<'_>) -> Result<(), Error> {
    let c = match who {
        Principal::LocalAdmin => return Ok(()),
        Principal::Central if want.central => return Ok(()),
        Principal::Central => bail!(
            PermissionDenied,
            "central is granted no media; a request it relays must carry the user's token"
        ),
        Principal::User(c) => c,
    };
    if c.cam != want.camera {
        bail!(
            PermissionDenied,
            "token claim cam: the token is for camera {}, not {}",
            c.cam,
            want.camera
        );
    }
    if c.stream != ANY_STREAM && c.stream != want.stream {
        bail!(
            PermissionDenied,
            "token claim str: the token is for stream {:?}, not {:?}",
            c.stream,
            want.stream
        );
    }
    if !want.purposes.contains(&c.pur) {
        let needed: Vec<&str> = want.purposes.iter().map(|p| p.as_str()).collect();
        bail!(
            PermissionDenied,
            "token claim pur: a {} token does not grant this; it takes {}",
            c.pur,
            needed.join(" or ")
        );
    }
    let Some((from, to)) = c.range() else {
        return Ok(());
    };
    let (from, to) = (instant(from), instant(to));
    match &want.span {
        Span::Within(r) if from <= r.start && r.end <= to => Ok(()),
        Span::Overlapping(r) if r.start <= to && from < r.end => Ok(()),
        Span::Latest => Err(err!(
            PermissionDenied,
            "token claims from/to: a token with a range does not grant the latest frame; ask \
             for a time within it"
        )),
        _ => Err(err!(
            PermissionDenied,
            "token claims from/to: the time asked for is outside {} to {}",
            from.to_rfc3339(),
            to.to_rfc3339()
        )),
    }
}

/// `central/token-keys.json`: `{"keys":[{"kid":"…","public_key_pem":"…"}]}`.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<KeyEntry>,
}

#[derive(Serialize, Deserialize)]
struct KeyEntry {
    kid: String,
    public_key_pem: String,
}

fn key_file(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKEN_KEYS_FILE)
}

/// Central's token keys as enrolment left them; none when the file does not exist. A file
/// that will not parse, a key that is not Ed25519 in SPKI PEM form, a small-order key or a
/// `kid` that is not the key's own is an error: a recorder that silently dropped a key would
/// refuse every user.
pub fn load_token_keys(data_dir: &Path) -> Result<Vec<TokenKey>, Error> {
    let path = key_file(data_dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).io_context(|| format!("reading {}", path.display())),
    };
    let bad = |msg: String| err!(DataLoss, "{}: {msg}", path.display());
    let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    file.keys
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let key = VerifyingKey::from_public_key_pem(&entry.public_key_pem).map_err(|e| {
                bad(format!(
                    "keys[{i}]: not an Ed25519 public key in SPKI PEM: {e}"
                ))
            })?;
            if key.is_weak() {
                return Err(bad(format!("keys[{i}]: a small-order key")));
            }
            let key = TokenKey::new(key);
            if key.kid != entry.kid {
                return Err(bad(format!(
                    "keys[{i}]: kid {:?} is not the key's own, {}",
                    entry.kid, key.kid
                )));
            }
            Ok(key)
        })
        .collect()
}

/// Writes central's token keys for [`load_token_keys`], atomically.
pub fn store_token_keys(data_dir: &Path, keys: &[TokenKey]) -> Result<(), Error> {
    let path = key_file(data_dir);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).io_context(|| format!("creating {}", dir.display()))?;
    }
    let keys = keys
        .iter()
        .map(|k| {
            Ok(KeyEntry {
                kid: k.kid.clone(),
                public_key_pem: k
                    .key
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|e| err!(Internal, "encoding token key {}: {e}", k.kid))?,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let json = serde_json::to_vec_pretty(&KeyFile { keys })
        .map_err(|e| err!(Internal, source: e, "encoding {}", path.display()))?;
    write_atomically(&path, &json)
}

#[cfg(test)]
mod tests {
    use vms_core::ErrorKind;
    use vms_core::id::UserId;

    use super::*;

    const ADMIN: &str = "admin-token-0123456789";

    fn t(rfc3339: &str) -> Time90k {
        Time90k::parse_rfc3339(rfc3339).unwrap()
    }

    fn secs(rfc3339: &str) -> i64 {
        t(rfc3339).0 / TIME_UNITS_PER_SEC
    }

    fn claims(camera: CameraId, pur: Purpose) -> Claims {
        let now = jiff::Timestamp::now().as_second();
        Claims {
            ver: 1,
            iss: "vms-central".into(),
            aud: RecorderId::generate(),
            sub: UserId::generate(),
            name: "a.investigator".into(),
            cam: camera,
            stream: "main".into(),
            pur,
            from: Some(secs("2026-11-26T10:00:00Z")),
            to: Some(secs("2026-11-26T11:00:00Z")),
            iat: now,
            exp: now + 60,
            jti: ulid::Ulid::new().to_string(),
        }
    }

    fn denied(who: &Principal, want: &Footage<'_>, why: &str) {
        let e = authorize(who, want).expect_err(why);
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert!(e.to_string().contains(why), "{e} lacks {why:?}");
    }

    #[test]
    fn a_users_token_grants_its_camera_stream_purpose_and_range() {
        let cam = CameraId::generate();
        let within = Span::Within(t("2026-11-26T10:10:00Z")..t("2026-11-26T10:20:00Z"));
        let want = |purposes, span| Footage {
            camera: cam,
            stream: "main",
            purposes,
            span,
            central: false,
        };
        let user = |edit: &dyn Fn(&mut Claims)| {
            let mut c = claims(cam, Purpose::Playback);
            edit(&mut c);
            Principal::User(Box::new(c))
        };
        let playback = [Purpose::Playback];
        authorize(&user(&|_| {}), &want(&playback, within.clone())).unwrap();
        // The whole range, and its very ends, are within it.
        let whole = Span::Within(t("2026-11-26T10:00:00Z")..t("2026-11-26T11:00:00Z"));
        authorize(&user(&|_| {}), &want(&playback, whole)).unwrap();
        authorize(
            &user(&|c| c.stream = "*".into()),
            &want(&playback, within.clone()),
        )
        .unwrap();
        for (edit, why) in [
            (
                Box::new(|c: &mut Claims| c.cam = CameraId::generate()) as Box<dyn Fn(&mut Claims)>,
                "token claim cam",
            ),
            (Box::new(|c| c.stream = "sub".into()), "token claim str"),
            (
                Box::new(|c| c.pur = Purpose::Export),
                "token claim pur: a export token does not grant this; it takes playback",
            ),
        ] {
            denied(&user(&edit), &want(&playback, within.clone()), why);
        }
        for outside in [
            "2026-11-26T09:59:59Z".."2026-11-26T10:20:00Z",
            "2026-11-26T10:59:00Z".."2026-11-26T11:00:01Z",
            "2026-11-26T12:00:00Z".."2026-11-26T12:01:00Z",
        ] {
            let span = Span::Within(t(outside.start)..t(outside.end));
            denied(
                &user(&|_| {}),
                &want(&playback, span),
                "token claims from/to",
            );
        }
        // Every stream (a hold on all of them) needs a token for every stream.
        let every = Footage {
            stream: ANY_STREAM,
            ..want(&playback, within.clone())
        };
        denied(&user(&|_| {}), &every, "token claim str");
        authorize(&user(&|c| c.stream = "*".into()), &every).unwrap();
        // A segment overlapping the range's edge is granted, one beyond it is not.
        let edge = Span::Overlapping(t("2026-11-26T09:59:30Z")..t("2026-11-26T10:00:30Z"));
        authorize(&user(&|_| {}), &want(&playback, edge)).unwrap();
        let beyond = Span::Overlapping(t("2026-11-26T09:59:00Z")..t("2026-11-26T10:00:00Z"));
        denied(
            &user(&|_| {}),
            &want(&playback, beyond),
            "token claims from/to",
        );
        // The latest frame: a live token, or a snapshot token without a range.
        let latest = [Purpose::Live, Purpose::Snapshot];
        let live = user(&|c| (c.pur, c.from, c.to) = (Purpose::Live, None, None));
        authorize(&live, &want(&latest, Span::Latest)).unwrap();
        let open_snapshot = user(&|c| (c.pur, c.from, c.to) = (Purpose::Snapshot, None, None));
        authorize(&open_snapshot, &want(&latest, Span::Latest)).unwrap();
        let ranged_snapshot = user(&|c| c.pur = Purpose::Snapshot);
        denied(
            &ranged_snapshot,
            &want(&latest, Span::Latest),
            "does not grant the latest frame",
        );
        // A recorded moment needs a snapshot token; a live one does not do.
        let moment = t("2026-11-26T10:30:00Z");
        let at = Span::Within(moment..moment);
        authorize(&ranged_snapshot, &want(&[Purpose::Snapshot], at.clone())).unwrap();
        authorize(&open_snapshot, &want(&[Purpose::Snapshot], at.clone())).unwrap();
        denied(&live, &want(&[Purpose::Snapshot], at), "token claim pur");
    }

    #[test]
    fn administrator_central_and_users() {
        let cam = CameraId::generate();
        let media = Footage {
            camera: cam,
            stream: "main",
            purposes: &[Purpose::Export],
            span: Span::Latest,
            central: false,
        };
        let listing = Footage {
            central: true,
            ..media.clone()
        };
        let user = Principal::User(Box::new(claims(cam, Purpose::Playback)));
        authorize(&Principal::LocalAdmin, &media).unwrap();
        authorize(&Principal::Central, &listing).unwrap();
        denied(&Principal::Central, &media, "central is granted no media");
        require_admin(&Principal::LocalAdmin).unwrap();
        require_admin(&Principal::Central).unwrap();
        let e = require_admin(&user).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert_eq!(Principal::LocalAdmin.actor(), "local-admin");
        assert_eq!(Principal::Central.actor(), "central");
        let Principal::User(c) = &user else {
            unreachable!()
        };
        assert_eq!(user.actor(), format!("user:{}", c.sub));
        let mut details = Map::new();
        user.audit_details(&mut details);
        assert_eq!(details["token"], c.jti.as_str());
        assert_eq!(details["name"], "a.investigator");
        let mut none = Map::new();
        Principal::Central.audit_details(&mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn credentials_make_a_principal() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let keys = [TokenKey::new(key.verifying_key())];
        let cam = CameraId::generate();
        let c = claims(cam, Purpose::Playback);
        let recorder = c.aud;
        let token = token::issue(&key, &c).unwrap();
        let now = jiff::Timestamp::now();
        let who = |token: Option<&str>, channel: bool, keys: &[TokenKey]| {
            authenticate(token, channel, ADMIN, keys, recorder, now)
        };
        assert_eq!(
            who(Some(ADMIN), false, &keys).unwrap(),
            Principal::LocalAdmin
        );
        assert_eq!(who(Some(ADMIN), true, &[]).unwrap(), Principal::LocalAdmin);
        assert_eq!(
            who(Some(&token), false, &keys).unwrap(),
            Principal::User(Box::new(c.clone()))
        );
        // Relayed by central, a user's token still decides.
        assert_eq!(
            who(Some(&token), true, &keys).unwrap(),
            Principal::User(Box::new(c))
        );
        assert_eq!(who(None, true, &[]).unwrap(), Principal::Central);
        for (token, keys, why) in [
            (None, &keys[..], "a bearer token is required"),
            (Some(&ADMIN[1..]), &keys[..], "invalid bearer token"),
            (
                Some(&format!("{ADMIN}x")[..]),
                &keys[..],
                "invalid bearer token",
            ),
            (Some(""), &keys[..], "invalid bearer token"),
            (Some(token.as_str()), &[], "kid: no such key"),
        ] {
            let e = who(token, false, keys).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unauthenticated);
            assert!(e.to_string().contains(why), "{e}");
        }
        let e = authenticate(
            Some(&token),
            false,
            ADMIN,
            &keys,
            RecorderId::generate(),
            now,
        )
        .unwrap_err();
        assert!(e.to_string().contains("aud"), "{e}");
    }

    #[test]
    fn token_keys_file_round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_token_keys(dir.path()).unwrap().is_empty());
        let keys: Vec<TokenKey> = [1u8, 2]
            .iter()
            .map(|&b| {
                TokenKey::new(ed25519_dalek::SigningKey::from_bytes(&[b; 32]).verifying_key())
            })
            .collect();
        store_token_keys(dir.path(), &keys).unwrap();
        assert_eq!(load_token_keys(dir.path()).unwrap(), keys);
        let path = dir.path().join(TOKEN_KEYS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["keys"][0]["kid"], keys[0].kid.as_str());
        assert!(
            json["keys"][1]["public_key_pem"]
                .as_str()
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----\n")
        );
        // Unknown members are ignored.
        let mut extra = json.clone();
        extra["issued_by"] = "central".into();
        extra["keys"][0]["not_after"] = "2027-01-01T00:00:00Z".into();
        std::fs::write(&path, extra.to_string()).unwrap();
        assert_eq!(load_token_keys(dir.path()).unwrap(), keys);
        // A kid that is not the key's, a key that is not one, and a file that is not JSON.
        let mut swapped = json.clone();
        swapped["keys"][0]["kid"] = keys[1].kid.as_str().into();
        let mut garbled = json.clone();
        garbled["keys"][1]["public_key_pem"] = "-----BEGIN PUBLIC KEY-----\nAAAA\n".into();
        for (bad, why) in [
            (swapped.to_string(), "keys[0]: kid"),
            (garbled.to_string(), "keys[1]: not an Ed25519 public key"),
            ("{\"keys\":".to_owned(), "EOF"),
            ("{}".to_owned(), "missing field `keys`"),
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = load_token_keys(dir.path()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::DataLoss);
            assert!(e.to_string().contains(why), "{e}");
        }
    }
}

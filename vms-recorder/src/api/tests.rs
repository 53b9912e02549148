//! Authorisation of every route, through the router with no server: a real `Service` in a
//! temporary directory, a few seconds of footage written by the recorder's own writer, and
//! tokens signed with a key the service loaded from its key file at start.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use tower::ServiceExt;
use vms_core::gap::EndReason;
use vms_core::id::{CameraId, HoldId, RecorderId, UserId};
use vms_core::time::{Duration90k, TIME_UNITS_PER_SEC, Time90k};
use vms_core::token::{self, Claims, Purpose, TokenKey};

use super::router;
use crate::archive::fs::RealFs;
use crate::auth::ChannelPeer;
use crate::config::Config;
use crate::holds::Hold;
use crate::recording::tests::{FakeClocks, feed, params};
use crate::recording::{Progress, Recording, Target};
use crate::service::Service;

const ADMIN: &str = "local-admin-token-0123";
/// The footage starts here and lasts 10 s.
const T0: &str = "2026-11-26T10:00:00Z";

fn t0() -> Time90k {
    Time90k::parse_rfc3339(T0).unwrap()
}

fn t0_secs() -> i64 {
    t0().0 / TIME_UNITS_PER_SEC
}

/// `T0` plus `secs`, as RFC 3339.
fn at(secs: i64) -> String {
    (t0() + Duration90k::from_secs(secs)).to_rfc3339()
}

struct Fixture {
    _dir: tempfile::TempDir,
    data_dir: std::path::PathBuf,
    s: Arc<Service>,
    app: axum::Router,
    camera: CameraId,
    key: SigningKey,
    /// The first segment's start, in 90 kHz units.
    segment: i64,
}

impl Fixture {
    /// A recorder with one camera (whose stream never connects) and 10 s of its footage,
    /// with central's key in its key file when `with_keys`.
    async fn new(with_keys: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let disk = dir.path().join("disk");
        std::fs::create_dir_all(&disk).unwrap();
        let key = SigningKey::from_bytes(&[42; 32]);
        if with_keys {
            crate::auth::store_token_keys(&data_dir, &[TokenKey::new(key.verifying_key())])
                .unwrap();
        }
        let config = Config::parse(&format!(
            "data_dir = {data_dir:?}\nadmin_token = \"{ADMIN}\"\n\
             [[storage]]\npath = {disk:?}\nreserve_bytes = 0\n\
             [[camera]]\nname = \"Gate\"\nregion = \"751110000\"\nclass = \"city\"\n\
             [[camera.streams]]\nname = \"main\"\nurl = \"rtsp://127.0.0.1:1/gate\"\n"
        ))
        .unwrap();
        let s = Service::start(&config).await.unwrap();
        let camera = s.cameras().await[0].0.id;
        let root = &s.roots[0];
        let target = Target {
            fs: Arc::new(RealFs),
            index: s.index.clone(),
            root: *root.state.as_ref().unwrap(),
            root_path: root.path.clone(),
            recorder: s.id,
            camera,
            stream: "main".into(),
            segment_duration: Duration90k::from_secs(4),
            retention: Arc::default(),
        };
        let clocks = FakeClocks::new(t0());
        let progress = Arc::new(Mutex::new(Progress::default()));
        let mut r = Recording::new(target, clocks.clone(), progress, Time90k::MIN);
        feed(&mut r, &clocks, 0, 150, 15, Some(&params(640))).await;
        r.end(EndReason::RecorderStopped).await.unwrap();
        let segment = s
            .index
            .list(camera, "main", Time90k::MIN..Time90k::MAX)
            .unwrap()[0]
            .start
            .0;
        Fixture {
            _dir: dir,
            data_dir,
            app: router(s.clone()),
            s,
            camera,
            key,
            segment,
        }
    }

    /// Claims for this recorder's camera and its `main` stream, valid for five minutes; with
    /// the range `T0` to `T0` + 60 s unless the purpose is `live`.
    fn claims(&self, pur: Purpose) -> Claims {
        let now = jiff::Timestamp::now().as_second();
        let ranged = pur != Purpose::Live;
        Claims {
            ver: 1,
            iss: "vms-central".into(),
            aud: self.s.id,
            sub: UserId::generate(),
            name: "a.investigator".into(),
            cam: self.camera,
            stream: "main".into(),
            pur,
            from: ranged.then_some(t0_secs()),
            to: ranged.then_some(t0_secs() + 60),
            iat: now,
            exp: now + 300,
            jti: ulid::Ulid::new().to_string(),
        }
    }

    fn token(&self, claims: &Claims) -> String {
        token::issue(&self.key, claims).unwrap()
    }

    /// A hold on the first 10 s, placed directly.
    async fn hold(&self) -> HoldId {
        let id = HoldId::generate();
        self.s
            .place_hold(Hold {
                id,
                camera: self.camera,
                stream: Some("main".into()),
                start_90k: t0().0,
                end_90k: (t0() + Duration90k::from_secs(10)).0,
                case: "C-1".into(),
                reason: "test".into(),
                created_90k: t0().0,
            })
            .await
            .unwrap();
        id
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, header::HeaderMap, Vec<u8>) {
        let r = self.app.clone().oneshot(req).await.unwrap();
        let (parts, body) = r.into_parts();
        // Bodies made while they are sent (transcodes, evidence) fail on this fake footage
        // after their status; only the status and headers count for them.
        let body = axum::body::to_bytes(body, 1 << 24)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        (parts.status, parts.headers, body)
    }
}

/// How a request authenticates.
#[derive(Clone, Debug)]
enum Auth {
    None,
    Bearer(String),
    Channel,
}

fn request(method: &Method, uri: &str, body: Option<&Value>, auth: &Auth) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Auth::Bearer(t) = auth {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let mut req = match body {
        Some(v) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(v.to_string())),
        None => b.body(Body::empty()),
    }
    .unwrap();
    if let Auth::Channel = auth {
        req.extensions_mut().insert(ChannelPeer);
    }
    req
}

/// Who a route is for.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// The administrator and central only.
    Admin,
    /// Footage: `purpose` grants it and `other` does not; `central` whether central may.
    Footage {
        purpose: Purpose,
        other: Purpose,
        central: bool,
    },
}

struct Endpoint {
    method: Method,
    /// `{cam}` stands for the camera, `{hold}` for a hold placed for the request.
    uri: String,
    body: Option<Value>,
    kind: Kind,
    /// What the administrator gets.
    ok: StatusCode,
}

fn endpoints(f: &Fixture) -> Vec<Endpoint> {
    let range = format!("stream=main&start={}&end={}", at(0), at(10));
    let footage = |purpose, other, central| Kind::Footage {
        purpose,
        other,
        central,
    };
    let get = |uri: String, kind, ok| Endpoint {
        method: Method::GET,
        uri,
        body: None,
        kind,
        ok,
    };
    let unknown = CameraId::generate();
    vec![
        get("/api/v1/cameras".into(), Kind::Admin, StatusCode::OK),
        get("/api/v1/cameras/{cam}".into(), Kind::Admin, StatusCode::OK),
        Endpoint {
            method: Method::DELETE,
            uri: format!("/api/v1/cameras/{unknown}"),
            body: None,
            kind: Kind::Admin,
            ok: StatusCode::NOT_FOUND,
        },
        get("/api/v1/holds".into(), Kind::Admin, StatusCode::OK),
        get("/api/v1/evidence/key".into(), Kind::Admin, StatusCode::OK),
        get("/api/v1/alerts".into(), Kind::Admin, StatusCode::OK),
        get("/metrics".into(), Kind::Admin, StatusCode::OK),
        get(
            format!("/api/v1/cameras/{{cam}}/recordings?{range}"),
            footage(Purpose::Evidence, Purpose::Snapshot, true),
            StatusCode::OK,
        ),
        get(
            format!("/api/v1/cameras/{{cam}}/playback.m3u8?{range}"),
            footage(Purpose::Playback, Purpose::Export, false),
            StatusCode::OK,
        ),
        get(
            format!(
                "/api/v1/cameras/{{cam}}/segments/{}.mp4?stream=main",
                f.segment
            ),
            footage(Purpose::Playback, Purpose::Export, false),
            StatusCode::OK,
        ),
        get(
            format!("/api/v1/cameras/{{cam}}/export.mp4?{range}"),
            footage(Purpose::Export, Purpose::Playback, false),
            StatusCode::OK,
        ),
        get(
            format!("/api/v1/cameras/{{cam}}/transcoded.mp4?{range}"),
            footage(Purpose::Export, Purpose::Playback, false),
            StatusCode::OK,
        ),
        // The fake footage does not decode: both get the same error, after authorisation.
        get(
            format!(
                "/api/v1/cameras/{{cam}}/snapshot.jpg?stream=main&time={}",
                at(2)
            ),
            footage(Purpose::Snapshot, Purpose::Playback, false),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        get(
            "/api/v1/cameras/{cam}/snapshot.jpg?stream=main".into(),
            footage(Purpose::Live, Purpose::Export, false),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        Endpoint {
            method: Method::POST,
            uri: "/api/v1/cameras/{cam}/evidence".into(),
            body: Some(json!({"stream": "main", "start": at(0), "end": at(10),
                "case": "C-1", "reason": "test", "operator": "op"})),
            kind: footage(Purpose::Evidence, Purpose::Export, false),
            ok: StatusCode::OK,
        },
        Endpoint {
            method: Method::POST,
            uri: "/api/v1/cameras/{cam}/holds".into(),
            body: Some(json!({"stream": "main", "start": at(0), "end": at(10),
                "case": "C-1", "reason": "test"})),
            kind: footage(Purpose::Hold, Purpose::Evidence, true),
            ok: StatusCode::CREATED,
        },
        Endpoint {
            method: Method::DELETE,
            uri: "/api/v1/holds/{hold}".into(),
            body: None,
            kind: footage(Purpose::Hold, Purpose::Evidence, true),
            ok: StatusCode::NO_CONTENT,
        },
    ]
}

/// The credentials each request of the table is made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    NoToken,
    AdminToken,
    Garbage,
    Expired,
    OtherCamera,
    OtherPurpose,
    OtherStream,
    RangeOutside,
    OtherRecorder,
    Valid,
    Central,
}

const CASES: [Case; 11] = [
    Case::NoToken,
    Case::AdminToken,
    Case::Garbage,
    Case::Expired,
    Case::OtherCamera,
    Case::OtherPurpose,
    Case::OtherStream,
    Case::RangeOutside,
    Case::OtherRecorder,
    Case::Valid,
    Case::Central,
];

impl Case {
    /// The credentials, and the status and error code expected.
    fn auth(self, f: &Fixture, ep: &Endpoint) -> (Auth, StatusCode) {
        let (purpose, other, central) = match ep.kind {
            // Any media token is refused there; a playback one will do.
            Kind::Admin => (Purpose::Playback, Purpose::Export, true),
            Kind::Footage {
                purpose,
                other,
                central,
            } => (purpose, other, central),
        };
        let user = |edit: &dyn Fn(&mut Claims)| {
            let mut c = f.claims(purpose);
            edit(&mut c);
            Auth::Bearer(f.token(&c))
        };
        // A valid token is refused administration, and gets what the administrator gets.
        let valid = match ep.kind {
            Kind::Admin => StatusCode::FORBIDDEN,
            Kind::Footage { .. } => ep.ok,
        };
        let now = jiff::Timestamp::now().as_second();
        match self {
            Case::NoToken => (Auth::None, StatusCode::UNAUTHORIZED),
            Case::AdminToken => (Auth::Bearer(ADMIN.into()), ep.ok),
            Case::Garbage => (Auth::Bearer("x.y.z".into()), StatusCode::UNAUTHORIZED),
            Case::Expired => (
                user(&|c| (c.iat, c.exp) = (now - 600, now - 60)),
                StatusCode::UNAUTHORIZED,
            ),
            Case::OtherRecorder => (
                user(&|c| c.aud = RecorderId::generate()),
                StatusCode::UNAUTHORIZED,
            ),
            Case::OtherCamera => (
                user(&|c| c.cam = CameraId::generate()),
                StatusCode::FORBIDDEN,
            ),
            Case::OtherStream => (user(&|c| c.stream = "sub".into()), StatusCode::FORBIDDEN),
            Case::OtherPurpose => (
                Auth::Bearer(f.token(&f.claims(other))),
                StatusCode::FORBIDDEN,
            ),
            // For the latest frame, any range is too narrow.
            Case::RangeOutside => (
                user(&|c| {
                    if c.pur == Purpose::Live {
                        c.pur = Purpose::Snapshot;
                    }
                    (c.from, c.to) = (Some(t0_secs() + 30), Some(t0_secs() + 60));
                }),
                StatusCode::FORBIDDEN,
            ),
            Case::Valid => (user(&|_| {}), valid),
            Case::Central if central => (Auth::Channel, ep.ok),
            Case::Central => (Auth::Channel, StatusCode::FORBIDDEN),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_kind_of_credential_as_the_spec_says() {
    let f = Fixture::new(true).await;
    let mut problems = Vec::new();
    for ep in endpoints(&f) {
        for case in CASES {
            let (auth, expected) = case.auth(&f, &ep);
            let hold = f.hold().await;
            let uri = ep
                .uri
                .replace("{cam}", &f.camera.to_string())
                .replace("{hold}", &hold.to_string());
            let req = request(&ep.method, &uri, ep.body.as_ref(), &auth);
            let (status, headers, body) = f.send(req).await;
            let what = format!("{} {uri} with {case:?}", ep.method);
            if status != expected {
                problems.push(format!(
                    "{what}: {status}, expected {expected}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ));
                continue;
            }
            // A refusal is the JSON error and nothing else.
            let code = match status {
                StatusCode::UNAUTHORIZED => "unauthenticated",
                StatusCode::FORBIDDEN => "permission_denied",
                _ => continue,
            };
            let json: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("{what}: a refusal that is not JSON: {e}"));
                    continue;
                }
            };
            if json["error"]["code"] != code
                || headers[header::CONTENT_TYPE] != "application/json"
                || json.as_object().map(|o| o.len()) != Some(1)
            {
                problems.push(format!("{what}: refusal {json}"));
            }
            if status == StatusCode::UNAUTHORIZED && headers[header::WWW_AUTHENTICATE] != "Bearer" {
                problems.push(format!("{what}: no WWW-Authenticate: Bearer"));
            }
            let message = json["error"]["message"].as_str().unwrap_or_default();
            if let Auth::Bearer(t) = &auth
                && message.contains(t.as_str())
            {
                problems.push(format!("{what}: the message quotes the token"));
            }
        }
    }
    f.s.shutdown().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// What a refusal names, so that a user can tell why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_the_claim_that_did_not_match() {
    let f = Fixture::new(true).await;
    let uri = format!(
        "/api/v1/cameras/{}/export.mp4?stream=main&start={}&end={}",
        f.camera,
        at(0),
        at(10)
    );
    let now = jiff::Timestamp::now().as_second();
    let mut export = f.claims(Purpose::Export);
    for (edit, status, why) in [
        (
            Box::new(|c: &mut Claims| c.cam = CameraId::generate()) as Box<dyn Fn(&mut Claims)>,
            StatusCode::FORBIDDEN,
            "token claim cam",
        ),
        (
            Box::new(|c| c.stream = "sub".into()),
            StatusCode::FORBIDDEN,
            "token claim str",
        ),
        (
            Box::new(|c| c.pur = Purpose::Playback),
            StatusCode::FORBIDDEN,
            "token claim pur",
        ),
        (
            Box::new(|c| c.from = Some(t0_secs() + 1)),
            StatusCode::FORBIDDEN,
            "token claims from/to",
        ),
        (
            Box::new(|c| c.aud = RecorderId::generate()),
            StatusCode::UNAUTHORIZED,
            "aud",
        ),
        (
            Box::new(move |c| (c.iat, c.exp) = (now - 600, now - 60)),
            StatusCode::UNAUTHORIZED,
            "exp: expired",
        ),
    ] {
        let mut c = f.claims(Purpose::Export);
        edit(&mut c);
        let req = request(&Method::GET, &uri, None, &Auth::Bearer(f.token(&c)));
        let (got, _, body) = f.send(req).await;
        let json: Value = serde_json::from_slice(&body).unwrap();
        let message = json["error"]["message"].as_str().unwrap();
        assert_eq!(got, status, "{why}: {message}");
        assert!(message.contains(why), "{message} lacks {why:?}");
    }
    // An `*` token grants the stream.
    export.stream = "*".into();
    let req = request(&Method::GET, &uri, None, &Auth::Bearer(f.token(&export)));
    assert_eq!(f.send(req).await.0, StatusCode::OK);
    f.s.shutdown().await;
}

/// The last record of the audit log.
fn last_audit(f: &Fixture) -> Value {
    let log = std::fs::read_to_string(f.data_dir.join(crate::audit::AUDIT_FILE)).unwrap();
    serde_json::from_str(log.lines().last().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_names_who_asked() {
    let f = Fixture::new(true).await;
    let claims = f.claims(Purpose::Playback);
    let uri = format!(
        "/api/v1/cameras/{}/playback.m3u8?stream=main&start={}&end={}",
        f.camera,
        at(0),
        at(10)
    );
    let req = request(&Method::GET, &uri, None, &Auth::Bearer(f.token(&claims)));
    assert_eq!(f.send(req).await.0, StatusCode::OK);
    let record = last_audit(&f);
    assert_eq!(record["action"], "playback");
    assert_eq!(record["actor"], format!("user:{}", claims.sub));
    assert_eq!(record["details"]["token"], claims.jti.as_str());
    assert_eq!(record["details"]["name"], "a.investigator");

    let req = request(&Method::GET, &uri, None, &Auth::Bearer(ADMIN.into()));
    assert_eq!(f.send(req).await.0, StatusCode::OK);
    let record = last_audit(&f);
    assert_eq!(record["actor"], "local-admin");
    assert!(record["details"].get("token").is_none());

    let hold = f.hold().await;
    let req = request(
        &Method::DELETE,
        &format!("/api/v1/holds/{hold}"),
        None,
        &Auth::Channel,
    );
    assert_eq!(f.send(req).await.0, StatusCode::NO_CONTENT);
    let record = last_audit(&f);
    assert_eq!(
        (&record["action"], &record["actor"]),
        (&json!("hold_released"), &json!("central"))
    );
    // A refused request leaves no record: the refusal comes first.
    let before = last_audit(&f);
    let mut other = claims.clone();
    other.cam = CameraId::generate();
    let req = request(&Method::GET, &uri, None, &Auth::Bearer(f.token(&other)));
    assert_eq!(f.send(req).await.0, StatusCode::FORBIDDEN);
    assert_eq!(last_audit(&f), before);
    f.s.shutdown().await;
}

/// A player passes the token in the query; the playlist hands it on to the segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_token_plays_through_the_playlist() {
    let f = Fixture::new(true).await;
    let token = f.token(&f.claims(Purpose::Playback));
    let uri = format!(
        "/api/v1/cameras/{}/playback.m3u8?stream=main&start={}&end={}&token={token}",
        f.camera,
        at(0),
        at(10)
    );
    let (status, _, body) = f.send(request(&Method::GET, &uri, None, &Auth::None)).await;
    assert_eq!(status, StatusCode::OK);
    let playlist = String::from_utf8(body).unwrap();
    let segments: Vec<&str> = playlist
        .lines()
        .filter(|l| l.starts_with("segments/"))
        .collect();
    assert!(!segments.is_empty(), "{playlist}");
    for s in segments {
        assert!(s.ends_with(&format!("&token={token}")), "{s}");
        let uri = format!("/api/v1/cameras/{}/{s}", f.camera);
        let (status, headers, body) = f.send(request(&Method::GET, &uri, None, &Auth::None)).await;
        assert_eq!(status, StatusCode::OK, "{s}");
        assert_eq!(headers[header::CONTENT_TYPE], "video/mp4");
        assert!(!body.is_empty());
    }
    f.s.shutdown().await;
}

/// Without keys only the administrator and central get in; keys given later take effect at
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_set_at_enrolment_take_effect() {
    let f = Fixture::new(false).await;
    let token = f.token(&f.claims(Purpose::Playback));
    let uri = format!(
        "/api/v1/cameras/{}/recordings?stream=main&start={}&end={}",
        f.camera,
        at(0),
        at(10)
    );
    let send = |auth: Auth| f.send(request(&Method::GET, &uri, None, &auth));
    assert_eq!(
        send(Auth::Bearer(token.clone())).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(send(Auth::Bearer(ADMIN.into())).await.0, StatusCode::OK);
    assert_eq!(send(Auth::Channel).await.0, StatusCode::OK);
    f.s.set_token_keys(vec![TokenKey::new(f.key.verifying_key())]);
    assert_eq!(send(Auth::Bearer(token.clone())).await.0, StatusCode::OK);
    f.s.set_token_keys(Vec::new());
    assert_eq!(send(Auth::Bearer(token)).await.0, StatusCode::UNAUTHORIZED);
    f.s.shutdown().await;
}
